"""Task eeg-schizophrenia: windows, folds, the leak guard, aggregation, metrics, options, submissions, the CLI.

Unit tests build small stores in memory (``Recordings.from_memory``) with known subjects, groups and
lengths, so window counts, folds and metric values are computed by hand. Signals encode what a test
needs: :class:`ValueModel` returns each window's first sample as its probability, so a constant
signal gives a subject the probability the test chose, and a ramp gives each window its start.
The end-to-end test runs the real pipeline: scripts/make_eeg_fixture.py -> ``datasets prepare`` ->
``neuroharness run`` / ``tasks template`` / ``evaluate``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import load_script
from sklearn import metrics as skm

from neuroharness.errors import NeuroharnessError, SubmissionError, UsageError
from neuroharness.loaders.eeg.recordings import Recordings
from neuroharness.tasks import get_card, get_task
from neuroharness.tasks.eeg import diagnosis
from neuroharness.tasks.eeg.data import EegInfo, Fold
from neuroharness.tasks.eeg.diagnosis import (
    EegSchizophrenia, check_disjoint, make_folds, shared_channels, stratified_folds, write_predictions)
from neuroharness.tasks.eeg.windows import Windows, n_windows, to_samples, window_starts

TASK = "eeg-schizophrenia"
SFREQ = 10.0  # window_s=2 -> 20 samples, stride_s=1 -> 10 samples
SMALL = {"window_s": "2", "stride_s": "1"}


# -- in-memory stores ---------------------------------------------------------------------------------------
def recordings(name: str, subjects: dict, channels=("Fz", "Cz", "Pz"), sha: str = "a",
               condition: str = "rest", value=None) -> Recordings:
    """``subjects``: {subject: (group, [n_samples per recording], probability or None)}. A recording's every
    sample is the subject's value (probability, else 0.5) on every channel; ``value(subject, n)`` overrides."""
    rows, signals = [], {}
    for subject, (group, lengths, p) in subjects.items():
        for k, n in enumerate(lengths):
            rec = f"{subject}_{condition}_ses-{k + 1}_dev"
            x = value(subject, n) if value else np.full(n, 0.5 if p is None else p)
            eeg = np.tile(np.asarray(x, dtype=np.float32), (len(channels), 1))
            signals[rec] = xr.Dataset({"eeg": (("channel", "time"), eeg)}, coords={"channel": list(channels)})
            rows.append(dict(recording=rec, subject=subject, group=group, condition=condition, session=str(k + 1),
                             device="dev", file=f"{rec}.edf", native_sfreq=SFREQ, sfreq=SFREQ, n_samples=n,
                             n_channels=len(channels)))
    return Recordings.from_memory(name, pd.DataFrame(rows), signals, {"content_sha256": sha * 64,
                                                                      "common_sfreq": SFREQ})


def balanced(n_patients=10, n_controls=8, n=60, prefix="S") -> dict:
    out = {f"{prefix}{i:02d}": ("patient", [n], None) for i in range(n_patients)}
    out.update({f"{prefix}{n_patients + i:02d}": ("control", [n], None) for i in range(n_controls)})
    return out


def task_of(nszed=None, repod=None) -> EegSchizophrenia:
    given = {}
    if nszed is not None:
        given["nszed"] = nszed
    if repod is not None:
        given["repod-schizophrenia"] = repod
    return EegSchizophrenia(given)


# -- models used through import strings ("test_eeg_task:...") --------------------------------------------
class ValueModel:
    """Each window's probability is its first sample of channel 0; records what fit saw."""

    seen: list = []

    def fit(self, X, y, groups, info, seed):
        ValueModel.seen.append({"X": X.shape, "y": np.asarray(y).copy(), "groups": sorted(set(groups)),
                                "info": info, "seed": seed})
        self.n_parameters = 0
        return self

    def predict_proba(self, X):
        return np.asarray(X[:, 0, 0], dtype=np.float64)


@pytest.fixture(autouse=True)
def _clear_seen():
    ValueModel.seen = []
    yield
    ValueModel.seen = []


