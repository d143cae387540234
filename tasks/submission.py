"""The one boundary where untrusted prediction files enter: reading and checking.

A table submission is one row per scored item, with id columns and value
columns described by a :class:`TableSpec`. :func:`check_table` checks it
against the task's expected ids (the submission template) and returns the
values in template order. Checks, each an error naming the source, column
and first offending row: missing columns; dtypes (string ids, integer ids,
integer labels, float values; no bools posing as numbers); missing values;
NaN/inf; integer ranges; ids that name nothing the task knows (an unknown
neuron, with its row); self-pairs and either-order duplicates for unordered
pairs; duplicates; ids that are not in the template; template ids that are
missing. :func:`check_names` is the same id-set check for submissions holding
one array per named item (FISBe volumes, NSD hemispheres), which :class:`ArrayFile`
opens and reads one array at a time.

Files are judged from their headers before any data is read
(:func:`read_table`, :func:`check_size`): the names of the columns/arrays,
their shapes and dtypes (the .npy header of every .npz member, read without
decompressing the data), the row count (parquet metadata, array shapes) and
the declared uncompressed size (zip directory, npy headers, parquet column
chunks, Zarr array metadata) against :data:`MAX_SUBMISSION_BYTES`. Then only
the columns the task needs are loaded. Pickles are never loaded, whatever a
file is called; archive members and Zarr folders cannot point outside the
submission.
"""
from __future__ import annotations

import json
import math
import mmap
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neuroharness.errors import SubmissionError
from neuroharness.loaders.io import atomic_path

FORMATS = (".npz", ".parquet", ".zarr")
#: Environment variable that overrides :data:`MAX_SUBMISSION_BYTES` (a number of bytes).
MAX_BYTES_ENV = "NEUROHARNESS_MAX_SUBMISSION_BYTES"
#: Largest submission accepted, in bytes (8 GiB), checked before anything is loaded, against the size on
#: disk and against the size the file declares it holds once uncompressed: the zip directory's sizes of an
#: .npz's members and the shapes x itemsizes of their npy headers; a parquet file's uncompressed column
#: chunks (for dictionary-encoded text, rows x the chunk's size, an upper bound); a .zarr folder's files and
#: its arrays' shapes and chunk shapes. Overridden by ``$NEUROHARNESS_MAX_SUBMISSION_BYTES``.
MAX_SUBMISSION_BYTES = 8 * 1024**3
#: What every refusal of a pickle says.
NO_PICKLE = "pickles are never loaded"
#: Zip compression methods zipfile decompresses; anything else is refused from the directory.
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
#: Zarr metadata files (v2 and v3) scanned for codecs before a store is opened.
_ZARR_METADATA = (".zarray", ".zmetadata", "zarr.json")
#: Largest Zarr metadata file read (JSON describing arrays is a few kB).
_MAX_METADATA = 16 * 1024**2


def max_submission_bytes() -> int:
    """The size limit in force: ``$NEUROHARNESS_MAX_SUBMISSION_BYTES`` if set, else :data:`MAX_SUBMISSION_BYTES`."""
    value = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not value:
        return MAX_SUBMISSION_BYTES
    try:
        limit = int(value)
    except ValueError:
        limit = -1
    if limit <= 0:
        raise SubmissionError(f"environment variable {MAX_BYTES_ENV}={value!r}: expected a positive number of bytes")
    return limit


def _too_large(path, what: str, found: int, limit: int) -> SubmissionError:
    return SubmissionError(
        f"{path}: {what} {found:,} bytes, over the submission size limit of {limit:,} bytes; nothing was loaded. "
        f"If the file is meant to be this large, raise the limit with the environment variable "
        f"{MAX_BYTES_ENV}=<bytes>")


# -- what a file really is -----------------------------------------------------------------------
def sniff(path) -> str | None:
    """What the first bytes of a file say it is: "pickle", "npy", "zip", "parquet", "hdf5", or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return "zip"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    return None


_EXPECTED = {".npz": "an .npz (zip) archive", ".parquet": "a parquet file", ".zarr": "a Zarr store",
             ".zip": "a zipped Zarr store"}


def refuse_pickle(path: Path) -> None:
    """Refuse a file that is a Python pickle, whatever its suffix (``.npz``, ``.parquet``, ``.npy``...)."""
    path = Path(path)
    if path.is_file() and sniff(path) == "pickle":
        suffix = path.suffix.lower()
        what = (f"the file is a Python pickle, not {_EXPECTED[suffix]}" if suffix in _EXPECTED
                else f"unsupported format {suffix!r}: the file is a Python pickle")
        raise SubmissionError(f"{path}: {what}; pickle is never accepted: {NO_PICKLE}, whatever the file is called "
                              "(unpickling can run any code). Write the predictions with numpy.savez (numbers and "
                              "fixed-width strings) or DataFrame.to_parquet")


def check_path(path: Path) -> None:
    """Refuse a submission path that does not exist, or is neither a regular file nor a folder: a named pipe
    (opening it waits for a writer, for ever), a socket or a device."""
    path = Path(path)
    if not path.exists():
        raise SubmissionError(f"{path}: file not found")
    if not (path.is_file() or path.is_dir()):
        raise SubmissionError(f"{path}: not a regular file or folder (a named pipe, socket or device); "
                              "expected the predictions file itself")


def why(e: Exception) -> str:
    """An exception as a message: ValueError's own text, other kinds prefixed with their name."""
    text = str(e)
    return text if isinstance(e, ValueError) and text else f"{type(e).__name__}: {text}"


