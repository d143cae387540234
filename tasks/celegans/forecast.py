"""Task ``celegans-forecast``: forecast whole-brain calcium activity.

The card (texts, metrics, models) is ``FORECAST`` in :mod:`.cards`; this
module holds the two split protocols (``worms``: held-out worms stratified by
source; ``time``: the second half of every worm), the test windows, the
streamed scoring (test predictions do not fit in memory: squared errors are
summed per source as windows are predicted) and the checks that a store
allows both protocols. The baselines live in :mod:`.forecast_baselines`.

Prediction files (:func:`read_predictions`, :func:`write_predictions`): an
``.npz`` with 1-D ``protocol`` (str), ``worm`` (str), ``start`` (int) naming
each test window of the template, and ``prediction`` (n_windows, 10, 302)
float16/32/64, rows in any order; finite on the neurons labeled in that worm,
anything (NaN) elsewhere. Headers are read before any data, nothing is
unpickled, and the windows are scored exactly as :meth:`CelegansForecast.score_model`
scores a model's own predictions.
"""
from __future__ import annotations

import copy
import hashlib
import math
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from neuroharness.errors import NeuroharnessError, SubmissionError

from ..base import Task
from ..submission import (
    NO_PICKLE, Column, TableSpec, check_path, check_size, check_table, npz_headers, read_npy_member, refuse_pickle,
)
from .cards import FORECAST
from .windows import RaggedActivity, Segment, windows_of

CONTEXT = 200
HORIZONS = (1, 10)
EVAL_STRIDE = 50
SPLITS = ("worms", "time")


@dataclass(frozen=True)
class ForecastSplit:
    """Train/val/test segments of one split protocol."""

    train: list[Segment]
    val: list[Segment]
    test: list[Segment]

    def training_view(self) -> "ForecastSplit":
        """The segments a model may train on (no test segments)."""
        return ForecastSplit(self.train, self.val, [])


def worm_splits(ids: np.ndarray, sources: np.ndarray) -> dict[int, str]:
    """Held-out worm assignment per worm index: 'train', 'val' or 'test'."""
    out = {}
    for s in sorted(set(sources)):
        members = [i for i in np.flatnonzero(sources == s)]
        members.sort(key=lambda i: hashlib.sha256(str(ids[i]).encode()).hexdigest())
        n = len(members)
        n_test = math.ceil(0.2 * n) if n >= 2 else 0
        n_val = math.ceil(0.1 * n) if n >= 3 else 0
        for rank, i in enumerate(members):
            out[i] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return out


