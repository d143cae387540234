"""Dataset loaders: one package per data source, found by name through light dataset cards.

>>> from neuroharness.loaders import list_datasets, get_card, prepare, open_dataset

Every family folder (``celegans/``, ``fisbe/``, ``vesselgraph/``) holds a
``cards.py`` defining ``CARDS``, a tuple of :class:`DatasetCard`. Listing
datasets and reading their cards imports only those modules (no numpy,
xarray or zarr); :func:`get_loader` imports a card's loader class when it is
first needed. Adding a dataset means adding a family folder with a ``cards.py``.

Stores are read from the local cache, from a remote cache
(``$NEUROHARNESS_HOME`` set to an fsspec URL such as ``s3://bucket/prefix``:
read-only) or from any store URL (``open_dataset(name, store=URL)``); see
:mod:`neuroharness.loaders.location`.
"""
from __future__ import annotations

import importlib
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from neuroharness.errors import NeuroharnessError, UsageError
from neuroharness.registry import Registry

from .card import DatasetCard, DatasetCardError

if TYPE_CHECKING:  # heavy: imported on first use only
    import xarray as xr

    from .base import DatasetLoader, TreeLoader

DATASETS: Registry[DatasetCard] = Registry("dataset", "neuroharness.loaders")
_LOADERS: dict[str, "DatasetLoader"] = {}
_LOCK = threading.Lock()


def list_datasets() -> list[str]:
    """Names of every dataset whose card was found (sorted)."""
    return DATASETS.names()


def get_card(name: str) -> DatasetCard:
    """The card of dataset ``name`` (``UnknownNameError`` lists valid names); imports nothing heavy."""
    return DATASETS.get(name)


def get_loader(name: str) -> "DatasetLoader":
    """The loader of dataset ``name``: its card's loader class, imported and instantiated once per name."""
    card = get_card(name)
    with _LOCK:
        if name not in _LOADERS:
            module, _, attr = card.loader.partition(":")
            obj = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
            if getattr(obj, "card", None) != card:
                raise NeuroharnessError(f"dataset {name}: loader {card.loader} has card {getattr(obj, 'card', None)!r}, "
                                        "expected the card registered under that name (set its class attribute card)")
            _LOADERS[name] = obj()
        return _LOADERS[name]


def prepare(name: str, source: os.PathLike | str | None = None, force: bool = False,
            only: str | list[str] | None = None, strict: bool = False,
            layout: os.PathLike | str | None = None) -> Path | str:
    """Fetch, verify and homogenize dataset ``name``; return its store path (its URL when
    ``$NEUROHARNESS_HOME`` is a remote cache, which is read-only: only a store already there is reused).

    ``only`` selects parts of a dataset made of parts (the graphs of ``vesselgraph``);
    ``layout`` is a layout file for datasets described by one (the EEG datasets);
    ``strict`` fails instead of skipping and reporting bad parts (EEG recordings)."""
    return get_loader(name).prepare(source, force=force, only=only, strict=strict, layout=layout)


def open_dataset(name: str, version: str | None = None, store: os.PathLike | str | None = None,
                 storage_options: dict | None = None) -> "xr.Dataset | xr.DataTree":
    """Open dataset ``name`` lazily from its Zarr store: an ``xarray.Dataset``, or an
    ``xarray.DataTree`` for datasets whose loader is a :class:`TreeLoader` (one group per
    part, e.g. ``fisbe``).

    Without ``store``, the store of the cache (``$NEUROHARNESS_HOME``, a folder or a
    read-only fsspec URL), preparing it first where the cache is local. With ``store``
    (a path or an fsspec URL: ``s3://``, ``gs://``, ``hf://``, ``https://``, ``file://``),
    that store, checked to be one of ``name`` (and of ``version`` if given); nothing is
    prepared. ``storage_options`` go to fsspec for ``store``."""
    loader = get_loader(name)
    if store is None:
        if storage_options:
            raise UsageError(f"open_dataset({name!r}): storage_options apply to store=URL; for the cache set "
                             "NEUROHARNESS_STORAGE_OPTIONS (see neuroharness.loaders.location)")
        return loader.open(version)
    return loader.open_store(store, version, storage_options)


def __getattr__(name: str):
    # the base classes import numpy/xarray/zarr: load them only when asked for
    if name in ("DatasetLoader", "TreeLoader"):
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DATASETS", "DatasetCard", "DatasetCardError", "DatasetLoader", "TreeLoader", "get_card", "get_loader",
           "list_datasets", "open_dataset", "prepare"]