def _not_a(path: Path, expected: str) -> str:
    """A hint for a file that does not open as ``expected``: what its bytes say it is, if anything."""
    found = sniff(path)
    names = {"npy": "a single .npy array", "zip": "a zip archive", "parquet": "a parquet file", "hdf5": "an HDF5 file"}
    return f"; the file looks like {names[found]}" if found in names and found != expected else ""


# -- archives ----------------------------------------------------------------------------------------
def _member_problem(name: str) -> str | None:
    """Why a zip member name is refused (a path escaping the archive's folder), or None."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":") or "\0" in name:
        return ("is a path outside the archive's folder: the member path escapes the archive "
                "('..', an absolute or a drive path), and such archives are refused")
    return None


def check_zip_members(path, zf: zipfile.ZipFile, limit: int | None = None) -> list[zipfile.ZipInfo]:
    """The members of an archive, from its directory (nothing decompressed), refused if a name escapes its
    folder (``../x.npy``, ``/x``, ``C:x``), if a member is encrypted or compressed with a method zipfile
    cannot read, or if their uncompressed sizes (the zip's ``file_size``) add up to more than ``limit``."""
    limit = max_submission_bytes() if limit is None else limit
    infos = zf.infolist()
    for info in infos:
        why = _member_problem(info.filename)
        if why:
            raise SubmissionError(f"{path}: member {info.filename!r} {why}; expected one array per name at the "
                                  "top level")
    for info in infos:
        if info.flag_bits & 0x1:
            raise SubmissionError(f"{path}: member {info.filename!r} is encrypted; write the archive without a password")
        if info.compress_type not in _ZIP_METHODS:
            raise SubmissionError(f"{path}: member {info.filename!r} uses zip compression method {info.compress_type}, "
                                  "which cannot be read; write the archive with numpy.savez / savez_compressed "
                                  "(stored or deflated members)")
    total = sum(i.file_size for i in infos)
    if total > limit:
        raise _too_large(path, "its members uncompress to", total, limit)
    return infos


def npy_header(f, fortran_order: bool = False) -> tuple:
    """(shape, dtype) from the header of an open .npy stream, reading no data; with ``fortran_order``,
    (shape, dtype, whether the data is in Fortran order). The stream is left at the data's start.

    Raises ``ValueError`` (only) on anything that is not a well-formed .npy header of
    format version 1.0, 2.0 or 3.0: bad magic, a truncated or oversized header, a
    dictionary numpy cannot parse, negative dimensions.
    """
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):  # 3.0 differs from 2.0 only by a utf-8 header (ascii here)
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
        shape, dtype = tuple(int(n) for n in shape), np.dtype(dtype)
    except Exception as e:  # noqa: BLE001 - numpy raises ValueError, SyntaxError, TypeError, EOFError... on bad headers
        msg = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
        raise ValueError(msg or type(e).__name__) from None
    if any(n < 0 for n in shape):
        raise ValueError(f"the header declares a negative dimension, shape {shape}")
    return (shape, dtype, bool(fortran)) if fortran_order else (shape, dtype)


def declared_bytes(shape, dtype: np.dtype) -> int:
    """Bytes an array of ``shape`` and ``dtype`` holds once loaded (a float product: no int64 overflow)."""
    n = math.prod(float(d) for d in shape) * max(np.dtype(dtype).itemsize, 1)
    return int(min(n, 2.0**62))


def npz_headers(path, zf: zipfile.ZipFile, limit: int | None = None, what: str = "array") -> dict[str, tuple]:
    """``{name: (member, shape, dtype)}`` of the .npy members of an open .npz, from their headers only.

    Refuses (naming ``what``: "array", "column", "field"): escaping or unreadable member names (see
    :func:`check_zip_members`), members that are not .npy arrays, a name stored twice, a header that
    does not parse, a declared total over the size limit.
    """
    limit = max_submission_bytes() if limit is None else limit
    out: dict[str, tuple] = {}
    total = 0
    for info in check_zip_members(path, zf, limit):
        if info.is_dir():
            continue
        if not info.filename.endswith(".npy"):
            raise SubmissionError(f"{path}: member {info.filename!r} is not a .npy array; an .npz holds one .npy "
                                  f"array per {what} (write it with numpy.savez)")
        name = info.filename[: -len(".npy")]
        if name in out:
            raise SubmissionError(f"{path}: {name!r} appears more than once in the archive (a {what} stored twice)")
        try:
            with zf.open(info) as f:
                shape, dtype = npy_header(f)
        except Exception as e:  # noqa: BLE001 - zipfile raises BadZipFile, zlib.error, EOFError... on a damaged member
            raise SubmissionError(f"{path}: member {info.filename!r} is not a valid .npy array ({why(e)})") from None
        out[name] = (info, shape, dtype)
        total += declared_bytes(shape, dtype)
    if total > limit:
        raise _too_large(path, "its arrays hold", total, limit)
    return out


def read_npy_member(path, zf: zipfile.ZipFile, member, name: str, what: str = "array") -> np.ndarray:
    """The data of one .npy member (whose header was checked), read without unpickling."""
    try:
        with zf.open(member) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - a truncated or corrupt member raises many kinds of errors
        raise SubmissionError(f"{path}: {what} {name!r} is unreadable ({why(e)}); "
                              "the archive is damaged or truncated") from None


