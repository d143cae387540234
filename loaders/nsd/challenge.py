"""Source A: one subject of the Algonauts 2023 challenge release as :class:`~.store.SubjectArrays`.

Layout of ``subjXX/`` (see the devkit's ``challenge_data_preparation.py``)::

    training_split/training_fmri/{lh,rh}_training_fmri.npy   float32 (n_train, n_h), memory-mapped
    training_split/training_images/train-NNNN_nsd-IIIII.png  RGB PNG; NNNN 1-based fMRI row, IIIII 0-based NSD id
    test_split/test_images/test-NNNN_nsd-IIIII.png
    test_split/test_fmri/{lh,rh}_test_fmri.npy               optional (organisers' private files, or rebuilt)
    test_split/noise_ceiling/{lh,rh}_noise_ceiling.npy       optional, fraction 0-1
    roi_masks/{lh,rh}.all-vertices_fsaverage_space.npy       fsaverage-length mask; its nonzero indices are the vertices
    roi_masks/{lh,rh}.<class>_challenge_space.npy            ROI labels in challenge vertex order
    roi_masks/mapping_<class>.npy                            np.save'd dict {label: ROI name}

The ``mapping_*.npy`` files are pickles; :func:`read_mapping` reads them with
an unpickler that knows only the numpy names of a pickled object array and
builds plain Python stand-ins for them, so the result can be nothing but a
dict of ints to strings. Everything is checked before a byte is written: names,
counts, shapes, dtypes; fMRI values (any NaN or inf is an error naming the
file, row and column) and images are checked as they are streamed.
"""
from __future__ import annotations

import io as _io
import pickle
import re
from pathlib import Path

import numpy as np

from neuroharness.errors import DataFormatError

from .store import HEMISPHERES, MAX_IMAGE_EDGE, N_NSD_IMAGES, ROI_CLASSES, RowStack, SubjectArrays, check_roi_mapping

# ASCII digits only: \d also matches other scripts' digits, which int() reads as numbers
IMAGE_NAME = re.compile(r"(train|test)-(\d{4,})_nsd-(\d{5})\.png", re.ASCII)
MAX_MAPPING_BYTES = 1 << 20  # a real mapping file is a few hundred bytes
TEST_FMRI_NOTE = "from the release (test_split/test_fmri)"


