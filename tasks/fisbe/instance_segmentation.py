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

import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neuroharness.errors import DataFormatError, NeuroharnessError, SubmissionError

from ..base import Task
from ..submission import check_names
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
    (= ``S``). clDice_TP is NaN where there is no TP at 0.5.
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


# -- submissions ---------------------------------------------------------------------
class PredictionFile:
    """The arrays of a submission, by name, read lazily (one volume in memory at a time).

    ``source``: a ``.npz`` file (read with ``allow_pickle=False``; array
    headers are read without loading the data), a Zarr directory (``.zarr``
    or any folder holding ``.zgroup``/``zarr.json``), a zipped Zarr
    (``.zip``), or a mapping ``{name: array}``. Nothing is ever unpickled and
    Zarr stores are opened read-only. ``names`` lists the arrays as stored
    (a name stored twice appears twice, for :func:`~..submission.check_names`).
    """

    def __init__(self, source):
        self._zip = self._group = self._dict = None
        if isinstance(source, Mapping):
            self.name = "predictions"
            self._dict = {str(k): v for k, v in source.items()}
            self.names = list(self._dict)
            return
        path = Path(source)
        self.name = str(path)
        if not path.exists():
            raise SubmissionError(f"{path}: file not found")
        suffix = path.suffix.lower()
        try:
            if suffix == ".npz":
                self._zip = zipfile.ZipFile(path)
                members = [m for m in self._zip.namelist() if not m.endswith("/")]
                bad = [m for m in members if not m.endswith(".npy")]
                if bad:
                    raise SubmissionError(f"{path}: member {bad[0]!r} is not a .npy array")
                self._members = {m[: -len(".npy")]: m for m in members}
                self.names = [m[: -len(".npy")] for m in members]
                return
            import zarr

            if suffix == ".zip":
                store = zarr.storage.ZipStore(str(path), mode="r")
            elif path.is_dir() and (suffix == ".zarr" or any((path / f).exists() for f in (".zgroup", "zarr.json"))):
                store = zarr.storage.LocalStore(str(path), read_only=True)
            else:
                raise SubmissionError(f"{path}: unsupported format {suffix or '(folder)'!r}; use .npz, a .zarr folder "
                                      "or a zipped Zarr (.zip); pickle is never accepted")
            self._group = zarr.open_group(store, mode="r")
            members = dict(self._group.members())
            groups = [k for k, v in members.items() if not isinstance(v, zarr.Array)]
            if groups:
                raise SubmissionError(f"{path}: member {groups[0]!r} is a group; expected one array per sample at the top level")
            self.names = list(members)
        except SubmissionError:
            raise
        except (zipfile.BadZipFile, ValueError, OSError, KeyError) as e:
            raise SubmissionError(f"{path}: unreadable {suffix or 'folder'} predictions ({type(e).__name__}: {e})") from None
        except Exception as e:  # noqa: BLE001 - zarr raises many kinds of errors on a malformed store
            raise SubmissionError(f"{path}: unreadable {suffix or 'folder'} predictions ({type(e).__name__}: {e})") from None

    def header(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        """(shape, dtype) of array ``name`` without reading its data."""
        if self._dict is not None:
            a = self._dict[name]
            if not hasattr(a, "shape") or not hasattr(a, "dtype"):
                a = np.asarray(a)
            return tuple(a.shape), np.dtype(a.dtype)
        if self._zip is not None:
            try:
                with self._zip.open(self._members[name]) as f:
                    version = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(f)
            except (ValueError, OSError, zipfile.BadZipFile) as e:
                raise SubmissionError(f"{self.name}: array {name!r} is not a valid .npy array ({e})") from None
            return tuple(shape), np.dtype(dtype)
        a = self._group[name]
        return tuple(a.shape), np.dtype(a.dtype)

    def load(self, name: str) -> np.ndarray:
        """The data of array ``name`` as a numpy array."""
        try:
            if self._dict is not None:
                return np.asarray(self._dict[name])
            if self._zip is not None:
                with self._zip.open(self._members[name]) as f:
                    return np.load(f, allow_pickle=False)
            return np.asarray(self._group[name][...])
        except (ValueError, OSError, zipfile.BadZipFile) as e:
            raise SubmissionError(f"{self.name}: array {name!r} is unreadable ({e})") from None

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        if self._group is not None:
            self._group.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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
    from neuroharness.loaders.io import atomic_path, remove, replace_dir, temp_sibling

    path = Path(path)
    for name, a in predictions.items():
        a = np.asarray(a)
        if a.ndim not in (3, 4) or a.dtype.kind not in "biu":
            raise SubmissionError(f"{path}: array {name!r} has shape {a.shape} and dtype {a.dtype}; expected a "
                                  "(Z, Y, X) integer label image or a (N, Z, Y, X) integer/bool instance stack")
    if path.suffix == ".npz":
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{str(k): np.asarray(v) for k, v in predictions.items()})
    elif path.suffix == ".zarr":
        import zarr

        tmp = temp_sibling(path)
        try:
            root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
            for name, a in predictions.items():
                a = np.asarray(a)
                chunks = (a.shape[0],) * (a.ndim == 4) + tuple(min(64, n) for n in a.shape[-3:])
                root.create_array(str(name), data=a, chunks=chunks)
            replace_dir(tmp, path)
        finally:
            remove(tmp)
    else:
        raise SubmissionError(f"{path}: unsupported format {path.suffix!r}; use .npz or .zarr")
    return path


