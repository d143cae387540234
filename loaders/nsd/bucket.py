"""Source B of ``nsd-algonauts2023``: the challenge's training and test sets rebuilt from the public NSD files.

:func:`subject_from_nsd` follows the recipe of the Algonauts 2023 devkit's
``code/01_challenge_data_preparation/challenge_data_preparation.py`` (github.com/gifale95/algonauts_2023),
step by step, on a folder or a URL with the layout of the NSD bucket:

1. ``nsddata/experiments/nsd/nsd_expdesign.mat``: ``masterordering`` (trial -> image slot) and ``subjectim``
   (subject, slot -> NSD image), both 1-based. A subject's trials are the first ``N * T`` entries of
   ``masterordering`` mapped through its ``subjectim`` row, where ``N`` is the number of sessions it completed
   (40, 40, 32, 30, 40, 32, 40, 30 for subj01..subj08, the devkit's table) and ``T`` the trials per session,
   read from the betas files (750 in NSD; every session of a subject must have the same number).
2. Training images: the unique images of the first ``N - 3`` sessions, in increasing NSD id. Test images: those
   of the last 3 sessions never shown in a training session, minus the 1000 shared images
   (``subjectim[0, :1000]``); for the four subjects who completed all 40 sessions, a shared image stays in the
   test set when it was shown 3 times in the last 3 sessions. Also in increasing NSD id.
3. Vertices: the union of ``nsddata/freesurfer/fsaverage/label/{lh,rh}.nsdgeneral.mgz`` and the devkit's
   ``{lh,rh}.nsdgeneralRSC.mgz`` (vertex ``v`` is kept when ``int(nsdgeneral[v] + rsc[v]) != 0``, the
   devkit's test). The RSC label is not in the NSD bucket: see :func:`rsc_location`.
4. Betas: ``nsddata_betas/ppdata/subjXX/fsaverage/betas_fithrf_GLMdenoise_RR/{lh,rh}.betas_sessionNN.mgh``
   ((V, 1, 1, T) float32), each vertex z-scored within each session exactly as scikit-learn's
   ``StandardScaler`` does it (ddof 0; a vertex that is constant within a session, by StandardScaler's test,
   is divided by 1), in float64.
5. subj06 and subj08: vertices with a NaN in any trial of any session are removed (from the responses, the
   vertex list and the noise ceiling). Any other subject with a NaN (or any subject with an infinite beta)
   at a kept vertex is an error naming the file, trial and vertex.
6. Responses: the mean over repeats, in float64, then float32: training rows average the trials of the
   training sessions only (an image's trials in the last 3 sessions are not used), test rows all the trials.
7. Noise ceiling: ``{lh,rh}.ncsnr.mgh`` at the kept vertices, ``NC = ncsnr^2 / (ncsnr^2 + norm)`` with
   ``norm = (A/3 + B/2 + C) / (A + B + C)``, where A, B, C count the test images shown 3, 2 and 1 times in
   the last 3 sessions. A fraction (0..1), stored as float32.
8. Images: ``nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5`` dataset ``imgBrick`` (73000, 425, 425, 3) uint8,
   indexed by the 0-based NSD id, read one image at a time when the store is written.

On the fixture's subjects (40, 32 and 32 sessions, NaN vertices for subj06) the responses, vertex lists and
noise ceilings are byte-identical to what the devkit script writes (``tests/test_nsd_bucket.py`` runs it, when
available, with its trials-per-session constant set to the fixture's). Where this reader differs, it refuses
what the script would turn into silent NaN or a bare exception: trials per session are read from the files
(the script hard-codes 750, which every NSD session has) and must agree across sessions; a NaN at a kept
vertex of a subject other than subj06/subj08, an infinite beta, a non-finite ncsnr at a kept vertex, or a
subject without test images is an error naming the file.

ROI classes (prf-visualrois, floc-*, streams) are subject-native labels in NSD that the devkit maps to
fsaverage with ``nsdcode``; that is not done here: stores built from NSD files have no ROI variables (their
``rois`` attribute says to take ROI masks from the challenge release).

Memory: the files are read one at a time, each session in blocks of frames (:data:`BLOCK_BYTES`), keeping
only the masked vertices; the next session is read while one is computed, and the left hemisphere is
finished before the right one is read. The memory holds two sessions of masked betas in float64 (750 x
~20,000 x 8 bytes = 115 MB each in NSD) and a few temporaries of that size, plus the running sums of the
images whose repeats are not all read yet (float64; in a scratch file when over :data:`ACC_RAM_BYTES`). The
float32 responses go to scratch files (``workdir``, default ``$NEUROHARNESS_HOME/tmp``) that are deleted as
soon as they are mapped, so nothing is left behind, whatever happens. Measured at NSD's per-session size
(750 trials, 40,252 masked vertices, 40 sessions, ``tests/benchmarks/test_bench_nsd_bucket.py``): ~0.5 GB
held by the process, the scratch files' pages besides (file-backed, 1.6 GB for a subject).

Remote roots: any fsspec URL. ``s3://...`` defaults to anonymous access (``anon=True``; NSD is on AWS Open
Data), and the environment variable ``NEUROHARNESS_S3_ENDPOINT`` (e.g. ``http://127.0.0.1:5000``) points
s3fs at another endpoint (``client_kwargs={"endpoint_url": ...}``); ``storage_options`` overrides both.
Betas files are streamed with plain ranged reads (one per block of frames), never downloaded whole.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import tempfile
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuroharness import cluster
from neuroharness.errors import DataFormatError, DownloadError

DATASET = "nsd-algonauts2023"
SUBJECTS = tuple(f"subj{i:02d}" for i in range(1, 9))
#: Completed NSD sessions per subject (the devkit's table; NSD manual, "Technical notes").
SESSIONS = dict(zip(range(1, 9), (40, 40, 32, 30, 40, 32, 40, 30)))
FULL_SUBJECTS = (1, 2, 5, 7)  # completed all 40 sessions: their shared images seen 3x in the test sessions stay
NAN_SUBJECTS = (6, 8)  # the devkit removes their vertices with a NaN in any trial
TEST_SESSIONS = 3
N_SHARED = 1000
HEMIS = ("lh", "rh")

EXPDESIGN = "nsddata/experiments/nsd/nsd_expdesign.mat"
LABELS = "nsddata/freesurfer/fsaverage/label"
BETAS = "nsddata_betas/ppdata/{subject}/fsaverage/betas_fithrf_GLMdenoise_RR"
STIMULI = "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5"
RSC_NAME = "{hemi}.nsdgeneralRSC.mgz"
RSC_ENV = "NEUROHARNESS_NSD_RSC"
S3_ENDPOINT_ENV = "NEUROHARNESS_S3_ENDPOINT"
DEVKIT_RSC = ("github.com/gifale95/algonauts_2023, files code/01_challenge_data_preparation/lh.nsdgeneralRSC.mgz "
              "and rh.nsdgeneralRSC.mgz")

ROIS_ATTR = "not available from NSD files; prepare from the challenge release for ROI masks"
BLOCK_BYTES = 32 << 20  # bytes of betas read per request (a block of frames, all vertices)
ACC_RAM_BYTES = 256 << 20  # running float64 sums larger than this go to a scratch file
_MGH_HEADER_BYTES = 284  # MGH data start (nibabel.freesurfer.mghformat.DATA_OFFSET)


# -- where the files are ----------------------------------------------------------------------------------------
def default_storage_options(url: str) -> dict:
    """fsspec options used for ``url`` unless the caller gives its own: anonymous S3 (NSD is on AWS Open
    Data), at ``$NEUROHARNESS_S3_ENDPOINT`` when that is set."""
    if not str(url).startswith(("s3://", "s3a://")):
        return {}
    options: dict = {"anon": True}
    endpoint = os.environ.get(S3_ENDPOINT_ENV)
    if endpoint:
        options["client_kwargs"] = {"endpoint_url": endpoint}
    return options


def _is_url(root) -> bool:
    return isinstance(root, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", root) is not None \
        and not root.startswith("file://")


class _Root:
    """A local folder or an fsspec URL; every path below is relative to it ("a/b/c")."""

    def __init__(self, root, storage_options: dict | None = None):
        if _is_url(root):
            import fsspec

            options = {**default_storage_options(root), **(storage_options or {})}
            self.fs, self.base = fsspec.core.url_to_fs(root, **options)
            self.url = root.rstrip("/")
            self.local = None
        else:
            text = os.fspath(root)
            text = text[len("file://"):] if text.startswith("file://") else text
            self.fs = None
            self.local = Path(text).expanduser()
            self.url = str(self.local)

    @property
    def remote(self) -> bool:
        return self.fs is not None

    def where(self, rel: str) -> str:
        """The path or URL of ``rel``, for messages."""
        return f"{self.url}/{rel}" if self.remote else str(self.local / rel)

    def _full(self, rel: str) -> str:
        return f"{self.base.rstrip('/')}/{rel}" if self.remote else str(self.local / rel)

    def size(self, rel: str) -> int | None:
        """Size in bytes, or None when ``rel`` is not a file."""
        try:
            if self.remote:
                info = self.fs.info(self._full(rel))
                return None if info.get("type") == "directory" else int(info["size"])
            p = self.local / rel
            return p.stat().st_size if p.is_file() else None
        except FileNotFoundError:
            return None
        except OSError as e:
            if self.remote:
                raise DownloadError(f"{self.where(rel)}: cannot be reached ({type(e).__name__}: {e})") from None
            raise

    def open(self, rel: str, *, stream: bool = False, size: int | None = None):
        """A binary file object. ``stream``: large sequential ranged reads (no read-ahead cache); ``size``:
        the file's size when known (saves a request)."""
        if not self.remote:
            try:
                return open(self.local / rel, "rb")
            except FileNotFoundError:
                raise
            except OSError as e:  # a folder, a link loop, no permission: the callers expect a file or its absence
                raise DataFormatError(f"{self.where(rel)}: cannot be opened as a file ({type(e).__name__}: "
                                      f"{e.strerror or e})") from None
        options = {"cache_type": "none"} if stream else {"block_size": 1 << 20, "cache_type": "readahead"}
        if size is not None:
            options["size"] = size
        try:
            return self.fs.open(self._full(rel), "rb", **options)
        except FileNotFoundError:
            raise
        except OSError as e:
            raise DownloadError(f"{self.where(rel)}: cannot be opened ({type(e).__name__}: {e})") from None

    def read(self, rel: str) -> bytes:
        with self.open(rel) as f:
            return f.read()


