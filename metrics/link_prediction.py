"""Link prediction metrics on separate positive and negative score arrays (OGB style).

Every function takes ``y_pred_pos`` (n_pos,) and ``y_pred_neg`` (n_neg,) (or
(n_pos, k) for :func:`mrr`): real-valued scores, higher meaning "more likely
an edge". Scores must be finite; arrays must be non-empty.
"""
from __future__ import annotations

import numpy as np

from ._validate import as_1d


def _scores(y_pred_pos, y_pred_neg) -> tuple[np.ndarray, np.ndarray]:
    pos = as_1d("y_pred_pos", y_pred_pos)
    neg = as_1d("y_pred_neg", y_pred_neg)
    for name, a in (("y_pred_pos", pos), ("y_pred_neg", neg)):
        if len(a) == 0:
            raise ValueError(f"{name}: empty; expected at least one score")
    return pos, neg


def roc_auc(y_pred_pos, y_pred_neg) -> float:
    """Area under the ROC curve of positives against negatives; 0.5 is chance.

    Equals P(score of a random positive > score of a random negative), a tied
    pair counting one half (the Mann-Whitney U statistic over n_pos * n_neg),
    which is what ``ogb.linkproppred.Evaluator("ogbl-vessel")`` (via
    scikit-learn) computes. O(n log n): negatives are sorted once and each
    positive is located by binary search; the pair counts are exact integers.
    """
    pos, neg = _scores(y_pred_pos, y_pred_neg)
    neg = np.sort(neg)
    below = np.searchsorted(neg, pos, side="left")  # negatives strictly below each positive
    not_above = np.searchsorted(neg, pos, side="right")  # ... at or below
    # 2U = 2 * #below + #ties, summed exactly in int64 (n_pos * n_neg < 2**63 for any realistic input)
    twice_u = int(below.sum(dtype=np.int64)) + int(not_above.sum(dtype=np.int64))
    return twice_u / (2.0 * len(pos) * len(neg))


def hits_at_k(y_pred_pos, y_pred_neg, k: int) -> float:
    """Fraction of positives scored strictly above the k-th highest negative (OGB ``hits@K``).

    As in OGB, 1.0 when there are fewer than ``k`` negatives.
    """
    pos, neg = _scores(y_pred_pos, y_pred_neg)
    if int(k) != k or k < 1:
        raise ValueError(f"k: expected a positive integer, got {k!r}")
    k = int(k)
    if len(neg) < k:
        return 1.0
    kth = np.partition(neg, len(neg) - k)[len(neg) - k]
    return float(np.count_nonzero(pos > kth)) / len(pos)


def mrr(y_pred_pos, y_pred_neg) -> float:
    """Mean reciprocal rank of each positive among its own negatives (OGB ``mrr``).

    ``y_pred_neg`` (n_pos, k): row i holds the negatives ranked against
    positive i. A positive's rank is 1 + #negatives above it + half the tied
    ones (the mean of the optimistic and pessimistic ranks, as OGB).
    """
    pos = as_1d("y_pred_pos", y_pred_pos)
    neg = np.asarray(y_pred_neg)
    if neg.ndim != 2 or neg.shape[0] != len(pos) or neg.shape[1] == 0 or len(pos) == 0:
        raise ValueError(f"y_pred_neg: expected shape (n_pos, k) = ({len(pos)}, k>0) with n_pos > 0, got {neg.shape}")
    if neg.dtype.kind not in "biuf" or not np.isfinite(neg).all():
        raise ValueError("y_pred_neg: expected finite numbers")
    above = (neg > pos[:, None]).sum(1)
    tied = (neg == pos[:, None]).sum(1)
    rank = 1.0 + above + 0.5 * tied
    return float(np.mean(1.0 / rank))