# -- card ---------------------------------------------------------------------------------------------------
def test_card():
    card = get_card(TASK)
    assert (card.name, card.version, card.main_metric) == (TASK, "1.0", "balanced_accuracy")
    assert [(d.name, d.version) for d in card.datasets] == [("nszed", "1.0"), ("repod-schizophrenia", "1.0")]
    assert {k: o.default for k, o in card.options.items()} == {
        "dataset": "nszed", "protocol": "within", "cv": "stratified-group-kfold", "n_folds": "5",
        "fold_seed": "0", "condition": "rest", "window_s": "4", "stride_s": "4"}
    assert card.options["protocol"].choices == ("within", "cross-site")
    assert card.options["cv"].choices == ("stratified-group-kfold", "loso")
    assert {m.name for m in card.models} == {"majority", "bandpower-logreg", "tangent-space-logreg",
                                             "shallow-convnet"}
    assert {m.name: (m.low, m.high) for m in card.metrics} == {
        k: (0.0, 1.0) for k in ("balanced_accuracy", "roc_auc", "sensitivity", "specificity", "accuracy")}
    text = card.description
    for needle in ("98-99%", "81-84%", "Oh et al.", "Aydemir et al.", "37/59 = 62.7%", "50% balanced accuracy",
                   "mean of window probabilities", "floor((n - w) / s) + 1", "last partial window is dropped",
                   "cross-site (train on every subject of the other dataset"):
        assert needle in text, needle
    assert card.chance["balanced_accuracy"].startswith("0.5")
    assert any("doi:10.3390/app9142870" in r for r in card.references)
    assert any("PMC9027158" in r for r in card.references)
    assert any("doi:10.1002/hbm.23730" in r for r in card.references)
    assert get_task(TASK).card is card and get_task(TASK).has_validation is False


def test_task_module_imports_no_torch_pyriemann_or_mne():
    code = ("import sys; import neuroharness.tasks.eeg.diagnosis, neuroharness.tasks.eeg.baselines, "
            "neuroharness.tasks.eeg.shallow; from neuroharness.tasks import get_task; get_task('eeg-schizophrenia');"
            "print(','.join(m for m in ('torch', 'pyriemann', 'mne', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


# -- windows ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, win, stride, count", [
    (55, 20, 10, 4),    # starts 0, 10, 20, 30; 40..60 would pass the end: dropped
    (60, 20, 10, 5),    # floor(40 / 10) + 1
    (20, 20, 10, 1),
    (19, 20, 10, 0),
    (100, 20, 20, 5),   # no overlap
    (99, 20, 20, 4),
    (1000, 1000, 1000, 1),
    (7, 3, 1, 5),
])
def test_window_count_formula(n, win, stride, count):
    assert n_windows(n, win, stride) == count
    starts = window_starts(n, win, stride)
    assert len(starts) == count and (starts + win <= n).all() and (np.diff(starts) == stride).all()
    if count:
        assert starts[-1] + stride + win > n  # the next one would be partial


def test_windows_are_views_until_batched():
    a = np.arange(2 * 55, dtype=np.float32).reshape(2, 55)
    b = -np.arange(2 * 31, dtype=np.float32).reshape(2, 31)
    w = Windows([a, b], ["ra", "rb"], ["A", "B"], [1, 0], win=20, stride=10)
    assert len(w) == 4 + 2  # floor(35/10)+1 and floor(11/10)+1
    assert w.recording.tolist() == [0, 0, 0, 0, 1, 1] and w.start.tolist() == [0, 10, 20, 30, 0, 10]
    assert w.subjects.tolist() == ["A"] * 4 + ["B"] * 2 and w.labels.tolist() == [1] * 4 + [0] * 2
    v = w.window(2)
    assert np.shares_memory(v, a) and np.array_equal(v, a[:, 20:40])
    batch = w.batch([5, 0, 3])
    assert batch.shape == (3, 2, 20) and batch.dtype == np.float32 and batch.flags.c_contiguous
    assert not np.shares_memory(batch, a)
    assert np.array_equal(batch[0], b[:, 10:30]) and np.array_equal(batch[1], a[:, 0:20])
    assert np.array_equal(batch[2], a[:, 30:50])
    sub = w.select(w.subjects == "B")
    assert len(sub) == 2 and sub.signals[1] is b and np.array_equal(sub.batch(), w.batch([4, 5]))
    assert w.counts() == {"A": 4, "B": 2}
    assert [len(x) for _, x in w.batches(size=4)] == [4, 2]