def rsc_location(root, rsc_label=None, storage_options: dict | None = None) -> tuple[_Root, str]:
    """Where the devkit's RSC label is read: ``(root, folder relative to it)``.

    In order: ``rsc_label`` (a folder, local or URL, holding ``lh.nsdgeneralRSC.mgz`` and
    ``rh.nsdgeneralRSC.mgz``), then ``$NEUROHARNESS_NSD_RSC`` (the same), then
    ``<root>/nsddata/freesurfer/fsaverage/label/``, where the devkit tells users to copy the two files.
    """
    folder = rsc_label if rsc_label is not None else os.environ.get(RSC_ENV) or None
    if folder is None:
        return (root if isinstance(root, _Root) else _Root(root, storage_options)), LABELS
    return _Root(folder, storage_options), ""


def is_nsd_bucket(root, storage_options: dict | None = None) -> bool:
    """True when ``root`` (folder or URL) holds ``nsddata/experiments/nsd/nsd_expdesign.mat``."""
    return _Root(root, storage_options).size(EXPDESIGN) is not None


# -- the split -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    """The challenge split of one subject (all ids 0-based NSD image indices)."""

    trial_ids: np.ndarray  # (N * T,) the image of each trial of the completed sessions, in order
    n_train_trials: int  # trials of the first N - 3 sessions
    train_ids: np.ndarray  # sorted unique images of the training sessions
    test_ids: np.ndarray  # sorted test images
    repeats: dict  # {1: C, 2: B, 3: A}: test images shown that many times in the last 3 sessions

    @property
    def norm(self) -> float:
        """The devkit's noise-ceiling term ``(A/3 + B/2 + C/1) / (A + B + C)``."""
        a, b, c = self.repeats[3], self.repeats[2], self.repeats[1]
        return (a / 3 + b / 2 + c / 1) / (a + b + c)


