"""One subject of ``nsd-algonauts2023`` in memory (:class:`SubjectArrays`) and on disk (:func:`write_subject`).

Both sources (the challenge release, :mod:`.challenge`; the public NSD files,
:mod:`.bucket`) produce a :class:`SubjectArrays` whose big parts stay lazy:
fMRI as memory maps (or any array-like sliced by rows), images as a function
of the row. :func:`write_subject` checks every field before it writes anything,
then streams the fMRI block by block (one chunk row of :data:`FMRI_ROWS`
stimuli at a time) and the images a few at a time, one chunk per image.

Group layout (one Zarr v2 group per subject, dims ``stimulus``, ``vertex``, ``y``, ``x``, ``rgb``):

- coordinates ``nsd_id`` int32, ``split`` ("train" | "test"), ``split_row`` int32 on ``stimulus``
  (train rows in challenge order, then test rows); ``hemisphere`` ("lh" | "rh") and
  ``fsaverage_index`` int32 on ``vertex`` (left hemisphere, then right);
- ``fmri`` (stimulus, vertex) float32, NaN rows for test stimuli without responses;
- ``noise_ceiling`` (vertex) float32, fraction 0-1, only where the source has it;
- ``roi_<class>`` (vertex) int16 with CF ``flag_values`` / ``flag_meanings``, one per ROI class the source has;
- ``images`` (stimulus, y, x, rgb) uint8, one chunk per image;
- attributes ``subject``, ``source_kind``, ``test_fmri``, ``vertices_lh``, ``vertices_rh`` and the
  source's own (``n_sessions`` for the NSD files).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable

import numcodecs
import numpy as np

from neuroharness.errors import DataFormatError

from .. import io

SUBJECTS = tuple(f"subj{i:02d}" for i in range(1, 9))
HEMISPHERES = ("lh", "rh")
SPLITS = ("train", "test")
ROI_CLASSES = ("prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words", "streams")
SOURCE_KINDS = ("challenge release", "NSD files")
N_NSD_IMAGES = 73000  # nsd_stimuli.hdf5 imgBrick: ids 0..72999
FMRI_ROWS = 64  # stimuli per fMRI chunk (all vertices in one chunk row)
IMAGE_BATCH = 16  # images read and written at a time (still one chunk each)
MAX_IMAGE_EDGE = 4096  # pixels; NSD's crops are 425
FMRI_UNITS = "z-scored beta (per session), averaged over repeats"
IMAGE_COMPRESSOR = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.NOSHUFFLE)


def roi_variable(roi_class: str) -> str:
    """Store variable of an ROI class: ``"floc-bodies"`` -> ``"roi_floc_bodies"``."""
    return "roi_" + roi_class.replace("-", "_")


@dataclass
class SubjectArrays:
    """Everything :func:`write_subject` needs for one subject; big parts stay lazy.

    ``fmri[h]`` is a 2-D float32 array-like ``(n_stimulus, n_h)``: an ndarray, an
    ``np.memmap``, or any object with ``shape``, ``dtype`` and row slicing
    (``a[i:j]`` -> ndarray), e.g. :class:`RowStack`. Rows are the stimuli in the order of
    ``nsd_id``; a row of NaN in both hemispheres marks a test stimulus without
    responses. ``rois`` maps an ROI class (``"prf-visualrois"``) to
    ``({hemisphere: labels (n_h,) int}, {label: name})``; ``{}`` if the source has none.
    ``image(i)`` returns row ``i``'s image, ``(y, x, 3)`` uint8 with ``(y, x) == image_shape``.
    ``attrs`` become group attributes (``source_kind`` and ``test_fmri`` required).
    """

    subject: str
    nsd_id: np.ndarray
    split: np.ndarray
    split_row: np.ndarray
    fmri: dict
    fsaverage_index: dict
    noise_ceiling: dict | None
    rois: dict
    image: Callable[[int], np.ndarray]
    image_shape: tuple[int, int]
    attrs: dict


class RowStack:
    """Rows of several 2-D arrays stacked lazily (e.g. the training memmap, then NaN rows for test stimuli).

    ``parts`` are 2-D array-likes sliced by rows, or ints (that many rows of NaN).
    ``a[i:j]`` reads only the parts the rows fall in.
    """

    def __init__(self, parts, n_columns: int, dtype=np.float32):
        self.parts = list(parts)
        self.dtype = np.dtype(dtype)
        self._starts = [0]
        for p in self.parts:
            n = p if isinstance(p, (int, np.integer)) else int(p.shape[0])
            self._starts.append(self._starts[-1] + int(n))
        self.shape = (self._starts[-1], int(n_columns))
        self.ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, slice):
            raise TypeError("RowStack supports row slices only")
        start, stop, step = key.indices(self.shape[0])
        if step != 1:
            raise TypeError("RowStack supports contiguous row slices only")
        out = []
        for p, lo, hi in zip(self.parts, self._starts, self._starts[1:]):
            a, b = max(start, lo), min(stop, hi)
            if a >= b:
                continue
            if isinstance(p, (int, np.integer)):
                out.append(np.full((b - a, self.shape[1]), np.nan, dtype=self.dtype))
            else:
                out.append(np.asarray(p[a - lo : b - lo], dtype=self.dtype))
        if not out:
            return np.empty((0, self.shape[1]), dtype=self.dtype)
        return out[0] if len(out) == 1 else np.concatenate(out)


# -- validation ------------------------------------------------------------------------------------
def _fail(subject: str, msg: str):
    raise DataFormatError(f"{subject}: {msg}")


def _int_vector(subject: str, name: str, a, n: int | None = None) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1:
        _fail(subject, f"{name} has shape {a.shape}, expected 1-D")
    if a.dtype.kind not in "iu":
        _fail(subject, f"{name} has dtype {a.dtype}, expected integers")
    if n is not None and len(a) != n:
        _fail(subject, f"{name} has {len(a)} entries, expected {n}")
    return a


def check_subject(arrays: SubjectArrays) -> dict:
    """Check every field of ``arrays`` that can be checked without reading fMRI rows or images.

    Returns the normalized small arrays (``nsd_id``, ``split``, ``split_row``,
    ``fsaverage_index``, ``noise_ceiling``, ``rois``) and sizes. Raises
    :class:`DataFormatError` naming the subject, hemisphere and field.
    """
    s = arrays.subject
    if s not in SUBJECTS:
        raise DataFormatError(f"subject {s!r}: expected one of {', '.join(SUBJECTS)}")
    nsd_id = _int_vector(s, "nsd_id", arrays.nsd_id)
    n = len(nsd_id)
    if n == 0:
        _fail(s, "no stimuli (nsd_id is empty), expected training images at least")
    bad = np.flatnonzero((nsd_id < 0) | (nsd_id >= N_NSD_IMAGES))
    if bad.size:
        _fail(s, f"nsd_id row {bad[0]} is {nsd_id[bad[0]]}, expected 0..{N_NSD_IMAGES - 1} (0-based NSD image index)")
    uniq, first, counts = np.unique(nsd_id, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][0]
        rows = np.flatnonzero(nsd_id == dup)[:2].tolist()
        _fail(s, f"nsd_id {dup} appears in rows {rows[0]} and {rows[1]}, expected each image once")
    split = np.asarray(arrays.split).astype(str)
    if split.shape != (n,):
        _fail(s, f"split has shape {split.shape}, expected ({n},) like nsd_id")
    bad = np.flatnonzero(~np.isin(split, SPLITS))
    if bad.size:
        _fail(s, f"split row {bad[0]} is {str(split[bad[0]])!r}, expected 'train' or 'test'")
    n_train = int((split == "train").sum())
    if n_train == 0:
        _fail(s, "split has no 'train' rows, expected the training stimuli first")
    if (split[:n_train] != "train").any():
        row = int(np.flatnonzero(split[:n_train] != "train")[0])
        _fail(s, f"split row {row} is 'test' before the last 'train' row, expected train rows first, then test rows")
    split_row = _int_vector(s, "split_row", arrays.split_row, n)
    expect = np.concatenate([np.arange(n_train), np.arange(n - n_train)])
    if not np.array_equal(split_row, expect):
        row = int(np.flatnonzero(split_row != expect)[0])
        _fail(s, f"split_row row {row} ({split[row]}) is {split_row[row]}, expected {expect[row]} "
                 "(0-based, contiguous within each split)")

    if not isinstance(arrays.fmri, dict) or set(arrays.fmri) != set(HEMISPHERES):
        _fail(s, f"fmri has hemispheres {sorted(arrays.fmri) if isinstance(arrays.fmri, dict) else arrays.fmri!r}, "
                 "expected 'lh' and 'rh'")
    if not isinstance(arrays.fsaverage_index, dict) or set(arrays.fsaverage_index) != set(HEMISPHERES):
        _fail(s, "fsaverage_index: expected a dict with 'lh' and 'rh'")
    fsavg, sizes = {}, {}
    for h in HEMISPHERES:
        idx = _int_vector(s, f"fsaverage_index {h}", arrays.fsaverage_index[h])
        if len(idx) == 0:
            _fail(s, f"fsaverage_index {h} is empty, expected at least one vertex")
        if idx.min() < 0 or idx.max() >= 2**31:
            _fail(s, f"fsaverage_index {h} has values {idx.min()}..{idx.max()}, expected surface vertex indices >= 0")
        if (np.diff(idx) <= 0).any():
            row = int(np.flatnonzero(np.diff(idx) <= 0)[0]) + 1
            _fail(s, f"fsaverage_index {h} entry {row} is {idx[row]} after {idx[row - 1]}, expected strictly "
                     "increasing surface indices (challenge vertex order)")
        fsavg[h], sizes[h] = idx.astype(np.int32), len(idx)
        f = arrays.fmri[h]
        shape, dtype = tuple(getattr(f, "shape", ())), getattr(f, "dtype", None)
        if len(shape) != 2:
            _fail(s, f"fmri {h} has shape {shape}, expected 2-D (stimulus, vertex)")
        if np.dtype(dtype) != np.float32:
            _fail(s, f"fmri {h} has dtype {dtype}, expected float32")
        if shape[0] != n:
            _fail(s, f"fmri {h} has {shape[0]} rows, expected {n} (one per stimulus: {n_train} train + {n - n_train} test)")
        if shape[1] != sizes[h]:
            _fail(s, f"fmri {h} has {shape[1]} vertices (columns), but fsaverage_index {h} has {sizes[h]}; expected equal")

    nc = None
    if arrays.noise_ceiling is not None:
        if not isinstance(arrays.noise_ceiling, dict) or set(arrays.noise_ceiling) != set(HEMISPHERES):
            _fail(s, "noise_ceiling: expected None or a dict with 'lh' and 'rh'")
        parts = []
        for h in HEMISPHERES:
            v = np.asarray(arrays.noise_ceiling[h])
            if v.ndim != 1 or v.dtype.kind != "f":
                _fail(s, f"noise_ceiling {h} has shape {v.shape} and dtype {v.dtype}, expected 1-D floats")
            if len(v) != sizes[h]:
                _fail(s, f"noise_ceiling {h} has {len(v)} vertices, but fmri {h} has {sizes[h]}; expected equal")
            bad = np.flatnonzero(~np.isfinite(v) | (v < 0) | (v > 1))
            if bad.size:
                hint = " (a percentage? the store holds the devkit's fraction)" if np.nanmax(v) > 1 else ""
                _fail(s, f"noise_ceiling {h} vertex {bad[0]} is {v[bad[0]]}, expected a finite fraction in 0..1{hint}")
            parts.append(v.astype(np.float32))
        nc = np.concatenate(parts)

    if not isinstance(arrays.rois, dict):
        _fail(s, f"rois is {type(arrays.rois).__name__}, expected a dict (empty if the source has no ROI masks)")
    rois = {}
    for cls in sorted(arrays.rois, key=lambda c: ROI_CLASSES.index(c) if c in ROI_CLASSES else len(ROI_CLASSES)):
        if cls not in ROI_CLASSES:
            _fail(s, f"ROI class {cls!r}, expected one of {', '.join(ROI_CLASSES)}")
        labels, mapping = arrays.rois[cls]
        mapping = check_roi_mapping(s, cls, mapping)
        known = np.array(sorted(k for k in mapping if k != 0) + [0])
        parts = []
        for h in HEMISPHERES:
            if h not in labels:
                _fail(s, f"ROI class {cls}: labels for hemisphere {h} are missing, expected 'lh' and 'rh'")
            lab = _int_vector(s, f"ROI {cls} {h}", labels[h])
            if len(lab) != sizes[h]:
                _fail(s, f"ROI {cls} {h} has {len(lab)} vertices, but fmri {h} has {sizes[h]}; expected equal")
            bad = np.flatnonzero(~np.isin(lab, known))
            if bad.size:
                _fail(s, f"ROI {cls} {h} vertex {bad[0]} has label {lab[bad[0]]}, which the mapping of {cls} does not "
                         f"name; expected 0 or one of {sorted(k for k in mapping if k != 0)}")
            parts.append(lab.astype(np.int16))
        rois[cls] = (np.concatenate(parts), mapping)

    shape = tuple(arrays.image_shape)
    if len(shape) != 2 or not all(isinstance(v, (int, np.integer)) and 0 < v <= MAX_IMAGE_EDGE for v in shape):
        _fail(s, f"image_shape is {arrays.image_shape!r}, expected (y, x) with 1..{MAX_IMAGE_EDGE} pixels each")
    if not callable(arrays.image):
        _fail(s, "image is not callable, expected a function row -> (y, x, 3) uint8")

    attrs = dict(arrays.attrs or {})
    if attrs.get("source_kind") not in SOURCE_KINDS:
        _fail(s, f"attrs source_kind is {attrs.get('source_kind')!r}, expected one of {SOURCE_KINDS}")
    if not isinstance(attrs.get("test_fmri"), str) or not attrs["test_fmri"]:
        _fail(s, f"attrs test_fmri is {attrs.get('test_fmri')!r}, expected 'none' or how the test fMRI was made")
    if n == n_train and attrs["test_fmri"] != "none":
        _fail(s, f"attrs test_fmri is {attrs['test_fmri']!r} but there are no test stimuli; expected 'none'")
    try:
        json.dumps(attrs)
    except (TypeError, ValueError) as e:
        _fail(s, f"attrs are not JSON-serializable ({e})")
    return dict(nsd_id=nsd_id.astype(np.int32), split=split, split_row=split_row.astype(np.int32), n=n,
                n_train=n_train, fsaverage_index=fsavg, sizes=sizes, noise_ceiling=nc, rois=rois,
                image_shape=(int(shape[0]), int(shape[1])), attrs=attrs)


_NAME = re.compile(r"\S+")


def check_roi_mapping(subject: str, roi_class: str, mapping) -> dict[int, str]:
    """``{label: ROI name}`` with int labels (0 = no ROI) and names without spaces, unique among labels > 0."""
    if not isinstance(mapping, dict) or not mapping:
        _fail(subject, f"ROI class {roi_class}: mapping is {type(mapping).__name__}, expected a non-empty dict "
                       "{label: ROI name}")
    out = {}
    for k, v in mapping.items():
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
            _fail(subject, f"ROI class {roi_class}: mapping key {k!r} is {type(k).__name__}, expected an int label")
        if not isinstance(v, str) or not _NAME.fullmatch(v):
            _fail(subject, f"ROI class {roi_class}: mapping of label {k} is {v!r}, expected a name without spaces")
        if not -(2**15) <= int(k) < 2**15:
            _fail(subject, f"ROI class {roi_class}: mapping label {k} does not fit int16")
        out[int(k)] = str(v)
    names = [v for k, v in out.items() if k != 0]
    dup = sorted({v for v in names if names.count(v) > 1})
    if dup:
        _fail(subject, f"ROI class {roi_class}: ROI name {dup[0]!r} has two labels, expected one label per ROI")
    if not names:
        _fail(subject, f"ROI class {roi_class}: the mapping names no ROI besides label 0")
    return out


# -- writing ---------------------------------------------------------------------------------------
def write_subject(root, arrays: SubjectArrays, *, progress=None) -> None:
    """Write one subject as group ``/<subject>`` of the Zarr v2 group ``root`` (layout: module docs).

    Every field is checked first (:func:`check_subject`); fMRI rows are
    checked while streamed (train rows finite; a test row all finite or all
    NaN in both hemispheres, consistent with ``attrs["test_fmri"]``) and
    images as read. ``progress``: a bar updated by images written. Errors are
    :class:`DataFormatError` naming subject, hemisphere and field; the caller
    removes the partly written store (:meth:`DatasetLoader.prepare` does).
    """
    c = check_subject(arrays)
    s, n, sizes = arrays.subject, c["n"], c["sizes"]
    n_vertex = sizes["lh"] + sizes["rh"]
    g = root.create_group(s)
    stim_coords = "nsd_id split split_row"
    vert_coords = "hemisphere fsaverage_index"
    io.create_array(g, "nsd_id", dims=("stimulus",), units="1", data=c["nsd_id"],
                    long_name="NSD image index (0-based, 0..72999; imgBrick of nsd_stimuli.hdf5)")
    io.create_array(g, "split", dims=("stimulus",), data=c["split"].astype("<U5"),
                    long_name="challenge split of the stimulus (train or test)")
    io.create_array(g, "split_row", dims=("stimulus",), units="1", data=c["split_row"],
                    long_name="row within the split (0-based; train-0001 is row 0)")
    io.create_array(g, "hemisphere", dims=("vertex",), long_name="cortical hemisphere (lh or rh)",
                    data=np.array(["lh"] * sizes["lh"] + ["rh"] * sizes["rh"], dtype="<U2"))
    io.create_array(g, "fsaverage_index", dims=("vertex",), units="1",
                    data=np.concatenate([c["fsaverage_index"][h] for h in HEMISPHERES]),
                    long_name="vertex index on the fsaverage surface of its hemisphere")
    if c["noise_ceiling"] is not None:
        io.create_array(g, "noise_ceiling", dims=("vertex",), units="1", data=c["noise_ceiling"],
                        long_name="noise ceiling of the test responses (fraction of variance, 0-1)",
                        attrs={"coordinates": vert_coords})
    for cls, (labels, mapping) in c["rois"].items():
        keys = sorted(k for k in mapping if k != 0)
        io.create_array(g, roi_variable(cls), dims=("vertex",), units="1", data=labels,
                        long_name=f"{cls} ROI label (0: none)",
                        attrs={"coordinates": vert_coords, "flag_values": keys,
                               "flag_meanings": " ".join(mapping[k] for k in keys), "roi_class": cls})
    fmri = io.create_array(g, "fmri", dims=("stimulus", "vertex"), units=FMRI_UNITS, shape=(n, n_vertex),
                           dtype="float32", chunks=(FMRI_ROWS, n_vertex),
                           long_name="fMRI response (betas_fithrf_GLMdenoise_RR) on the fsaverage surface",
                           attrs={"coordinates": f"{stim_coords} {vert_coords}"})
    _write_fmri(arrays, c, fmri)
    y, x = c["image_shape"]
    images = io.create_array(g, "images", dims=("stimulus", "y", "x", "rgb"), units="1", shape=(n, y, x, 3),
                             dtype="uint8", chunks=(1, y, x, 3), compressor=IMAGE_COMPRESSOR,
                             long_name="stimulus image (RGB)", attrs={"coordinates": stim_coords})
    for start in range(0, n, IMAGE_BATCH):
        stop = min(n, start + IMAGE_BATCH)
        images[start:stop] = np.stack([_image(arrays, c, i) for i in range(start, stop)])
        if progress is not None:
            progress.update(stop - start)
    g.attrs.update({**c["attrs"], "subject": s, "vertices_lh": sizes["lh"], "vertices_rh": sizes["rh"]})


def _write_fmri(arrays: SubjectArrays, c: dict, out) -> None:
    s, split, split_row, nsd_id = arrays.subject, c["split"], c["split_row"], c["nsd_id"]
    n_lh = c["sizes"]["lh"]
    available = arrays.attrs["test_fmri"] != "none"
    for start in range(0, c["n"], FMRI_ROWS):
        stop = min(c["n"], start + FMRI_ROWS)
        parts = []
        for h in HEMISPHERES:
            block = np.asarray(arrays.fmri[h][start:stop])
            if block.shape != (stop - start, c["sizes"][h]):
                _fail(s, f"fmri {h} rows {start}..{stop - 1} read as shape {block.shape}, expected "
                         f"{(stop - start, c['sizes'][h])}")
            parts.append(block.astype(np.float32, copy=False))
        block = np.concatenate(parts, axis=1)
        rows_split = split[start:stop]
        must_be_finite = (rows_split == "train") | available  # test rows too when test responses are given
        nan = np.isnan(block)
        whole = nan.all(axis=1)
        bad = (~np.isfinite(block) & ~nan) | (nan & must_be_finite[:, None]) | (nan & ~whole[:, None])
        if bad.any():
            r, col = (int(v) for v in np.argwhere(bad)[0])
            row = start + r
            h, hc = ("lh", col) if col < n_lh else ("rh", col - n_lh)
            where = f"fmri {h} row {row} ({split[row]} row {split_row[row]}, nsd_id {nsd_id[row]}) column {hc}"
            if split[row] == "train":
                why = "expected finite values in every training row"
            elif available and not np.isinf(block[r, col]):
                why = (f"expected finite test responses, since attrs test_fmri is {arrays.attrs['test_fmri']!r} "
                       "(or test_fmri 'none' with every test row NaN)")
            else:
                why = "expected finite values, or NaN in the whole row (both hemispheres) for unavailable responses"
            _fail(s, f"{where} is {block[r, col]}; {why}")
        test_rows = rows_split == "test"
        if not available and (test_rows & ~whole).any():
            r = int(np.flatnonzero(test_rows & ~whole)[0])
            _fail(s, f"fmri row {start + r} (test row {split_row[start + r]}) has responses but attrs test_fmri is "
                     "'none'; expected NaN rows for test stimuli, or test_fmri saying where the responses come from")
        out[start:stop] = block


def _image(arrays: SubjectArrays, c: dict, i: int) -> np.ndarray:
    img = np.asarray(arrays.image(i))
    shape = (*c["image_shape"], 3)
    if img.shape != shape or img.dtype != np.uint8:
        _fail(arrays.subject, f"image of row {i} ({c['split'][i]} row {c['split_row'][i]}, nsd_id {c['nsd_id'][i]}) "
                              f"has shape {img.shape} and dtype {img.dtype}, expected {shape} uint8 like the "
                              "subject's other images")
    return img
