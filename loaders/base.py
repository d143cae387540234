"""The dataset loader base class: fetch raw files, homogenize, write one store."""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import ClassVar

import numpy as np
import xarray as xr
import zarr

from neuroharness import __version__
from neuroharness.errors import DataFormatError, NeuroharnessError
from neuroharness.progress import status
from neuroharness.registry import Registry

from . import cache, fetch

DATASETS: Registry["DatasetLoader"] = Registry("dataset", "neuroharness.loaders")


def register_dataset(cls):
    """Class decorator: register a :class:`DatasetLoader` under ``cls.name``."""
    DATASETS.register(cls.name, cls())
    return cls


class DatasetLoader:
    """One data source turned into one versioned, homogenized xarray store.

    Subclasses set the card fields and implement :meth:`fetch` (raw files,
    verified) and :meth:`build` (raw files -> ``xarray.Dataset``). The base
    class does caching, locking, provenance attributes and the atomic write.
    Bump ``version`` whenever :meth:`build` would produce different content.

    A loader whose data are many differently shaped parts sets ``tree = True``:
    its :meth:`write` then writes a Zarr v2 hierarchy (one group per part), the
    checks and the content checksum cover every group, and :meth:`open` returns
    an ``xarray.DataTree``.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str] = ""
    license: ClassVar[str]
    citation: ClassVar[str]
    homepage: ClassVar[str] = ""
    tree: ClassVar[bool] = False  # the store is an xarray.DataTree (groups), not one Dataset
    parts: ClassVar[str] = ""  # what ``prepare(only=...)`` selects (e.g. "graph"); "" = no selectable parts

    def fetch(self, source: os.PathLike | str | None) -> tuple[dict[str, Path], str]:
        """Return ``({raw name: local path}, origin)``; ``source`` overrides the default.

        Loaders with :attr:`parts` take ``fetch(source, only=None)``: ``only`` is
        the sorted list of the parts to fetch, or None for the default selection.
        """
        raise NotImplementedError

    def build(self, files: dict[str, Path]) -> xr.Dataset:
        """Homogenize the raw files into a Dataset (dims, coords, units)."""
        raise NotImplementedError

    def write(self, files: dict[str, Path], target: Path) -> None:
        """Write the homogenized store (Zarr v2) at ``target``.

        The default writes :meth:`build`'s Dataset in one go; loaders of data
        too large for memory override this to stream (provenance attributes
        and consolidation are added by :meth:`prepare` afterwards).
        """
        self.build(files).to_zarr(target, mode="w", consolidated=False, zarr_format=2)

    def summary(self, ds: xr.Dataset | xr.DataTree) -> list[str]:
        """Lines describing a prepared store (Dataset, or DataTree for ``tree`` loaders) for ``datasets info``."""
        return []

    def card(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "title": self.title,
            "description": " ".join(self.description.split()),
            "license": self.license,
            "citation": self.citation,
            "homepage": self.homepage,
        }

    # -- machinery shared by every dataset ---------------------------------
    def store_path(self, version: str | None = None) -> Path:
        return cache.store_path(self.name, version or self.version)

    def prepare(self, source: os.PathLike | str | None = None, force: bool = False,
                only: str | list[str] | None = None) -> Path:
        """Fetch, verify and homogenize into the cache; return the store path.

        ``only`` selects some of the dataset's :attr:`parts` (e.g. graphs); the
        store records the selection (attribute ``only``, sorted). Idempotent: an
        existing store is reused unless ``force``; one built from another
        ``source`` than the one given, or (where ``source`` or ``only`` is given)
        with another ``only``, is an error. The store appears atomically, so an
        interrupted run leaves nothing and can be rerun.
        """
        only = self._selection(only)
        path = self.store_path()
        with cache.lock(f"{self.name}-{self.version}"):
            if path.exists() and not force:
                recorded = zarr.open_group(str(path), mode="r").attrs
                if source is not None and recorded.get("source_argument") != str(source):
                    raise NeuroharnessError(
                        f"{path} was built from {recorded.get('source_argument') or 'the default source'}, not {source}; "
                        "pass force=True (--force) to rebuild it"
                    )
                # an explicit source without ``only`` asks for its default selection (e.g. every part it holds)
                if (source is not None or only is not None) and recorded.get("only") != only:
                    built, wanted = ("the default selection" if s is None else f"only={s}" for s in (recorded.get("only"), only))
                    raise NeuroharnessError(
                        f"{path} was built with {built}, not {wanted}; pass force=True (--force) to rebuild it"
                    )
                return path
            cache.remove_stale_temps(path)
            status(f"[{self.name}] fetching raw files")
            files, origin = self.fetch(source, only=only) if self.parts else self.fetch(source)
            status(f"[{self.name}] homogenizing {len(files)} raw files")
            tmp = cache.temp_sibling(path)
            try:
                self.write(files, tmp)
                if self.tree:
                    # chunks=None: lazy arrays read by zarr directly, twice as fast as dask for the checksum
                    ds = xr.open_datatree(tmp, engine="zarr", consolidated=False, chunks=None, zarr_format=2)
                    check_tree(ds, self.name)
                    checksum = tree_checksum(ds)
                else:
                    ds = xr.open_zarr(tmp, consolidated=False, chunks={})
                    check_dataset(ds, self.name)
                    checksum = content_checksum(ds)
                attrs = dict(
                    dataset=self.name,
                    dataset_version=self.version,
                    title=self.title,
                    source=origin,
                    source_argument=None if source is None else str(source),
                    only=only,
                    license=self.license,
                    citation=self.citation,
                    harness_version=__version__,
                    created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    raw_sha256=json.dumps({k: fetch.sha256_path(p) for k, p in sorted(files.items())}),
                    content_sha256=checksum,
                )
                group = zarr.open_group(str(tmp), mode="r+", zarr_format=2)
                group.attrs.update(attrs)
                zarr.consolidate_metadata(str(tmp), zarr_format=2)
                cache.replace_dir(tmp, path)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            status(f"[{self.name}] wrote {path}")
            return path

    def _selection(self, only: str | list[str] | None) -> list[str] | None:
        """``only`` as a sorted list without repeats; an error for loaders without :attr:`parts`."""
        if only is None:
            return None
        names = sorted({only} if isinstance(only, str) else {str(x) for x in only})
        if not self.parts:
            raise NeuroharnessError(f"dataset {self.name} cannot be prepared in parts; only={names} (--only) applies "
                                    "to datasets made of selectable parts, e.g. the graphs of vesselgraph")
        if not names:
            raise NeuroharnessError(f"dataset {self.name}: only=[] selects no {self.parts}; give at least one or None")
        return names

    def open(self, version: str | None = None, source=None) -> xr.Dataset | xr.DataTree:
        """Open the store lazily (dask-backed), preparing it first if needed.

        Returns an ``xarray.Dataset``, or an ``xarray.DataTree`` for ``tree`` loaders.
        """
        version = version or self.version
        path = self.store_path(version)
        if not path.exists():
            if version != self.version:
                raise NeuroharnessError(
                    f"{self.name} version {version} is not in the cache ({path}) and this harness "
                    f"builds only version {self.version}"
                )
            self.prepare(source)
        if self.tree:
            return xr.open_datatree(path, engine="zarr", chunks={}, consolidated=True)
        return xr.open_zarr(path, chunks={}, consolidated=True)


def check_dataset(ds: xr.Dataset, name: str) -> None:
    """Every data variable carries ``units`` and ``long_name`` (CF style)."""
    for v in ds.data_vars:
        missing = [a for a in ("units", "long_name") if a not in ds[v].attrs]
        if missing:
            raise DataFormatError(f"{name}: data variable {v!r} lacks attribute(s) {missing}")


def check_tree(tree: xr.DataTree, name: str) -> None:
    """:func:`check_dataset` on every group of a DataTree (each group's own variables)."""
    for node in tree.subtree:
        check_dataset(node.to_dataset(inherit=False), f"{name} group {node.path!r}")


def tree_checksum(tree: xr.DataTree, block_bytes: int = 64 << 20) -> str:
    """sha256 over every group of a DataTree: group paths in sorted order, each with
    :func:`content_checksum` of the group's own variables (read block-wise)."""
    h = hashlib.sha256()
    nodes = {node.path: node for node in tree.subtree}
    for path in sorted(nodes):
        h.update(f"group|{path}|".encode())
        _update_checksum(h, nodes[path].to_dataset(inherit=False), block_bytes)
    return h.hexdigest()


def content_checksum(ds: xr.Dataset, block_bytes: int = 64 << 20) -> str:
    """sha256 over names, dims, dtypes and bytes of every variable, in sorted order.

    Independent of chunking and of provenance attributes, so two stores with
    the same content have the same checksum wherever they were built. Reads
    large variables in slices along their first dim (``block_bytes`` each),
    so it works on stores larger than memory.
    """
    h = hashlib.sha256()
    _update_checksum(h, ds, block_bytes)
    return h.hexdigest()


def _update_checksum(h, ds: xr.Dataset, block_bytes: int) -> None:
    for name in sorted(map(str, ds.variables)):
        var = ds.variables[name]
        h.update(f"{name}|{var.dims}|{var.dtype.str}|{var.shape}".encode())
        if var.ndim == 0 or var.dtype.kind in "OUS":
            values = np.asarray(var.values)
            if values.dtype.kind in "OUS":
                h.update("\x1f".join(map(str, values.ravel().tolist())).encode())
            else:
                h.update(np.ascontiguousarray(values).tobytes())
            continue
        row_bytes = max(1, var.dtype.itemsize * int(np.prod(var.shape[1:], dtype=np.int64)))
        step = max(1, block_bytes // row_bytes)
        for start in range(0, var.shape[0], step):
            block = np.asarray(var[start : start + step].values)
            h.update(np.ascontiguousarray(block).tobytes())