def challenge_split(masterordering: np.ndarray, subjectim: np.ndarray, subject: int, trials: int) -> Split:
    """The devkit's training/test split of ``subject`` (1..8) with ``trials`` trials per session.

    ``masterordering`` (n,) and ``subjectim`` (8, 10000) are 0-based here (the file's values minus 1).
    """
    n_sessions = SESSIONS[subject]
    trial_ids = subjectim[subject - 1, masterordering[: n_sessions * trials]]
    n_train = (n_sessions - TEST_SESSIONS) * trials
    train_ids = np.unique(trial_ids[:n_train])
    last = trial_ids[n_train:]
    fresh = last[~np.isin(last, train_ids)]
    shared = subjectim[0, :N_SHARED]
    if subject in FULL_SUBJECTS:
        ids, counts = np.unique(fresh, return_counts=True)
        shared = shared[~np.isin(shared, ids[counts == 3])]
    test_ids = np.unique(fresh[~np.isin(fresh, shared)])
    ids, counts = np.unique(last, return_counts=True)
    shown = dict(zip(ids.tolist(), counts.tolist()))
    repeats = {r: sum(1 for i in test_ids.tolist() if shown[i] == r) for r in (1, 2, 3)}
    return Split(trial_ids, n_train, train_ids, test_ids, repeats)


# -- z-scoring -------------------------------------------------------------------------------------------------
def zscore_session(x: np.ndarray, has_nan: bool | None = None) -> np.ndarray:
    """Z-score each column of the float64 ``x`` (trials, vertices) in place; return it.

    The same floating-point operations as scikit-learn's ``StandardScaler().fit_transform`` (Chan-Golub-LeVeque
    two-pass variance, ddof 0, near-constant columns scaled by 1), so on an array of the same memory layout the
    result is bit-identical. The layout matters: numpy sums a contiguous column pairwise and a strided one
    sequentially. The devkit's array is Fortran-ordered (nibabel reads MGH data in Fortran order and the
    script transposes it), and :func:`_read_session` returns that layout. NaN entries are left out of their
    column's mean and variance and stay NaN. ``has_nan``: whether ``x`` holds a NaN, when the caller knows
    (saves a pass).
    """
    n_rows = x.shape[0]
    if has_nan is None:
        has_nan = bool(np.isnan(x).any())
    nan = np.isnan(x) if has_nan else None
    valid = x if not has_nan else np.where(nan, 0.0, x)
    total = valid.sum(axis=0)
    count = n_rows - (nan.sum(axis=0, dtype=np.float64) if has_nan else 0.0)
    mean = (0.0 + total) / count
    centred = x - total / count
    if has_nan:
        centred[nan] = 0.0
    correction = centred.sum(axis=0)
    centred **= 2
    var = (centred.sum(axis=0) - correction**2 / count) / count
    del centred
    eps = np.finfo(np.float64).eps
    constant = var <= count * eps * var + (count * mean * eps) ** 2
    scale = np.sqrt(var)
    scale[constant] = 1.0
    x -= mean
    x /= scale
    return x


# -- reading ---------------------------------------------------------------------------------------------------
def _mgh_from_bytes(raw: bytes, where: str):
    import nibabel as nib

    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return nib.MGHImage.from_bytes(raw)
    except Exception as e:  # nibabel raises many types for a damaged header
        raise DataFormatError(f"{where}: not a readable MGH/MGZ file ({type(e).__name__}: {e})") from None


def _surface_vector(root: _Root, rel: str, subject: str, what: str, n_vertices: int | None = None) -> np.ndarray:
    """A (V,) float64 per-vertex map (label or ncsnr) from an MGH/MGZ file."""
    where = root.where(rel)
    try:
        raw = root.read(rel)
    except FileNotFoundError:
        raise DataFormatError(f"{subject}: {what} {where} is missing") from None
    img = _mgh_from_bytes(raw, where)
    shape = tuple(int(d) for d in img.shape)
    if len(shape) < 1 or any(d != 1 for d in shape[1:]):
        raise DataFormatError(f"{subject}: {what} {where} has shape {shape}; expected (V, 1, 1), one value per "
                              "surface vertex")
    if n_vertices is not None and shape[0] != n_vertices:
        raise DataFormatError(f"{subject}: {what} {where} has {shape[0]} vertices; expected {n_vertices}, the "
                              "surface size of nsdgeneral.mgz (fsaverage: 163842); is it from another surface?")
    try:  # nibabel reads the data only now: a truncated file fails here, not in from_bytes
        return np.asarray(img.get_fdata(), dtype=np.float64).reshape(-1)
    except Exception as e:
        raise DataFormatError(f"{subject}: {what} {where}: the data cannot be read ({type(e).__name__}: {e}); "
                              f"expected {shape} values after the header") from None


def _design(root: _Root, subject: str, number: int) -> tuple[np.ndarray, np.ndarray]:
    """``(masterordering, subjectim)`` 0-based, checked."""
    from scipy.io import loadmat

    where = root.where(EXPDESIGN)
    try:
        raw = root.read(EXPDESIGN)
    except FileNotFoundError:
        raise DataFormatError(f"{subject}: the NSD experiment design {where} is missing") from None
    try:
        mat = loadmat(io.BytesIO(raw), variable_names=("masterordering", "subjectim"))
    except Exception as e:
        raise DataFormatError(f"{where}: not a readable MATLAB file ({type(e).__name__}: {e})") from None
    arrays = {}
    for name in ("masterordering", "subjectim"):
        if name not in mat:
            raise DataFormatError(f"{where}: variable {name!r} is missing; expected masterordering (1, 30000) and "
                                  "subjectim (8, 10000)")
        a = np.asarray(mat[name])
        if a.dtype.kind not in "iuf" or (a.dtype.kind == "f" and not np.all(np.isfinite(a) & (a == np.round(a)))):
            raise DataFormatError(f"{where}: {name} holds {a.dtype} values; expected whole numbers (1-based indices)")
        arrays[name] = a.astype(np.int64)
    mo, si = arrays["masterordering"], arrays["subjectim"]
    if mo.ndim != 2 or mo.shape[0] != 1:
        raise DataFormatError(f"{where}: masterordering has shape {mo.shape}; expected (1, 30000)")
    if si.ndim != 2:
        raise DataFormatError(f"{where}: subjectim has shape {si.shape}; expected (8, 10000)")
    if number > si.shape[0]:
        raise DataFormatError(f"{subject} is not in the NSD experiment design {where}: subjectim has "
                              f"{si.shape[0]} subject rows (subj01..subj{si.shape[0]:02d})")
    mo = mo[0]
    if mo.size and (mo.min() < 1 or mo.max() > si.shape[1]):
        bad = int(np.flatnonzero((mo < 1) | (mo > si.shape[1]))[0])
        raise DataFormatError(f"{where}: masterordering[{bad}] = {mo[bad]} is not a slot of subjectim "
                              f"(1..{si.shape[1]}, 1-based)")
    row = si[number - 1]
    if row.min() < 1:
        raise DataFormatError(f"{subject}: subjectim row {number} of {where} holds {row.min()}; expected 1-based "
                              "NSD image numbers (1..73000)")
    return mo - 1, si - 1