def subject_from_challenge(folder, subject: str) -> SubjectArrays:
    """Read and check the layout of one subject folder of the challenge release (lazy: memmaps, image paths).

    Raises :class:`DataFormatError` naming the subject and the file for a
    missing hemisphere file, fMRI rows that do not match the images, malformed
    or duplicated image names, vertex counts that differ between files, and
    unreadable or unsafe files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFormatError(f"{subject}: {folder} is not a folder; expected the subject folder of the challenge "
                              "release (training_split/, test_split/, roi_masks/)")
    train_fmri = {h: _npy(subject, folder / "training_split" / "training_fmri" / f"{h}_training_fmri.npy",
                          ndim=2, kind="f", mmap=True) for h in HEMISPHERES}
    train = image_list(subject, folder / "training_split" / "training_images", "train")
    test = image_list(subject, folder / "test_split" / "test_images", "test")
    if not train:
        raise DataFormatError(f"{subject}: {folder / 'training_split' / 'training_images'} holds no "
                              "train-NNNN_nsd-IIIII.png images; expected one per row of the training fMRI")
    shared = {nsd: path for path, nsd in train}
    for path, nsd in test:
        if nsd in shared:
            raise DataFormatError(f"{subject}: {path}: duplicated NSD image {nsd:05d}, also in {shared[nsd].name}; "
                                  "expected the training and test images to be distinct")
    sizes = {}
    for h in HEMISPHERES:
        path, a = train_fmri[h]
        _float32(subject, path, a)
        if a.shape[0] != len(train):
            raise DataFormatError(f"{subject}: {path} has {a.shape[0]} rows but training_images holds {len(train)} "
                                  "images; expected one fMRI row per training image (train-NNNN is row NNNN-1)")
        sizes[h] = a.shape[1]

    fsaverage_index = {}
    masks = folder / "roi_masks"
    for h in HEMISPHERES:
        path, mask = _npy(subject, masks / f"{h}.all-vertices_fsaverage_space.npy", ndim=1, kind="iub")
        idx = np.flatnonzero(mask)
        if len(idx) != sizes[h]:
            raise DataFormatError(f"{subject}: {path} marks {len(idx)} vertices but {train_fmri[h][0]} has {sizes[h]} "
                                  "columns; expected one column per nonzero vertex of the mask")
        fsaverage_index[h] = idx

    test_dir = folder / "test_split" / "test_fmri"
    test_fmri = _optional_pair(subject, test_dir, "{h}_test_fmri.npy", ndim=2, kind="f", mmap=True)
    if test_fmri is not None:
        for h in HEMISPHERES:
            path, a = test_fmri[h]
            _float32(subject, path, a)
            if a.shape != (len(test), sizes[h]):
                raise DataFormatError(f"{subject}: {path} has shape {a.shape}, expected ({len(test)}, {sizes[h]}): "
                                      "one row per test image, one column per vertex of the training fMRI")
    nc = _optional_pair(subject, folder / "test_split" / "noise_ceiling", "{h}_noise_ceiling.npy", ndim=1, kind="f")
    if nc is not None:
        for h in HEMISPHERES:
            path, a = nc[h]
            if len(a) != sizes[h]:
                raise DataFormatError(f"{subject}: {path} has {len(a)} vertices but {train_fmri[h][0]} has {sizes[h]}; "
                                      "expected equal")
            bad = np.flatnonzero(~np.isfinite(a) | (a < 0) | (a > 1))
            if bad.size:
                raise DataFormatError(f"{subject}: {path} vertex {bad[0]} is {a[bad[0]]}, expected a finite noise "
                                      "ceiling fraction in 0..1 (the devkit's NC, not a percentage)")

    rois = {}
    for cls in ROI_CLASSES:
        paths = {h: masks / f"{h}.{cls}_challenge_space.npy" for h in HEMISPHERES}
        mapping_path = masks / f"mapping_{cls}.npy"
        present = [p for p in (*paths.values(), mapping_path) if p.exists()]
        if not present:
            continue
        labels = {}
        for h, path in paths.items():
            if not path.exists():
                raise DataFormatError(f"{subject}: {path} is missing, but {present[0].name} is there; expected both "
                                      f"hemispheres' {cls} masks and mapping_{cls}.npy")
            _, lab = _npy(subject, path, ndim=1, kind="iu")
            if len(lab) != sizes[h]:
                raise DataFormatError(f"{subject}: {path} has {len(lab)} vertices but {train_fmri[h][0]} has "
                                      f"{sizes[h]}; expected equal (challenge vertex order)")
            labels[h] = lab
        if not mapping_path.exists():
            raise DataFormatError(f"{subject}: {mapping_path} is missing, but the {cls} masks are there; expected the "
                                  "dict of ROI label -> name beside them")
        mapping = read_mapping(mapping_path, subject)
        try:  # the store's rules (int16 labels, names without spaces), checked here so the error names the file
            mapping = check_roi_mapping(subject, cls, mapping)
        except DataFormatError as e:
            msg = str(e).removeprefix(f"{subject}: ")
            raise DataFormatError(f"{subject}: {mapping_path}: {msg}") from None
        for h, lab in labels.items():
            bad = np.flatnonzero((lab != 0) & ~np.isin(lab, list(mapping)))
            if bad.size:
                raise DataFormatError(f"{subject}: {paths[h]} vertex {bad[0]} has label {lab[bad[0]]}, which "
                                      f"{mapping_path.name} does not name; expected 0 or one of {sorted(mapping)}")
        rois[cls] = (labels, mapping)

    image_shape = _first_image_shape(subject, train[0])
    paths = train + test
    n_train, n_test = len(train), len(test)
    fmri = {}
    for h in HEMISPHERES:
        parts = [_FiniteRows(subject, *train_fmri[h])]
        parts.append(_FiniteRows(subject, *test_fmri[h]) if test_fmri is not None else n_test)
        fmri[h] = RowStack(parts, sizes[h])

    def image(i: int) -> np.ndarray:
        return read_png(paths[i][0], subject, image_shape)

    return SubjectArrays(
        subject=subject,
        nsd_id=np.array([p[1] for p in paths], dtype=np.int32),
        split=np.array(["train"] * n_train + ["test"] * n_test),
        split_row=np.concatenate([np.arange(n_train), np.arange(n_test)]).astype(np.int32),
        fmri=fmri,
        fsaverage_index=fsaverage_index,
        noise_ceiling=None if nc is None else {h: nc[h][1] for h in HEMISPHERES},
        rois=rois,
        image=image,
        image_shape=image_shape,
        attrs={"source_kind": "challenge release", "test_fmri": "none" if test_fmri is None else TEST_FMRI_NOTE},
    )


# -- image names and pixels --------------------------------------------------------------------------
def image_list(subject: str, folder: Path, split: str) -> list[tuple[Path, int]]:
    """``[(path, nsd_id), ...]`` of ``folder``'s ``<split>-NNNN_nsd-IIIII.png`` images in row order.

    NNNN must run 1..n without gaps or repeats (row NNNN-1 of the split's fMRI),
    IIIII is the 0-based NSD image index (< 73,000), each once. Hidden files are ignored.
    """
    if not folder.is_dir():
        raise DataFormatError(f"{subject}: {folder} is missing; expected the {split} images "
                              f"{split}-NNNN_nsd-IIIII.png of the challenge release")
    rows: dict[int, tuple[Path, int]] = {}
    ids: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        m = IMAGE_NAME.fullmatch(path.name)
        if m is None or m.group(1) != split or f"{int(m.group(2)):04d}" != m.group(2) or not path.is_file():
            raise DataFormatError(f"{subject}: {path}: malformed image name {path.name!r}; expected files named "
                                  f"{split}-NNNN_nsd-IIIII.png (NNNN: 1-based row, at least 4 digits without extra "
                                  "leading zeros; IIIII: 0-based NSD image index, 5 digits)")
        row, nsd = int(m.group(2)), int(m.group(3))
        if row in rows:
            raise DataFormatError(f"{subject}: {path}: duplicated image number {m.group(2)}, also in "
                                  f"{rows[row][0].name}; expected each {split} row once")
        if nsd >= N_NSD_IMAGES:
            raise DataFormatError(f"{subject}: {path}: NSD image index {nsd} is out of range; expected "
                                  f"0..{N_NSD_IMAGES - 1}")
        if nsd in ids:
            raise DataFormatError(f"{subject}: {path}: duplicated NSD image {m.group(3)}, also in {ids[nsd].name}; "
                                  "expected each image once")
        rows[row], ids[nsd] = (path, nsd), path
    missing = sorted(set(range(1, len(rows) + 1)) - set(rows))
    if missing:
        extra = sorted(set(rows) - set(range(1, len(rows) + 1)))
        raise DataFormatError(f"{subject}: {folder}: {split} image number {missing[0]:04d} is missing (found "
                              f"{rows[extra[0]][0].name} instead); expected numbers 1..{len(rows)} without gaps")
    return [rows[r] for r in range(1, len(rows) + 1)]


def _first_image_shape(subject: str, entry: tuple[Path, int]) -> tuple[int, int]:
    from PIL import Image

    path = entry[0]
    try:
        with Image.open(path) as im:
            x, y = im.size
    except Exception as e:  # noqa: BLE001 -- Pillow raises many types for damaged files
        raise DataFormatError(f"{subject}: {path}: not a readable PNG image ({type(e).__name__}: {e})") from None
    if not (0 < x <= MAX_IMAGE_EDGE and 0 < y <= MAX_IMAGE_EDGE):
        raise DataFormatError(f"{subject}: {path}: image size {x} x {y}, expected at most {MAX_IMAGE_EDGE} pixels "
                              "per side (NSD's crops are 425 x 425)")
    return (y, x)


def read_png(path: Path, subject: str, shape: tuple[int, int]) -> np.ndarray:
    """The RGB PNG at ``path`` as ``(y, x, 3)`` uint8; another format, mode or size is a :class:`DataFormatError`."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.format != "PNG" or im.mode != "RGB" or im.size != (shape[1], shape[0]):
                raise DataFormatError(f"{subject}: {path}: {im.format} image of mode {im.mode}, size "
                                      f"{im.size[0]} x {im.size[1]}; expected an RGB PNG of {shape[1]} x {shape[0]} "
                                      "like the subject's first training image")
            return np.asarray(im, dtype=np.uint8)
    except DataFormatError:
        raise
    except Exception as e:  # noqa: BLE001 -- Pillow raises many types for damaged files
        raise DataFormatError(f"{subject}: {path}: not a readable PNG image ({type(e).__name__}: {e})") from None


# -- arrays --------------------------------------------------------------------------------------------
def _npy(subject: str, path: Path, *, ndim: int, kind: str, mmap: bool = False) -> tuple[Path, np.ndarray]:
    if not path.is_file():
        raise DataFormatError(f"{subject}: {path} is missing; expected a .npy file of the challenge release "
                              "(both hemispheres, lh and rh)")
    try:
        with open(path, "rb") as fh:  # the header first: a pickled (object) array gets its own message
            version = np.lib.format.read_magic(fh)
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            dtype = header(fh)[2]
        if dtype.hasobject:
            raise DataFormatError(f"{subject}: {path} holds Python objects (dtype {dtype}, a pickle); expected a "
                                  "numeric array")
        a = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except DataFormatError:
        raise
    except Exception as e:  # noqa: BLE001 -- numpy raises ValueError, OSError, EOFError, ... for damaged files
        raise DataFormatError(f"{subject}: {path}: not a readable .npy array ({type(e).__name__}: {e})") from None
    if not isinstance(a, np.ndarray) or a.ndim != ndim or a.dtype.kind not in kind:
        what = {"f": "floats", "iu": "integers", "iub": "integers or booleans"}[kind]
        shape = getattr(a, "shape", None)
        raise DataFormatError(f"{subject}: {path} has shape {shape} and dtype {getattr(a, 'dtype', None)}, "
                              f"expected a {ndim}-D array of {what}")
    return path, a


def _float32(subject: str, path: Path, a: np.ndarray) -> None:
    if a.dtype != np.float32:
        raise DataFormatError(f"{subject}: {path} has dtype {a.dtype}, expected float32 (as the devkit saves the fMRI)")


def _optional_pair(subject: str, folder: Path, pattern: str, **kw) -> dict | None:
    """Both hemispheres' files of an optional part (test fMRI, noise ceiling), or None if neither is there."""
    paths = {h: folder / pattern.format(h=h) for h in HEMISPHERES}
    if not any(p.exists() for p in paths.values()):
        return None
    return {h: _npy(subject, p, **kw) for h, p in paths.items()}


class _FiniteRows:
    """Rows of a memory-mapped fMRI file, checked finite as they are read (the release has no NaN)."""

    def __init__(self, subject: str, path: Path, array: np.ndarray):
        self.subject, self.path, self.array = subject, path, array
        self.shape, self.dtype = array.shape, array.dtype

    def __getitem__(self, key: slice) -> np.ndarray:
        block = np.asarray(self.array[key])
        bad = ~np.isfinite(block)
        if bad.any():
            r, c = (int(v) for v in np.argwhere(bad)[0])
            row = (key.start or 0) + r
            raise DataFormatError(f"{self.subject}: {self.path} row {row} column {c} is {block[r, c]}; expected "
                                  "finite values (the challenge release has no NaN: vertices with NaN were removed)")
        return block


# -- the ROI mappings: pickles read by a restricted unpickler ----------------------------------------------
def read_mapping(path: Path, subject: str = "") -> dict[int, str]:
    """The ``{label: ROI name}`` dict of a release's ``mapping_<class>.npy`` (an ``np.save``'d dict).

    The file is a pickle, so it is never given to ``np.load(allow_pickle=True)``:
    the .npy header is read with :mod:`numpy.lib.format` and the pickle with
    :class:`MappingUnpickler`, which knows only the few numpy names ``np.save``
    writes for a dict and builds plain Python stand-ins for them (numpy's own
    ``__setstate__`` code never sees the file's bytes: a damaged dtype state can
    crash it). Any other name is refused before anything runs.
    """
    who = f"{subject}: " if subject else ""
    expected = "a numpy .npy file holding a dict {int label: ROI name} (np.save of a dict)"
    if not path.is_file():
        raise DataFormatError(f"{who}{path} is missing; expected {expected}")
    size = path.stat().st_size
    if size > MAX_MAPPING_BYTES:
        raise DataFormatError(f"{who}{path} is {size} bytes, more than {MAX_MAPPING_BYTES}; "
                              f"expected {expected} (a few hundred bytes)")
    fh = _io.BytesIO(path.read_bytes())
    try:
        version = np.lib.format.read_magic(fh)
        header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = header(fh)
    except Exception as e:  # noqa: BLE001 -- numpy raises ValueError and others for damaged headers
        raise DataFormatError(f"{who}{path}: not a readable .npy file ({type(e).__name__}: {e}); expected {expected}") from None
    if shape != () or dtype != np.dtype(object):
        raise DataFormatError(f"{who}{path} holds an array of shape {shape} and dtype {dtype}; expected {expected}")
    try:
        item = MappingUnpickler(fh).load_item()
    except Refused as e:
        raise DataFormatError(f"{who}{path}: refused: {e}; expected {expected}") from None
    except Exception as e:  # noqa: BLE001 -- a damaged pickle raises many types
        raise DataFormatError(f"{who}{path}: not a readable pickle ({type(e).__name__}: {e}); expected {expected}") from None
    if not isinstance(item, dict):
        raise DataFormatError(f"{who}{path} holds {type(item).__name__}, expected {expected}")
    out = {}
    for k, v in item.items():
        if isinstance(k, bool) or not isinstance(k, int) or not isinstance(v, str):
            raise DataFormatError(f"{who}{path}: entry {k!r}: {v!r} is not an int label and a name; expected {expected}")
        out[k] = v
    return out


class Refused(pickle.UnpicklingError):
    """A pickle that asks :class:`MappingUnpickler` for something it does not build."""


_DTYPE_SPEC = re.compile(r"[<>|=]?(O[48]|[iu][1248]|U[1-9][0-9]{0,3})")


class _Dtype:
    """Stand-in for ``numpy.dtype(spec, align, copy)``: the spec, and the byte order its pickled state gives."""

    def __init__(self, spec=None, align=False, copy=True):
        if not isinstance(spec, str) or not _DTYPE_SPEC.fullmatch(spec):
            raise Refused(f"numpy.dtype({spec!r}), expected an object, integer or string dtype")
        self.kind = spec.lstrip("<>|=")[0]
        self.size = int(spec.lstrip("<>|=")[1:])
        self.order = spec[0] if spec[0] in "<>" else "<"

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", ">", "|", "="):
            raise Refused(f"numpy.dtype state {state!r:.60}, expected (version, byte order, ...)")
        if state[1] in "<>":
            self.order = state[1]


class _Ndarray:
    """Marker for ``numpy.ndarray`` (only ever passed to ``_reconstruct``)."""


class _Array:
    """Stand-in for ``numpy._core.multiarray._reconstruct(ndarray, (0,), b"b")`` and the array state set on it."""

    def __init__(self, subtype=None, shape=None, typecode=None):
        if subtype is not _Ndarray:
            raise Refused(f"_reconstruct of {getattr(subtype, '__name__', type(subtype).__name__)}, expected numpy.ndarray")
        self.state = None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], _Dtype)):
            raise Refused("an array state other than (version, shape, dtype, fortran, data)")
        self.state = state


