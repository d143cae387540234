"""Baselines of ``celegans-structure-function``: chance, direct connectome weight, multi-hop walks.

Models follow the family protocol: ``fit(inputs, train, val, seed)`` on
:class:`~.structure_function.Inputs` and training/validation
:class:`~.structure_function.Pairs`; ``predict(inputs, pairs)`` returns
``{"score": (n,), "amplitude": (n,)}`` for pairs without targets.
"""
from __future__ import annotations

import numpy as np

from neuroharness.metrics.classification import roc_auc

from .structure_function import CONNECTOME_ANNOTATION, Inputs, Pairs

class _LinearAmplitude:
    """Amplitude = a + b * score, least squares on training pairs (2 parameters)."""

    def _fit_amplitude(self, score: np.ndarray, amplitude: np.ndarray) -> None:
        X = np.column_stack([np.ones_like(score), score])
        self._ab = np.linalg.lstsq(X, amplitude, rcond=None)[0]

    def _amplitude(self, score: np.ndarray) -> np.ndarray:
        return self._ab[0] + self._ab[1] * score


class ChanceModel:
    """Uniform random scores and amplitudes: the chance level, 0 parameters."""

    n_parameters = 0

    def fit(self, inputs: Inputs, train: Pairs, val: Pairs, seed: int):
        self._seed = seed
        return self

    def predict(self, inputs: Inputs, pairs: Pairs) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self._seed, len(pairs)])
        return {"score": rng.random(len(pairs)), "amplitude": rng.standard_normal(len(pairs))}


class DirectConnectomeModel(_LinearAmplitude):
    """Score = chemical + gap-junction weight from stimulated to responding (Cook 2019)."""

    n_parameters = 2

    def __init__(self, annotation: str = CONNECTOME_ANNOTATION):
        self.annotation = annotation

    def _score(self, inputs: Inputs, pairs: Pairs) -> np.ndarray:
        chem, gap = inputs.weights(self.annotation)
        return (chem + gap)[pairs.responding, pairs.stimulated]

    def fit(self, inputs, train, val, seed):
        self._fit_amplitude(self._score(inputs, train), train.amplitude)
        return self

    def predict(self, inputs, pairs):
        s = self._score(inputs, pairs)
        return {"score": s, "amplitude": self._amplitude(s)}


class MultiHopModel(_LinearAmplitude):
    """Score = sum_{k=1..K} alpha^k (A/rho(A))^k, A = log1p(chemical + gap).

    ``A[i, j]`` is the weight from j to i and rho its spectral radius, so
    the series counts weighted walks of up to K synapses from the stimulated
    neuron. K and alpha are chosen by ROC-AUC on the training pairs.
    """

    n_parameters = 4  # K, alpha, and the two amplitude coefficients

    def __init__(self, annotation: str = CONNECTOME_ANNOTATION, hops=(1, 2, 3, 4), alphas=(0.25, 0.5, 0.75, 1.0)):
        self.annotation, self.hops, self.alphas = annotation, tuple(hops), tuple(alphas)

    def _series(self, inputs: Inputs, K: int, alpha: float) -> np.ndarray:
        chem, gap = inputs.weights(self.annotation)
        A = np.log1p(chem + gap)
        A = A / np.max(np.abs(np.linalg.eigvals(A)))
        out, power = np.zeros_like(A), np.eye(len(A))
        for k in range(1, K + 1):
            power = power @ A
            out += alpha**k * power
        return out

    def fit(self, inputs, train, val, seed):
        best = None
        for K in self.hops:
            for alpha in self.alphas:
                S = self._series(inputs, K, alpha)
                auc = roc_auc(train.significant, S[train.responding, train.stimulated])
                if best is None or auc > best[0]:
                    best = (auc, K, alpha, S)
        _, self.K, self.alpha, self._S = best
        self._fit_amplitude(self._S[train.responding, train.stimulated], train.amplitude)
        return self

    def predict(self, inputs, pairs):
        s = self._S[pairs.responding, pairs.stimulated]
        return {"score": s, "amplitude": self._amplitude(s)}