@dataclass
class _BetasFile:
    rel: str
    frames: int
    header: object  # nibabel MGHHeader, kept so that the data is read without parsing the header again
    size: int  # bytes

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.header.get_data_shape())) * self.header.get_data_dtype().itemsize


def _file_size(f) -> int:
    size = getattr(f, "size", None)  # fsspec files know it from the listing
    return int(size) if isinstance(size, (int, np.integer)) else os.fstat(f.fileno()).st_size


def _betas_header(root: _Root, rel: str, subject: str, n_vertices: int) -> _BetasFile:
    """Read the header of one session file and check its shape and size (no data is read)."""
    import nibabel as nib

    where = root.where(rel)
    try:
        f = root.open(rel, stream=True)
    except FileNotFoundError:
        raise DataFormatError(f"{subject}: betas file {where} is missing (every completed session is needed: "
                              f"the devkit reads sessions 1..N for {subject})") from None
    try:
        with f:
            size = _file_size(f)
            header = nib.MGHImage.header_class.from_fileobj(f)
    except (DataFormatError, DownloadError):
        raise
    except Exception as e:
        raise DataFormatError(f"{subject}: {where} is not a readable MGH file ({type(e).__name__}: {e})") from None
    shape = tuple(int(d) for d in header.get_data_shape())
    if len(shape) not in (3, 4) or shape[1:3] != (1, 1):
        raise DataFormatError(f"{subject}: {where} has shape {shape}; expected (V, 1, 1, trials)")
    if shape[0] != n_vertices:
        raise DataFormatError(f"{subject}: {where} has {shape[0]} vertices; expected {n_vertices}, the surface "
                              "size of nsdgeneral.mgz (fsaverage: 163842); is it a file of another surface "
                              "(nativesurface, fsaverage5)?")
    betas = _BetasFile(rel, shape[3] if len(shape) == 4 else 1, header, size)
    if size < _MGH_HEADER_BYTES + betas.nbytes:
        raise DataFormatError(f"{subject}: {where} is truncated: {size} bytes, the header's shape {shape} needs "
                              f"{_MGH_HEADER_BYTES + betas.nbytes}; download it again")
    return betas


def _read_session(root: _Root, betas: _BetasFile, idx: np.ndarray, n_vertices: int, progress=None) -> np.ndarray:
    """The masked betas of one session file as float64 (trials, len(idx)), read in blocks of frames.

    Fortran-ordered (each vertex's trials contiguous), the layout of the devkit's array, so that
    :func:`zscore_session` sums in the same order as the devkit's StandardScaler. Each block is one
    contiguous read of all vertices (MGH stores frame after frame), masked at once.
    """
    from nibabel.arrayproxy import ArrayProxy

    where = root.where(betas.rel)
    out = np.empty((len(idx), betas.frames), dtype=np.float64)
    step = max(1, BLOCK_BYTES // (betas.header.get_data_dtype().itemsize * n_vertices))
    try:
        with root.open(betas.rel, stream=True, size=betas.size) as f:
            proxy = ArrayProxy(f, betas.header, mmap=False)
            for t0 in range(0, betas.frames, step):
                t1 = min(betas.frames, t0 + step)
                block = np.asarray(proxy[:, 0, 0, t0:t1] if len(proxy.shape) == 4 else proxy[:, 0, 0][:, None])
                out[:, t0:t1] = block[idx]
                if progress is not None:
                    progress.update(block.nbytes)
    except (DataFormatError, DownloadError):
        raise
    except OSError as e:
        if root.remote:
            raise DownloadError(f"{where}: reading failed ({type(e).__name__}: {e})") from None
        raise DataFormatError(f"{where}: cannot be read ({type(e).__name__}: {e})") from None
    except Exception as e:
        raise DataFormatError(f"{where}: cannot be read as MGH ({type(e).__name__}: {e})") from None
    return out.T


def _scratch(shape: tuple, dtype, workdir: Path) -> np.ndarray:
    """A zeroed array backed by an anonymous file in ``workdir`` (unlinked at once where the OS allows)."""
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype=dtype)
    workdir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".nsd-bucket-", suffix=".tmp", dir=workdir)
    os.close(fd)
    mm = None
    try:
        mm = np.memmap(name, dtype=dtype, mode="w+", shape=shape)
    finally:
        try:
            os.unlink(name)  # the mapping stays valid; the space is freed when it is dropped
        except OSError:  # Windows: an open file cannot be deleted
            if mm is None:
                raise
            weakref.finalize(mm, _unlink_quietly, name)
    return mm


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


class _Accumulator:
    """Running float64 sums of the rows (images) whose trials are not all read yet, in trial order.

    A row's slot is taken at its first trial and given back at its last, when the row is divided by its count
    and written as float32: the same sum, in the same order, and division as ``np.mean`` over the trials.
    """

    def __init__(self, row_of_trial: np.ndarray, n_rows: int, width: int, out: np.ndarray, workdir: Path):
        used = np.flatnonzero(row_of_trial >= 0)
        rows = row_of_trial[used]
        self.count = np.bincount(rows, minlength=n_rows)
        self.last = np.full(n_rows, -1, dtype=np.int64)
        self.last[rows] = used  # increasing trial order: the last assignment is the last trial
        first = np.full(n_rows, -1, dtype=np.int64)
        first[rows[::-1]] = used[::-1]
        events = np.zeros(len(row_of_trial) + 1, dtype=np.int64)
        ok = self.count > 0
        np.add.at(events, first[ok], 1)
        np.add.at(events, self.last[ok] + 1, -1)
        n_slots = int(np.cumsum(events).max()) if ok.any() else 0
        if n_slots * width * 8 > ACC_RAM_BYTES:
            self.sums = _scratch((n_slots, width), np.float64, workdir)
        else:
            self.sums = np.empty((n_slots, width), dtype=np.float64)
        self.free = list(range(n_slots - 1, -1, -1))
        self.slot = np.full(n_rows, -1, dtype=np.int64)
        self.seen = np.zeros(n_rows, dtype=np.int64)
        self.row_of_trial = row_of_trial
        self.out = out
        self.n_slots = n_slots

    def add(self, t0: int, z: np.ndarray) -> None:
        for j in range(z.shape[0]):
            row = int(self.row_of_trial[t0 + j])
            if row < 0:
                continue
            if self.seen[row] == 0:
                slot = self.free.pop()
                self.slot[row] = slot
                self.sums[slot] = z[j]
            else:
                slot = self.slot[row]
                self.sums[slot] += z[j]
            self.seen[row] += 1
            if t0 + j == self.last[row]:
                self.out[row] = (self.sums[slot] / self.count[row]).astype(np.float32)
                self.free.append(slot)


