"""Task ``eeg-schizophrenia``: patient vs control, one prediction per subject, from fixed-length EEG windows.

The card (:mod:`.cards`) states the task. This module reads the ``nszed`` /
``repod-schizophrenia`` stores (:class:`~neuroharness.loaders.eeg.recordings.Recordings`),
cuts the recordings of one condition into windows (:mod:`.windows`), assigns subjects to folds
(:func:`make_folds`: stratified by group, keyed by ``fold_seed``; or leave-one-subject-out; or the
single cross-site fold), refuses any fold whose training and test windows share a subject
(:func:`check_disjoint`, for every fold, when the view is built and again before each fit), fits
one deep copy of the model per fold, averages window probabilities per subject and scores at
subject level (:mod:`neuroharness.metrics.classification`). Models follow
:class:`~neuroharness.tasks.protocols.WindowClassifier`::

    model.fit(X (n, C, T) float32 V, y (n,) int 0/1, groups (n,) str subject, info: EegInfo, seed) -> self
    model.predict_proba(X) -> (n,) probability of "patient"

Memory: the view holds the condition's recordings as float32 arrays, once each (NSzED at full size, rest:
59 x 30 min x 19 channels x 250 Hz, about 2 GB); windows are views until a fold's training set or a
subject's test windows are copied into one batch. This module imports neither torch, pyriemann nor mne:
the baselines do (the montage order of the shared channels is read from the loader when a view is built).
"""
from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neuroharness.errors import NeuroharnessError, SubmissionError, UsageError

from ..base import Task
from ..model_utils import describe
from ..submission import Column, TableSpec, as_table, check_table, source_of, write_table
from .cards import DATASETS, SCHIZOPHRENIA, THRESHOLD
from .data import EegData, EegInfo, EegTrainingView, Fold
from .windows import Windows, to_samples

TASK = SCHIZOPHRENIA.name
ID_COLUMNS = ["fold", "subject"]
GROUP_LABELS = {"patient": 1, "control": 0}
#: Prefix of the hash that orders subjects within each group before they are dealt to folds.
FOLD_KEY = "eeg-schizophrenia/folds/"
VERSIONS = {d.name: d.version for d in SCHIZOPHRENIA.datasets}

__all__ = ["EegSchizophrenia", "EegFitted", "Settings", "parse_options", "check_disjoint", "make_folds",
           "stratified_folds", "loso_folds", "cross_site_folds", "shared_channels", "submission_spec",
           "write_predictions"]


# -- options ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """The options of the card, parsed and checked."""

    dataset: str
    protocol: str
    cv: str
    n_folds: int
    fold_seed: int
    condition: str
    window_s: float
    stride_s: float

    @property
    def sites(self) -> tuple[str, ...]:
        """The datasets read: the scored one first, then (cross-site) the training one."""
        return (self.dataset,) if self.protocol == "within" else (self.dataset, other_site(self.dataset))


def other_site(dataset: str) -> str:
    return next(d for d in DATASETS if d != dataset)


def _int_option(options: Mapping[str, str], key: str, low: int) -> int:
    value = str(options[key]).strip()
    try:
        n = int(value)
    except ValueError:
        n = None
    if n is None or n < low:
        raise UsageError(f"task {TASK} option {key}={options[key]!r}: expected an integer >= {low}")
    return n


def _seconds_option(options: Mapping[str, str], key: str) -> float:
    try:
        x = float(str(options[key]).strip())
    except ValueError:
        x = float("nan")
    if not np.isfinite(x) or x <= 0:
        raise UsageError(f"task {TASK} option {key}={options[key]!r}: expected a positive number of seconds")
    return x


