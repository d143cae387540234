"""Task ``fisbe-instance-segmentation``: segment every neuron in 3-D light microscopy.

The card (:mod:`.cards`) states the task; this module reads the ``fisbe``
store (:class:`StoreData`), scores per volume with
:func:`~neuroharness.metrics.instance_segmentation.evaluate_instances` and
aggregates (:func:`aggregate`), and reads submissions lazily
(:class:`PredictionFile`: one volume in memory at a time). Models
(:mod:`.baselines`) are built from the card's import strings::

    model.fit(data, train, val, seed) -> model     # data: the training view, train/val: sample ids
    model.predict(raw) -> (Z, Y, X) label image    # raw: (3, Z, Y, X) uint16, one volume
"""
from __future__ import annotations

import itertools
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neuroharness import cluster
from neuroharness.errors import DataFormatError, NeuroharnessError, SubmissionError
from neuroharness.loaders.location import StoreLocation, as_location

from ..base import Task
from ..submission import ArrayFile, check_names, sparse_zeros, write_arrays
from .cards import INSTANCE_SEGMENTATION, REFERENCE_ROWS

SUBSETS = ("completely", "partly")
METRICS = ("S", "avF1", "C", "clDice_TP", "tp", "FS", "FM")
COUNTS = ("n_gt", "n_pred")
REMOVE_SMALL = 800  # the benchmark preset drops predicted instances of <= 800 voxels
ID_COLUMNS = ["sample", "subset", "size_z", "size_y", "size_x"]

__all__ = ["REFERENCE_ROWS", "FisbeInstanceSegmentation", "PredictionFile", "StoreData", "aggregate",
           "write_predictions"]


# -- scoring -----------------------------------------------------------------------
def aggregate(per_sample: dict[str, dict], subset_of: dict[str, str]) -> dict:
    """Flat metrics from per-volume :func:`~neuroharness.metrics.instance_segmentation.evaluate_instances` results.

    Keys: ``S, avF1, C, clDice_TP, tp, FS, FM, n_gt, n_pred`` of the combined
    set (or of the only subset present, with a ``note``), the same under
    ``completely/`` and ``partly/`` (plus ``n_samples``), under ``<sample>/``
    for every volume (plus ``n_removed``), ``n_subsets`` and ``main_score``
    (= ``S``). clDice_TP is 0 where there is no TP at 0.5 (as the official evaluator reports it).
    """
    from neuroharness.metrics.instance_segmentation import combine, summarize

    if not per_sample:
        raise ValueError("per_sample: no scored volumes")
    out: dict = {}
    by_subset = {s: [per_sample[k] for k in per_sample if subset_of[k] == s] for s in SUBSETS}
    summaries = {s: summarize(v) for s, v in by_subset.items() if v}
    if len(summaries) == 2:
        top = combine(summaries["completely"], summaries["partly"])
        top["n_pred"] = summaries["completely"]["n_pred"] + summaries["partly"]["n_pred"]
    else:
        (only, top), = summaries.items()
        out["note"] = (f"the prepared store holds only {only}-labeled samples of this split: "
                       f"the scores are that subset's, not the combined set's")
    out["main_score"] = float(top["S"])
    for k in METRICS + COUNTS:
        out[k] = top[k]
    out["n_subsets"] = len(summaries)
    for s, summ in summaries.items():
        for k in METRICS + COUNTS:
            out[f"{s}/{k}"] = summ[k]
        out[f"{s}/n_samples"] = summ["n_volumes"]
    for name, res in per_sample.items():
        summ = summarize([res])
        for k in METRICS + COUNTS:
            out[f"{name}/{k}"] = summ[k]
        out[f"{name}/n_removed"] = int(res["n_removed"])
    return {k: (float(v) if isinstance(v, (float, np.floating)) else int(v) if isinstance(v, (int, np.integer)) else v)
            for k, v in out.items()}


