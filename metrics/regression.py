"""Regression and rank-correlation metrics on 1-D arrays of equal length."""
from __future__ import annotations

import numpy as np
from scipy import stats

from ._validate import as_1d, same_length


def spearman(y_true, y_pred) -> float:
    """Spearman rank correlation ρ (average ranks for ties); 0 if either input is constant."""
    a = as_1d("y_true", y_true)
    b = as_1d("y_pred", y_pred)
    same_length(y_true=a, y_pred=b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(stats.spearmanr(a, b).statistic)


def mse(y_true, y_pred) -> float:
    """Mean squared error, in the squared units of the inputs."""
    a = as_1d("y_true", y_true)
    b = as_1d("y_pred", y_pred)
    same_length(y_true=a, y_pred=b)
    return float(np.mean((a - b) ** 2))
