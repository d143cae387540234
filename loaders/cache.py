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
import os
from pathlib import Path

import filelock
import platformdirs

from .io import remove


def home() -> Path:
    """The cache root: ``$NEUROHARNESS_HOME`` or the platform's user cache dir."""
    env = os.environ.get("NEUROHARNESS_HOME")
    root = Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("neuroharness"))
    root.mkdir(parents=True, exist_ok=True)
    return root


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
