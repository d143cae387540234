"""I/O helpers every loader shares: atomic file writes, CF-annotated Zarr v2 arrays, safe archive members.

- :func:`temp_sibling`, :func:`atomic_path`, :func:`write_bytes_atomic`,
  :func:`write_text_atomic`: nothing half-written is ever visible. A file is
  written to a temporary sibling (same directory, so the rename is atomic)
  and moved into place with :func:`os.replace`; on error the sibling is removed.
  :func:`replace_dir` swaps a finished directory (a store) into place;
  :func:`remove_abandoned_temps` deletes what a killed writer left.
  (Downloads keep their own ``.part`` file in :mod:`.fetch`: it is resumed, not removed, on error.)
- :func:`create_array`: a Zarr v2 array with ``_ARRAY_DIMENSIONS`` and the CF
  ``units`` / ``long_name`` attributes every store variable carries.
- :func:`safe_member`: an archive member name checked for path traversal.

Standard library only at import time (numpy and zarr are imported by the
functions that need them), so the light parts of the package can use it.
"""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import Iterator

from neuroharness.errors import DataFormatError


# -- atomic writes -------------------------------------------------------------------------------
def temp_sibling(path: os.PathLike | str) -> Path:
    """A unique temporary path next to ``path`` (``.<name>.tmp-<hex>``; same filesystem, so rename is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")


def remove_abandoned_temps(path: os.PathLike | str, before: float) -> list[Path]:
    """Delete the temporary siblings of ``path`` (:func:`temp_sibling` names) last modified before ``before``
    (a :func:`time.time` value, e.g. when the caller started); return what was deleted.

    For small files written through :func:`atomic_path` without a lock (records): such a write renames
    its temporary file moments after creating it, so one that already existed when the caller started
    was left by a killed process, while a concurrent writer's newer one is left alone. Not for stores,
    whose temporary folder is written for minutes: those are cleaned under the store's lock.
    """
    path = Path(path)
    gone = []
    if path.parent.is_dir():
        for p in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
            try:
                if p.lstat().st_mtime >= before:
                    continue
            except FileNotFoundError:  # renamed into place or removed meanwhile
                continue
            remove(p)
            gone.append(p)
    return gone


def remove(path: Path) -> None:
    """Delete a file or a directory tree if it exists (errors ignored: used for cleanup)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: os.PathLike | str) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; on success move it to ``path``, on error delete it.

    >>> with atomic_path(dest) as tmp:
    ...     tmp.write_bytes(data)
    """
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        remove(tmp)
        raise


def write_bytes_atomic(path: os.PathLike | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: os.PathLike | str, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; return ``path``."""
    return write_bytes_atomic(path, text.encode(encoding))


def copy_stream_atomic(src, path: os.PathLike | str, block: int = 1 << 20) -> Path:
    """Copy the binary file object ``src`` to ``path`` atomically, ``block`` bytes at a time; return ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as dst:
        while chunk := src.read(block):
            dst.write(chunk)
    return Path(path)


def replace_dir(tmp: os.PathLike | str, final: os.PathLike | str) -> None:
    """Move the finished directory ``tmp`` to ``final``, replacing an old one.

    The old store is first renamed aside, so a reader never sees a half-written
    store; only the instant between the two renames has no store at all.
    """
    tmp, final = Path(tmp), Path(final)
    old = None
    if final.exists():
        old = temp_sibling(final)
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# -- Zarr v2 arrays with CF attributes -----------------------------------------------------------
def create_array(group, name: str, *, dims: tuple[str, ...] | list[str], long_name: str, units: str | None = None,
                 attrs: dict | None = None, data=None, shape=None, dtype=None, chunks=None, compressor=None,
                 fill_value=None, chunk_key_encoding: dict | None = None):
    """Create array ``name`` in the Zarr v2 ``group`` with xarray's dims and CF attributes; return it.

    Attributes are ``_ARRAY_DIMENSIONS`` = ``dims``, then ``units`` (omitted
    only for label coordinates such as an axis name, which have none), then
    ``long_name``, then ``attrs``. Give ``data`` (written at once; ``shape``,
    ``dtype`` and by default ``chunks`` follow it) or ``shape`` and ``dtype``
    for an array filled later. ``fill_value`` defaults to None: xarray reads a
    Zarr v2 fill value as ``_FillValue`` and would mask real values equal to it.
    """
    if not isinstance(long_name, str) or not long_name:
        raise ValueError(f"array {name!r}: long_name is {long_name!r}, expected a non-empty string")
    if units is not None and (not isinstance(units, str) or not units):
        raise ValueError(f"array {name!r}: units is {units!r}, expected a non-empty string or None")
    if data is not None:
        import numpy as np

        data = np.asarray(data)
        shape, dtype = data.shape, data.dtype
        if chunks is None:
            chunks = tuple(max(1, s) for s in shape)
    if shape is None or dtype is None:
        raise ValueError(f"array {name!r}: give data, or shape and dtype")
    if len(dims) != len(shape):
        raise ValueError(f"array {name!r}: dims {tuple(dims)} do not match shape {tuple(shape)}")
    cf = {"_ARRAY_DIMENSIONS": list(dims)}
    if units is not None:
        cf["units"] = units
    cf["long_name"] = long_name
    extra = {}
    if chunk_key_encoding is not None:
        extra["chunk_key_encoding"] = chunk_key_encoding
    arr = group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill_value,
                             compressors=compressor, attributes={**cf, **(attrs or {})}, **extra)
    if data is not None and data.size:
        arr[...] = data
    return arr


# -- archive members -------------------------------------------------------------------------------
def safe_member(name: str, archive: os.PathLike | str, expected: str = "relative paths inside the archive") -> str:
    """``name`` as a POSIX path; raise :class:`DataFormatError` if extracting it could escape a directory.

    Rejects absolute paths (``/x``, ``\\x``), any ``..`` component and drive
    letters (``C:x``). The message names the archive, the member and ``expected``
    (e.g. ``"relative paths like completely/train/<sample>.zarr/..."``).
    """
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise DataFormatError(f"{archive}: unsafe member name {name!r} (absolute, with '..' or a drive letter); "
                              f"expected {expected}")
    return p.as_posix()