def test_to_samples_needs_whole_samples():
    assert to_samples(4, 250.0, "option window_s") == 1000 and to_samples(0.5, 256.0, "x") == 128
    with pytest.raises(UsageError, match=r"option window_s=2.05 s at the store's common rate 10 Hz is 20.5 samples"):
        to_samples(2.05, 10.0, "option window_s")


def test_window_counts_per_subject_in_the_view():
    # two recordings for A (55 and 60 samples: 4 + 5 windows), one of 30 for B (2), 20 for C (1), 45 for D (3)
    subjects = {"A": ("patient", [55, 60], None), "B": ("patient", [30], None), "C": ("control", [20], None),
                "D": ("control", [45, 19], None)}  # D's 19-sample recording gives no window
    task = task_of(recordings("nszed", subjects))
    data = task.data({**SMALL, "n_folds": "2"})
    assert data.subjects["n_windows"].to_dict() == {"A": 9, "B": 2, "C": 1, "D": 3}
    assert data.subjects["n_recordings"].to_dict() == {"A": 2, "B": 1, "C": 1, "D": 2}
    assert len(data.windows) == 15 and data.windows.win == 20 and data.windows.stride == 10
    assert data.info == EegInfo(10.0, ("Fz", "Cz", "Pz"))
    with pytest.raises(NeuroharnessError, match=r"subject B of nszed \(rest\) has no whole window: its longest "
                                                r"recording has 30 samples, a window 40"):
        task.data({"window_s": "4", "stride_s": "4", "n_folds": "2"})


# -- folds --------------------------------------------------------------------------------------------------
def _rank(subjects, seed):
    return sorted(subjects, key=lambda s: hashlib.sha256(f"eeg-schizophrenia/folds/{seed}/{s}".encode()).hexdigest())


def test_stratified_folds_by_hand():
    labels = {f"P{i}": 1 for i in range(10)} | {f"C{i}": 0 for i in range(8)}
    folds = stratified_folds(labels, 5, 0)
    # patients by hash dealt 0,1,2,3,4,0,...; controls continue at turn 10 -> 0,1,2,3,4,0,1,2
    want = {s: i % 5 for i, s in enumerate(_rank([f"P{i}" for i in range(10)], 0))}
    want |= {s: (10 + i) % 5 for i, s in enumerate(_rank([f"C{i}" for i in range(8)], 0))}
    assert folds == want
    per_fold = pd.DataFrame({"fold": folds, "label": labels}).groupby("fold")["label"].agg(["sum", "count"])
    assert per_fold["sum"].tolist() == [2, 2, 2, 2, 2] and per_fold["count"].tolist() == [4, 4, 4, 3, 3]
    assert stratified_folds(labels, 5, 0) == folds  # deterministic
    assert stratified_folds(labels, 5, 1) != folds  # fold_seed changes it
    assert stratified_folds(dict(reversed(list(labels.items()))), 5, 0) == folds  # input order does not matter


def test_make_folds_are_subject_disjoint_and_cover_everyone():
    labels = {f"P{i}": 1 for i in range(7)} | {f"C{i}": 0 for i in range(5)}
    for cv, k in (("stratified-group-kfold", 3), ("stratified-group-kfold", 5), ("loso", 0)):
        folds = make_folds(labels, cv, k, 3)
        tested = [s for f in folds for s in f.test]
        assert sorted(tested) == sorted(labels) and len(tested) == len(set(tested))
        for f in folds:
            assert not set(f.train) & set(f.test)
            assert set(f.train) | set(f.test) == set(labels)
            assert {labels[s] for s in f.train} == {0, 1}
            if cv != "loso":
                assert {labels[s] for s in f.test} == {0, 1}


def test_loso_gives_one_subject_per_fold():
    labels = {"b": 1, "a": 0, "d": 1, "c": 0}
    folds = make_folds(labels, "loso", 5, 7)
    assert folds == (Fold(0, ("b", "c", "d"), ("a",)), Fold(1, ("a", "c", "d"), ("b",)),
                     Fold(2, ("a", "b", "d"), ("c",)), Fold(3, ("a", "b", "c"), ("d",)))
    with pytest.raises(NeuroharnessError, match="cv=loso needs at least 2 patients and 2 controls"):
        make_folds({"a": 1, "b": 0, "c": 0}, "loso", 5, 0)


