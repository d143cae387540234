"""Link prediction metrics: hand-computed values (ties included), OGB's evaluator and scikit-learn agree."""
from __future__ import annotations

import numpy as np
import pytest
from neuroharness.metrics.link_prediction import hits_at_k, mrr, roc_auc
from sklearn.metrics import roc_auc_score


def test_roc_auc_by_hand():
    # positive vs negative pairs: 3 beats 2 and 0 (2); 2 ties 2 (1/2) and beats 0 (1); 1 beats 0 only (1) -> 4.5 / 6
    assert roc_auc([3, 2, 1], [2, 0]) == 0.75
    assert roc_auc([1.0, 1.0], [1.0]) == 0.5  # all tied
    assert roc_auc([5, 6], [1, 2, 3]) == 1.0
    assert roc_auc([1, 2], [5, 6, 7]) == 0.0
    assert roc_auc([2], [1, 2, 3]) == 0.5  # 1 win, 1 tie, 1 loss
    # mixed dtypes: 0.2 beats 0.1 only, 0.9 and 0.4 beat both -> 5 / 6
    assert roc_auc(np.array([0.2, 0.9, 0.4], dtype=np.float32), np.array([0.3, 0.1])) == pytest.approx(5 / 6)


def test_roc_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    for n_pos, n_neg in ((1, 1), (7, 3), (500, 1200)):
        pos = rng.integers(0, 5, n_pos).astype(float)  # few distinct values: many ties
        neg = rng.integers(0, 5, n_neg).astype(float)
        if len(np.unique(np.concatenate([pos, neg]))) == 1:
            continue
        want = roc_auc_score(np.r_[np.ones(n_pos), np.zeros(n_neg)], np.r_[pos, neg])
        assert roc_auc(pos, neg) == pytest.approx(want, abs=1e-12)


def test_roc_auc_agrees_with_ogb_evaluator():
    ogb = pytest.importorskip("ogb.linkproppred", reason="ogb (test-only dependency) is not installed; "
                              "pip install ogb==1.3.6 to check agreement with Evaluator('ogbl-vessel')")
    ev = ogb.Evaluator("ogbl-vessel")
    rng = np.random.default_rng(1)
    for pos, neg in ((rng.normal(0.3, 1, 1000), rng.normal(0, 1, 1000)),           # continuous
                     (rng.integers(0, 3, 400).astype(float), rng.integers(0, 3, 400).astype(float)),  # ties
                     (np.array([3.0, 2.0, 1.0]), np.array([2.0, 0.0]))):
        want = ev.eval({"y_pred_pos": pos, "y_pred_neg": neg})["rocauc"]
        assert roc_auc(pos, neg) == pytest.approx(want, abs=1e-12)
    assert ev.eval({"y_pred_pos": np.array([3.0, 2.0, 1.0]), "y_pred_neg": np.array([2.0, 0.0])})["rocauc"] == 0.75


@pytest.mark.parametrize("bad, match", [
    (([], [1.0]), "y_pred_pos: empty"),
    (([1.0], []), "y_pred_neg: empty"),
    (([1.0, np.nan], [0.0]), "NaN or infinite"),
    (([1.0], [np.inf]), "NaN or infinite"),
    (([[1.0]], [0.0]), "1-D"),
    ((["a"], [0.0]), "numbers"),
])
def test_roc_auc_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        roc_auc(*bad)


def test_hits_at_k_by_hand_and_with_ogb():
    pos, neg = [5.0, 3.0, 1.0], [4.0, 2.0, 0.0]
    assert hits_at_k(pos, neg, 1) == pytest.approx(1 / 3)  # above 4: only 5
    assert hits_at_k(pos, neg, 2) == pytest.approx(2 / 3)  # above 2: 5 and 3
    assert hits_at_k([2.0], [2.0, 1.0], 1) == 0.0  # a tie with the k-th negative is not a hit
    assert hits_at_k(pos, neg, 4) == 1.0  # fewer negatives than k, as OGB
    with pytest.raises(ValueError, match="positive integer"):
        hits_at_k(pos, neg, 0)
    ogb = pytest.importorskip("ogb.linkproppred", reason="ogb (test-only dependency) is not installed")
    rng = np.random.default_rng(2)
    p, n = rng.integers(0, 50, 300).astype(float), rng.integers(0, 60, 400).astype(float)
    assert hits_at_k(p, n, 20) == pytest.approx(ogb.Evaluator("ogbl-ddi").eval({"y_pred_pos": p, "y_pred_neg": n})["hits@20"])


def test_mrr_by_hand_and_with_ogb():
    # positive 3: one negative above (4), one tied (3) -> rank 1 + 1 + 0.5 = 2.5; positive 1: rank 1
    assert mrr([3.0, 1.0], [[4.0, 2.0, 3.0], [0.0, 0.0, 0.0]]) == pytest.approx((1 / 2.5 + 1) / 2)
    with pytest.raises(ValueError, match="shape"):
        mrr([1.0, 2.0], [1.0, 2.0])
    ogb = pytest.importorskip("ogb.linkproppred", reason="ogb (test-only dependency) is not installed")
    rng = np.random.default_rng(3)
    p, n = rng.integers(0, 10, 50).astype(float), rng.integers(0, 10, (50, 20)).astype(float)
    torch = pytest.importorskip("torch")  # ogb 1.3.6's numpy MRR path calls .sum(dim=1): give it tensors
    out = ogb.Evaluator("ogbl-citation2").eval({"y_pred_pos": torch.from_numpy(p), "y_pred_neg": torch.from_numpy(n)})
    want = float(out["mrr_list"].mean())
    assert mrr(p, n) == pytest.approx(want)