def parse_options(options: Mapping[str, str]) -> Settings:
    """:class:`Settings` from resolved options; a :class:`UsageError` naming the option otherwise (the
    condition and the whole-sample check of the window are judged against the store by ``load``)."""
    # options that do not apply to a protocol stay at their defaults, so that two runs that read the same split
    # also carry the same options and are ranked together
    unused = (("cv", "n_folds", "fold_seed") if options["protocol"] == "cross-site"
              else ("n_folds", "fold_seed") if options["cv"] == "loso" else ())
    for key in unused:
        default = SCHIZOPHRENIA.options[key].default
        if str(options[key]).strip() != default:
            what = "protocol=cross-site" if options["protocol"] == "cross-site" else "cv=loso"
            raise UsageError(f"task {TASK} option {key}={options[key]!r} does not apply with {what}; leave it at "
                             f"its default {default!r}")
    condition = str(options["condition"]).strip()
    if not condition:
        raise UsageError(f"task {TASK} option condition='': expected a condition name, e.g. rest")
    return Settings(dataset=options["dataset"], protocol=options["protocol"], cv=options["cv"],
                    n_folds=_int_option(options, "n_folds", 2), fold_seed=_int_option(options, "fold_seed", 0),
                    condition=condition, window_s=_seconds_option(options, "window_s"),
                    stride_s=_seconds_option(options, "stride_s"))


# -- the leak guard and the folds -------------------------------------------------------------------
def check_disjoint(train_subjects: Iterable[str], test_subjects: Iterable[str], fold: int) -> None:
    """Refuse fold ``fold`` if a subject has windows on both sides (a :class:`NeuroharnessError` naming it)."""
    both = sorted(set(map(str, train_subjects)) & set(map(str, test_subjects)))
    if both:
        more = ""
        if len(both) > 1:
            more = f" (and {len(both) - 1} more: {', '.join(both[1:6])}{' ...' if len(both) > 6 else ''})"
        raise NeuroharnessError(
            f"task {TASK}: subject {both[0]} has windows in both the training and the test side of fold {fold}"
            f"{more}; a split must hold each subject's windows on one side only (the diagnosis is a subject "
            "label: a model seeing a subject's windows in training can recognise the person instead of the "
            "disease). The split is refused")


def _fold_rank(subjects: Iterable[str], fold_seed: int) -> list[str]:
    return sorted(subjects, key=lambda s: hashlib.sha256(f"{FOLD_KEY}{fold_seed}/{s}".encode()).hexdigest())


def stratified_folds(labels: Mapping[str, int], n_folds: int, fold_seed: int) -> dict[str, int]:
    """``{subject: fold}``: per group (label 1 first, then 0) subjects ordered by
    sha256("eeg-schizophrenia/folds/<fold_seed>/<subject>") and dealt to folds 0, 1, ... in turn, the second
    group continuing where the first stopped (fold sizes differ by at most one; each group by at most one)."""
    out, turn = {}, 0
    for label in (1, 0):
        for s in _fold_rank([s for s, y in labels.items() if int(y) == label], fold_seed):
            out[s] = turn % n_folds
            turn += 1
    return out


def loso_folds(subjects: Iterable[str]) -> dict[str, int]:
    """``{subject: fold}``: fold k holds the k-th subject in sorted order."""
    return {s: k for k, s in enumerate(sorted(subjects))}


def _folds_from(assignment: Mapping[str, int]) -> tuple[Fold, ...]:
    everyone = sorted(assignment)
    folds = []
    for k in sorted(set(assignment.values())):
        test = tuple(s for s in everyone if assignment[s] == k)
        train = tuple(s for s in everyone if assignment[s] != k)
        folds.append(Fold(int(k), train, test))
    return tuple(folds)


def make_folds(labels: Mapping[str, int], cv: str, n_folds: int, fold_seed: int) -> tuple[Fold, ...]:
    """The folds of protocol=within: ``labels`` {subject: 1 patient / 0 control}. Each fold's model trains on
    the other folds' subjects; the subjects are checked to suffice (both groups in every training side)."""
    counts = {g: sum(1 for y in labels.values() if int(y) == v) for g, v in GROUP_LABELS.items()}
    smaller = min(counts.values())
    have = f"{counts['patient']} patients and {counts['control']} controls"
    if cv == "loso":
        if smaller < 2:
            raise NeuroharnessError(f"task {TASK} cv=loso needs at least 2 patients and 2 controls (each held-out "
                                    f"fold must leave both groups to train on); the condition has {have}")
        return _folds_from(loso_folds(labels))
    if smaller < 2:
        raise NeuroharnessError(f"task {TASK}: the condition has {have}; subject-wise cross-validation needs at "
                                "least 2 of each group")
    if smaller < n_folds:
        raise UsageError(f"task {TASK} option n_folds={n_folds}: stratified folds need at least n_folds subjects "
                         f"of each group (every fold holds both); the condition has {have}: use "
                         f"--option n_folds={smaller} or fewer")
    return _folds_from(stratified_folds(labels, n_folds, fold_seed))