def test_n_folds_beyond_the_smaller_group_is_refused():
    labels = {f"P{i}": 1 for i in range(6)} | {f"C{i}": 0 for i in range(3)}
    with pytest.raises(UsageError, match=r"option n_folds=4: .* the condition has 6 patients and 3 controls: use "
                                         r"--option n_folds=3 or fewer"):
        make_folds(labels, "stratified-group-kfold", 4, 0)


def test_folds_do_not_depend_on_the_model_seed():
    task = task_of(recordings("nszed", balanced()))
    by_seed = {}
    for seed in (0, 1, 2):
        ValueModel.seen = []
        result = task.run_model("test_eeg_task:ValueModel", seed, options=SMALL)
        by_seed[seed] = ([s["groups"] for s in ValueModel.seen], result.split_sha256)
        assert [s["seed"] for s in ValueModel.seen] == [seed] * 5
    assert by_seed[0] == by_seed[1] == by_seed[2]
    data = task.data(SMALL)
    for f, groups in zip(data.folds, by_seed[0][0]):
        assert groups == sorted(f.train)  # each fold's model saw exactly its training subjects


# -- the leak guard -----------------------------------------------------------------------------------------
def test_check_disjoint_names_the_subject_and_fold():
    check_disjoint(["a", "b"], ["c"], 0)
    with pytest.raises(NeuroharnessError, match=r"subject b has windows in both the training and the test side "
                                                r"of fold 3"):
        check_disjoint(["a", "b"], ["b", "c"], 3)


def test_a_leaking_splitter_is_refused(monkeypatch):
    task = task_of(recordings("nszed", balanced()))
    real = diagnosis.make_folds

    def leaking(labels, cv, n_folds, fold_seed):
        folds = real(labels, cv, n_folds, fold_seed)
        first = folds[0]
        return (Fold(0, first.train + (first.test[0],), first.test),) + folds[1:]

    monkeypatch.setattr(diagnosis, "make_folds", leaking)
    victim = real({s: 1 if v[0] == "patient" else 0 for s, v in balanced().items()}, "stratified-group-kfold", 5,
                  0)[0].test[0]
    with pytest.raises(NeuroharnessError, match=rf"subject {victim} has windows in both the training and the test "
                                                r"side of fold 0"):
        task.run_model("test_eeg_task:ValueModel", 0, options=SMALL)
    assert ValueModel.seen == []  # nothing was fitted


def test_fit_refuses_leaking_folds_before_fitting_any():
    task = task_of(recordings("nszed", balanced()))
    data = task.data(SMALL)
    last = data.folds[-1]
    leaky = data.folds[:-1] + (Fold(last.index, last.train + (last.test[-1],), last.test),)
    with pytest.raises(NeuroharnessError, match=rf"subject {last.test[-1]} has windows in both the training and "
                                                rf"the test side of fold {last.index}"):
        task.fit(ValueModel(), dataclasses.replace(data, folds=leaky), 0)
    assert ValueModel.seen == []


def test_training_view_holds_only_the_folds_training_windows():
    task = task_of(recordings("nszed", balanced()))
    data = task.data(SMALL)
    view = task.training_view(SMALL)
    for f in data.folds:
        t = view.fold(f.index)
        assert sorted(set(t.groups)) == sorted(f.train) and not set(t.groups) & set(f.test)
        assert t.X.shape == (5 * len(f.train), 3, 20)  # 60 samples: floor(40/10)+1 = 5 windows per subject
        assert t.y.tolist() == [int(data.subjects.label[s]) for s in t.groups]


