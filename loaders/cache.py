"""Cache layout, locking and atomic writes of dataset stores.

Layout under the cache root (``$NEUROHARNESS_HOME``, default the user cache
directory ``~/.cache/neuroharness`` on Linux)::

    downloads/<file>                 raw downloads, verified by sha256
    raw/<package>-<version>/...      files extracted from a source archive
    datasets/<name>/<version>.zarr   homogenized stores
    locks/<name>-<version>.lock      one writer per store
"""
from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

import filelock
import platformdirs

from neuroharness.errors import CacheError

from .io import remove

# errors that mean "this place cannot be written", as opposed to a missing or malformed input
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EEXIST}


def home() -> Path:
    """The cache root: ``$NEUROHARNESS_HOME`` or the platform's user cache dir."""
    env = os.environ.get("NEUROHARNESS_HOME")
    root = Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("neuroharness"))
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _cache_error(root, e) from None
    return root


def _cache_error(root: Path, e: OSError) -> CacheError:
    where = f"{e.filename}" if e.filename else str(root)
    return CacheError(f"the cache {root} cannot be written ({where}: {e.strerror or e}); set NEUROHARNESS_HOME "
                      "to a writable folder (stores already prepared there are still read without writing)")


@contextlib.contextmanager
def writable():
    """Turn an error writing inside the cache into a :class:`CacheError` that names the place and the remedy.

    Errors about other paths (a ``--source`` file that cannot be read) pass through unchanged.
    """
    root = home()
    try:
        yield
    except OSError as e:
        inside = False
        if e.errno in _NOT_WRITABLE and e.filename:
            with contextlib.suppress(ValueError, OSError):
                inside = Path(os.path.abspath(e.filename)).is_relative_to(os.path.abspath(root))
        if inside:
            raise _cache_error(root, e) from None
        raise


def store_path(name: str, version: str) -> Path:
    """Path of the Zarr store of dataset ``name`` at ``version``."""
    return home() / "datasets" / name / f"{version}.zarr"


def downloads_dir() -> Path:
    d = home() / "downloads"
    d.mkdir(parents=True, exist_ok=True)
    return d


@contextlib.contextmanager
def lock(key: str, timeout: float = 3600):
    """Hold an inter-process lock named ``key`` (e.g. ``celegans-connectome-1.0``)."""
    d = home() / "locks"
    d.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(d / f"{key}.lock"), timeout=timeout):
        yield


def remove_stale_temps(final: Path) -> None:
    """Delete temp siblings that an interrupted write left behind."""
    if final.parent.exists():
        for p in final.parent.glob(f".{final.name}.tmp-*"):
            remove(p)