# -- sparse volumes ------------------------------------------------------------------
def _flat_nonzero(flat: np.ndarray) -> np.ndarray:
    """``np.flatnonzero`` of a 1-D unsigned array, fast when it is mostly 0: 8-byte words
    are screened first, then only the elements of nonzero words are looked at."""
    b = flat.view(np.uint8)
    n8 = b.size - b.size % 8
    words = np.flatnonzero(b[:n8].view(np.uint64))
    cand = (words[:, None] * 8 + np.arange(8)).reshape(-1)
    cand = np.concatenate([cand[b[cand] != 0], np.flatnonzero(b[n8:]) + n8])
    return np.unique(cand // flat.itemsize)  # elements holding a nonzero byte, ascending


# -- submissions ---------------------------------------------------------------------
class PredictionFile(ArrayFile):
    """A FISBe submission: one label image or instance stack per sample (see :class:`~..submission.ArrayFile`),
    one volume in memory at a time; an .npz member of dtype object is refused on opening."""

    layout = "one array per sample at the top level"
    object_expected = "expected integer labels or bool instance channels"
    item = "sample"


def check_prediction_header(source: str, name: str, shape: tuple, dtype: np.dtype, volume: tuple) -> None:
    """Raise :class:`SubmissionError` unless (shape, dtype) is a label image or stack of a ``volume`` (Z, Y, X)."""
    volume = tuple(int(v) for v in volume)
    if dtype.kind not in "biu":
        raise SubmissionError(
            f"{source}: array {name!r} (sample {name}) has dtype {dtype}; expected integer labels or bool "
            "instance channels (float, object and other dtypes are not accepted)")
    if len(shape) not in (3, 4) or tuple(shape[-3:]) != volume:
        raise SubmissionError(
            f"{source}: array {name!r} (sample {name}) has shape {tuple(shape)}; expected the raw volume's "
            f"(Z, Y, X) = {volume} as a label image or (N, {', '.join(map(str, volume))}) as an instance stack")


def check_prediction_values(source: str, name: str, a: np.ndarray) -> None:
    """Raise :class:`SubmissionError` if array ``a`` holds negative labels."""
    if a.dtype.kind == "i" and a.size and int(a.min()) < 0:
        raise SubmissionError(
            f"{source}: array {name!r} (sample {name}) holds negative values (min {int(a.min())}); "
            "expected 0 = background and labels >= 1")


def write_predictions(path, predictions: dict[str, np.ndarray]) -> Path:
    """Write a submission: one array per sample id, as ``.npz`` or a ``.zarr`` folder (atomically).

    Each array is a (Z, Y, X) integer label image (0 = background) or a
    (N, Z, Y, X) integer/bool stack of instance channels (overlaps allowed),
    with (Z, Y, X) the sample's raw volume shape. Example::

        write_predictions("preds.npz", {"R14A02-20180905_65_A6": labels, ...})
        neuroharness evaluate fisbe-instance-segmentation preds.npz
    """
    path = Path(path)
    for name, a in predictions.items():
        a = np.asarray(a)
        if a.ndim not in (3, 4) or a.dtype.kind not in "biu":
            raise SubmissionError(f"{path}: array {name!r} has shape {a.shape} and dtype {a.dtype}; expected a "
                                  "(Z, Y, X) integer label image or a (N, Z, Y, X) integer/bool instance stack")
    return write_arrays(path, predictions, compressed=True, chunks=lambda a: (
        (a.shape[0],) * (a.ndim == 4) + tuple(min(64, n) for n in a.shape[-3:])))


def score_volume(data: "StoreData", sample: str, pred: np.ndarray) -> dict:
    """evaluate_instances of one prediction against the sample's GT (partly mode for partly samples)."""
    from neuroharness.metrics.instance_segmentation import evaluate_instances

    return evaluate_instances(data.gt(sample), pred, partly=data.subset(sample) == "partly",
                              remove_small=REMOVE_SMALL)


def _score_prediction(data: "StoreData", sample: str, pred: np.ndarray, source: str) -> dict:
    check_prediction_header(source, sample, pred.shape, pred.dtype, data.shape(sample))
    check_prediction_values(source, sample, pred)
    if pred.dtype.kind == "i":  # checked >= 0: the same labels, and the metric skips its own min() pass
        pred = pred.view(pred.dtype.str.replace("i", "u"))
    return score_volume(data, sample, pred)


def score_sample(location: StoreLocation, index: pd.DataFrame, path: Path, sample: str) -> dict:
    """Metrics of one sample of the submission file at ``path`` against the store at ``location`` (``index``:
    that sample's row of the sample index): one task of a distributed ``evaluate``, reading both itself."""
    with PredictionFile(path) as pf:
        return _score_prediction(StoreData(location, index.reset_index(drop=True)), sample, pf.load(sample), pf.name)


# -- store access ---------------------------------------------------------------------
@dataclass
class StoreData:
    """Volumes of a prepared ``fisbe`` store, read with zarr (implements ``FisbeData`` of the baselines)."""

    location: StoreLocation  # where the store is (a path or URL given here becomes a StoreLocation)
    index: pd.DataFrame  # one row per sample: sample, subset, split, n_instances, size_z, size_y, size_x

    def __post_init__(self):
        self.location = as_location(self.location)
        self._root = self.location.open_group()
        self._by = self.index.set_index("sample")

    @property
    def store_path(self) -> str:
        """The store's path or URL, as text (for messages)."""
        return str(self.location)

    def samples(self, split: str, subsets=SUBSETS) -> list[str]:
        ix = self.index
        return ix.loc[(ix["split"] == split) & ix["subset"].isin(subsets), "sample"].astype(str).tolist()

    def subset(self, sample: str) -> str:
        return str(self._by.loc[sample, "subset"])

    def without_test(self) -> "StoreData":
        """The training view: the same store with the test samples left out of the index
        (their volumes and GT cannot be read through it)."""
        return StoreData(self.location, self.index[self.index["split"] != "test"].reset_index(drop=True))

    def shape(self, sample: str) -> tuple[int, int, int]:
        r = self._by.loc[sample]
        return int(r["size_z"]), int(r["size_y"]), int(r["size_x"])

    def _array(self, sample: str, name: str):
        if sample not in self._by.index:
            raise KeyError(f"sample {sample!r} is not in this view of {self.store_path}")
        try:
            return self._root[sample][name]
        except KeyError:
            raise DataFormatError(f"{self.store_path}: sample {sample}: array {name!r} missing") from None

    def raw(self, sample: str) -> np.ndarray:
        """(3, Z, Y, X) uint16."""
        a = self._array(sample, "raw")
        if a.ndim != 4 or tuple(a.shape[1:]) != self.shape(sample):
            raise DataFormatError(f"{self.store_path}: sample {sample}: raw has shape {a.shape}; expected "
                                  f"(3, {', '.join(map(str, self.shape(sample)))}) as in the sample index")
        return np.asarray(a[...])

    def gt(self, sample: str) -> np.ndarray:
        """(N, Z, Y, X) bool, one channel per neuron (N = the index's ``n_instances``).

        Read from the sample's NGFF label images (value k = instance k; neurons that overlap are
        in different label images). Only their stored chunks are read, and only their labeled
        voxels written, into a :func:`sparse_zeros` array: a real-size 11-neuron stack is 2 GB of
        address space but a few MB of memory."""
        from neuroharness.loaders.fisbe.ngff import label_images

        where = f"{self.store_path}: sample {sample}"
        if sample not in self._by.index:
            raise KeyError(f"sample {sample!r} is not in this view of {self.store_path}")
        try:
            group = self._root[sample]
        except KeyError:
            raise DataFormatError(f"{where}: the sample's group is missing from the store") from None
        images = label_images(group, where)
        shape = self.shape(sample)
        n = int(self._by.loc[sample, "n_instances"])
        g = sparse_zeros((n, *shape), bool)
        found = False
        for name, a in images:
            if a.ndim != 3 or tuple(a.shape) != shape or a.dtype.kind not in "ui":
                raise DataFormatError(f"{where}: labels/{name} has shape {tuple(a.shape)} and dtype {a.dtype}; "
                                      f"expected an integer (Z, Y, X) = {shape} label image as in the sample index")
            for key in self._stored_chunks(sample, a):
                block = np.ascontiguousarray(a.blocks[key])
                hit = _flat_nonzero(block.reshape(-1).view(f"u{block.dtype.itemsize}"))
                if not hit.size:
                    continue
                values = block.reshape(-1)[hit].astype(np.int64)
                bad = values[(values < 1) | (values > n)]
                if bad.size:
                    raise DataFormatError(f"{where}: labels/{name} holds label {int(bad[0])}; expected instance "
                                          f"ids 1..{n} (0 = background)")
                found = True
                coords = np.unravel_index(hit, block.shape)
                g[(values - 1, *(h + k * c for h, k, c in zip(coords, key, a.chunks)))] = True
        if not found:
            raise DataFormatError(f"{where}: the label images are empty (no labeled voxel)")
        return g

    def _stored_chunks(self, sample: str, a) -> list[tuple[int, ...]]:
        """Grid positions of the chunks of array ``a`` that exist in the store.

        Chunks never written (all background: most of a FISBe volume) read as the
        fill value 0, so only the stored ones need reading: listed on disk for a local
        store, with the location's filesystem for a remote one. All grid positions
        (each read through zarr) where the array is not Zarr v2, its fill value is
        nonzero, the listing fails (an HTTP server cannot list) or finds no
        ``.zarray``, or a file there is no chunk key."""
        grid = [-(-s // c) for s, c in zip(a.shape, a.chunks)]
        everything = list(itertools.product(*map(range, grid)))
        if a.metadata.zarr_format != 2 or (a.fill_value is not None and a.fill_value != 0):
            return everything
        names = self._listing(a.path)
        if names is None or ".zarray" not in names:
            return everything
        keys = []
        for name in names:
            if name.rsplit("/", 1)[-1].startswith("."):
                continue
            parts = re.split(r"[./\\]", name)
            if len(parts) != len(grid) or not all(p.isdigit() for p in parts):
                return everything
            key = tuple(int(p) for p in parts)
            if any(k >= n for k, n in zip(key, grid)):
                return everything
            keys.append(key)
        return sorted(keys)

    def _listing(self, key: str) -> list[str] | None:
        """Every file below ``key`` in the store, as paths relative to it ('/'-separated); None where
        they cannot be listed."""
        if self.location.is_local:
            folder = os.path.join(self.location.path, key)
            if not os.path.isdir(folder):
                return None
            return [os.path.relpath(os.path.join(parent, f), folder).replace(os.sep, "/")
                    for parent, _, files in os.walk(folder) for f in files]
        try:
            fs, root = self.location.filesystem()
            folder = f"{root.rstrip('/')}/{key}"
            found = fs.find(folder)
        except Exception:  # noqa: BLE001 -- no listing (HTTP) or a listing error: read every chunk instead
            return None
        prefix = folder.rstrip("/") + "/"
        return [p[len(prefix):] for p in found if p.startswith(prefix)]


# -- the task -------------------------------------------------------------------------
class FisbeInstanceSegmentation(Task):
    """Models (:class:`~neuroharness.tasks.protocols.FisbeModel`): ``fit(data, train, val, seed)`` on the
    training view (``training_view()``: :meth:`StoreData.without_test`), ``predict(raw) -> labels`` per volume.

    Predictions are ``{sample: array}`` (or a :class:`PredictionFile`);
    :meth:`score_model` predicts and scores one volume at a time, since a
    real volume is ~180 M voxels.
    """

    card = INSTANCE_SEGMENTATION
    cache_size = 1
    scores_on_cluster = True  # one task per sample (a real volume takes tens of seconds)
    #: Published baselines' test scores (see :data:`~.cards.REFERENCE_ROWS`).
    reference_rows = REFERENCE_ROWS

    def load(self, options) -> StoreData:
        """Open the prepared ``fisbe`` store (preparing it if needed) and its sample index."""
        from neuroharness.loaders import get_loader
        from neuroharness.loaders.fisbe import read_sample_index

        location = get_loader("fisbe").locate(self.card.datasets[0].version)  # prepares a missing local store
        index = read_sample_index(location)  # the root's index arrays only, no DataTree of every sample
        return StoreData(location, index.reset_index(drop=True))

    def describe_data(self, data: StoreData) -> str:
        counts = data.index.groupby(["subset", "split"]).size()
        return f"{data.store_path}: " + ", ".join(f"{n} {sub} {sp}" for (sub, sp), n in counts.items())

    def ids(self, data: StoreData, split: str) -> pd.DataFrame:
        """The samples of ``split`` with their subset and (Z, Y, X) shape, in store order."""
        ix = data.index
        return ix.loc[ix["split"] == split, ID_COLUMNS].reset_index(drop=True)

    def training_view_of(self, data: StoreData) -> StoreData:
        """:meth:`StoreData.without_test`: raw volumes and GT of the train and val samples
        (``view.samples("train")``, ``view.samples("val")``); test samples cannot be read through it."""
        return data.without_test()

    def targets(self, data: StoreData, split: str):
        """Refused: the targets are label volumes, not a table; ``training_view()`` reads them."""
        raise SubmissionError(f"task {self.name}: the targets are instance label volumes, not a table, so "
                              f"`tasks template --split {split}` cannot write them; read the raw volumes and GT of "
                              f"train and val in Python: `view = get_task({self.name!r}).training_view()`, then "
                              f"`view.samples({split!r})`, `view.raw(sample)`, `view.gt(sample)`")

    def fit(self, model, data: StoreData, seed: int):
        view = self.training_view_of(data)
        train, val = view.samples("train"), view.samples("val")
        if not train:
            raise NeuroharnessError(f"task {self.name}: the prepared fisbe store holds no train samples "
                                    f"({self.describe_data(data)}); models need some")
        return model.fit(view, train, val, seed)

    def predict(self, model, data: StoreData, split: str) -> dict[str, np.ndarray]:
        """``{sample: label image}`` of every volume of ``split`` (all in memory: see :meth:`score_model`)."""
        return {s: model.predict(data.raw(s)) for s in data.samples(split)}

    def _score(self, data: StoreData, split: str, volume, source: str, path: Path | None = None) -> dict:
        """:func:`aggregate` over the samples of ``split``; ``volume(sample)`` gives one prediction at a time.

        With a dask scheduler (``evaluate --dask-scheduler``, :func:`neuroharness.cluster.using`) and a
        submission file at ``path``, each sample is scored by one task on the cluster (:func:`score_sample`),
        which reads the file and the store itself; the metrics are the same."""
        expected = data.samples(split)
        address = cluster.scheduler_address()
        if address is not None and path is not None and len(expected) > 1:
            parts = [(data.location, data.index[data.index["sample"] == s], path, s) for s in expected]
            per_sample = [None] * len(parts)
            shared = [path, *([data.location.path] if data.location.is_local else [])]
            for i, result in cluster.run_parts(score_sample, parts, address, shared=shared,
                                               purpose="the fisbe store and the submission"):
                per_sample[i] = result
            per_sample = dict(zip(expected, per_sample))
        else:
            per_sample = {s: _score_prediction(data, s, volume(s), source) for s in expected}
        # aggregate's main_score (= S, first key) is what the base would add; kept so that the key order of
        # evaluate's output and of records is today's
        return aggregate(per_sample, {s: data.subset(s) for s in expected})

    def score(self, data: StoreData, split: str, predictions) -> dict:
        """Metrics of ``predictions`` (``{sample: array}`` or a :class:`PredictionFile`) on ``split``.

        Keeps the ``note`` of a one-subset store."""
        with (predictions if isinstance(predictions, PredictionFile) else PredictionFile(predictions)) as pf:
            return self._score(data, split, pf.load, pf.name, pf.path)

    def score_model(self, model, data: StoreData, split: str) -> dict:
        """Predict and score one volume at a time; finite numbers only (what records hold)."""
        metrics = self._score(data, split, lambda s: model.predict(data.raw(s)), f"model {type(model).__name__}")
        return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}

    def read_submission(self, predictions, data: StoreData, split: str) -> PredictionFile:
        """Open a submission (path or ``{sample: array}``) lazily and check its names and array headers."""
        pf = PredictionFile(predictions)
        try:
            expected = data.samples(split)
            check_names(pf.names, expected, pf.name, split, "samples")
            for s in expected:
                check_prediction_header(pf.name, s, *pf.header(s), data.shape(s))
        except BaseException:
            pf.close()
            raise
        return pf