# -- aggregation and metrics --------------------------------------------------------------------------------
def test_subject_probability_is_the_mean_of_its_window_probabilities():
    # a ramp 0, 0.01, 0.02, ...: a window's probability (its first sample) is start / 100; A has windows at
    # 0, 10, 20, 30 (55 samples) and at 0, 10, 20, 30, 40 (60 samples): mean(0 .. 0.3, 0 .. 0.4) = 0.7 / 4.5 ...
    subjects = {"A": ("patient", [55, 60], None), "B": ("patient", [30], None), "C": ("control", [20], None),
                "D": ("control", [40], None)}
    task = task_of(recordings("nszed", subjects, value=lambda s, n: np.arange(n) / 100))
    options = {**SMALL, "n_folds": "2"}
    data = task.data(options)
    model = task.fit(task.build_model("test_eeg_task:ValueModel"), data, 0)
    p = dict(zip(task.ids(data, "test")["subject"], task.predict(model, data, "test")))
    assert p["A"] == pytest.approx(np.mean([0, .1, .2, .3, 0, .1, .2, .3, .4]))
    assert p["B"] == pytest.approx(np.mean([0, .1]))
    assert p["C"] == pytest.approx(0.0) and p["D"] == pytest.approx(np.mean([0, .1, .2]))


HAND = {"P1": ("patient", [40], 0.9), "P2": ("patient", [40], 0.6), "P3": ("patient", [40], 0.4),
        "C1": ("control", [40], 0.2), "C2": ("control", [40], 0.55), "C3": ("control", [40], 0.1)}


def test_metrics_by_hand():
    task = task_of(recordings("nszed", HAND))
    options = {**SMALL, "n_folds": "3"}
    result = task.run_model("test_eeg_task:ValueModel", 0, options=options)
    m = result.metrics
    # decisions (>= 0.5): P1, P2 patient, P3 control; C2 patient, C1, C3 control
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["specificity"] == pytest.approx(2 / 3)
    assert m["balanced_accuracy"] == pytest.approx(2 / 3) == m["main_score"]
    assert m["accuracy"] == pytest.approx(4 / 6)
    # ROC-AUC: P1 beats 3 controls, P2 beats 3, P3 beats 2 (0.4 < 0.55): 8 of 9 pairs
    assert m["roc_auc"] == pytest.approx(8 / 9)
    y = [1, 1, 1, 0, 0, 0]
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, [0.9, 0.6, 0.4, 0.2, 0.55, 0.1]))
    assert (m["confusion_tp"], m["confusion_fn"], m["confusion_tn"], m["confusion_fp"]) == (2, 1, 2, 1)
    assert (m["n_subjects"], m["n_patients"], m["n_controls"], m["n_windows"]) == (6, 3, 3, 6 * 3)
    assert m["chance_balanced_accuracy"] == 0.5 and m["majority_accuracy"] == 0.5
    data = task.data(options)
    for f in data.folds:  # each fold: one patient and one control
        (patient,) = [s for s in f.test if HAND[s][0] == "patient"]
        (control,) = [s for s in f.test if HAND[s][0] == "control"]
        want = ((HAND[patient][2] >= 0.5) + (HAND[control][2] < 0.5)) / 2
        assert m[f"fold{f.index}_balanced_accuracy"] == want
    assert all(isinstance(v, float) for v in m.values())


def test_loso_metrics_report_each_subject():
    task = task_of(recordings("nszed", HAND))
    m = task.run_model("test_eeg_task:ValueModel", 0, options={**SMALL, "cv": "loso"}).metrics
    order = sorted(HAND)  # C1 C2 C3 P1 P2 P3
    correct = {s: float((HAND[s][2] >= 0.5) == (HAND[s][0] == "patient")) for s in order}
    assert {k: v for k, v in m.items() if k.endswith("_correct")} == {
        f"fold{k}_correct": correct[s] for k, s in enumerate(order)}
    assert not any(k.endswith("_balanced_accuracy") and k.startswith("fold") for k in m)
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)


# -- options ------------------------------------------------------------------------------------------------
def test_unknown_condition_lists_those_present():
    rec = recordings("nszed", balanced(), condition="arithmetic")
    with pytest.raises(UsageError, match=r"option condition='rest': the nszed store has no recording of that "
                                         r"condition; it holds arithmetic"):
        task_of(rec).data(SMALL)


