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


# -- binary decisions: confusion counts, sensitivity, specificity ----------------------------------------
def test_binary_decisions_by_hand():
    from neuroharness.metrics.classification import confusion_counts, sensitivity, specificity

    # 4 positives: 3 called 1; 3 negatives: 1 called 1
    y = [1, 1, 1, 1, 0, 0, 0]
    p = [1, 0, 1, 1, 0, 1, 0]
    assert confusion_counts(y, p) == {"tp": 3, "fn": 1, "tn": 2, "fp": 1}
    assert sensitivity(y, p) == pytest.approx(3 / 4) and specificity(y, p) == pytest.approx(2 / 3)
    assert balanced_accuracy(y, p) == pytest.approx((3 / 4 + 2 / 3) / 2)
    # always "patient" on 37 patients and 22 controls: 62.7% accuracy, 50% balanced accuracy
    y = np.array([1] * 37 + [0] * 22)
    always = np.ones(59, int)
    assert accuracy(y, always) == pytest.approx(37 / 59) and round(accuracy(y, always), 3) == 0.627
    assert (sensitivity(y, always), specificity(y, always), balanced_accuracy(y, always)) == (1.0, 0.0, 0.5)


def test_binary_decisions_agree_with_sklearn():
    from neuroharness.metrics.classification import confusion_counts, sensitivity, specificity

    rng = np.random.default_rng(1)
    for _ in range(20):
        y = rng.integers(0, 2, size=rng.integers(4, 100))
        y[:2] = (0, 1)
        p = rng.integers(0, 2, size=len(y))
        tn, fp, fn, tp = skm.confusion_matrix(y, p, labels=[0, 1]).ravel()
        assert confusion_counts(y, p) == {"tp": tp, "fn": fn, "tn": tn, "fp": fp}
        assert sensitivity(y, p) == pytest.approx(skm.recall_score(y, p, pos_label=1))
        assert specificity(y, p) == pytest.approx(skm.recall_score(y, p, pos_label=0))


def test_binary_decisions_validation():
    from neuroharness.metrics.classification import confusion_counts, sensitivity, specificity

    with pytest.raises(ValueError, match=r"y_pred: expected binary labels 0 and 1, found 2 at index 1"):
        confusion_counts([0, 1], [0, 2])
    with pytest.raises(ValueError, match=r"y_true: expected binary labels 0 and 1, found -1 at index 0"):
        sensitivity([-1, 1], [0, 1])
    with pytest.raises(ValueError, match="has no positives"):
        sensitivity([0, 0], [0, 1])
    with pytest.raises(ValueError, match="has no negatives"):
        specificity([1, 1], [0, 1])
    with pytest.raises(ValueError, match="differ in length"):
        specificity([0, 1], [0])
