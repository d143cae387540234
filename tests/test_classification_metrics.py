"""Multi-class label metrics (accuracy, balanced accuracy, per-class recall): hand cases, sklearn, validation."""
from __future__ import annotations

import numpy as np
import pytest
from neuroharness.metrics.classification import (
    accuracy,
    balanced_accuracy,
    per_class_recall,
)
from sklearn import metrics as skm


def test_hand_case():
    # class 0: 4 samples, 3 right; class 1: 2 samples, 1 right; class 2: 1 sample, 0 right
    y = [0, 0, 0, 0, 1, 1, 2]
    p = [0, 0, 0, 1, 1, 0, 1]
    assert accuracy(y, p) == pytest.approx(4 / 7)
    assert per_class_recall(y, p) == {0: 0.75, 1: 0.5, 2: 0.0}
    assert balanced_accuracy(y, p) == pytest.approx((0.75 + 0.5 + 0.0) / 3)


def test_constant_prediction_is_one_over_classes():
    y = np.array([0] * 90 + [1] * 9 + [2] * 1)
    for c in (0, 1, 2):
        assert balanced_accuracy(y, np.full(100, c)) == pytest.approx(1 / 3)
    assert accuracy(y, np.zeros(100, int)) == pytest.approx(0.9)


def test_classes_absent_from_truth_add_nothing_to_the_mean():
    # truth has classes 0 and 2 only; predicting 1 is an error but class 1 is not averaged
    y = [0, 0, 2, 2]
    p = [0, 1, 2, 2]
    assert per_class_recall(y, p) == {0: 0.5, 2: 1.0}
    assert balanced_accuracy(y, p) == pytest.approx(0.75)


def test_perfect_and_float_integral_labels():
    assert balanced_accuracy([2, 0, 1], [2.0, 0.0, 1.0]) == 1.0
    assert accuracy(np.array([5, 7]), np.array([5, 7])) == 1.0


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")  # on purpose: the convention
def test_agrees_with_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(20):
        k = rng.integers(2, 6)
        y = rng.integers(0, k, size=rng.integers(5, 200))
        p = np.where(rng.random(len(y)) < 0.6, y, rng.integers(0, k + 1, size=len(y)))
        assert balanced_accuracy(y, p) == pytest.approx(skm.balanced_accuracy_score(y, p))
        assert accuracy(y, p) == pytest.approx(skm.accuracy_score(y, p))
        rec = skm.recall_score(y, p, labels=np.unique(y), average=None)
        assert list(per_class_recall(y, p).values()) == pytest.approx(list(rec))


@pytest.mark.parametrize("y, p, match", [
    ([0, 1], [0], "differ in length"),
    ([], [], "empty"),
    ([0, 1], [0, np.nan], "NaN"),
    ([0, 1], [0, 0.5], r"y_pred: expected integer class labels, found 0.5 at index 1"),
    ([[0, 1]], [[0, 1]], "1-D"),
    (["a", "b"], [0, 1], "numbers"),
])
def test_validation(y, p, match):
    for f in (accuracy, balanced_accuracy, per_class_recall):
        with pytest.raises(ValueError, match=match):
            f(y, p)