@pytest.mark.parametrize("options, match", [
    ({"n_folds": "1"}, r"option n_folds='1': expected an integer >= 2"),
    ({"n_folds": "five"}, r"option n_folds='five': expected an integer >= 2"),
    ({"fold_seed": "-1"}, r"option fold_seed='-1': expected an integer >= 0"),
    ({"window_s": "0"}, r"option window_s='0': expected a positive number of seconds"),
    ({"stride_s": "nan"}, r"option stride_s='nan': expected a positive number of seconds"),
    ({"stride_s": "0.25"}, r"option stride_s=0.25 s at the store's common rate 10 Hz is 2.5 samples"),
    ({"protocol": "mixed"}, r"option protocol='mixed': expected one of within, cross-site"),
    ({"dataset": "tuh"}, r"option dataset='tuh': expected one of nszed, repod-schizophrenia"),
    ({"colour": "red"}, r"has no option 'colour'"),
    # options that do not apply to the protocol stay at their defaults, so equal splits carry equal options
    ({"protocol": "cross-site", "n_folds": "3"}, r"option n_folds='3' does not apply with protocol=cross-site; "
                                                 r"leave it at its default '5'"),
    ({"protocol": "cross-site", "cv": "loso"}, r"option cv='loso' does not apply with protocol=cross-site"),
    ({"cv": "loso", "fold_seed": "1"}, r"option fold_seed='1' does not apply with cv=loso; leave it at its "
                                       r"default '0'"),
])
def test_bad_options(options, match):
    with pytest.raises(UsageError, match=match):
        task_of(recordings("nszed", balanced())).data({**SMALL, **options})


def test_inconsistent_or_unknown_group_is_refused():
    rec = recordings("nszed", {**balanced(), "S01": ("patient", [60, 60], None)})
    rec.table.loc["S01_rest_ses-2_dev", "group"] = "control"
    with pytest.raises(NeuroharnessError, match=r"nszed: subject S01 has recordings of groups \['control', "
                                                r"'patient'\]"):
        task_of(rec).data(SMALL)
    rec.table.loc["S01_rest_ses-2_dev", "group"] = "relative"
    with pytest.raises(NeuroharnessError, match=r"nszed: recording S01_rest_ses-2_dev has group 'relative'; "
                                                r"expected patient or control"):
        task_of(rec).data(SMALL)


# -- protocols and checksums ----------------------------------------------------------------------------------
def test_cross_site_uses_exactly_the_shared_channels_and_reads_both_stores():
    from neuroharness.loaders.eeg.layout import canonical_channels

    nszed = recordings("nszed", balanced(), channels=("Fp1", "Fz", "T7", "Cz", "O1"), sha="a")
    repod = recordings("repod-schizophrenia", balanced(6, 6, prefix="h"), channels=("Fz", "Cz", "T7", "Pz", "O1"),
                       sha="b")
    task = task_of(nszed, repod)
    options = {**SMALL, "protocol": "cross-site"}
    data = task.data(options)
    rank = {c: i for i, c in enumerate(canonical_channels())}
    assert set(data.info.ch_names) == {"Fz", "Cz", "T7", "O1"}
    assert list(data.info.ch_names) == sorted(data.info.ch_names, key=rank.__getitem__)
    assert data.info.ch_names == ("Fz", "T7", "Cz", "O1")  # standard_1020 order
    assert task.dataset_checksums(task.resolve_options(options)) == {"nszed": "a" * 64,
                                                                      "repod-schizophrenia": "b" * 64}
    assert task.dataset_checksums(task.resolve_options(SMALL)) == {"nszed": "a" * 64}
    assert [f.index for f in data.folds] == [0] and sorted(data.folds[0].test) == sorted(balanced())
    result = task.run_model("test_eeg_task:ValueModel", 0, options=options)
    (seen,) = ValueModel.seen
    assert seen["groups"] == sorted(f"repod-schizophrenia:h{i:02d}" for i in range(12))
    assert seen["X"] == (12 * 5, 4, 20) and seen["info"].ch_names == ("Fz", "T7", "Cz", "O1")
    assert result.metrics["n_subjects"] == 18 and "fold0_balanced_accuracy" in result.metrics
    # within a site the channels are those every recording of that site has, and only that store is read
    assert task.data(SMALL).info.ch_names == ("Fp1", "Fz", "T7", "Cz", "O1")
    swapped = task.data({**options, "dataset": "repod-schizophrenia"})
    assert len(swapped.subjects) == 12 and swapped.train_windows.subjects[0].startswith("nszed:")


