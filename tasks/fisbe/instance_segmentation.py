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
import mmap
import os
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neuroharness.errors import DataFormatError, NeuroharnessError, SubmissionError

from ..base import Task
from ..submission import (
    NO_PICKLE, _too_large, check_folder, check_names, max_submission_bytes, npy_header, npz_headers, open_zarr,
    refuse_pickle, sniff, why, zarr_declared_bytes,
)
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
_PIECE = 1 << 22  # bytes decompressed at a time when streaming an .npy member


def sparse_zeros(shape, dtype) -> np.ndarray:
    """A zero-filled, writable, C-contiguous array whose untouched pages take no memory.

    FISBe volumes are ~99.9 % background: a (385, 685, 686) int32 label image is
    0.72 GB and an 11-neuron bool GT stack 2 GB, but their nonzero voxels touch a
    few MB.  The array lives in a private anonymous mapping (transparent huge pages
    off, so a write commits one 4 KiB page, not 2 MiB): pages never written read
    as zeros from the kernel's shared zero page and add nothing to the resident
    set.  Falls back to ``np.zeros`` where such a mapping is unavailable.
    """
    dtype = np.dtype(dtype)
    shape = tuple(int(n) for n in shape)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < (1 << 20) or dtype.hasobject or not hasattr(mmap, "MAP_PRIVATE"):
        return np.zeros(shape, dtype)
    try:
        mm = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | getattr(mmap, "MAP_ANONYMOUS", 0))
    except (OSError, ValueError):
        return np.zeros(shape, dtype)
    advice = getattr(mmap, "MADV_NOHUGEPAGE", None)
    if advice is not None:
        try:
            mm.madvise(advice)
        except OSError:
            pass
    return np.frombuffer(mm, dtype=dtype).reshape(shape)  # the array keeps the mapping alive