def cross_site_folds(test_subjects: Iterable[str], train_subjects: Iterable[str]) -> tuple[Fold, ...]:
    """The one cross-site fold (0): every training-site subject trains, every scored subject is tested."""
    return (Fold(0, tuple(sorted(train_subjects)), tuple(sorted(test_subjects))),)


# -- channels ---------------------------------------------------------------------------------------
def _montage_order() -> list[str]:
    """The loader's canonical channel names in montage order (MNE's 10-20 montage; imports MNE when a view is
    built, never at import)."""
    from neuroharness.loaders.eeg.layout import canonical_channels

    return list(canonical_channels())


def shared_channels(channel_lists: Mapping[str, list[str]], order: list[str] | None = None) -> tuple[str, ...]:
    """The channels every list holds, in the canonical order ``order`` (default: the standard_1020 montage);
    names outside ``order`` follow in the order of the first list. ``channel_lists``: {what: names}."""
    lists = list(channel_lists.values())
    if not lists:
        return ()
    common = set(lists[0]).intersection(*map(set, lists[1:]))
    order = _montage_order() if order is None else order
    rank = {c: i for i, c in enumerate(order)}
    first = {c: i for i, c in enumerate(lists[0])}
    return tuple(sorted(common, key=lambda c: (c not in rank, rank.get(c, 0), first[c])))


# -- reading the stores -----------------------------------------------------------------------------
def _condition_rows(recordings, dataset: str, condition: str) -> pd.DataFrame:
    table = recordings.table
    rows = table[table["condition"].astype(str) == condition]
    if rows.empty:
        present = sorted(map(str, table["condition"].unique()))
        raise UsageError(f"task {TASK} option condition={condition!r}: the {dataset} store has no recording of "
                         f"that condition; it holds {', '.join(present) or 'no recording'}")
    bad = sorted(set(map(str, rows["group"])) - set(GROUP_LABELS))
    if bad:
        r = rows.index[rows["group"].astype(str) == bad[0]][0]
        raise NeuroharnessError(f"{dataset}: recording {r} has group {bad[0]!r}; expected patient or control")
    return rows


def _subject_labels(rows: pd.DataFrame, dataset: str) -> dict[str, int]:
    out = {}
    for subject, groups in rows.groupby(rows["subject"].astype(str))["group"]:
        values = sorted(set(map(str, groups)))
        if len(values) > 1:
            raise NeuroharnessError(f"{dataset}: subject {subject} has recordings of groups {values}; a subject is "
                                    "either a patient or a control (fix the metadata table and prepare again)")
        out[str(subject)] = GROUP_LABELS[values[0]]
    return out


def _site_windows(recordings, rows: pd.DataFrame, channels, win: int, stride: int, prefix: str) -> Windows:
    signals, ids, subjects, labels = [], [], [], []
    for rec, row in rows.iterrows():
        signals.append(np.ascontiguousarray(recordings.eeg(str(rec), list(channels)), dtype=np.float32))
        ids.append(str(rec))
        subjects.append(prefix + str(row["subject"]))
        labels.append(GROUP_LABELS[str(row["group"])])
    return Windows(signals, ids, subjects, labels, win, stride)


