"""Metric functions against values worked out by hand, plus input validation."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from neuroharness.metrics.classification import average_precision, positive_rate, roc_auc
from neuroharness.metrics.regression import mse, spearman


# -- ROC-AUC -----------------------------------------------------------------
def test_roc_auc_hand_case():
    # positives 0.35, 0.8; negatives 0.1, 0.4. Correctly ordered pairs:
    # (0.35>0.1), (0.8>0.1), (0.8>0.4); wrong: (0.35<0.4) -> 3/4
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)


def test_roc_auc_tie_counts_one_half():
    # positives 0.3, 0.8; negatives 0.3, 0.1. Pairs: (0.3 vs 0.3) tie = 1/2,
    # (0.3>0.1) = 1, (0.8>0.3) = 1, (0.8>0.1) = 1 -> 3.5 / 4
    assert roc_auc([0, 1, 0, 1], [0.3, 0.3, 0.1, 0.8]) == pytest.approx(0.875)
    # all scores tied -> every pair is a tie -> 1/2
    assert roc_auc([0, 1, 1, 0, 1], [2.0] * 5) == pytest.approx(0.5)


def test_roc_auc_perfect_and_reversed():
    y = [0, 0, 0, 1, 1]
    assert roc_auc(y, [0.1, 0.2, 0.3, 0.4, 0.5]) == 1.0
    assert roc_auc(y, [0.5, 0.4, 0.3, 0.2, 0.1]) == 0.0


def test_roc_auc_accepts_bool_and_int_labels():
    s = [0.1, 0.4, 0.35, 0.8]
    assert roc_auc(np.array([False, False, True, True]), s) == pytest.approx(0.75)
    assert roc_auc(np.array([0.0, 0.0, 1.0, 1.0]), s) == pytest.approx(0.75)


# -- average precision -------------------------------------------------------
def test_average_precision_hand_case():
    # ranked: + (P=1, R=1/2), -, + (P=2/3, R=1): AP = 1/2 * 1 + 1/2 * 2/3
    assert average_precision([1, 0, 1], [0.9, 0.8, 0.7]) == pytest.approx((1 + 2 / 3) / 2)


def test_average_precision_tied_scores_form_one_threshold():
    # threshold 0.8 takes one + and one - together: P=1/2, R=1/2;
    # threshold 0.5: P=2/3, R=1. AP = 1/2 * 1/2 + 1/2 * 2/3 = 7/12
    assert average_precision([1, 0, 1, 0], [0.8, 0.8, 0.5, 0.1]) == pytest.approx(7 / 12)


def test_average_precision_perfect():
    assert average_precision([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8]) == 1.0


# -- positive rate -----------------------------------------------------------
def test_positive_rate():
    assert positive_rate([1, 0, 0, 0]) == 0.25
    assert positive_rate(np.array([True, False, True])) == pytest.approx(2 / 3)
    assert positive_rate([0, 0]) == 0.0


@pytest.mark.parametrize("bad, match", [([], "empty"), ([0, 2], "only 0 and 1"), ([0.0, np.nan], "NaN")])
def test_positive_rate_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        positive_rate(bad)


# -- Spearman ----------------------------------------------------------------
def test_spearman_hand_case_no_ties():
    # ranks differ by d = (-1, 1, -1, 1, 0): rho = 1 - 6*4 / (5*(25-1)) = 0.8
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)


def test_spearman_hand_case_with_ties():
    # average ranks: a -> (1, 2.5, 2.5, 4), b -> (1, 3, 2, 4); Pearson of the ranks:
    # deviations a (-1.5, 0, 0, 1.5), b (-1.5, .5, -.5, 1.5)
    # cov 4.5, var_a 4.5, var_b 5 -> rho = 4.5 / sqrt(4.5 * 5) = sqrt(0.9)
    assert spearman([10, 20, 20, 30], [1, 3, 2, 4]) == pytest.approx(math.sqrt(0.9))


def test_spearman_perfect_and_reversed():
    assert spearman([1, 2, 3], [10, 200, 3000]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_spearman_constant_input_is_zero():
    assert spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == 0.0
    assert spearman([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]) == 0.0


# -- MSE ---------------------------------------------------------------------
def test_mse():
    assert mse([1, 2, 3], [1, 2, 5]) == pytest.approx(4 / 3)
    assert mse([0.5, -0.5], [0.5, -0.5]) == 0.0
    assert mse([1.0], [-2.0]) == 9.0


# -- validation --------------------------------------------------------------
GOOD_Y = [0, 1, 0, 1]
GOOD_S = [0.1, 0.2, 0.3, 0.4]
BINARY = [roc_auc, average_precision]
PAIRWISE = [roc_auc, average_precision, spearman, mse]


@pytest.mark.parametrize("fn", PAIRWISE)
@pytest.mark.parametrize("bad, what", [(np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite")])
def test_non_finite_scores_rejected(fn, bad, what):
    s = [0.1, bad, 0.3, 0.4]
    with pytest.raises(ValueError, match=r"y_(score|pred): 1 value\(s\) are NaN or infinite"):
        fn(GOOD_Y, s)


@pytest.mark.parametrize("fn", PAIRWISE)
def test_two_dimensional_rejected(fn):
    with pytest.raises(ValueError, match=r"expected a 1-D array, got shape \(2, 2\)"):
        fn(GOOD_Y, np.array(GOOD_S).reshape(2, 2))


@pytest.mark.parametrize("fn", PAIRWISE)
def test_mismatched_lengths_rejected(fn):
    with pytest.raises(ValueError, match=r"differ in length.*4.*3"):
        fn(GOOD_Y, GOOD_S[:3])


@pytest.mark.parametrize("fn", PAIRWISE)
def test_empty_rejected(fn):
    with pytest.raises(ValueError, match="empty"):
        fn([], [])


@pytest.mark.parametrize("fn", BINARY)
def test_y_true_not_binary_rejected(fn):
    with pytest.raises(ValueError, match="y_true: expected only 0 and 1"):
        fn([0, 1, 2, 1], GOOD_S)
    with pytest.raises(ValueError, match="y_true: expected only 0 and 1"):
        fn([0, 1, 0.5, 1], GOOD_S)


@pytest.mark.parametrize("fn", BINARY)
@pytest.mark.parametrize("label", [0, 1])
def test_single_class_rejected(fn, label):
    with pytest.raises(ValueError, match="both positives and negatives"):
        fn([label] * 4, GOOD_S)


@pytest.mark.parametrize("fn", PAIRWISE)
def test_string_dtype_rejected(fn):
    with pytest.raises(ValueError, match=r"y_(score|pred): expected numbers, got dtype <U"):
        fn(GOOD_Y, ["0.1", "0.2", "0.3", "0.4"])
    with pytest.raises(ValueError, match=r"expected numbers, got dtype object"):
        fn(GOOD_Y, np.array([0.1, None, 0.3, 0.4], dtype=object))


# -- properties --------------------------------------------------------------
labels_and_scores = st.integers(2, 30).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
        st.lists(st.integers(-5, 5), min_size=n, max_size=n),  # small ints: many ties
    )
)


@settings(max_examples=150, deadline=None)
@given(labels_and_scores)
def test_roc_auc_matches_pair_counting_and_is_antisymmetric(ys):
    y, s = ys
    assume(0 < sum(y) < len(y))
    pos = [si for yi, si in zip(y, s) if yi == 1]
    neg = [si for yi, si in zip(y, s) if yi == 0]
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos, neg))
    auc = roc_auc(y, s)
    assert auc == pytest.approx(wins / (len(pos) * len(neg)))
    # a tie counts 1/2 both ways, so flipping the scores mirrors the AUC even with ties
    assert auc + roc_auc(y, [-x for x in s]) == pytest.approx(1.0)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(2, 25).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(-50, 50), min_size=n, max_size=n),
            st.lists(st.integers(-50, 50), min_size=n, max_size=n),
        )
    )
)
def test_spearman_invariant_under_strictly_increasing_transforms(ab):
    a, b = (np.array(x, dtype=float) for x in ab)
    rho = spearman(a, b)
    assert -1.0 - 1e-12 <= rho <= 1.0 + 1e-12
    # x**3 and 7x - 3 are exact and strictly increasing on these integers
    assert spearman(a**3, 7 * b - 3) == pytest.approx(rho, abs=1e-12)
    # a strictly decreasing transform of one side flips the sign
    assert spearman(a, -b) == pytest.approx(-rho, abs=1e-12)