# -- store access ---------------------------------------------------------------------
@dataclass
class StoreData:
    """Volumes of a prepared ``fisbe`` store, read with zarr (implements ``FisbeData`` of the baselines)."""

    store_path: str
    index: pd.DataFrame  # one row per sample: sample, subset, split, n_instances, size_z, size_y, size_x

    def __post_init__(self):
        import zarr

        self._root = zarr.open_group(self.store_path, mode="r")
        self._by = self.index.set_index("sample")

    def samples(self, split: str, subsets=SUBSETS) -> list[str]:
        ix = self.index
        return ix.loc[(ix["split"] == split) & ix["subset"].isin(subsets), "sample"].astype(str).tolist()

    def subset(self, sample: str) -> str:
        return str(self._by.loc[sample, "subset"])

    def without_test(self) -> "StoreData":
        """The training view: the same store with the test samples left out of the index
        (their volumes and GT cannot be read through it)."""
        return StoreData(self.store_path, self.index[self.index["split"] != "test"].reset_index(drop=True))

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
        """(N, Z, Y, X) bool, one channel per neuron."""
        a = self._array(sample, "gt_instances")
        raw_shape = tuple(self._array(sample, "raw").shape)
        if a.ndim != 4 or tuple(a.shape[1:]) != raw_shape[1:]:
            raise DataFormatError(f"{self.store_path}: sample {sample}: gt_instances has shape {a.shape} but raw "
                                  f"has {raw_shape}; expected (N, Z, Y, X) over the same (Z, Y, X)")
        g = np.asarray(a[...])
        if g.dtype != bool:
            g = g != 0
        if not g.any():
            raise DataFormatError(f"{self.store_path}: sample {sample}: gt_instances is empty (no labeled voxel)")
        return g


# -- the task -------------------------------------------------------------------------
class FisbeInstanceSegmentation(Task):
    """Models: ``fit(data, train, val, seed)`` on the training view, ``predict(raw) -> labels`` per volume.

    Predictions are ``{sample: array}`` (or a :class:`PredictionFile`);
    :meth:`score_model` predicts and scores one volume at a time, since a
    real volume is ~180 M voxels.
    """

    card = INSTANCE_SEGMENTATION
    cache_size = 1
    #: Published baselines' test scores (see :data:`~.cards.REFERENCE_ROWS`).
    reference_rows = REFERENCE_ROWS

    def load(self, options) -> StoreData:
        """Open the prepared ``fisbe`` store (preparing it if needed) and its sample index."""
        from neuroharness.loaders import get_loader
        from neuroharness.loaders.fisbe import open_fisbe, sample_index

        version = self.card.datasets[0].version
        index = sample_index(open_fisbe(version))
        if "sample" not in index.columns:  # sample ids as the index
            index = index.rename_axis("sample").reset_index()
        return StoreData(str(get_loader("fisbe").store_path(version)), index.reset_index(drop=True))

    def describe_data(self, data: StoreData) -> str:
        counts = data.index.groupby(["subset", "split"]).size()
        return f"{data.store_path}: " + ", ".join(f"{n} {sub} {sp}" for (sub, sp), n in counts.items())

    def ids(self, data: StoreData, split: str) -> pd.DataFrame:
        """The samples of ``split`` with their subset and (Z, Y, X) shape, in store order."""
        ix = data.index
        return ix.loc[ix["split"] == split, ID_COLUMNS].reset_index(drop=True)

    def fit(self, model, data: StoreData, seed: int):
        train, val = data.samples("train"), data.samples("val")
        if not train:
            raise NeuroharnessError(f"task {self.name}: the prepared fisbe store holds no train samples "
                                    f"({self.describe_data(data)}); models need some")
        return model.fit(data.without_test(), train, val, seed)

    def predict(self, model, data: StoreData, split: str) -> dict[str, np.ndarray]:
        """``{sample: label image}`` of every volume of ``split`` (all in memory: see :meth:`score_model`)."""
        return {s: model.predict(data.raw(s)) for s in data.samples(split)}

    def score_volume(self, data: StoreData, sample: str, pred: np.ndarray) -> dict:
        """evaluate_instances of one prediction against the sample's GT (partly mode for partly samples)."""
        from neuroharness.metrics.instance_segmentation import evaluate_instances

        return evaluate_instances(data.gt(sample), pred, partly=data.subset(sample) == "partly",
                                  remove_small=REMOVE_SMALL)

    def _score(self, data: StoreData, split: str, volume, source: str) -> dict:
        """:func:`aggregate` over the samples of ``split``; ``volume(sample)`` gives one prediction at a time."""
        expected = data.samples(split)
        per_sample = {}
        for s in expected:
            pred = volume(s)
            check_prediction_header(source, s, pred.shape, pred.dtype, data.shape(s))
            check_prediction_values(source, s, pred)
            per_sample[s] = self.score_volume(data, s, pred)
            del pred
        # aggregate's main_score (= S, first key) is what the base would add; kept so that the key order of
        # evaluate's output and of records is today's
        return aggregate(per_sample, {s: data.subset(s) for s in expected})

    def score(self, data: StoreData, split: str, predictions) -> dict:
        """Metrics of ``predictions`` (``{sample: array}`` or a :class:`PredictionFile`) on ``split``.

        Keeps the ``note`` of a one-subset store and NaN clDice_TP (no TP at 0.5)."""
        with (predictions if isinstance(predictions, PredictionFile) else PredictionFile(predictions)) as pf:
            return self._score(data, split, pf.load, pf.name)

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