# -- images ----------------------------------------------------------------------------------------------------
IMAGE_BATCH = 64  # images fetched together (concurrent ranged reads) from a remote root


def _image_offsets(ds) -> np.ndarray | None:
    """Byte offset of each image of the uncompressed ``imgBrick`` (contiguous, or one chunk per image), or None
    (compressed or otherwise chunked: read through h5py). -1: a chunk never written (reads as the fill value)."""
    n = ds.shape[0]
    if ds.compression is not None or ds.dtype != np.uint8 or ds.fillvalue != 0:
        return None
    size = int(np.prod(ds.shape[1:]))
    if ds.chunks is None:
        start = ds.id.get_offset()  # None: storage never allocated
        return None if start is None else start + size * np.arange(n, dtype=np.int64)
    if tuple(ds.chunks) != (1, *ds.shape[1:]) or ds.id.get_create_plist().get_nfilters():
        return None
    offsets = np.full(n, -1, dtype=np.int64)

    def record(info):
        offsets[info.chunk_offset[0]] = info.byte_offset

    if hasattr(ds.id, "chunk_iter"):  # one walk of the chunk index (HDF5 >= 1.12.3)
        ds.id.chunk_iter(record)
    else:
        for k in range(ds.id.get_num_chunks()):
            record(ds.id.get_chunk_info(k))
    return offsets


class _Images:
    """``image(i)``: row ``i``'s image (y, x, 3) uint8 from ``imgBrick``, read on demand.

    Local files are read through h5py (the file stays open). From a remote root, when ``imgBrick`` is
    uncompressed (NSD's is), the images' byte ranges are fetched directly, :data:`IMAGE_BATCH` rows at a
    time with concurrent requests (one request per image through h5py would take ~10,000 round trips per
    subject); otherwise through h5py over an fsspec file object.
    """

    def __init__(self, root: _Root, nsd_id: np.ndarray, shape: tuple[int, int]):
        self.root, self.nsd_id, self.shape = root, nsd_id, (*shape, 3)
        self._lock = threading.Lock()
        self._handles = None
        self._offsets = None
        self._batch: dict[int, np.ndarray] = {}

    def _open(self):
        import h5py

        f = self.root.open(STIMULI)
        try:
            h5 = h5py.File(f, "r")
        except Exception:
            f.close()
            raise
        self._handles = (f, h5, h5["imgBrick"])
        weakref.finalize(self, _close_all, (h5, f))
        if self.root.remote:
            self._offsets = _image_offsets(self._handles[2])

    def _fetch_batch(self, i: int) -> None:
        rows = range(i, min(len(self.nsd_id), i + IMAGE_BATCH))
        starts = [int(self._offsets[self.nsd_id[r]]) for r in rows]
        size = int(np.prod(self.shape))
        wanted = [(r, s) for r, s in zip(rows, starts) if s >= 0]
        path = self.root._full(STIMULI)
        try:
            blobs = self.root.fs.cat_ranges([path] * len(wanted), [s for _, s in wanted],
                                            [s + size for _, s in wanted]) if wanted else []
        except OSError as e:
            where = self.root.where(STIMULI)
            raise DownloadError(f"{where}: reading images failed ({type(e).__name__}: {e})") from None
        self._batch = {r: np.zeros(self.shape, dtype=np.uint8) for r in rows}
        for (r, _), blob in zip(wanted, blobs):
            if isinstance(blob, Exception) or len(blob) != size:
                raise DownloadError(f"{self.root.where(STIMULI)}: imgBrick[{int(self.nsd_id[r])}] read "
                                    f"{blob if isinstance(blob, Exception) else f'{len(blob)} bytes'}; expected {size}")
            self._batch[r] = np.frombuffer(blob, dtype=np.uint8).reshape(self.shape)

    def __call__(self, i: int) -> np.ndarray:
        i = int(i)
        with self._lock:
            if self._handles is None:
                self._open()
            if self._offsets is not None:
                if i not in self._batch:
                    self._fetch_batch(i)
                return self._batch[i]
            try:
                return np.asarray(self._handles[2][int(self.nsd_id[i])], dtype=np.uint8)
            except OSError as e:
                raise DataFormatError(f"{self.root.where(STIMULI)}: imgBrick[{int(self.nsd_id[i])}] cannot be read "
                                      f"({type(e).__name__}: {e})") from None

    def close(self) -> None:
        with self._lock:
            if self._handles is not None:
                _close_all(self._handles[1::-1])
                self._handles, self._batch = None, {}


def _close_all(handles) -> None:
    for h in handles:
        with contextlib.suppress(Exception):
            h.close()


