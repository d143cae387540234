"""Binary detection metrics: ROC-AUC and average precision.

Both take ``y_true`` (n,) in {0, 1} and ``y_score`` (n,) real-valued scores,
higher meaning more likely positive; ties are handled as scikit-learn does
(ROC-AUC counts a tied positive/negative pair as one half).
"""
from __future__ import annotations

import numpy as np
from sklearn import metrics as _skm

from ._validate import as_1d, same_length


def _binary(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    y = as_1d("y_true", y_true)
    s = as_1d("y_score", y_score)
    same_length(y_true=y, y_score=s)
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true: expected only 0 and 1")
    if y.min() == y.max():
        raise ValueError("y_true: needs both positives and negatives")
    return y.astype(int), s


def roc_auc(y_true, y_score) -> float:
    """Area under the ROC curve; 0.5 is chance, 1 is a perfect ranking."""
    y, s = _binary(y_true, y_score)
    return float(_skm.roc_auc_score(y, s))


def average_precision(y_true, y_score) -> float:
    """Average precision, sum_n (R_n - R_{n-1}) P_n (no interpolation); chance = positive rate."""
    y, s = _binary(y_true, y_score)
    return float(_skm.average_precision_score(y, s))


def positive_rate(y_true) -> float:
    """Fraction of positives: the average precision of a random ranking."""
    y = as_1d("y_true", y_true)
    same_length(y_true=y)
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true: expected only 0 and 1")
    return float(y.mean())