# -- folders and Zarr stores ---------------------------------------------------------------------------
def folder_bytes(path: Path) -> int:
    """Total size of the files under a folder (links not followed)."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def check_folder(path: Path, limit: int | None = None) -> None:
    """Refuse a submission folder holding a symbolic link (it could point anywhere outside the
    submission) or whose files add up to more than the size limit."""
    limit = max_submission_bytes() if limit is None else limit
    total = 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            p = os.path.join(root, name)
            if os.path.islink(p):
                raise SubmissionError(f"{path}: {os.path.relpath(p, path)!r} is a symbolic link; links could point "
                                      "outside the submission and are refused: copy the files into the folder")
            if not (os.path.isfile(p) or os.path.isdir(p)):
                raise SubmissionError(f"{path}: {os.path.relpath(p, path)!r} is not a regular file (a named pipe, "
                                      "socket or device); a submission folder holds only files and folders")
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    if total > limit:
        raise _too_large(path, "its files hold", total, limit)


def _pickle_codec(meta) -> bool:
    """Whether parsed Zarr metadata names a pickle codec anywhere (v2 ``id``, v3 ``name``); user
    attributes (``attributes``, consolidated ``.zattrs``) are not codecs and are not looked at."""
    if isinstance(meta, dict):
        for key in ("id", "name", "object_codec_id"):
            if isinstance(meta.get(key), str) and "pickle" in meta[key].lower():
                return True
        return any(_pickle_codec(v) for k, v in meta.items() if k != "attributes" and not str(k).endswith(".zattrs"))
    if isinstance(meta, list):
        return any(_pickle_codec(v) for v in meta)
    return False


def _check_zarr_metadata(path, files) -> None:
    """Refuse metadata (``(name, size, read bytes)``) that is oversized, not JSON, or asks for a pickle codec."""
    for name, size, read in files:
        if size > _MAX_METADATA:
            raise SubmissionError(f"{path}: Zarr metadata {name!r} has {size:,} bytes, more than the {_MAX_METADATA:,} "
                                  "a store's metadata needs; it is not read")
        try:
            meta = json.loads(read())
        except Exception as e:  # noqa: BLE001 - bad bytes, bad JSON, bad unicode
            raise SubmissionError(f"{path}: Zarr metadata {name!r} is not valid JSON ({type(e).__name__}: {e})") from None
        if _pickle_codec(meta):
            raise SubmissionError(f"{path}: Zarr metadata {name!r} asks for the pickle codec; {NO_PICKLE}: store "
                                  "numbers with a numeric dtype and text with Zarr's string dtype")


def open_zarr(path, limit: int | None = None):
    """A read-only Zarr group at the root of a ``.zarr``-style folder or a zipped Zarr (``.zip``),
    after checking what can be checked without reading arrays: size limits, member paths and links,
    metadata that parses and names no pickle codec, a group at the root. Returns ``(group, store)``."""
    import zarr

    path = Path(path)
    limit = max_submission_bytes() if limit is None else limit
    if path.is_dir():
        check_folder(path, limit)
        meta = [p for p in sorted(path.rglob("*")) if p.name in _ZARR_METADATA and p.is_file()]
        _check_zarr_metadata(path, [(str(p.relative_to(path)), p.lstat().st_size, p.read_bytes) for p in meta])
        if not any((path / f).is_file() for f in (".zgroup", "zarr.json", ".zmetadata")):
            raise SubmissionError(f"{path}: no Zarr group at the folder's root (no .zgroup or zarr.json); "
                                  "write the predictions with zarr.open_group(path, mode='w')")
        store = zarr.storage.LocalStore(str(path), read_only=True)
    else:
        try:
            with zipfile.ZipFile(path) as zf:
                infos = check_zip_members(path, zf, limit)
                meta = [i for i in infos if i.filename.rsplit("/", 1)[-1] in _ZARR_METADATA and not i.is_dir()]
                _check_zarr_metadata(path, [(i.filename, i.file_size, lambda i=i: zf.read(i)) for i in meta])
                names = {i.filename for i in infos}
        except SubmissionError:
            raise
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise SubmissionError(f"{path}: not a zip archive ({type(e).__name__}: {e}); a zipped Zarr is the "
                                  f"store's folder zipped{_not_a(path, 'zip')}") from None
        if not names & {".zgroup", "zarr.json", ".zmetadata"}:
            inner = [n for n in names if n.rsplit("/", 1)[-1] in (".zgroup", "zarr.json")]
            top = min(inner, key=lambda n: (n.count("/"), n)) if inner else None
            hint = f" (found {top!r}: zip the folder's contents, not the folder)" if top else ""
            raise SubmissionError(f"{path}: no Zarr group at the archive's root{hint}; a zipped Zarr holds "
                                  ".zgroup or zarr.json at its top level")
        store = zarr.storage.ZipStore(str(path), mode="r")
    try:
        group = zarr.open_group(store, mode="r")
    except Exception as e:  # noqa: BLE001 - zarr raises many kinds of errors on malformed metadata
        store.close()
        raise SubmissionError(f"{path}: unreadable Zarr store ({type(e).__name__}: {e})") from None
    return group, store


def zarr_declared_bytes(a) -> int:
    """What one Zarr array declares it holds, and what decoding one of its chunks allocates."""
    dtype = np.dtype(a.dtype) if isinstance(a.dtype, np.dtype) else np.dtype(object)
    chunk = max((declared_bytes(c, dtype) for c in (a.chunks, getattr(a, "shards", None) or ()) if c), default=0)
    return max(declared_bytes(a.shape, dtype), chunk)


# -- one array per name ------------------------------------------------------------------------------------
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
    values are those ``np.load`` returns; a dense array costs what ``np.load`` does).
    Raises ``ValueError`` on a short stream.
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


class ArrayFile:
    """The arrays of a submission by name, read lazily (one array in memory at a time).

    ``source``: a ``.npz`` (members' npy headers read first, data only when loaded, never
    unpickled), a Zarr folder (``.zarr`` or any folder holding ``.zgroup``/``zarr.json``), a
    zipped Zarr (``.zip``), or a mapping ``{name: array}``; Zarr stores are opened read-only.
    Everything that can be judged without reading data is judged on opening: pickles
    (whatever the suffix), the size limit on disk and as declared (zip directory, npy headers,
    Zarr metadata), member paths escaping the archive, links in folders, pickle codecs, groups
    where arrays belong. ``names`` lists the arrays as stored. A task subclasses it to word
    its messages (the class attributes below).
    """

    #: What the "unsupported format" refusal says a submission may be.
    formats = "use .npz, a .zarr folder or a zipped Zarr (.zip)"
    #: What the top level of a Zarr submission holds, said when a member is a group.
    layout = "one array per name at the top level"
    #: With a text, an .npz member of dtype object is refused on opening, saying this is expected
    #: instead; None leaves it to the task's header check (numpy would need to unpickle it to load it,
    #: which :meth:`load` never does).
    object_expected: str | None = None
    #: What an array is to the task, named in that refusal: "sample" gives "array 'x' (sample x)".
    item = ""

    def __init__(self, source):
        self._zip = self._group = self._store = self._dict = None
        self._members: dict[str, str] = {}
        self._headers: dict[str, tuple] = {}
        #: the file or folder read (None for a mapping), so other processes can open it again
        self.path: Path | None = None
        if isinstance(source, Mapping):
            self.name = "predictions"
            self._dict = {str(k): v for k, v in source.items()}
            self.names = list(self._dict)
            return
        path = Path(source)
        self.name = str(path)
        self.path = path
        check_path(path)
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
                raise SubmissionError(f"{path}: unsupported format {suffix or '(folder)'!r}; {self.formats}; "
                                      "pickle is never accepted")
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
            if dtype.hasobject and self.object_expected is not None:
                label = f" ({self.item} {name})" if self.item else ""
                raise SubmissionError(
                    f"{path}: array {name!r}{label} has dtype object (Python objects, which numpy stores "
                    f"as a pickle); {NO_PICKLE}: {self.object_expected}")
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
            raise SubmissionError(f"{path}: member {groups[0]!r} is a group; expected {self.layout}")
        total = sum(zarr_declared_bytes(a) for a in members.values())
        if total > limit:
            raise _too_large(path, "its arrays hold", total, limit)
        self.names = list(members)

    def _given(self, name: str, as_numpy: bool = False):
        """A mapping's value ``name`` as something with a shape and a dtype (a numpy array with ``as_numpy``)."""
        a = self._dict[name]
        if as_numpy or not hasattr(a, "shape") or not hasattr(a, "dtype"):
            try:
                a = np.asarray(a)
            except (ValueError, TypeError) as e:
                raise SubmissionError(f"{self.name}: {name!r} is not an array ({e})") from None
        return a

    def header(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        """(shape, dtype) of array ``name`` without reading its data."""
        if self._dict is not None:
            a = self._given(name)
            return tuple(a.shape), np.dtype(a.dtype)
        if self._zip is not None:
            return self._headers[name]
        try:
            a = self._group[name]
            return tuple(a.shape), a.dtype if isinstance(a.dtype, np.dtype) else np.dtype(object)
        except Exception as e:  # noqa: BLE001 - zarr raises many kinds of errors on malformed metadata
            raise SubmissionError(f"{self.name}: array {name!r} is unreadable ({type(e).__name__}: {e})") from None

    def load(self, name: str) -> np.ndarray:
        """The data of array ``name`` as a numpy array; an .npz member in C order streams into
        :func:`sparse_zeros` (a mostly-zero volume costs its foreground)."""
        if self._dict is not None:
            return self._given(name, as_numpy=True)
        try:
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


# -- tables --------------------------------------------------------------------------------------------
def _more_rows(path, what: str, rows: int, expected_rows: int) -> SubmissionError:
    return SubmissionError(f"{path}: {what} {rows} rows, more than the {expected_rows} rows of the template "
                           "(rows are duplicated, name unknown ids, or are not of this split); nothing was loaded")


def _missing(source, missing, found, columns) -> SubmissionError:
    return SubmissionError(f"{source}: missing column(s) {missing}; found {list(found)}, expected {list(columns)}")


def _check_arrays(path, shapes: dict, expected_rows: int | None, columns) -> None:
    """Table checks from array headers (npz members, Zarr arrays): ``{name: (shape, dtype)}``."""
    for name, (_, dtype) in shapes.items():
        if dtype.hasobject:
            raise SubmissionError(
                f"{path}: array {name!r} has dtype object (Python objects, which numpy stores as a pickle); "
                f"{NO_PICKLE}: store text as fixed-width unicode (numpy dtype '<U...', e.g. "
                "np.asarray(names, dtype=str)) and numbers with a numeric dtype")
    if columns is not None:
        missing = [c for c in columns if c not in shapes]
        if missing:
            raise _missing(path, missing, shapes, columns)
    bad = {k: s for k, (s, _) in shapes.items() if len(s) != 1}
    if bad:
        raise SubmissionError(f"{path}: arrays must be 1-D, got shapes {bad}")
    lengths = {k: s[0] for k, (s, _) in shapes.items()}
    if expected_rows is not None:
        for k, n in lengths.items():
            if n > expected_rows:
                raise _more_rows(path, f"array {k!r} has", n, expected_rows)
    if len(set(lengths.values())) > 1:
        raise SubmissionError(f"{path}: arrays differ in length: {lengths}")


def _not_npz(path: Path, e: Exception) -> SubmissionError:
    return SubmissionError(f"{path}: not an .npz (zip) archive ({type(e).__name__}: {e}){_not_a(path, 'zip')}; "
                           f"write it with numpy.savez: predictions are read without unpickling, and {NO_PICKLE}")


def _inspect_npz(path: Path, expected_rows, columns, limit):
    """Check an .npz table from its zip directory and npy headers; return the loader of its wanted columns."""
    try:
        with zipfile.ZipFile(path) as zf:
            headers = npz_headers(path, zf, limit, "column")
    except SubmissionError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise _not_npz(path, e) from None
    _check_arrays(path, {k: (s, d) for k, (_, s, d) in headers.items()}, expected_rows, columns)
    wanted = list(headers) if columns is None else [c for c in columns if c in headers]

    def load() -> pd.DataFrame:
        with zipfile.ZipFile(path) as zf:
            return pd.DataFrame({k: read_npy_member(path, zf, headers[k][0].filename, k, "column") for k in wanted})

    return load


def _parquet_bytes(meta, wanted: set) -> int:
    """Upper bound of the bytes the columns ``wanted`` decode to, from the footer's column chunks.

    Dictionary-encoded text can repeat one long value on every row: its bound is rows x the
    chunk's uncompressed size (which holds the dictionary)."""
    total = 0
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        for j in range(rg.num_columns):
            c = rg.column(j)
            if c.path_in_schema.split(".", 1)[0] not in wanted:
                continue
            size = max(int(c.total_uncompressed_size), 8 * int(c.num_values))
            if c.physical_type in ("BYTE_ARRAY", "FIXED_LEN_BYTE_ARRAY") and c.has_dictionary_page:
                size = max(size, int(c.num_values) * int(c.total_uncompressed_size))
            total += size
    return total


def _inspect_parquet(path: Path, expected_rows, columns, limit):
    """Check a parquet table from its footer (names, rows, column chunk sizes); return the loader."""
    try:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        meta, names = pf.metadata, list(pf.schema_arrow.names)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several kinds on a malformed file
        raise SubmissionError(f"{path}: unreadable .parquet predictions ({type(e).__name__}: {e})"
                              f"{_not_a(path, 'parquet')}") from None
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SubmissionError(f"{path}: column(s) {twice} appear more than once; expected each column once")
    if columns is not None:
        missing = [c for c in columns if c not in names]
        if missing:
            raise _missing(path, missing, [n for n in names if not n.startswith("__index_level_")], columns)
    if expected_rows is not None and meta.num_rows > expected_rows:
        raise SubmissionError(f"{path}: {meta.num_rows} rows found, more than the {expected_rows} rows expected "
                              "(the template's length: rows are duplicated, name unknown ids, or are not of this "
                              "split); nothing was read")
    wanted = names if columns is None else [c for c in columns if c in names]
    total = _parquet_bytes(meta, set(wanted))
    if total > limit:
        raise _too_large(path, f"{meta.num_rows} rows of columns {wanted} decode to up to", total, limit)

    def load() -> pd.DataFrame:
        # the columns read are the wanted ones: pandas' index metadata may name others, so it is not applied
        return pf.read(columns=wanted).to_pandas(ignore_metadata=True)

    return load


def _inspect_zarr(path: Path, expected_rows, columns, limit):
    """Check a .zarr folder from its files and array metadata; return the loader of its wanted columns."""
    if not path.is_dir():
        raise SubmissionError(f"{path}: a .zarr submission is a folder (a Zarr store), not a file"
                              f"{_not_a(path, 'zarr')}")
    group, store = open_zarr(path, limit)
    try:
        arrays = dict(group.arrays())
        total = sum(zarr_declared_bytes(a) for a in arrays.values())
        if total > limit:
            raise _too_large(path, "its arrays hold", total, limit)
        # Zarr's own string and object dtypes are not pickles (its pickle codec is refused by open_zarr)
        shapes = {k: (tuple(a.shape), a.dtype if isinstance(a.dtype, np.dtype) and not a.dtype.hasobject
                      else np.dtype("U1")) for k, a in arrays.items()}
        _check_arrays(path, shapes, expected_rows, columns)
    except Exception:
        store.close()
        raise
    wanted = list(arrays) if columns is None else [c for c in columns if c in arrays]

    def load() -> pd.DataFrame:
        try:
            out = {}
            for k in wanted:
                try:
                    out[k] = np.asarray(arrays[k][...])
                except Exception as e:  # noqa: BLE001 - codecs raise many kinds of errors on damaged chunks
                    raise SubmissionError(f"{path}: column {k!r} is unreadable ({type(e).__name__}: {e})") from None
            return pd.DataFrame(out)
        finally:
            store.close()

    return load


_INSPECT = {".npz": _inspect_npz, ".parquet": _inspect_parquet, ".zarr": _inspect_zarr}


def _inspect(path: Path, expected_rows, columns):
    """Every check made without loading data (see :func:`read_table`); returns the loader, or None for a
    format this module does not read as a table."""
    limit = max_submission_bytes()
    refuse_pickle(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        check_folder(path, limit)
    else:
        size = path.stat().st_size
        if size > limit:
            raise _too_large(path, "the file has", size, limit)
    if suffix not in _INSPECT:
        return None
    if path.is_dir() and suffix != ".zarr":
        raise SubmissionError(f"{path}: is a folder; a {suffix} submission is a file")
    try:
        return _INSPECT[suffix](path, expected_rows, columns, limit)
    except SubmissionError:
        raise
    except Exception as e:  # noqa: BLE001 - the last guard: every reader error names the file
        raise SubmissionError(f"{path}: unreadable {suffix} predictions ({type(e).__name__}: {e})") from None


def check_size(path: str | Path, expected_rows: int | None = None, columns=None) -> None:
    """Refuse a submission from its headers, before anything is loaded: a pickle (whatever the suffix),
    the size limit (:data:`MAX_SUBMISSION_BYTES`) on disk and as declared uncompressed, folders holding
    links, archive members escaping the archive; with ``expected_rows``/``columns``, the table checks of
    :func:`read_table` too. For an .npz, every member's npy header is parsed (so a malformed one is refused)."""
    path = Path(path)
    check_path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz" and expected_rows is None and columns is None:
        limit = max_submission_bytes()
        refuse_pickle(path)
        size = path.stat().st_size
        if size > limit:
            raise _too_large(path, "the file has", size, limit)
        try:
            with zipfile.ZipFile(path) as zf:
                npz_headers(path, zf, limit)
        except SubmissionError:
            raise
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise _not_npz(path, e) from None
        return
    _inspect(path, expected_rows, columns)


def read_table(path: str | Path, expected_rows: int | None = None, columns=None) -> pd.DataFrame:
    """Load a predictions file (.npz with 1-D arrays, .parquet, or a .zarr folder of 1-D arrays) into a DataFrame.

    Headers first, nothing loaded until they pass: a pickle is refused whatever the suffix; the size
    limit (on disk and declared uncompressed, see :data:`MAX_SUBMISSION_BYTES`); the names
    (``columns``: those the task needs; a missing one is refused; the others are checked from their
    headers but never loaded); 1-D arrays of one length; no more rows than ``expected_rows`` (the
    template's length); no object arrays.
    """
    path = Path(path)
    check_path(path)
    columns = None if columns is None else list(columns)
    load = _inspect(path, expected_rows, columns)
    suffix = path.suffix.lower()
    if load is None:
        raise SubmissionError(f"{path}: unsupported format {suffix!r}; use one of {', '.join(FORMATS)} "
                              f"(pickle is never accepted){_not_a(path, suffix)}")
    try:
        return load()
    except SubmissionError:
        raise
    except Exception as e:  # noqa: BLE001 - the last guard: every reader error names the file
        raise SubmissionError(f"{path}: unreadable {suffix} predictions ({type(e).__name__}: {e})") from None


def source_of(predictions) -> str:
    """The name messages use for a submission: its path, or "predictions" for an in-memory table."""
    return "predictions" if isinstance(predictions, (pd.DataFrame, dict)) else str(predictions)


def as_table(predictions, expected_rows: int | None = None, columns=None) -> pd.DataFrame:
    """A DataFrame as given, or read from a path with :func:`read_table`."""
    return predictions if isinstance(predictions, pd.DataFrame) else read_table(predictions, expected_rows, columns)


@dataclass(frozen=True)
class Column:
    """One column of a submission table.

    ``kind``: "str" (text ids), "int" (integer ids or labels; a float column is
    refused even when its values are whole) or "float" (finite numbers).
    ``low``/``high`` bound "int" values (inclusive); ``range_text`` says what
    the bounds mean in messages (e.g. "graph G has CSV node ids 0..N-1").
    ``known``: for "str" ids, every name the task knows (e.g. the 302 neurons); a
    value outside it is reported as unknown, with its row, before any pair is
    matched; ``range_text`` then says what the names are.
    """

    name: str
    kind: str
    description: str = ""
    low: int | None = None
    high: int | None = None
    range_text: str = ""
    known: tuple | None = None

    def __post_init__(self):
        if self.kind not in ("str", "int", "float"):
            raise ValueError(f"column {self.name}: kind {self.kind!r}, expected 'str', 'int' or 'float'")


@dataclass(frozen=True)
class TableSpec:
    """The columns of a table submission and how its ids are matched.

    ``unordered``: the two integer id columns form an unordered pair (u, v) =
    (v, u); self-pairs are refused. ``items`` is the plural noun of a row in
    messages ("pairs", "vessels"), ``scope`` a qualifier (" of graph G"), and
    ``id_format`` formats one id row (``str.format`` on the id columns).
    """

    ids: tuple[Column, ...]
    values: tuple[Column, ...]
    unordered: bool = False
    items: str = "items"
    scope: str = ""
    id_format: str = ""

    @property
    def columns(self) -> list[str]:
        return [c.name for c in (*self.ids, *self.values)]

    def show(self, row: dict) -> str:
        if self.id_format:
            return self.id_format.format(**row)
        return "(" + ", ".join(str(row[c.name]) for c in self.ids) + ")"


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _column(table: pd.DataFrame, col: Column, source: str) -> np.ndarray:
    """The checked values of one column: str ids as str objects, ints as int64, floats as float64."""
    try:
        return _column_values(table, col, source)
    except SubmissionError:
        raise
    except Exception as e:  # noqa: BLE001 - e.g. text that is not valid unicode fails inside pandas/pyarrow
        kind = {"str": "text", "int": "integers", "float": "numbers"}[col.kind]
        raise SubmissionError(f"{source}: column {col.name!r} (dtype {table[col.name].dtype}) cannot be read as "
                              f"{kind} ({why(e)})") from None


def _column_values(table: pd.DataFrame, col: Column, source: str) -> np.ndarray:
    s = table[col.name]
    what = f" ({col.description})" if col.description else ""
    if isinstance(s.dtype, pd.CategoricalDtype):  # a parquet column written from a categorical one
        s = s.astype(object)
    if col.kind == "str":
        if not (pd.api.types.is_string_dtype(s) or s.dtype == object):
            raise SubmissionError(f"{source}: column {col.name!r} has dtype {s.dtype}, expected strings{what}")
        if s.isna().any():
            raise SubmissionError(f"{source}: column {col.name!r} has {int(s.isna().sum())} missing value(s), "
                                  f"first at row {_first(s.isna().to_numpy())}")
        a = s.to_numpy(dtype=object)
        not_str = np.fromiter((not isinstance(v, str) for v in a), bool, len(a))
        if not_str.any():
            i = _first(not_str)
            raise SubmissionError(f"{source}: column {col.name!r} row {i} holds {a[i]!r} ({type(a[i]).__name__}), "
                                  f"expected strings{what}")
        return a
    if (pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s)
            or pd.api.types.is_complex_dtype(s) or s.dtype.kind in "mM"):
        expected = "integers" if col.kind == "int" else "numbers"
        raise SubmissionError(f"{source}: column {col.name!r} has dtype {s.dtype}, expected {expected}{what}")
    if s.isna().any() and col.kind == "int" and not pd.api.types.is_float_dtype(s):  # nullable integer columns
        raise SubmissionError(f"{source}: column {col.name!r} has {int(s.isna().sum())} missing value(s), "
                              f"first at row {_first(s.isna().to_numpy())}")
    if col.kind == "float" or pd.api.types.is_float_dtype(s):
        with np.errstate(over="ignore", invalid="ignore"):
            a = s.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(a)
        if bad.any():
            tail = f"; expected integers{what}" if col.kind == "int" else ""
            raise SubmissionError(f"{source}: column {col.name!r} has {int(bad.sum())} NaN/inf value(s), "
                                  f"first at row {_first(bad)}{tail}")
        if col.kind == "float":
            return a
        frac = a != np.round(a)
        if frac.any():
            i = _first(frac)
            raise SubmissionError(f"{source}: column {col.name!r} row {i} is {float(a[i])!r}; expected integers{what}")
        raise SubmissionError(f"{source}: column {col.name!r} has dtype {s.dtype}, expected an integer dtype{what}")
    a = s.to_numpy()
    if a.dtype.kind == "u" and a.dtype.itemsize == 8 and a.size:  # above int64: would wrap around
        big = a > np.iinfo(np.int64).max
        if big.any():
            i = _first(big)
            raise SubmissionError(f"{source}: row {i}, column {col.name!r}: value {int(a[i])} out of range"
                                  f"{'; ' + col.range_text if col.range_text else ''}")
    return a.astype(np.int64)


def _check_range(a: np.ndarray, col: Column, source: str, describe_row) -> None:
    low = -np.inf if col.low is None else col.low
    high = np.inf if col.high is None else col.high
    bad = (a < low) | (a > high)
    if bad.any():
        i = _first(bad)
        why = f"; {col.range_text}" if col.range_text else f"; expected {col.low}..{col.high}"
        raise SubmissionError(f"{source}: row {i}{describe_row(i)}, column {col.name!r}: value {int(a[i])} out of "
                              f"range{why} ({int(bad.sum())} row(s) out of range)")


def _check_known(a: np.ndarray, col: Column, source: str) -> None:
    """Names outside ``col.known`` are unknown: say which, on which row, and what names exist."""
    unknown = ~pd.Series(a, dtype=object).isin(col.known).to_numpy()
    if unknown.any():
        i = _first(unknown)
        some = ", ".join(map(str, col.known[:5])) + (", ..." if len(col.known) > 5 else "")
        what = col.range_text or f"one of the {len(col.known)} known {col.description or 'names'}"
        raise SubmissionError(f"{source}: row {i}, column {col.name!r}: {a[i]!r} is unknown ({int(unknown.sum())} "
                              f"row(s) with unknown names); expected {what} ({some})")


def _keys(ids: list[np.ndarray], expected: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One int64 key per row for the submission and the template; -1 where a value is not in the template."""
    key = np.zeros(len(ids[0]), dtype=np.int64)
    want = np.zeros(len(expected[0]), dtype=np.int64)
    unknown = np.zeros(len(ids[0]), dtype=bool)
    for got, exp in zip(ids, expected):
        domain = pd.Index(pd.unique(exp))
        radix = len(domain)
        codes = domain.get_indexer(got)
        unknown |= codes < 0
        key = key * radix + np.maximum(codes, 0)
        want = want * radix + domain.get_indexer(exp)
    key[unknown] = -1
    return key, want


def check_table(predictions, spec: TableSpec, expected: pd.DataFrame, split: str) -> pd.DataFrame:
    """Check a table submission against ``expected`` (the template's id columns, in scoring order).

    ``predictions``: a DataFrame or a path (see :func:`read_table`: its headers are
    checked against ``spec``'s columns and ``len(expected)`` rows before it is
    loaded). Returns a DataFrame of the value columns aligned to ``expected``'s rows
    (floats as float64, ints as int64). Raises :class:`SubmissionError` naming the
    source, column and first offending row.
    """
    source = source_of(predictions)
    table = as_table(predictions, len(expected), spec.columns).reset_index(drop=True)
    twice = sorted({str(c) for c in table.columns[table.columns.duplicated()]})
    if twice:
        raise SubmissionError(f"{source}: column(s) {twice} appear more than once; expected each column once")
    missing = [c for c in spec.columns if c not in table.columns]
    if missing:
        raise _missing(source, missing, table.columns, spec.columns)
    ids = [_column(table, c, source) for c in spec.ids]
    id_row = (lambda i: f" ({spec.show({c.name: a[i] for c, a in zip(spec.ids, ids)})})") if spec.id_format else (lambda i: "")
    for c, a in zip(spec.ids, ids):
        if c.kind == "int":
            _check_range(a, c, source, lambda i: "")
        if c.known is not None:
            _check_known(a, c, source)
    values = {}
    for c in spec.values:
        a = _column(table, c, source)
        if c.kind == "int":
            _check_range(a, c, source, id_row)
        values[c.name] = a
    exp = [expected[c.name].to_numpy() for c in spec.ids]
    if spec.unordered:
        if len(ids) != 2:
            raise ValueError("unordered ids need exactly two id columns")
        same = ids[0] == ids[1]
        if same.any():
            i = _first(same)
            raise SubmissionError(f"{source}: row {i} pairs node {ids[0][i]} with itself")
        ids = [np.minimum(ids[0], ids[1]), np.maximum(ids[0], ids[1])]
        exp = [np.minimum(exp[0], exp[1]), np.maximum(exp[0], exp[1])]
    key, want = _keys(ids, exp)
    order = np.argsort(key, kind="stable")
    sk = key[order]
    dup = np.flatnonzero((sk[1:] == sk[:-1]) & (sk[1:] >= 0))
    if dup.size:
        i = int(order[dup[0] + 1])
        either = "; a pair counts once in either order" if spec.unordered else ""
        raise SubmissionError(f"{source}: {spec.show({c.name: a[i] for c, a in zip(spec.ids, ids)})} appears more "
                              f"than once ({dup.size} repeated row(s){either}), first at rows {int(order[dup[0]])} and {i}")
    pos = pd.Index(want).get_indexer(key)  # template row of each submission row; -1 = not a template id
    if (pos < 0).any():
        i = _first(pos < 0)
        raise SubmissionError(
            f"{source}: {int((pos < 0).sum())} row(s) are not {split} {spec.items}{spec.scope}, e.g. "
            f"{spec.show({c.name: a[i] for c, a in zip(spec.ids, ids)})}; expected exactly the {len(want)} "
            f"{spec.items} of the template (first such row: {i})")
    if len(pos) != len(want):
        got = np.zeros(len(want), dtype=bool)
        got[pos] = True
        j = _first(~got)
        raise SubmissionError(
            f"{source}: {len(want) - len(pos)} of {len(want)} {split} {spec.items}{spec.scope} missing, e.g. "
            f"{spec.show({c.name: expected[c.name].iloc[j] for c in spec.ids})}")
    out = {}
    for name, a in values.items():
        aligned = np.empty(len(want), dtype=a.dtype)
        aligned[pos] = a
        out[name] = aligned
    return pd.DataFrame(out)


def check_names(found: list[str], expected: list[str], source: str, split: str, items: str = "samples") -> None:
    """Check that ``found`` names each of ``expected`` exactly once (for one-array-per-item submissions)."""
    seen = set()
    for name in found:
        if name in seen:
            raise SubmissionError(f"{source}: {name!r} appears more than once")
        seen.add(name)
    unknown = [n for n in found if n not in set(expected)]
    if unknown:
        raise SubmissionError(f"{source}: {unknown[0]!r} is not one of the {split} {items} of the prepared store; "
                              f"expected one entry per {items[:-1] if items.endswith('s') else items}: {', '.join(expected)}")
    missing = [s for s in expected if s not in seen]
    if missing:
        raise SubmissionError(f"{source}: no entry for {len(missing)} of {len(expected)} {split} {items}: "
                              f"{', '.join(missing)}")


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as .parquet or .npz (1-D arrays, no object dtype), atomically."""
    path = Path(path)
    if path.suffix not in (".parquet", ".npz"):
        raise SubmissionError(f"{path}: unsupported format {path.suffix!r}; use .parquet or .npz")
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            arrays = {c: (table[c].to_numpy(dtype=str) if not pd.api.types.is_numeric_dtype(table[c])
                          else table[c].to_numpy()) for c in table.columns}
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)
    return path


def write_arrays(path: str | Path, arrays: dict, chunks, *, compressed: bool = False) -> Path:
    """Write one array per name as an ``.npz`` or a Zarr v2 ``.zarr`` folder, atomically; return ``path``.

    ``chunks(a)`` gives the Zarr chunk shape of array ``a``; ``compressed`` selects ``np.savez_compressed``.
    The callers (each family's ``write_predictions``) check shapes and dtypes first.
    """
    from neuroharness.loaders.io import remove, replace_dir, temp_sibling

    path = Path(path)
    arrays = {str(k): np.asarray(v) for k, v in arrays.items()}
    if path.suffix == ".npz":
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            (np.savez_compressed if compressed else np.savez)(fh, **arrays)
    elif path.suffix == ".zarr":
        import zarr

        tmp = temp_sibling(path)
        try:
            root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
            for name, a in arrays.items():
                root.create_array(name, data=a, chunks=chunks(a))
            replace_dir(tmp, path)
        finally:
            remove(tmp)
    else:
        raise SubmissionError(f"{path}: unsupported format {path.suffix!r}; use .npz or .zarr")
    return path