def _check_stimuli(root: _Root, subject: str, ids: np.ndarray) -> tuple[int, int]:
    """Check ``imgBrick`` (n, y, x, 3) uint8 holds every id; return the image shape (y, x)."""
    import h5py

    where = root.where(STIMULI)
    try:
        f = root.open(STIMULI)
    except FileNotFoundError:
        raise DataFormatError(f"{subject}: the NSD stimuli {where} are missing") from None
    try:
        with f, h5py.File(f, "r") as h5:
            if "imgBrick" not in h5:
                raise DataFormatError(f"{where}: dataset 'imgBrick' is missing (found {sorted(h5)})")
            ds = h5["imgBrick"]
            shape, dtype = tuple(ds.shape), ds.dtype
    except (DataFormatError, DownloadError):
        raise
    except Exception as e:
        raise DataFormatError(f"{where}: not a readable HDF5 file ({type(e).__name__}: {e})") from None
    if len(shape) != 4 or shape[3] != 3 or dtype != np.uint8:
        raise DataFormatError(f"{where}: imgBrick is {dtype} {shape}; expected uint8 (73000, 425, 425, 3)")
    from .store import MAX_IMAGE_EDGE

    if not (0 < shape[1] <= MAX_IMAGE_EDGE and 0 < shape[2] <= MAX_IMAGE_EDGE):
        raise DataFormatError(f"{where}: imgBrick holds images of {shape[1]} x {shape[2]} pixels; expected 1.."
                              f"{MAX_IMAGE_EDGE} per side (NSD's are 425 x 425)")
    if ids.size and int(ids.max()) >= shape[0]:
        raise DataFormatError(f"{subject}: NSD image {int(ids.max())} (0-based) is beyond imgBrick's "
                              f"{shape[0]} images in {where}")
    return int(shape[1]), int(shape[2])


# -- the subject -----------------------------------------------------------------------------------------------
def _subject_number(subject) -> int:
    m = re.fullmatch(r"subj(\d\d)", str(subject))
    if m is None or int(m.group(1)) == 0:
        raise DataFormatError(f"subject {subject!r}: expected a name subj01..subj08")
    return int(m.group(1))


def _map_threads(fn, items, remote: bool):
    if not remote or len(items) < 2:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(fn, items))


@dataclass
class _Plan:
    """Everything checked before the betas are read."""

    subject: str
    number: int
    src: _Root
    n_sessions: int
    trials: int
    split: Split
    nsd_id: np.ndarray
    files: dict  # hemi -> [_BetasFile] per session
    n_vertices: dict  # hemi -> surface size
    mask_idx: dict  # hemi -> fsaverage indices of nsdgeneral + RSC
    ncsnr: dict  # hemi -> (V,) float64
    image_shape: tuple

    @property
    def betas_dir(self) -> str:
        return BETAS.format(subject=self.subject)


def _plan(root, subject: str, rsc_label=None, storage_options: dict | None = None) -> _Plan:
    number = _subject_number(subject)
    src = root if isinstance(root, _Root) else _Root(root, storage_options)
    betas_dir = BETAS.format(subject=subject)
    masterordering, subjectim = _design(src, subject, number)
    if number not in SESSIONS:
        raise DataFormatError(f"{subject}: the devkit's table of completed sessions covers subj01..subj08 only, so "
                              f"{subject} of {src.where(EXPDESIGN)} cannot be split like the challenge")
    n_sessions = SESSIONS[number]

    # vertices: nsdgeneral + the devkit's RSC label
    rsc_root, rsc_dir = rsc_location(src, rsc_label, storage_options)
    n_vertices, mask_idx = {}, {}
    for hemi in HEMIS:
        general = _surface_vector(src, f"{LABELS}/{hemi}.nsdgeneral.mgz", subject, "label")
        rsc_rel = f"{rsc_dir}/{RSC_NAME.format(hemi=hemi)}".lstrip("/")
        if rsc_root.size(rsc_rel) is None:
            raise DataFormatError(
                f"{subject}: the RSC label {rsc_root.where(rsc_rel)} is missing. It is not part of the NSD files: "
                f"it ships with the Algonauts 2023 devkit ({DEVKIT_RSC}). Copy both files to "
                f"{src.where(LABELS)}/ as the devkit instructs, or name their folder in ${RSC_ENV} "
                "(in Python also subject_from_nsd(..., rsc_label=FOLDER)); a folder or URL works for both")
        rsc = _surface_vector(rsc_root, rsc_rel, subject, "RSC label", len(general))
        labels = ((general, src, f"{LABELS}/{hemi}.nsdgeneral.mgz"), (rsc, rsc_root, rsc_rel))
        for values, lab_root, lab_rel in labels:
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:  # int(NaN) selects a vertex silently in numpy (and raises in the devkit's loop)
                raise DataFormatError(f"{subject}: label {lab_root.where(lab_rel)} holds {values[bad[0]]} at vertex "
                                      f"{int(bad[0])}; expected finite label values (0: outside, nonzero: inside)")
        n_vertices[hemi] = len(general)
        # the devkit's int(nsdgeneral[v] + rsc[v]) != 0, without numpy's int cast (undefined beyond int64)
        mask_idx[hemi] = np.flatnonzero(np.trunc(general + rsc) != 0)
        if mask_idx[hemi].size == 0:
            raise DataFormatError(f"{subject}: {src.where(f'{LABELS}/{hemi}.nsdgeneral.mgz')} and the RSC label "
                                  "select no vertex")

    # every session file, checked from its header before any data is read
    files = {}
    for hemi in HEMIS:
        rels = [f"{betas_dir}/{hemi}.betas_session{s:02d}.mgh" for s in range(1, n_sessions + 1)]
        files[hemi] = _map_threads(lambda rel, h=hemi: _betas_header(src, rel, subject, n_vertices[h]), rels,
                                   src.remote)
    trials = files["lh"][0].frames
    for hemi in HEMIS:
        for f in files[hemi]:
            if f.frames != trials:
                raise DataFormatError(f"{subject}: {src.where(f.rel)} has {f.frames} trials; "
                                      f"{src.where(files['lh'][0].rel)} has {trials}. Every session of a subject "
                                      "must have the same number of trials (750 in NSD)")
    if n_sessions * trials > len(masterordering):
        raise DataFormatError(f"{subject}: {n_sessions} sessions x {trials} trials = {n_sessions * trials} trials, "
                              f"but masterordering in {src.where(EXPDESIGN)} has {len(masterordering)}")
    ncsnr = {hemi: _surface_vector(src, f"{betas_dir}/{hemi}.ncsnr.mgh", subject, "ncsnr file", n_vertices[hemi])
             for hemi in HEMIS}

    split = challenge_split(masterordering, subjectim, number, trials)
    if split.test_ids.size == 0:
        raise DataFormatError(f"{subject}: no test image: every image of sessions {n_sessions - 2}..{n_sessions} "
                              f"was shown in a training session or is shared ({src.where(EXPDESIGN)})")
    nsd_id = np.concatenate([split.train_ids, split.test_ids]).astype(np.int32)
    image_shape = _check_stimuli(src, subject, nsd_id)
    return _Plan(subject, number, src, n_sessions, trials, split, nsd_id, files, n_vertices, mask_idx, ncsnr,
                 image_shape)


