"""Dataset loaders: one module per data source, registered by name.

>>> from neuroharness.loaders import list_datasets, prepare, open_dataset
"""
from __future__ import annotations

import os
from pathlib import Path

import xarray as xr

from .base import DATASETS, DatasetLoader, register_dataset


def list_datasets() -> list[str]:
    """Names of every registered dataset."""
    return DATASETS.names()


def get_loader(name: str) -> DatasetLoader:
    """The loader of dataset ``name`` (``UnknownNameError`` lists valid names)."""
    return DATASETS.get(name)


def prepare(name: str, source: os.PathLike | str | None = None, force: bool = False,
            only: str | list[str] | None = None) -> Path:
    """Fetch, verify and homogenize dataset ``name``; return its store path.

    ``only`` selects parts of a dataset made of parts (the graphs of ``vesselgraph``)."""
    return get_loader(name).prepare(source, force=force, only=only)


def open_dataset(name: str, version: str | None = None) -> xr.Dataset | xr.DataTree:
    """Open dataset ``name`` lazily from its Zarr store, preparing it if needed
    (an ``xarray.DataTree`` for datasets stored as one group per part, e.g. ``fisbe``)."""
    return get_loader(name).open(version)


__all__ = ["DATASETS", "DatasetLoader", "register_dataset", "list_datasets", "get_loader", "prepare", "open_dataset"]