def test_cross_site_condition_must_exist_on_both_sites():
    task = task_of(recordings("nszed", balanced(), sha="a"),
                   recordings("repod-schizophrenia", balanced(4, 4, prefix="h"), condition="eyes-open", sha="b"))
    with pytest.raises(UsageError, match="the repod-schizophrenia store has no recording of that condition; it holds "
                                         "eyes-open"):
        task.data({**SMALL, "protocol": "cross-site"})


def test_shared_channels_order():
    order = ["Fp1", "Fz", "Cz", "Pz", "O1"]
    assert shared_channels({"a": ["Pz", "Cz", "X9", "Fz"], "b": ["Fz", "X9", "Pz", "Cz", "O1"]}, order) == (
        "Fz", "Cz", "Pz", "X9")
    assert shared_channels({"a": ["Fz"], "b": ["Cz"]}, order) == ()


def test_split_sha256_is_stable_and_follows_the_split():
    task = task_of(recordings("nszed", balanced()))
    base = task.split_sha256(SMALL)
    assert base == task.split_sha256(SMALL) == task_of(recordings("nszed", balanced())).split_sha256(SMALL)
    others = {task.split_sha256({**SMALL, **o}) for o in ({"fold_seed": "1"}, {"n_folds": "4"}, {"cv": "loso"})}
    assert base not in others and len(others) == 3
    ids = task.submission_template(options=SMALL)
    assert list(ids.columns) == ["fold", "subject"] and ids["fold"].dtype == np.int64
    assert ids.equals(ids.sort_values(["fold", "subject"]).reset_index(drop=True)) and ids["subject"].is_unique


# -- submissions ------------------------------------------------------------------------------------------------
@pytest.fixture
def scored(tmp_path):
    task = task_of(recordings("nszed", balanced()))
    ids = task.submission_template(options=SMALL)
    labels = task.data(SMALL).subjects["label"]
    perfect = ids.assign(probability=labels[ids["subject"]].to_numpy().astype(float))
    return task, perfect, tmp_path


def test_perfect_submission_scores_one(scored):
    task, perfect, tmp = scored
    for suffix in (".parquet", ".npz"):
        path = write_predictions(tmp / f"p{suffix}", perfect["fold"], perfect["subject"], perfect["probability"])
        m = task.evaluate(path, options=SMALL)
        assert m["balanced_accuracy"] == m["roc_auc"] == m["accuracy"] == m["main_score"] == 1.0
    shuffled = perfect.sample(frac=1.0, random_state=0)
    assert task.evaluate(shuffled, options=SMALL)["main_score"] == 1.0  # row order does not matter
    flipped = perfect.assign(probability=1 - perfect["probability"])
    assert task.evaluate(flipped, options=SMALL)["balanced_accuracy"] == 0.0


def _bad(perfect, kind):
    t = perfect.copy()
    if kind == "wrong fold":
        t.loc[3, "fold"] = (t.loc[3, "fold"] + 1) % 5
    elif kind == "fold out of range":
        t.loc[3, "fold"] = 9
    elif kind == "missing":
        t = t.drop(index=5)
    elif kind == "extra":
        t = pd.concat([t, pd.DataFrame({"fold": [0], "subject": ["S99"], "probability": [0.5]})], ignore_index=True)
    elif kind == "nan":
        t.loc[4, "probability"] = np.nan
    elif kind == "above one":
        t.loc[6, "probability"] = 1.5
    elif kind == "below zero":
        t.loc[7, "probability"] = -0.1
    elif kind == "duplicate":
        t = pd.concat([t, t.iloc[[2]]], ignore_index=True)
    return t