def _rate(rows_by_site: Mapping[str, pd.DataFrame]) -> float:
    rates = {site: sorted(set(map(float, rows["sfreq"]))) for site, rows in rows_by_site.items()}
    values = sorted({r for rs in rates.values() for r in rs})
    if len(values) != 1:
        detail = "; ".join(f"{s}: {', '.join(f'{r:g}' for r in rs)} Hz" for s, rs in rates.items())
        raise NeuroharnessError(f"task {TASK}: the recordings read have different sampling rates ({detail}); "
                                "windows need one rate: prepare the stores with the same common_sfreq in their "
                                "layouts")
    return values[0]


# -- submissions ------------------------------------------------------------------------------------
def submission_spec(data: EegData) -> TableSpec:
    """fold (int, 0..last fold), subject (str, a scored subject), probability (float)."""
    folds = [f.index for f in data.folds]
    subjects = tuple(sorted(data.subjects.index))
    return TableSpec(
        ids=(Column("fold", "int", "fold numbers", low=min(folds), high=max(folds),
                    range_text=f"the folds are {min(folds)}..{max(folds)}"),
             Column("subject", "str", "subjects", known=subjects,
                    range_text=f"one of the {len(subjects)} scored subjects of {data.dataset}")),
        values=(Column("probability", "float", "probability of 'patient' in [0, 1]"),),
        items="subjects", scope=f" of {data.dataset} ({data.condition})", id_format="fold {fold}, subject {subject}")


def write_predictions(path, fold, subject, probability) -> Path:
    """Write a submission table (fold int64, subject str, probability float64) as .parquet or .npz."""
    return write_table(pd.DataFrame({"fold": np.asarray(fold, dtype=np.int64),
                                     "subject": np.asarray(subject, dtype=object).astype(str).astype(object),
                                     "probability": np.asarray(probability, dtype=np.float64)}), path)


def _diagnose(predictions, expected: pd.DataFrame, scope: str) -> str | None:
    """For a refused submission, a message naming the first row whose subject is unknown, repeated or given
    another fold than the template's (None if there is none, or the table cannot be read: the shared
    checker's message then stands). Reads at most a few times the template's rows: tables here are small."""
    try:
        table = as_table(predictions, 4 * len(expected) + 16, ID_COLUMNS).reset_index(drop=True)
        subjects = table["subject"].to_numpy(dtype=object)
        folds = pd.to_numeric(table["fold"], errors="coerce").to_numpy(dtype=np.float64)
    except Exception:  # noqa: BLE001 - the shared checker reports unreadable tables
        return None
    want = dict(zip(expected["subject"], expected["fold"]))
    first: dict[str, int] = {}
    for i, (s, f) in enumerate(zip(subjects, folds)):
        if not isinstance(s, str):
            return None
        if s not in want:
            return (f"row {i}: subject {s!r} is not one of the {len(want)} scored subjects{scope}; expected exactly "
                    "the subjects of the template")
        if s in first:
            return f"row {i}: subject {s} appears again (first at row {first[s]}); expected each subject once"
        first[s] = i
        if np.isfinite(f) and f != int(want[s]):
            return (f"row {i}: subject {s} is given fold {f:g}, but it belongs to fold {int(want[s])}; expected "
                    "each subject with the fold of the template (the fold whose model predicts it)")
    return None


def _row_of(predictions, subject: str) -> str:
    """"row i: " of ``subject`` in an already checked submission ("" if it cannot be read again)."""
    try:
        table = as_table(predictions).reset_index(drop=True)
        return f"row {int(np.flatnonzero(table['subject'].to_numpy(dtype=object) == subject)[0])}: "
    except Exception:  # noqa: BLE001 - the message is complete without the row
        return ""


# -- fitted models ----------------------------------------------------------------------------------
class EegFitted:
    """One fitted model per fold (``models[k]``); ``n_parameters`` of one fold's model (they share an
    architecture); facts a fit chose are attributes ``fold<k>/<name>``."""

    def __init__(self):
        self.models: dict[int, object] = {}
        self.n_parameters = 0