def check_nsd_subject(root, subject: str, rsc_label=None, *, storage_options: dict | None = None) -> dict:
    """Check ``subject``'s NSD files without reading any betas (design, labels, every session file's header and
    size, ncsnr, images); return a summary (``n_train``, ``n_test``, ``n_sessions``, ``trials_per_session``,
    ``betas_bytes``). Raises what :func:`subject_from_nsd` would raise before its long part."""
    plan = _plan(root, subject, rsc_label, storage_options)
    return {"subject": subject, "n_train": len(plan.split.train_ids), "n_test": len(plan.split.test_ids),
            "n_sessions": plan.n_sessions, "trials_per_session": plan.trials,
            "betas_bytes": sum(b.nbytes for h in HEMIS for b in plan.files[h])}


def subjects_in(root, storage_options: dict | None = None) -> list[str]:
    """The subjects whose betas are under ``root`` (those with ``lh.betas_session01.mgh``), sorted."""
    src = _Root(root, storage_options)
    found = [s for s in SUBJECTS if src.size(f"{BETAS.format(subject=s)}/lh.betas_session01.mgh") is not None]
    if not found:
        raise DataFormatError(f"{src.url}: holds {EXPDESIGN} but no subject's betas "
                              f"({BETAS.format(subject='subjXX')}/lh.betas_session01.mgh ...); download them too")
    return found


def raw_files(root, subjects, rsc_label=None) -> dict[str, Path]:
    """``{name: local path}`` of the small files that decide a rebuild (design, labels, RSC labels, each
    subject's ncsnr), for the store's ``raw_sha256``; the betas and the image file (tens of GB) are left out.
    Files that are missing are left out too (the rebuild reports them). Empty for a URL."""
    if _is_url(root) or (rsc_label is not None and _is_url(rsc_label)):
        return {}
    src = _Root(root)
    rsc_root, rsc_dir = rsc_location(src, rsc_label)
    if rsc_root.remote:
        return {}
    candidates = {"nsd_expdesign.mat": src.local / EXPDESIGN}
    for hemi in HEMIS:
        candidates[f"{hemi}.nsdgeneral.mgz"] = src.local / LABELS / f"{hemi}.nsdgeneral.mgz"
        candidates[RSC_NAME.format(hemi=hemi)] = rsc_root.local / rsc_dir / RSC_NAME.format(hemi=hemi)
    for s in subjects:
        for hemi in HEMIS:
            candidates[f"{s}/{hemi}.ncsnr.mgh"] = src.local / BETAS.format(subject=s) / f"{hemi}.ncsnr.mgh"
    return {k: p for k, p in candidates.items() if p.is_file()}


def subject_from_nsd(root, subject: str, rsc_label=None, *, storage_options: dict | None = None,
                     workdir=None, scheduler: str | None = None):
    """Rebuild ``subject``'s challenge data from the NSD files under ``root``; return a ``SubjectArrays``.

    ``root``: a folder or an fsspec URL with the NSD bucket layout (``s3://natural-scenes-dataset``: anonymous
    access; ``$NEUROHARNESS_S3_ENDPOINT`` or ``storage_options`` for another endpoint or credentials).
    ``rsc_label``: a folder holding the devkit's ``{lh,rh}.nsdgeneralRSC.mgz`` (see :func:`rsc_location`).
    ``workdir``: where the float32 responses are kept until written (anonymous scratch files; default
    ``$NEUROHARNESS_HOME/tmp``). ``scheduler``: a dask.distributed scheduler address; each session file is
    then read and z-scored by one task on that cluster (the results are the same).

    Every input is checked before any betas are read (:func:`check_nsd_subject`); errors are
    :class:`DataFormatError` (or :class:`DownloadError` for an unreachable URL) naming the subject and the
    file. The returned responses are read-only arrays over scratch files; images are read when ``image(i)``
    is called. See the module docstring for the recipe.
    """
    from neuroharness.progress import progress_bar, status

    from .store import SubjectArrays

    plan = _plan(root, subject, rsc_label, storage_options)
    if workdir is None:
        from ..cache import home

        workdir = home() / "tmp"
    workdir = Path(workdir)
    split, src, trials = plan.split, plan.src, plan.trials
    n_train, n_rows = len(split.train_ids), len(plan.nsd_id)

    # each trial's output row: its training row (training sessions), its test row, or -1 (not used)
    row_of_trial = np.full(len(split.trial_ids), -1, dtype=np.int64)
    row_of_trial[: split.n_train_trials] = np.searchsorted(split.train_ids, split.trial_ids[: split.n_train_trials])
    last = split.trial_ids[split.n_train_trials:]
    pos = np.minimum(np.searchsorted(split.test_ids, last), len(split.test_ids) - 1)
    in_test = split.test_ids[pos] == last
    row_of_trial[split.n_train_trials:][in_test] = n_train + pos[in_test]

    status(f"[{DATASET}] {subject}: rebuilding {n_train} training and {len(split.test_ids)} test images from "
           f"{plan.n_sessions} sessions x {trials} trials ({src.url})")
    fmri, fsaverage_index, noise_ceiling, removed = {}, {}, {}, {}
    total = sum(b.nbytes for h in HEMIS for b in plan.files[h])
    with progress_bar(total=total, desc=f"[{DATASET}] {subject} betas", unit="B", unit_scale=True) as bar:
        for hemi in HEMIS:
            out, keep = _hemisphere(plan, hemi, row_of_trial, n_rows, workdir, bar, scheduler)
            idx = plan.mask_idx[hemi]
            removed[hemi] = int((~keep).sum())
            fsaverage_index[hemi] = idx[keep].astype(np.int32)
            snr = plan.ncsnr[hemi][idx[keep]]
            if not np.all(np.isfinite(snr)):
                col = int(np.flatnonzero(~np.isfinite(snr))[0])
                raise DataFormatError(f"{subject}: {src.where(f'{plan.betas_dir}/{hemi}.ncsnr.mgh')} holds "
                                      f"{snr[col]} at fsaverage vertex {int(fsaverage_index[hemi][col])}, a vertex "
                                      "whose betas are all finite")
            noise_ceiling[hemi] = (snr**2 / (snr**2 + split.norm)).astype(np.float32)
            fmri[hemi] = out

    split_names = np.array(["train"] * n_train + ["test"] * len(split.test_ids))
    split_row = np.concatenate([np.arange(n_train), np.arange(len(split.test_ids))]).astype(np.int32)
    attrs = {
        "subject": subject,
        "source_kind": "NSD files",
        "test_fmri": f"rebuilt from NSD sessions {plan.n_sessions - 2}..{plan.n_sessions} with the devkit recipe",
        "n_sessions": int(plan.n_sessions),
        "trials_per_session": int(trials),
        "vertices_lh": int(len(fsaverage_index["lh"])),
        "vertices_rh": int(len(fsaverage_index["rh"])),
        "nan_vertices_removed_lh": removed["lh"],
        "nan_vertices_removed_rh": removed["rh"],
        "noise_ceiling_norm": float(split.norm),
        "test_repeats": f"{split.repeats[3]} x3, {split.repeats[2]} x2, {split.repeats[1]} x1",
        "betas": "betas_fithrf_GLMdenoise_RR on fsaverage, z-scored per vertex within each session",
        "rois": ROIS_ATTR,
    }
    return SubjectArrays(subject=subject, nsd_id=plan.nsd_id, split=split_names, split_row=split_row, fmri=fmri,
                         fsaverage_index=fsaverage_index, noise_ceiling=noise_ceiling, rois={},
                         image=_Images(src, plan.nsd_id, plan.image_shape), image_shape=plan.image_shape,
                         attrs=attrs)