@pytest.mark.parametrize("kind, match", [
    ("wrong fold", r"{path}: row 3: subject {s3} is given fold {f3w}, but it belongs to fold {f3}"),
    ("fold out of range", r"{path}: row 3: subject {s3} is given fold 9, but it belongs to fold {f3}"),
    ("missing", r"{path}: 1 of 18 test subjects of nszed \(rest\) missing, e\.g\. fold {f5}, subject {s5}"),
    ("extra", r"{path}: row 18: subject 'S99' is not one of the 18 scored subjects of nszed \(rest\)"),
    ("nan", r"{path}: column 'probability' has 1 NaN/inf value\(s\), first at row 4"),
    ("above one", r"{path}: row 6: subject {s6} \(fold {f6}\) has probability 1\.5; expected a probability of "
                  r"'patient' in \[0, 1\]"),
    ("below zero", r"{path}: row 7: subject {s7} \(fold {f7}\) has probability -0\.1"),
    ("duplicate", r"{path}: row 18: subject {s2} appears again \(first at row 2\); expected each subject once"),
])
def test_bad_submissions_name_the_row_and_subject(scored, kind, match):
    task, perfect, tmp = scored
    bad = _bad(perfect, kind)
    path = tmp / "bad.parquet"
    bad.to_parquet(path, index=False)
    fill = {f"s{i}": perfect.loc[i, "subject"] for i in range(8)} | {f"f{i}": perfect.loc[i, "fold"] for i in range(8)}
    fill["f3w"] = (perfect.loc[3, "fold"] + 1) % 5
    fill["path"] = str(path).replace(".", r"\.")
    with pytest.raises(SubmissionError, match=match.format(**fill)):
        task.evaluate(path, options=SMALL)


def test_submission_for_another_option_set_is_refused(scored):
    task, perfect, _ = scored
    with pytest.raises(SubmissionError, match=r"subject .* is given fold \d, but it belongs to fold \d"):
        task.evaluate(perfect, options={**SMALL, "fold_seed": "1"})


# -- end to end: fixture -> prepare -> run -> template -> evaluate -----------------------------------------------
@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A NEUROHARNESS_HOME with nszed and repod-schizophrenia prepared from the default-size fixtures."""
    from neuroharness.cli import main

    gen = load_script("make_eeg_fixture")
    base = tmp_path_factory.mktemp("eeg_e2e")
    home = base / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROHARNESS_HOME", str(home))
        for name, kind in (("nszed", "nszed"), ("repod-schizophrenia", "repod")):
            gen.write_fixture(kind, base / kind)
            assert main(["-q", "datasets", "prepare", name, "--source", str(base / kind)]) == 0
    return home, base


def test_end_to_end_run_and_evaluate(prepared, monkeypatch, capsys):
    from neuroharness.cli import main
    from neuroharness.leaderboards.records import read_records

    home, base = prepared
    monkeypatch.setenv("NEUROHARNESS_HOME", str(home))
    get_task(TASK).clear_cache()
    out = base / "records"
    assert main(["-q", "run", TASK, "--model", "bandpower-logreg", "--seeds", "0", "--out", str(out)]) == 0
    ((_, record),) = read_records(out)
    assert [d["name"] for d in record["datasets"]] == ["nszed"]  # within reads only the scored store
    assert record["metrics"]["balanced_accuracy"] >= 0.8 and record["metrics"]["n_subjects"] == 18
    assert record["task"]["options"]["protocol"] == "within"
    assert record["split_sha256"] == get_task(TASK).split_sha256()

    template = base / "ids.parquet"
    assert main(["-q", "tasks", "template", TASK, str(template)]) == 0
    ids = pd.read_parquet(template)
    assert list(ids.columns) == ["fold", "subject"] and len(ids) == 18
    data = get_task(TASK).data()
    truth = data.subjects["label"][ids["subject"]].to_numpy()
    preds = base / "preds.parquet"
    write_predictions(preds, ids["fold"], ids["subject"], np.where(truth == 1, 0.8, 0.3))
    capsys.readouterr()
    assert main(["evaluate", TASK, str(preds), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["balanced_accuracy"] == metrics["roc_auc"] == metrics["main_score"] == 1.0

    assert main(["-q", "run", TASK, "--model", "majority", "--seeds", "0", "--out", str(out),
                 "--option", "protocol=cross-site"]) == 0
    cross = [r for _, r in read_records(out) if r["task"]["options"]["protocol"] == "cross-site"]
    assert [d["name"] for d in cross[0]["datasets"]] == ["nszed", "repod-schizophrenia"]
    assert cross[0]["metrics"]["balanced_accuracy"] == 0.5
    get_task(TASK).clear_cache()