# -- the task ---------------------------------------------------------------------------------------
class EegSchizophrenia(Task):
    """Options, split and metrics: see the card. ``recordings`` (tests, notebooks): ``{dataset name:
    Recordings}`` used instead of the prepared stores; each must carry ``attrs["content_sha256"]``."""

    card = SCHIZOPHRENIA
    cache_size = 1
    has_validation = False

    def __init__(self, recordings: Mapping[str, object] | None = None):
        super().__init__()
        self._given = dict(recordings or {})

    def _recordings(self, dataset: str):
        if dataset in self._given:
            return self._given[dataset]
        from neuroharness.loaders.eeg.recordings import Recordings

        return Recordings.open(dataset, VERSIONS[dataset])

    def dataset_checksums(self, options) -> dict[str, str]:
        """The ``content_sha256`` of the stores the options read: the scored dataset, and (cross-site) the
        training one; no other."""
        settings = parse_options(options)
        out = {}
        for name in settings.sites:
            if name in self._given:
                sha = self._given[name].attrs.get("content_sha256")
                if not sha:
                    raise NeuroharnessError(f"task {TASK}: the in-memory recordings of {name} have no "
                                            "attrs['content_sha256']; give one (any digest of their content)")
                out[name] = str(sha)
            else:
                from neuroharness.loaders import get_loader

                out[name] = get_loader(name).content_sha256(VERSIONS[name])
        return out

    def load(self, options) -> EegData:
        """Read the condition's recordings of the site(s), window them on the shared channels, build the folds
        and check each (:func:`check_disjoint`)."""
        st = parse_options(options)
        recs = {site: self._recordings(site) for site in st.sites}
        rows = {site: _condition_rows(recs[site], site, st.condition) for site in st.sites}
        sfreq = _rate(rows)
        win = to_samples(st.window_s, sfreq, "option window_s")
        stride = to_samples(st.stride_s, sfreq, "option stride_s")
        lists = {f"{site}/{rec}": recs[site].channels(str(rec)) for site in st.sites for rec in rows[site].index}
        channels = shared_channels(lists)
        if not channels:
            raise NeuroharnessError(f"task {TASK}: the {st.condition} recordings of {' and '.join(st.sites)} share no "
                                    "EEG channel; windows need channels every recording has")
        scored = st.dataset
        windows = _site_windows(recs[scored], rows[scored], channels, win, stride, "")
        labels = _subject_labels(rows[scored], scored)
        counts = windows.counts()
        short = sorted(s for s in labels if counts.get(s, 0) == 0)
        if short:
            n = rows[scored].groupby(rows[scored]["subject"].astype(str))["n_samples"].max()
            raise NeuroharnessError(
                f"task {TASK}: subject {short[0]} of {scored} ({st.condition}) has no whole window: its longest "
                f"recording has {int(n[short[0]])} samples, a window {win} ({st.window_s:g} s at {sfreq:g} Hz); "
                f"every scored subject needs one ({len(short)} such subject(s): {', '.join(short[:5])}). Use a "
                "shorter --option window_s")
        train_windows = None
        if st.protocol == "cross-site":
            other = other_site(scored)
            train_windows = _site_windows(recs[other], rows[other], channels, win, stride, f"{other}:")
            train_labels = _subject_labels(rows[other], other)
            if len(set(train_labels.values())) < 2:
                raise NeuroharnessError(f"task {TASK} protocol=cross-site: the training site {other} has only "
                                        f"{'patients' if 1 in train_labels.values() else 'controls'} in the "
                                        f"{st.condition} condition; training needs both groups")
            if len(set(labels.values())) < 2:
                raise NeuroharnessError(f"task {TASK} protocol=cross-site: {scored} has only one group in the "
                                        f"{st.condition} condition; balanced accuracy needs both")
            folds = cross_site_folds(labels, [f"{other}:{s}" for s in train_labels])
        else:
            folds = make_folds(labels, st.cv, st.n_folds, st.fold_seed)
        fold_of = {}
        for f in folds:
            check_disjoint(f.train, f.test, f.index)
            for s in f.test:
                if s in fold_of:
                    raise NeuroharnessError(f"task {TASK}: subject {s} is tested in folds {fold_of[s]} and {f.index}; "
                                            "every subject is scored once")
                fold_of[s] = f.index
        missing = sorted(set(labels) - set(fold_of))
        if missing:
            raise NeuroharnessError(f"task {TASK}: subject {missing[0]} is in no fold's test side; every subject "
                                    "of the condition is scored once")
        n_recordings = rows[scored].groupby(rows[scored]["subject"].astype(str)).size()
        subjects = pd.DataFrame({
            "group": [("patient" if labels[s] else "control") for s in sorted(labels)],
            "label": [labels[s] for s in sorted(labels)],
            "fold": [fold_of[s] for s in sorted(labels)],
            "n_windows": [counts[s] for s in sorted(labels)],
            "n_recordings": [int(n_recordings[s]) for s in sorted(labels)],
        }, index=pd.Index(sorted(labels), name="subject"))
        return EegData(options=dict(options), dataset=scored, protocol=st.protocol, condition=st.condition,
                       info=EegInfo(float(sfreq), tuple(channels)), subjects=subjects, windows=windows, folds=folds,
                       train_windows=train_windows, datasets=st.sites,
                       recordings={site: list(map(str, rows[site].index)) for site in st.sites})

    def describe_data(self, data: EegData) -> str:
        s = data.subjects
        return (f"{data.dataset} {data.condition}: {int(s.label.sum())} patients, {int((s.label == 0).sum())} "
                f"controls, {len(data.windows)} windows of {data.windows.win} samples, {len(data.info.ch_names)} "
                f"channels, {len(data.folds)} fold(s)")

    def ids(self, data: EegData, split: str) -> pd.DataFrame:
        """The scored subjects: fold (int64), subject (str), sorted by fold then subject."""
        if split != "test":
            raise SubmissionError(f"task {TASK} scores only split 'test' (every subject once, by its fold's "
                                  f"model); got {split!r}")
        s = data.subjects
        out = pd.DataFrame({"fold": s["fold"].to_numpy(dtype=np.int64), "subject": s.index.to_numpy(dtype=object)})
        return out.sort_values(ID_COLUMNS, kind="stable").reset_index(drop=True)

    def training_view_of(self, data: EegData) -> EegTrainingView:
        """:class:`~.data.EegTrainingView`: per fold, its training windows with their labels and subjects."""
        return EegTrainingView(data)

    def check_fold(self, data: EegData, fold: Fold) -> None:
        """The leak guard on windows: the subjects of the fold's training windows and of its test windows."""
        src = data.training_source
        train = np.unique(src.subjects[src.of_subjects(fold.train)].astype(str))
        test = np.unique(data.windows.subjects[data.windows.of_subjects(fold.test)].astype(str))
        check_disjoint(train, test, fold.index)

    def fit(self, model, data: EegData, seed: int) -> EegFitted:
        """Fit a deep copy of ``model`` per fold, on that fold's training windows only (checked first)."""
        for fold in data.folds:
            self.check_fold(data, fold)
        view = self.training_view_of(data)
        built = describe(model)
        fitted = EegFitted()
        for fold in data.folds:
            train = view.fold(fold.index)
            m = copy.deepcopy(model)
            out = m.fit(train.X, train.y, train.groups, train.info, int(seed))
            m = m if out is None else out
            del train
            fitted.models[fold.index] = m
            fitted.n_parameters = max(fitted.n_parameters, int(getattr(m, "n_parameters", 0) or 0))
            for k, v in describe(m).items():
                if k not in built or built[k] != v:
                    setattr(fitted, f"fold{fold.index}/{k}", v)
        return fitted

    def _window_probabilities(self, m, X: np.ndarray, fold: int, subject: str) -> np.ndarray:
        p = m.predict_proba(X)
        what = f"task {TASK}: model {type(m).__name__} of fold {fold} predicted for subject {subject}"
        p = np.asarray(p)
        if p.shape != (len(X),):
            raise NeuroharnessError(f"{what} an array of shape {p.shape}; expected ({len(X)},): one probability "
                                    "of 'patient' per window")
        if p.dtype.kind not in "fiu":
            raise NeuroharnessError(f"{what} dtype {p.dtype}; expected probabilities (float)")
        p = p.astype(np.float64)
        bad = ~np.isfinite(p) | (p < 0) | (p > 1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise NeuroharnessError(f"{what} {int(bad.sum())} value(s) outside [0, 1] or not finite, first "
                                    f"{p[i]!r} at window {i}")
        return p

    def predict(self, model: EegFitted, data: EegData, split: str) -> np.ndarray:
        """(n,) float64 probability of 'patient' per scored subject, aligned with :meth:`ids`: the mean of its
        windows' probabilities under its fold's model (one ``predict_proba`` call per subject)."""
        ids = self.ids(data, split)
        out = np.full(len(ids), np.nan)
        for i, (k, s) in enumerate(zip(ids["fold"], ids["subject"])):
            idx = data.subject_windows(s)
            p = self._window_probabilities(model.models[int(k)], data.windows.batch(idx), int(k), s)
            out[i] = float(p.mean())
        return out

    def score(self, data: EegData, split: str, predictions) -> dict[str, float]:
        """Subject-level metrics of probabilities aligned with :meth:`ids` (a subject is called a patient when its
        probability is >= 0.5)."""
        from neuroharness.metrics.classification import (
            accuracy, balanced_accuracy, confusion_counts, roc_auc, sensitivity, specificity)

        ids = self.ids(data, split)
        p = np.asarray(predictions["probability"] if isinstance(predictions, pd.DataFrame) else predictions,
                       dtype=np.float64)
        if p.shape != (len(ids),):
            raise NeuroharnessError(f"task {TASK}: {p.shape} predictions for {len(ids)} scored subjects")
        y = data.subjects.loc[ids["subject"].to_numpy(), "label"].to_numpy(dtype=np.int64)
        decision = (p >= THRESHOLD).astype(np.int64)
        counts = confusion_counts(y, decision)
        n_p, n_c = int(y.sum()), int((y == 0).sum())
        out = {
            "balanced_accuracy": balanced_accuracy(y, decision),
            "roc_auc": roc_auc(y, p),
            "sensitivity": sensitivity(y, decision),
            "specificity": specificity(y, decision),
            "accuracy": accuracy(y, decision),
            "n_subjects": float(len(y)), "n_patients": float(n_p), "n_controls": float(n_c),
            "n_windows": float(data.subjects["n_windows"].sum()),
            "chance_balanced_accuracy": 0.5,
            "majority_accuracy": max(n_p, n_c) / len(y),
            **{f"confusion_{k}": float(v) for k, v in counts.items()},
        }
        loso = data.protocol == "within" and data.options.get("cv") == "loso"
        for f in data.folds:
            rows = (ids["fold"] == f.index).to_numpy()
            if loso:
                out[f"fold{f.index}_correct"] = float(decision[rows][0] == y[rows][0])
            else:
                out[f"fold{f.index}_balanced_accuracy"] = balanced_accuracy(y[rows], decision[rows])
        return {k: float(v) for k, v in out.items()}

    def read_submission(self, predictions, data: EegData, split: str) -> np.ndarray:
        """Check a submission table against the template (the shared checker, plus: a subject given another
        fold than its own is named; probabilities must lie in [0, 1]); returns probabilities aligned with
        :meth:`ids`."""
        expected = self.ids(data, split)
        source = source_of(predictions)
        try:
            values = check_table(predictions, submission_spec(data), expected, split)
        except SubmissionError:
            found = _diagnose(predictions, expected, f" of {data.dataset} ({data.condition})")
            if found:
                raise SubmissionError(f"{source}: {found}") from None
            raise
        p = values["probability"].to_numpy(dtype=np.float64)
        bad = (p < 0) | (p > 1)
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            subject = expected["subject"].iloc[j]
            raise SubmissionError(
                f"{source}: {_row_of(predictions, subject)}subject {subject} (fold {int(expected['fold'].iloc[j])}) "
                f"has probability {float(p[j])!r}; expected a probability of 'patient' in [0, 1] ({int(bad.sum())} "
                "value(s) outside)")
        return p