def _checked_zscore(x: np.ndarray, src: _Root, betas: _BetasFile, idx: np.ndarray, number: int,
                    subject: str) -> tuple[np.ndarray, bool]:
    """``(z-scored betas, whether any is NaN)`` of one session's masked betas ``x`` (trials, vertices) after
    refusing what the devkit would not accept (infinite values; NaN outside subj06/subj08)."""
    finite = np.isfinite(x)
    has_nan = not finite.all()
    if has_nan:
        trial, col = (int(a[0]) for a in np.nonzero(~finite))
        value = x[trial, col]
        if np.isinf(value) or number not in NAN_SUBJECTS:
            raise DataFormatError(
                f"{subject}: {src.where(betas.rel)} holds {value} at trial {trial} (0-based) of fsaverage "
                f"vertex {int(idx[col])}, inside nsdgeneral; the devkit removes NaN vertices only for "
                "subj06 and subj08 (and no infinite values anywhere), so this file looks damaged")
        if np.isinf(x).any():
            trial, col = (int(a[0]) for a in np.nonzero(np.isinf(x)))
            raise DataFormatError(f"{subject}: {src.where(betas.rel)} holds {x[trial, col]} at trial {trial} "
                                  f"(0-based) of fsaverage vertex {int(idx[col])}, inside nsdgeneral; the "
                                  "devkit accepts no infinite beta, so this file looks damaged")
    del finite
    with np.errstate(invalid="ignore", divide="ignore"):  # a vertex NaN in every trial: removed by the caller
        return zscore_session(x, has_nan), has_nan


def session_zscores(src: _Root, betas: _BetasFile, idx: np.ndarray, n_vertices: int, number: int,
                    subject: str) -> tuple[np.ndarray, bool]:
    """Read one session file's masked betas and z-score them (:func:`_checked_zscore`): one cluster task of
    ``datasets prepare nsd-algonauts2023 --dask-scheduler`` from NSD files (float64, trials x vertices)."""
    return _checked_zscore(_read_session(src, betas, idx, n_vertices), src, betas, idx, number, subject)


def _hemisphere(plan: _Plan, hemi: str, row_of_trial: np.ndarray, n_rows: int, workdir: Path, bar,
                scheduler: str | None = None):
    """``(responses (n_rows, kept) float32, read-only; keep (masked,) bool)`` of one hemisphere; with a dask
    ``scheduler`` the sessions are read and z-scored on the cluster."""
    idx, src, subject = plan.mask_idx[hemi], plan.src, plan.subject
    out = _scratch((n_rows, len(idx)), np.float32, workdir)
    acc = _Accumulator(row_of_trial, n_rows, len(idx), out, workdir)
    nan_any = np.zeros(len(idx), dtype=bool)
    files = plan.files[hemi]
    if scheduler is None:
        # the next session is read while this one is computed (numpy and file reads release the GIL)
        def sessions():
            with ThreadPoolExecutor(max_workers=1) as pool:
                pending = pool.submit(_read_session, src, files[0], idx, plan.n_vertices[hemi], bar)
                for s, betas in enumerate(files):
                    x = pending.result()
                    if s + 1 < len(files):
                        pending = pool.submit(_read_session, src, files[s + 1], idx, plan.n_vertices[hemi], bar)
                    yield _checked_zscore(x, src, betas, idx, plan.number, subject)
                    del x
    else:
        # one cluster task per session file (read and z-score: the heavy part); the sums are made here in
        # session order, so the responses are bit-identical to the in-process ones
        def sessions():
            parts = [(src, betas, idx, plan.n_vertices[hemi], plan.number, subject) for betas in files]
            shared = [] if src.remote else [src.local]
            for betas, result in zip(files, cluster.map_ordered(session_zscores, parts, scheduler, shared=shared,
                                                                 purpose="the NSD files")):
                bar.update(betas.nbytes)
                yield result

    for s, (z, has_nan) in enumerate(sessions()):
        if has_nan:
            nan_any |= np.isnan(z).any(axis=0)
        acc.add(s * plan.trials, np.ascontiguousarray(z))  # rows contiguous for the per-trial sums
        del z
    del acc
    keep = ~nan_any
    if not keep.all():
        kept = _scratch((n_rows, int(keep.sum())), np.float32, workdir)
        step = max(1, (64 << 20) // max(1, 4 * len(idx)))
        for r0 in range(0, n_rows, step):
            kept[r0:r0 + step] = out[r0:r0 + step][:, keep]
        out = kept
    if isinstance(out, np.memmap):
        out.flush()
        out = out.view(np.ndarray)  # keeps the mapping alive; a plain array for callers
    out.flags.writeable = False
    return out, keep
