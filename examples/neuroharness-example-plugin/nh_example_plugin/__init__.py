"""Logistic regression on connectome pair features for ``celegans-structure-function``.

The model follows the task's protocol
(``neuroharness.tasks.protocols.StructureFunctionModel``)::

    model.fit(inputs, train, val, seed) -> model
    model.predict(inputs, pairs) -> {"score": (n,) float, "amplitude": (n,) float}

``inputs.weights()`` gives the (chemical, gap-junction) connectome as (n, n)
arrays indexed [responding, stimulated]; ``train``/``val``/``pairs`` hold
``responding`` and ``stimulated`` neuron indices (and, for train and val,
the targets ``significant`` and ``amplitude``). Nothing here imports
neuroharness: the task hands the model everything it may use.
"""
from __future__ import annotations

import numpy as np

__version__ = "0.1.0"


def pair_features(inputs, pairs) -> np.ndarray:
    """(n, 8) features of directed pairs (stimulated j -> responding i): direct and reverse chemical and
    gap-junction weights, two-hop walks j -> k -> i, and the out/in degrees of j and i (all log1p)."""
    chem, gap = inputs.weights()
    a = chem + gap
    two_hop = a @ a  # [i, j]: sum over k of w(k -> i) w(j -> k)
    i, j = pairs.responding, pairs.stimulated
    cols = [chem[i, j], gap[i, j], chem[j, i], two_hop[i, j],
            a.sum(axis=0)[j], a.sum(axis=1)[j], a.sum(axis=0)[i], a.sum(axis=1)[i]]
    return np.log1p(np.column_stack(cols).astype(np.float64))


class LogisticRegressionModel:
    """logistic regression on 8 log connectome features of each pair (ridge for the amplitude)"""

    def __init__(self, C: float = 1.0, class_weight: str | None = "balanced"):
        self.C, self.class_weight = C, class_weight

    def fit(self, inputs, train, val, seed: int):
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.preprocessing import StandardScaler

        X = pair_features(inputs, train)
        self._scaler = StandardScaler().fit(X)
        Xs = self._scaler.transform(X)
        self._clf = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=1000,
                                       random_state=seed).fit(Xs, train.significant)
        self._reg = Ridge(alpha=1.0).fit(Xs, train.amplitude)
        self.n_parameters = int(self._clf.coef_.size + self._clf.intercept_.size
                                + self._reg.coef_.size + 1)
        return self

    def predict(self, inputs, pairs) -> dict[str, np.ndarray]:
        Xs = self._scaler.transform(pair_features(inputs, pairs))
        return {"score": self._clf.predict_proba(Xs)[:, 1], "amplitude": self._reg.predict(Xs)}
