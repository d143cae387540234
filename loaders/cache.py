"""Cache layout, locking and atomic writes of dataset stores.

Layout under the cache root (``$NEUROHARNESS_HOME``, default the user cache
directory ``~/.cache/neuroharness`` on Linux)::

    downloads/<file>                 raw downloads, verified by sha256
    raw/<package>-<version>/...      files extracted from a source archive
    datasets/<name>/<version>.zarr   homogenized stores
    locks/<name>-<version>.lock      one writer per store

``$NEUROHARNESS_HOME`` may also be an fsspec URL (``s3://bucket/prefix``,
``gs://...``, ``hf://datasets/ORG/NAME``, ``https://...``): a remote cache
with the same ``datasets/`` layout, read-only. Its stores are read where they
are (:func:`store_location`); anything that would write the cache (preparing,
locks, downloads) is a :class:`CacheError` saying how to publish into it.
A ``file://`` URL is a local folder.
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
from .location import StoreLocation, is_url, local_path, protocol

# errors that mean "this place cannot be written", as opposed to a missing or malformed input
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EEXIST}


def home_url() -> str | None:
    """The URL of a remote cache (``$NEUROHARNESS_HOME`` is an fsspec URL other than ``file://``), else None."""
    env = os.environ.get("NEUROHARNESS_HOME", "")
    return env.rstrip("/") if is_url(env) else None


def read_only_error(doing: str, name: str | None = None, version: str | None = None,
                    missing: bool = False) -> CacheError:
    """The error for ``doing`` (e.g. "prepare celegans-connectome 1.0") in a remote cache: it is read-only,
    and how to publish a store into it; ``missing``: say that the store is not there."""
    url = home_url()
    what = f"datasets/{name}/{version}.zarr" if name else "datasets/NAME/VERSION.zarr"
    there = f" and has no store {url}/{what}" if missing else ""
    cmd = f"neuroharness datasets prepare {name or 'NAME'}"
    upload = {"s3": f"`aws s3 sync DIR/{what} {url}/{what}`", "s3a": f"`aws s3 sync DIR/{what} {url}/{what}`",
              "gs": f"`gcloud storage rsync -r DIR/{what} {url}/{what}`",
              # `datasets publish` puts <version>.zarr at a repository's root, not this cache layout: such a
              # repository is opened with open_dataset(NAME, store=...) or installed with --from-hub instead
              "hf": f"`huggingface-cli upload` of DIR/{what} to {what} of that repository (a repository made by "
                    "`neuroharness datasets publish` is read with `neuroharness datasets prepare NAME --from-hub "
                    "ORG/NAME` or open_dataset(NAME, store='hf://datasets/ORG/NAME/VERSION.zarr'))"}.get(
        protocol(url), f"a copy of DIR/{what} at {url}/{what}")
    return CacheError(
        f"cannot {doing}: NEUROHARNESS_HOME is the remote cache {url}, which is read-only{there}. Publish into it "
        f"by preparing the store in a local cache and uploading it: NEUROHARNESS_HOME=DIR {cmd}, then {upload}; "
        "or set NEUROHARNESS_HOME to a local folder to prepare there")


def home() -> Path:
    """The local cache root: ``$NEUROHARNESS_HOME`` or the platform's user cache dir (created).

    Everything that writes the cache goes through here, so a remote ``$NEUROHARNESS_HOME`` (read-only)
    is a :class:`CacheError` saying so; readers use :func:`store_location`."""
    if home_url() is not None:
        raise read_only_error("write the cache")
    env = os.environ.get("NEUROHARNESS_HOME")
    root = local_path(env) if env else Path(platformdirs.user_cache_dir("neuroharness"))
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
    """Local path of the Zarr store of dataset ``name`` at ``version`` (where :meth:`prepare` writes it);
    a remote cache has none (:class:`CacheError`): read it through :func:`store_location`."""
    url = home_url()
    if url is not None:
        raise CacheError(f"the {name} {version} store is in the remote cache {url} (NEUROHARNESS_HOME), so it has "
                         f"no local path: read it where it is, {url}/datasets/{name}/{version}.zarr, through "
                         f"get_loader({name!r}).store_location() or open_dataset({name!r})")
    return home() / "datasets" / name / f"{version}.zarr"


def store_location(name: str, version: str) -> StoreLocation:
    """Where the store of dataset ``name`` at ``version`` is (or would be): in the local cache, or
    below a remote ``$NEUROHARNESS_HOME``."""
    url = home_url()
    if url is not None:
        return StoreLocation(f"{url}/datasets/{name}/{version}.zarr")
    return StoreLocation(home() / "datasets" / name / f"{version}.zarr")


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