def build_splits(store: RaggedActivity) -> dict[str, ForecastSplit]:
    """The two split protocols of the card as worm segments."""
    which = worm_splits(store.worm_ids, store.source)
    by = {k: [Segment(w, 0, int(store.length[w])) for w in range(len(store)) if which[w] == k] for k in ("train", "val", "test")}
    worms = ForecastSplit(by["train"], by["val"], by["test"])
    half = [int(store.length[w]) // 2 for w in range(len(store))]
    time_split = ForecastSplit(
        [Segment(w, 0, half[w] - half[w] // 10) for w in range(len(store))],
        [Segment(w, max(0, half[w] - half[w] // 10 - CONTEXT), half[w]) for w in range(len(store))],
        [Segment(w, half[w], int(store.length[w])) for w in range(len(store))],
    )
    return {"worms": worms, "time": time_split}


def scored_starts(segments, horizon: int = max(HORIZONS)):
    """Yield (segment, window starts relative to ``segment.lo``) for the segments long enough to score."""
    span = CONTEXT + horizon
    for seg in segments:
        if seg.hi - seg.lo >= span:
            yield seg, np.arange(0, seg.hi - seg.lo - span + 1, EVAL_STRIDE)


def eval_windows(store: RaggedActivity, segments, horizon: int = max(HORIZONS)):
    """Yield (segment, context (B, L, N), target (B, H, N), mask (N,)) for every test window of each segment."""
    for seg, starts in scored_starts(segments, horizon):
        trace = store.worm(seg.worm, seg.lo, seg.hi)
        ctx, tgt = windows_of(trace, starts, CONTEXT, horizon)
        yield seg, ctx, tgt, store.labeled[seg.worm]


class _Accumulator:
    """Sums of squared errors per (source, horizon), model and naive."""

    def __init__(self):
        self.sse, self.naive, self.count = {}, {}, {}

    def add(self, source: str, pred: np.ndarray, ctx: np.ndarray, tgt: np.ndarray, mask: np.ndarray) -> None:
        last = ctx[:, -1:, :]
        for k in HORIZONS:
            m = mask[None, None, :]
            err = ((pred[:, :k] - tgt[:, :k]) ** 2 * m).sum(dtype=np.float64)
            nai = ((last - tgt[:, :k]) ** 2 * m).sum(dtype=np.float64)
            cnt = float(mask.sum()) * k * len(tgt)
            for key in (source, None):
                self.sse[key, k] = self.sse.get((key, k), 0.0) + err
                self.naive[key, k] = self.naive.get((key, k), 0.0) + nai
                self.count[key, k] = self.count.get((key, k), 0.0) + cnt

    def metrics(self, prefix: str) -> dict[str, float]:
        out = {}
        for (src, k), sse in sorted(self.sse.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
            n, naive = self.count[src, k], self.naive[src, k]
            mse, nmse = sse / n, naive / n
            skill = 1 - mse / nmse if nmse > 0 else 0.0
            tail = "" if src is None else f"/{src}"
            out[f"{prefix}/skill_h{k}{tail}"] = float(skill)
            if src is None:
                out[f"{prefix}/mse_h{k}"] = float(mse)
                out[f"{prefix}/naive_mse_h{k}"] = float(nmse)
        return out


# -- checks that a store allows both protocols ---------------------------------
_FULLER = ("prepare a fuller store: `neuroharness datasets prepare celegans-activity --force` (the full 912 worms), "
           "or for a synthetic one `python scripts/make_celegans_activity_fixture.py --out DIR --worms 24` then "
           "`neuroharness datasets prepare celegans-activity --source DIR --force`")


def _sources_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{s} ({n})" for s, n in sorted(counts.items()))


def check_protocols(store: RaggedActivity, splits: dict[str, ForecastSplit]) -> None:
    """Raise :class:`NeuroharnessError` naming what is missing unless every protocol has training
    segments and at least one scorable test window (a test segment of context + horizon samples)."""
    span = CONTEXT + max(HORIZONS)
    sources, counts = np.unique(store.source, return_counts=True)
    per_source = dict(zip(sources.tolist(), counts.tolist()))
    what = f"the celegans-activity store ({len(store)} worms in {len(per_source)} sources)"
    for name in SPLITS:
        split = splits[name]
        head = f"task celegans-forecast, split protocol {name!r}: "
        if name == "worms" and not split.test:
            raise NeuroharnessError(
                head + f"no held-out test worm: a source needs at least 2 worms to hold one out, and every source "
                f"of {what} has fewer: {_sources_text(per_source)}; {_FULLER}")
        if not split.train:
            raise NeuroharnessError(head + f"no training worm in {what}; {_FULLER}")
        if not any(True for _ in scored_starts(split.test)):
            longest = max((s.hi - s.lo for s in split.test), default=0)
            if name == "worms":
                detail = (f"every held-out test worm ({len(split.test)}) has fewer than {span} samples "
                          f"(context {CONTEXT} + horizon {max(HORIZONS)}); the longest has {longest}")
            else:
                detail = (f"the second half of every worm has fewer than {span} samples (context {CONTEXT} + "
                          f"horizon {max(HORIZONS)}): worms need at least {2 * span} samples; the longest second "
                          f"half has {longest}")
            raise NeuroharnessError(head + f"no test window in {what}: {detail}; {_FULLER}")


# -- prediction files ---------------------------------------------------------------
ID_SPEC = TableSpec(
    ids=(Column("protocol", "str", "split protocol, 'worms' or 'time'"),
         Column("worm", "str", "worm id '<source>/<worm>'"),
         Column("start", "int", "sample index in the worm of the window's first context sample")),
    values=(), items="windows", id_format="(protocol={protocol}, worm={worm}, start={start})")
ID_FIELDS = tuple(c.name for c in ID_SPEC.ids)
FIELDS = (*ID_FIELDS, "prediction")
FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_NO_PICKLE = "pickle is never accepted"


def _id_spec(worm_ids) -> TableSpec:
    """:data:`ID_SPEC` knowing the store's worms and the protocols, so that an unknown worm or protocol is
    reported as such, with its row, before any window is matched."""
    protocol, worm, start = ID_SPEC.ids
    known = tuple(map(str, worm_ids))
    return replace(ID_SPEC, ids=(
        replace(protocol, known=SPLITS, range_text=f"a split protocol, {' or '.join(map(repr, SPLITS))}"),
        replace(worm, known=known, range_text=f"one of the {len(known)} worm ids of the celegans-activity store"),
        replace(start, low=0, range_text="a sample index in the worm, >= 0")))


@dataclass(frozen=True)
class ForecastSubmission:
    """A checked prediction file: ``prediction`` (n_windows, horizon, neurons) as submitted and
    ``rows``, for each window of the template in scoring order, its row in ``prediction``."""

    prediction: np.ndarray
    rows: np.ndarray


def write_predictions(path, template: pd.DataFrame, prediction: np.ndarray) -> Path:
    """Write a submission ``.npz``: the id columns of ``template`` (protocol, worm, start) and
    ``prediction`` (len(template), 10, n_neurons) float, row i predicting template row i."""
    from neuroharness.loaders.io import atomic_path

    path, prediction = Path(path), np.asarray(prediction)
    if path.suffix != ".npz":
        raise SubmissionError(f"{path}: task celegans-forecast takes an .npz")
    if prediction.ndim != 3 or len(prediction) != len(template):
        raise SubmissionError(f"{path}: prediction of shape {prediction.shape} for {len(template)} windows; "
                              f"expected ({len(template)}, {max(HORIZONS)}, n_neurons)")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, protocol=template["protocol"].to_numpy(dtype=str), worm=template["worm"].to_numpy(dtype=str),
                 start=template["start"].to_numpy(dtype=np.int64), prediction=prediction)
    return path


def _check_headers(source: str, headers: dict, n_windows: int, n_neurons: int) -> None:
    """Dtypes and shapes of the four fields, from their headers: nothing is loaded before this passes."""
    for f in FIELDS:
        shape, dtype = headers[f]
        if dtype.hasobject:
            raise SubmissionError(f"{source}: field {f!r} is an object array ({_NO_PICKLE}); {NO_PICKLE}: store "
                                  + ("strings as a fixed-width unicode array (numpy dtype '<U...')" if f in ID_FIELDS[:2]
                                     else "numbers with a numeric dtype"))
    for f in ID_FIELDS:
        if len(headers[f][0]) != 1:
            raise SubmissionError(f"{source}: field {f!r} has shape {headers[f][0]}; expected a 1-D array, one "
                                  "entry per test window")
    lengths = {f: headers[f][0][0] for f in ID_FIELDS}
    if len(set(lengths.values())) > 1:
        raise SubmissionError(f"{source}: fields {', '.join(ID_FIELDS)} differ in length: {lengths}")
    if lengths["protocol"] > n_windows:
        raise SubmissionError(f"{source}: the id fields have {lengths['protocol']} rows, more than the {n_windows} "
                              "test windows of the template (windows are duplicated, name unknown worms, or are not "
                              "test windows); nothing was loaded")
    shape, dtype = headers["prediction"]
    want = f"(n_windows, {max(HORIZONS)}, {n_neurons}): n_windows = {n_windows} test windows of the template, " \
           f"horizon {max(HORIZONS)}, the store's {n_neurons} neurons"
    if len(shape) != 3 or shape[1:] != (max(HORIZONS), n_neurons):
        raise SubmissionError(f"{source}: field 'prediction' has shape {shape}; expected {want}")
    if dtype not in FLOAT_DTYPES:
        raise SubmissionError(f"{source}: field 'prediction' has dtype {dtype}; expected float16, float32 or float64")
    n = next(iter(lengths.values()))
    if shape[0] != n:
        raise SubmissionError(f"{source}: field 'prediction' has {shape[0]} rows but the id fields "
                              f"({', '.join(ID_FIELDS)}) have {n}; expected one row per window, shape {want}")


def _open_arrays(predictions, n_windows: int, n_neurons: int) -> tuple[str, dict[str, np.ndarray], object]:
    """(source, id arrays, a loader of 'prediction'); every header checked before any data is read."""
    if isinstance(predictions, dict):
        source = "predictions"
        missing = [f for f in FIELDS if f not in predictions]
        if missing:
            raise SubmissionError(f"{source}: missing field(s) {missing}; expected {list(FIELDS)}")
        try:
            arrays = {f: np.asarray(predictions[f]) for f in FIELDS}
        except (ValueError, TypeError) as e:  # ragged lists
            raise SubmissionError(f"{source}: a field is not an array ({e})") from None
        _check_headers(source, {f: (a.shape, a.dtype) for f, a in arrays.items()}, n_windows, n_neurons)
        return source, {f: arrays[f] for f in ID_FIELDS}, lambda: arrays["prediction"]
    path = Path(predictions)
    source = str(path)
    check_path(path)
    refuse_pickle(path)
    if path.suffix.lower() != ".npz" or path.is_dir():
        raise SubmissionError(f"{source}: unsupported format {path.suffix!r}; task celegans-forecast takes an .npz "
                              f"file with fields {', '.join(FIELDS)} ({_NO_PICKLE})")
    check_size(path)  # size on disk, member paths, every npy header and their declared sizes: nothing loaded
    with zipfile.ZipFile(path) as zf:
        members = npz_headers(path, zf, None, "field")
        missing = [f for f in FIELDS if f not in members]
        extra = sorted(set(members) - set(FIELDS))
        if missing or extra:
            raise SubmissionError(f"{source}: " + "; ".join(
                ([f"missing field(s) {missing}"] if missing else []) + ([f"unexpected field(s) {extra}"] if extra else []))
                + f"; expected exactly {list(FIELDS)}")
        headers = {f: members[f][1:] for f in FIELDS}
        _check_headers(source, headers, n_windows, n_neurons)
        ids = {f: read_npy_member(path, zf, members[f][0].filename, f, "field") for f in ID_FIELDS}

    def load():
        with zipfile.ZipFile(path) as z:
            return read_npy_member(path, z, members["prediction"][0].filename, "prediction", "field")

    return source, ids, load


def read_predictions(predictions, template: pd.DataFrame, labeled: np.ndarray, worm_ids, split: str = "test") -> ForecastSubmission:
    """Check a prediction file (path of an .npz, or a dict of the four arrays) against ``template``
    (the ids of the scored windows) and the store's ``labeled`` (worm, neuron) mask; see the module doc."""
    source, ids, load = _open_arrays(predictions, len(template), labeled.shape[1])
    table = pd.DataFrame(ids)
    try:
        check_table(table, _id_spec(worm_ids), template, split)
    except SubmissionError as e:  # the checker names an in-memory table "predictions": name the file instead
        msg = str(e)
        raise SubmissionError(source + msg[len("predictions"):] if msg.startswith("predictions:") else msg) from None
    # check_table returns no alignment for a table without value columns: match the (validated) ids here
    sub = pd.DataFrame({"protocol": table["protocol"].astype(str), "worm": table["worm"].astype(str),
                        "start": table["start"].astype(np.int64), "_row": np.arange(len(table))})
    rows = template[list(ID_FIELDS)].reset_index(drop=True).merge(sub, on=list(ID_FIELDS), how="left", sort=False)["_row"]
    if len(rows) != len(template) or rows.isna().any():  # not reachable after check_table; kept as a guard
        raise SubmissionError(f"{source}: the windows do not match the template")
    rows = rows.to_numpy(dtype=np.int64)
    prediction = load()
    index = {w: i for i, w in enumerate(map(str, worm_ids))}
    codes, worms = pd.factorize(template["worm"].to_numpy(dtype=str))
    for c, worm in enumerate(worms):
        mask = labeled[index[worm]]
        at = rows[codes == c]
        block = prediction[at][:, :, mask]
        bad = ~np.isfinite(block)
        if bad.any():
            i, step, j = (int(x[0]) for x in np.nonzero(bad))
            r, neuron = int(at[i]), int(np.flatnonzero(mask)[j])
            raise SubmissionError(
                f"{source}: field 'prediction' row {r} {ID_SPEC.show(sub.iloc[r].to_dict())}: value "
                f"{float(block[i, step, j])} at step {step + 1}, neuron {neuron}, which is labeled in worm {worm} "
                f"({int(bad.sum())} NaN/inf value(s) on this worm's labeled neurons); only unlabeled neurons may be NaN")
    return ForecastSubmission(prediction, rows)


# -- the task ---------------------------------------------------------------------
@dataclass(frozen=True)
class ForecastData:
    """The task's data view: the activity store, both split protocols and the loaded connectome."""

    store: RaggedActivity
    splits: dict[str, ForecastSplit]
    connectome: object  # xarray.Dataset


@dataclass(frozen=True)
class ForecastTraining:
    """What a model may see for training (``task.training_view()``): the activity ``store`` (read one
    worm at a time with ``store.worm(w, lo, hi)``), per split protocol (``worms``, ``time``) its
    training view (:class:`ForecastSplit` with train and val segments, no test segments) in
    ``protocols``, and the loaded ``connectome``.

    The store itself is whole: the segments say which samples a protocol trains on; models must
    read only those (the test segments are what the task scores)."""

    store: RaggedActivity
    protocols: dict[str, ForecastSplit]
    connectome: object  # xarray.Dataset


@dataclass
class ForecastModels:
    """One fitted model per split protocol; ``n_parameters`` is the largest of them."""

    models: dict = field(default_factory=dict)
    n_parameters: int = 0


class CelegansForecast(Task):
    """Models (:class:`~neuroharness.tasks.protocols.ForecastModel`): ``fit(store, split, seed, connectome)``
    and ``predict(context, mask, horizon)`` (see :mod:`.forecast_baselines`); one copy is fitted per split
    protocol. ``training_view()`` is a :class:`ForecastTraining` (store, train/val segments per protocol,
    connectome)."""

    card = FORECAST
    has_validation = False  # validation segments exist for models to use, but are not scored
    cache_size = 1

    def load(self, options) -> ForecastData:
        """Open both stores (preparing them if needed), build both protocols and check they can be scored."""
        from neuroharness.loaders import get_loader, open_dataset

        activity, connectome = self.card.datasets
        store = RaggedActivity(get_loader(activity.name).locate(activity.version))
        splits = build_splits(store)
        check_protocols(store, splits)
        return ForecastData(store, splits, open_dataset(connectome.name, connectome.version).load())

    def describe_data(self, data: ForecastData) -> str:
        return f"{len(data.store)} worms in {len(set(data.store.source))} sources"

    def ids(self, data: ForecastData, split: str) -> pd.DataFrame:
        """The scored test windows in scoring order: protocol, worm id and window start (sample index in the worm)."""
        if split != "test":
            raise SubmissionError(f"task {self.name} has no scored {split!r} split; use split='test'")
        protocol, worm, start = [], [], []
        for name in SPLITS:
            for seg, starts in scored_starts(data.splits[name].test):
                protocol += [name] * len(starts)
                worm += [str(data.store.worm_ids[seg.worm])] * len(starts)
                start.append(seg.lo + starts)
        start = np.concatenate(start) if start else np.zeros(0, dtype=np.int64)
        return pd.DataFrame({"protocol": protocol, "worm": worm, "start": start.astype(np.int64)})

    def training_view_of(self, data: ForecastData) -> ForecastTraining:
        """:class:`ForecastTraining`: the store, the train/val segments of each protocol, the connectome."""
        return ForecastTraining(data.store, {name: data.splits[name].training_view() for name in SPLITS},
                                data.connectome)

    def targets(self, data: ForecastData, split: str):
        """Refused: the targets are the future of activity traces, not a table; ``training_view()`` reads them."""
        raise SubmissionError(f"task {self.name}: the targets are activity traces, not a table, so "
                              f"`tasks template --split {split}` cannot write them; read the train and val segments "
                              f"in Python: `view = get_task({self.name!r}).training_view()`, then "
                              f"`view.protocols[p].{split}` and `view.store.worm(w, lo, hi)`")

    def fit(self, model, data: ForecastData, seed: int) -> ForecastModels:
        """Fit a copy of the unfitted ``model`` on the training view of each protocol."""
        view = self.training_view_of(data)
        fitted = ForecastModels()
        for name in SPLITS:
            m = copy.deepcopy(model).fit(view.store, view.protocols[name], seed, view.connectome)
            fitted.models[name] = m
            fitted.n_parameters = max(fitted.n_parameters, int(m.n_parameters))
        return fitted

    def predict(self, model, data, split):
        raise NeuroharnessError(f"task {self.name} streams its predictions into the scores (they do not fit in "
                                "memory); use run_model")

    def _score_windows(self, data: ForecastData, split: str, predict) -> dict[str, float]:
        """Stream every test window of each protocol through ``predict(protocol, i, ctx, mask)`` (``i`` the
        template row of the window's first window) and sum squared errors as they come."""
        if split != "test":
            raise SubmissionError(f"task {self.name} has no scored {split!r} split; use split='test'")
        metrics, row = {}, 0
        for name in SPLITS:
            acc = _Accumulator()
            for seg, ctx, tgt, mask in eval_windows(data.store, data.splits[name].test):
                acc.add(str(data.store.source[seg.worm]), predict(name, row, ctx, mask), ctx, tgt, mask)
                row += len(ctx)
            metrics.update(acc.metrics(name))
        return metrics

    def score_model(self, model: ForecastModels, data: ForecastData, split: str) -> dict[str, float]:
        """Predict every test window of each protocol and sum squared errors as they come."""
        return self._score_windows(data, split, lambda name, row, ctx, mask: model.models[name].predict(
            ctx, mask, max(HORIZONS)))

    def read_submission(self, predictions, data: ForecastData, split: str) -> ForecastSubmission:
        """A prediction file (.npz path, or a dict of its arrays) checked by :func:`read_predictions`."""
        return read_predictions(predictions, self.ids(data, split), data.store.labeled, data.store.worm_ids, split)

    def score(self, data: ForecastData, split: str, predictions: ForecastSubmission) -> dict[str, float]:
        """The metrics of a checked submission, streamed window by window exactly as :meth:`score_model`."""
        def predict(name, row, ctx, mask):
            pred = predictions.prediction[predictions.rows[row : row + len(ctx)]]
            pred[:, :, ~mask] = 0  # unlabeled neurons are not scored (NaN allowed there; the mask would keep NaN)
            return pred

        return self._score_windows(data, split, predict)
