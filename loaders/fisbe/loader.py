"""The ``fisbe`` loader: source -> store (:mod:`.store`), and opening the store."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..base import TreeLoader
from . import cards, zenodo
from .release import SPLITS, SUBSETS
from .store import local_release, write_store


class FisbeLoader(TreeLoader):
    card = cards.FISBE

    def fetch(self, source, only=None):
        if source is None or str(source).startswith(("http://", "https://")):
            return zenodo.download_release(None if source is None else str(source))
        path = Path(source).expanduser()
        return local_release(path), f"local copy {path}"

    def write(self, files, target):
        write_store(files, target, self.write_parts)

    def summary(self, tree):
        idx = sample_index(tree)
        lines = [f"{'subset':<11} {'split':<6} {'samples':>7} {'neurons':>8}  {'median size (z, y, x)':>24}"]
        for subset in SUBSETS:
            for split in SPLITS:
                m = idx[(idx.subset == subset) & (idx.split == split)]
                if len(m):
                    med = "x".join(str(int(np.median(m[f"size_{a}"]))) for a in "zyx")
                    lines.append(f"{subset:<11} {split:<6} {len(m):>7} {int(m.n_instances.sum()):>8}  {med:>24}")
        lines.append(f"{'total':<18} {len(idx):>7} {int(idx.n_instances.sum()):>8}")
        lines.append(f"release: {tree.attrs.get('release_note', '?')}")
        groups = [tree[s] for s in idx["sample"] if s in tree.children]
        levels = [len(g.attrs.get("multiscales", [{}])[0].get("datasets", [])) for g in groups]
        images = [len(g.attrs.get("label_images", {})) for g in groups]
        if groups:
            span = lambda v: f"{min(v)}" if min(v) == max(v) else f"{min(v)}-{max(v)}"  # noqa: E731
            lines.append(f"OME-NGFF: {span(levels)} raw pyramid level(s) and {span(images)} label image(s) per sample; "
                         "a viewer opens <store>/<sample>")
        return lines


def loader() -> FisbeLoader:
    """The registered ``fisbe`` loader (one instance)."""
    from .. import get_loader

    return get_loader("fisbe")


def store_path(version: str | None = None) -> Path:
    """Local path of the prepared store (it may not exist yet); a remote cache has none: see :func:`store_location`."""
    return loader().store_path(version)


def store_location(version: str | None = None):
    """Where the store is (or would be): a :class:`~neuroharness.loaders.location.StoreLocation`,
    local or below a remote ``$NEUROHARNESS_HOME``."""
    return loader().store_location(version)


def open_fisbe(version: str | None = None, source: os.PathLike | str | None = None) -> xr.DataTree:
    """The FISBe store as a lazy ``xarray.DataTree`` (preparing it from ``source`` first if needed)."""
    return loader().open(version, source)


INDEX_COLUMNS = ("subset", "split", "n_instances", "size_z", "size_y", "size_x")


def read_sample_index(path) -> pd.DataFrame:
    """:func:`sample_index` of the store at ``path`` (a path, an fsspec URL or a ``StoreLocation``), read
    with zarr from the root's index arrays (a few bytes each) without building an ``xarray.DataTree``
    of every sample group."""
    from neuroharness.errors import DataFormatError

    from ..location import as_location

    root = as_location(path).open_group()
    try:
        cols = {c: np.asarray(root[c][...]) for c in ("sample", *INDEX_COLUMNS)}
    except KeyError as e:
        raise DataFormatError(f"{path}: the sample index lacks array {e}; expected a store written by "
                              "`neuroharness datasets prepare fisbe`") from None
    df = pd.DataFrame({"sample": cols["sample"].astype(str), **{c: cols[c] for c in INDEX_COLUMNS}})
    df["subset"] = df["subset"].astype(str)
    df["split"] = df["split"].astype(str)
    return df


def sample_index(tree: xr.DataTree) -> pd.DataFrame:
    """One row per sample: sample, subset, split, n_instances, size_z, size_y, size_x."""
    root = tree.to_dataset(inherit=False)
    df = pd.DataFrame({"sample": root["sample"].values.astype(str),
                       **{c: root[c].values for c in INDEX_COLUMNS}})
    df["subset"] = df["subset"].astype(str)
    df["split"] = df["split"].astype(str)
    return df