def _read_npy_data(f, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """The C-order data of an .npy stream positioned after its header, into :func:`sparse_zeros`.

    Decompresses :data:`_PIECE` bytes at a time and copies only the pages that hold
    a nonzero byte, so a sparse volume costs its foreground, not its size (the
    values are those ``np.load`` returns).  Raises ``ValueError`` on a short stream.
    """
    out = sparse_zeros(shape, dtype)
    flat = out.reshape(-1).view(np.uint8)
    page = mmap.PAGESIZE
    pos, n = 0, flat.size
    while pos < n:
        want = min(_PIECE, n - pos)
        buf = f.read(want)
        if len(buf) != want:
            raise ValueError(f"EOF: reading array data, expected {n} bytes, got {pos + len(buf)}")
        b = np.frombuffer(buf, np.uint8)
        full = want - want % page
        if full:
            pages = b[:full].reshape(-1, page)
            hot = pages.view(np.uint64).any(axis=1) if page % 8 == 0 else pages.any(axis=1)
            if hot.all():
                flat[pos:pos + full] = b[:full]
            elif hot.any():
                flat[pos:pos + full].reshape(-1, page)[hot] = pages[hot]
        if full < want and b[full:].any():
            flat[pos + full:pos + want] = b[full:]
        pos += want
    f.read(1)  # reach the member's end, so that zipfile checks its CRC
    return out


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
class PredictionFile:
    """The arrays of a submission, by name, read lazily (one volume in memory at a time).

    ``source``: a ``.npz`` file (read with ``allow_pickle=False``; array
    headers are read without loading the data), a Zarr directory (``.zarr``
    or any folder holding ``.zgroup``/``zarr.json``), a zipped Zarr
    (``.zip``), or a mapping ``{name: array}``. Nothing is ever unpickled and
    Zarr stores are opened read-only. Everything that can be judged without reading
    data is judged when the file is opened: pickles (whatever the suffix), the size
    limit on disk and as declared by the zip directory, npy headers and Zarr metadata,
    member paths escaping the archive, links in folders, pickle codecs, object arrays.
    ``names`` lists the arrays as stored.
    """

    def __init__(self, source):
        self._zip = self._group = self._store = self._dict = None
        if isinstance(source, Mapping):
            self.name = "predictions"
            self._dict = {str(k): v for k, v in source.items()}
            self.names = list(self._dict)
            return
        path = Path(source)
        self.name = str(path)
        if not path.exists():
            raise SubmissionError(f"{path}: file not found")
        refuse_pickle(path)
        suffix = path.suffix.lower()
        limit = max_submission_bytes()  # checked before any array is read: size on disk, then uncompressed size
        try:
            if path.is_dir():
                check_folder(path, limit)
            elif path.stat().st_size > limit:
                raise _too_large(path, "the file has", path.stat().st_size, limit)
            if suffix == ".npz" and not path.is_dir():
                self._open_npz(path, limit)
            elif (suffix == ".zip" and not path.is_dir()) or (path.is_dir() and (
                    suffix == ".zarr" or any((path / f).exists() for f in (".zgroup", "zarr.json")))):
                self._open_zarr(path, limit)
            else:
                raise SubmissionError(f"{path}: unsupported format {suffix or '(folder)'!r}; use .npz, a .zarr folder "
                                      "or a zipped Zarr (.zip); pickle is never accepted")
        except SubmissionError:
            self.close()
            raise
        except Exception as e:  # noqa: BLE001 - zipfile and zarr raise many kinds of errors on malformed files
            self.close()
            raise SubmissionError(f"{path}: unreadable {suffix or 'folder'} predictions ({type(e).__name__}: {e})") from None

    def _open_npz(self, path: Path, limit: int) -> None:
        """The zip directory and every member's npy header, nothing decompressed beyond the headers."""
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            found = sniff(path)
            hint = f"; the file looks like {'a single .npy array' if found == 'npy' else found}" if found else ""
            raise SubmissionError(f"{path}: not an .npz (zip) archive ({type(e).__name__}: {e}){hint}; write it with "
                                  f"write_predictions or numpy.savez ({NO_PICKLE})") from None
        headers = npz_headers(path, self._zip, limit, "array")
        for name, (_, _, dtype) in headers.items():
            if dtype.hasobject:
                raise SubmissionError(
                    f"{path}: array {name!r} (sample {name}) has dtype object (Python objects, which numpy stores "
                    f"as a pickle); {NO_PICKLE}: expected integer labels or bool instance channels")
        self._members = {k: info.filename for k, (info, _, _) in headers.items()}
        self._headers = {k: (shape, dtype) for k, (_, shape, dtype) in headers.items()}
        self.names = list(headers)

    def _open_zarr(self, path: Path, limit: int) -> None:
        """A Zarr folder or zipped Zarr: paths, links, codecs and declared sizes checked before any chunk."""
        import zarr

        self._group, self._store = open_zarr(path, limit)
        members = dict(self._group.members())
        groups = [k for k, v in members.items() if not isinstance(v, zarr.Array)]
        if groups:
            raise SubmissionError(f"{path}: member {groups[0]!r} is a group; expected one array per sample at the top level")
        total = sum(zarr_declared_bytes(a) for a in members.values())
        if total > limit:
            raise _too_large(path, "its arrays hold", total, limit)
        self.names = list(members)

    def header(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        """(shape, dtype) of array ``name`` without reading its data."""
        if self._dict is not None:
            a = self._dict[name]
            if not hasattr(a, "shape") or not hasattr(a, "dtype"):
                a = np.asarray(a)
            return tuple(a.shape), np.dtype(a.dtype)
        if self._zip is not None:
            return self._headers[name]
        try:
            a = self._group[name]
            dtype = a.dtype if isinstance(a.dtype, np.dtype) else np.dtype(object)
            return tuple(a.shape), dtype
        except Exception as e:  # noqa: BLE001 - zarr raises many kinds of errors on malformed metadata
            raise SubmissionError(f"{self.name}: array {name!r} is unreadable ({type(e).__name__}: {e})") from None

    def load(self, name: str) -> np.ndarray:
        """The data of array ``name`` as a numpy array."""
        try:
            if self._dict is not None:
                return np.asarray(self._dict[name])
            if self._zip is not None:
                with self._zip.open(self._members[name]) as f:
                    shape, dtype, fortran = npy_header(f, fortran_order=True)
                    if not fortran and not dtype.hasobject and dtype.itemsize:
                        return _read_npy_data(f, shape, dtype)
                with self._zip.open(self._members[name]) as f:  # other layouts: as numpy reads them
                    return np.load(f, allow_pickle=False)
            return np.asarray(self._group[name][...])
        except Exception as e:  # noqa: BLE001 - truncated data, bad CRC, damaged chunks: many kinds of errors
            raise SubmissionError(f"{self.name}: array {name!r} is unreadable ({why(e)}); "
                                  "the file is damaged or truncated") from None

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        if self._store is not None:
            self._store.close()

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
        """(N, Z, Y, X) bool, one channel per neuron.

        Only the stored chunks are read, and only their labeled voxels written, into
        a :func:`sparse_zeros` array: a real-size 11-neuron stack is 2 GB of address
        space but a few MB of memory."""
        a = self._array(sample, "gt_instances")
        raw_shape = tuple(self._array(sample, "raw").shape)
        if a.ndim != 4 or tuple(a.shape[1:]) != raw_shape[1:]:
            raise DataFormatError(f"{self.store_path}: sample {sample}: gt_instances has shape {a.shape} but raw "
                                  f"has {raw_shape}; expected (N, Z, Y, X) over the same (Z, Y, X)")
        g = sparse_zeros(a.shape, bool)
        found = False
        for key in self._stored_chunks(sample, a):
            block = np.ascontiguousarray(a.blocks[key])
            hit = _flat_nonzero(block.reshape(-1).view(f"u{block.dtype.itemsize}"))
            if hit.size:
                found = True
                g[tuple(h + k * c for h, k, c in zip(np.unravel_index(hit, block.shape), key, a.chunks))] = True
        if not found:
            raise DataFormatError(f"{self.store_path}: sample {sample}: gt_instances is empty (no labeled voxel)")
        return g

    def _stored_chunks(self, sample: str, a) -> list[tuple[int, ...]]:
        """Grid positions of the chunks of array ``a`` that exist in the store.

        Chunks never written (all background: most of a FISBe volume) read as the
        fill value 0, so only the stored ones need reading.  All grid positions
        (each read through zarr) where the array is not in a local Zarr v2
        directory, its fill value is nonzero, or a file there is no chunk key."""
        grid = [-(-s // c) for s, c in zip(a.shape, a.chunks)]
        everything = list(itertools.product(*map(range, grid)))
        folder = os.path.join(self.store_path, sample, a.basename)
        if a.metadata.zarr_format != 2 or (a.fill_value is not None and a.fill_value != 0) \
                or not os.path.isfile(os.path.join(folder, ".zarray")):
            return everything
        keys = []
        for parent, _, files in os.walk(folder):
            for f in files:
                if f.startswith("."):
                    continue
                parts = re.split(r"[./\\]", os.path.relpath(os.path.join(parent, f), folder))
                if len(parts) != len(grid) or not all(p.isdigit() for p in parts):
                    return everything
                key = tuple(int(p) for p in parts)
                if any(k >= n for k, n in zip(key, grid)):
                    return everything
                keys.append(key)
        return sorted(keys)


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
    #: Published baselines' test scores (see :data:`~.cards.REFERENCE_ROWS`).
    reference_rows = REFERENCE_ROWS

    def load(self, options) -> StoreData:
        """Open the prepared ``fisbe`` store (preparing it if needed) and its sample index."""
        from neuroharness.loaders import get_loader
        from neuroharness.loaders.fisbe import read_sample_index

        path = get_loader("fisbe").ensure(self.card.datasets[0].version)  # prepares a missing store
        index = read_sample_index(path)  # the root's index arrays only, no DataTree of every sample
        return StoreData(str(path), index.reset_index(drop=True))

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
            if pred.dtype.kind == "i":  # checked >= 0: the same labels, and the metric skips its own min() pass
                pred = pred.view(pred.dtype.str.replace("i", "u"))
            per_sample[s] = self.score_volume(data, s, pred)
            del pred
        # aggregate's main_score (= S, first key) is what the base would add; kept so that the key order of
        # evaluate's output and of records is today's
        return aggregate(per_sample, {s: data.subset(s) for s in expected})

    def score(self, data: StoreData, split: str, predictions) -> dict:
        """Metrics of ``predictions`` (``{sample: array}`` or a :class:`PredictionFile`) on ``split``.

        Keeps the ``note`` of a one-subset store."""
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