def _scalar(dtype=None, data=None):
    """Stand-in for ``numpy._core.multiarray.scalar``: integer and string scalars, decoded here."""
    if not isinstance(dtype, _Dtype) or dtype.kind == "O" or not isinstance(data, bytes):
        raise Refused("a numpy scalar other than an integer or string one")
    if dtype.kind in "iu":
        if len(data) != dtype.size:
            raise Refused(f"an integer scalar of {len(data)} bytes, expected {dtype.size}")
        return int.from_bytes(data, "little" if dtype.order == "<" else "big", signed=dtype.kind == "i")
    if len(data) != 4 * dtype.size:
        raise Refused(f"a string scalar of {len(data)} bytes, expected {4 * dtype.size}")
    return data.decode("utf-32-le" if dtype.order == "<" else "utf-32-be").rstrip("\0")


class MappingUnpickler(pickle._Unpickler):  # the pure-Python unpickler: hostile bytes meet only Python code
    """Reads what ``np.save`` writes for a dict (numpy 1.x or 2.x module names) into plain Python objects.

    The allowed names map to the stand-ins above, which check their arguments;
    any other global (``os.system``, ``builtins.eval``, ``numpy.load``, ...)
    raises :class:`Refused` when the pickle names it, before anything is called.
    :meth:`load_item` returns the one element of the 0-d object array.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _Array,
        ("numpy._core.multiarray", "_reconstruct"): _Array,
        ("numpy.core.multiarray", "scalar"): _scalar,
        ("numpy._core.multiarray", "scalar"): _scalar,
        ("numpy", "ndarray"): _Ndarray,
        ("numpy", "dtype"): _Dtype,
    }

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise Refused(f"the pickle calls {module}.{name}, which is not allowed (only the numpy "
                          "functions that rebuild an object array of a dict)") from None

    def persistent_load(self, pid):
        raise Refused("persistent ids are not allowed")

    def load_item(self):
        obj = self.load()
        state = obj.state if isinstance(obj, _Array) else None
        if state is None:
            raise Refused(f"a pickled {type(obj).__name__}, expected a numpy array")
        _, shape, dtype, _, data = state
        if shape != () or dtype.kind != "O" or not isinstance(data, list) or len(data) != 1:
            raise Refused(f"an array of shape {shape!r:.40} and dtype kind {dtype.kind}, expected a 0-d object array")
        return data[0]
