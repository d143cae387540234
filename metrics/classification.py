"""Classification metrics.

Binary detection: ROC-AUC and average precision take ``y_true`` (n,) in
{0, 1} and ``y_score`` (n,) real-valued scores, higher meaning more likely
positive; ties are handled as scikit-learn does (ROC-AUC counts a tied
positive/negative pair as one half).

Multi-class labels: accuracy, balanced accuracy and per-class recall take
``y_true`` and ``y_pred`` (n,) integer class labels (any integers; floats
are accepted only when integral).

Binary decisions: confusion counts, sensitivity and specificity take
``y_true`` and ``y_pred`` (n,) labels in {0, 1}, 1 being the positive class
(e.g. "patient"); sensitivity is the recall of 1, specificity that of 0.
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


def _labels(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y = as_1d("y_true", y_true)
    p = as_1d("y_pred", y_pred)
    same_length(y_true=y, y_pred=p)
    for name, a in (("y_true", y), ("y_pred", p)):
        bad = np.flatnonzero(a != np.round(a))
        if bad.size:
            raise ValueError(f"{name}: expected integer class labels, found {a[bad[0]]} at index {bad[0]}")
    return y.astype(np.int64), p.astype(np.int64)


def accuracy(y_true, y_pred) -> float:
    """Fraction of samples whose predicted label equals the true label."""
    y, p = _labels(y_true, y_pred)
    return float((y == p).mean())


def per_class_recall(y_true, y_pred) -> dict[int, float]:
    """``{class: recall}`` for every class present in ``y_true`` (sorted): correct / support."""
    y, p = _labels(y_true, y_pred)
    classes, inv, support = np.unique(y, return_inverse=True, return_counts=True)
    correct = np.bincount(inv, weights=(y == p), minlength=len(classes))
    return {int(c): float(k / n) for c, k, n in zip(classes, correct, support)}


def balanced_accuracy(y_true, y_pred) -> float:
    """Mean per-class recall over the classes PRESENT IN ``y_true``.

    Predicted labels that never occur in ``y_true`` count as errors but add no
    class to the mean (scikit-learn's ``balanced_accuracy_score`` convention,
    ``adjusted=False``). Chance level for a constant or random prediction is
    1 / (number of classes in ``y_true``).
    """
    return float(np.mean(list(per_class_recall(y_true, y_pred).values())))


def _binary_labels(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y, p = _labels(y_true, y_pred)
    for name, a in (("y_true", y), ("y_pred", p)):
        bad = np.flatnonzero((a != 0) & (a != 1))
        if bad.size:
            raise ValueError(f"{name}: expected binary labels 0 and 1, found {a[bad[0]]} at index {bad[0]}")
    return y, p


def confusion_counts(y_true, y_pred) -> dict[str, int]:
    """``{"tp", "fn", "tn", "fp"}`` of binary labels (1 = positive): true positives, false negatives (positives
    predicted 0), true negatives, false positives (negatives predicted 1)."""
    y, p = _binary_labels(y_true, y_pred)
    return {"tp": int(((y == 1) & (p == 1)).sum()), "fn": int(((y == 1) & (p == 0)).sum()),
            "tn": int(((y == 0) & (p == 0)).sum()), "fp": int(((y == 0) & (p == 1)).sum())}


def sensitivity(y_true, y_pred) -> float:
    """Recall of the positive class, tp / (tp + fn); ``ValueError`` if ``y_true`` has no positive."""
    c = confusion_counts(y_true, y_pred)
    if c["tp"] + c["fn"] == 0:
        raise ValueError("y_true: has no positives (1), so sensitivity is undefined")
    return c["tp"] / (c["tp"] + c["fn"])


def specificity(y_true, y_pred) -> float:
    """Recall of the negative class, tn / (tn + fp); ``ValueError`` if ``y_true`` has no negative."""
    c = confusion_counts(y_true, y_pred)
    if c["tn"] + c["fp"] == 0:
        raise ValueError("y_true: has no negatives (0), so specificity is undefined")
    return c["tn"] / (c["tn"] + c["fp"])
