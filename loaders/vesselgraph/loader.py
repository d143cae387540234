"""The ``vesselgraph`` loader: sources -> store (:mod:`.store`), and opening graphs of the store."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from neuroharness.errors import DataFormatError, NeuroharnessError

from ..base import TreeLoader
from . import cards
from .download import download_graphs
from .layout import GraphRef, graphs_in_dir, graphs_in_zip, unique
from .store import write_store
from .table import ENV_TABLE, graph_order, graph_table

DEFAULT_GRAPH = "BALBc_no1"  # = ogbl-vessel, the graph of the tasks' default option


def local_files(source: Path, only: list[str] | None = None) -> dict[str, Path]:
    """Raw files of the graphs in a local copy: ``{"<graph>/<file name>": path}`` (a zip or the CSVs)."""
    if not source.exists():
        raise DataFormatError(f"VesselGraph source {source} does not exist; expected a folder with "
                              "<file_id>_{nodes,edges}_processed.csv files (loose, in subfolders or in release zips) or one zip")
    if source.is_file():
        if source.suffix.lower() != ".zip":
            raise DataFormatError(f"VesselGraph source {source} is a file but not a zip archive; expected a .zip or a folder")
        refs = graphs_in_zip(source)
    else:
        refs = graphs_in_dir(source)
    found = unique(refs)
    if not found:
        raise DataFormatError(f"VesselGraph source {source}: no graphs found; expected <file_id>_nodes_processed.csv "
                              "with <file_id>_edges_processed.csv beside it (loose, in <file_id>/ or "
                              "<graph>/<file_id>/ folders, or inside zips)")
    if only is not None:
        missing = [g for g in only if g not in found]
        if missing:
            raise DataFormatError(f"VesselGraph source {source}: no graph {', '.join(missing)}; it holds "
                                  f"{', '.join(graph_order(found))}")
        found = {g: found[g] for g in only}
    files: dict[str, Path] = {}
    for ref in found.values():
        files.update(_raw_files(ref))
    return files


def _raw_files(ref: GraphRef) -> dict[str, Path]:
    if ref.nodes.member is not None:
        return {f"{ref.name}/{ref.nodes.path.name}": ref.nodes.path}
    return {f"{ref.name}/{f.path.name}": f.path for f in (ref.nodes, ref.edges, ref.atlas) if f is not None}


class VesselGraphLoader(TreeLoader):
    card = cards.VESSELGRAPH

    def fetch(self, source, only=None):
        if source is None or str(source).startswith(("http://", "https://")):
            return download_graphs(only or [DEFAULT_GRAPH], None if source is None else str(source))
        path = Path(source).expanduser()
        return local_files(path, only), f"local copy {path}"

    def write(self, files, target):
        write_store(files, target, self.write_parts)

    def summary(self, tree):
        idx = graph_index(tree)
        lines = [f"{'graph':<18} {'kind':<9} {'nodes':>11} {'edges':>11} {'isolated':>9} {'mean degree':>11}  atlas"]
        for row in idx.itertuples():
            attrs = tree[row.graph].attrs
            mean = 2 * row.n_edges / row.n_nodes if row.n_nodes else float("nan")
            atlas = f"yes ({attrs.get('n_regions', '?')} regions)" if row.has_atlas else "no"
            lines.append(f"{row.graph:<18} {row.kind:<9} {row.n_nodes:>11,} {row.n_edges:>11,} "
                         f"{attrs.get('n_isolated', -1):>9,} {mean:>11.3f}  {atlas}")
        only = tree.attrs.get("only")
        lines.append(f"selection: {'default' if only is None else 'only ' + ' '.join(only)}; "
                     "mean degree = 2 * edges / nodes (isolated nodes included)")
        return lines


def loader() -> VesselGraphLoader:
    """The registered ``vesselgraph`` loader (one instance)."""
    from .. import get_loader

    return get_loader("vesselgraph")


def store_path(version: str | None = None) -> Path:
    """Local path of the prepared store (it may not exist yet); a remote cache has none: see :func:`store_location`."""
    return loader().store_path(version)


def store_location(version: str | None = None):
    """Where the store is (or would be): a :class:`~neuroharness.loaders.location.StoreLocation`,
    local or below a remote ``$NEUROHARNESS_HOME``."""
    return loader().store_location(version)


def _prepare_graph_if_missing(ld, graph: str, version: str | None):
    """The store's location; with no store yet, prepare one holding only ``graph`` (a remote cache,
    read-only, says so instead)."""
    location = ld.store_location(version)
    if not location.exists() and (version is None or version == ld.version):
        ld.prepare(only=[graph])
    return location


def graph_index(tree: xr.DataTree) -> pd.DataFrame:
    """One row per graph: graph, file_id, kind, n_nodes, n_edges, has_atlas."""
    root = tree.to_dataset(inherit=False)
    return pd.DataFrame({
        "graph": root["graph"].values.astype(str),
        "file_id": root["file_id"].values.astype(str),
        "kind": root["kind"].values.astype(str),
        "n_nodes": root["n_nodes"].values.astype(np.int64),
        "n_edges": root["n_edges"].values.astype(np.int64),
        "has_atlas": root["has_atlas"].values.astype(bool),
    })


def missing_graph_message(graph: str, tree: xr.DataTree, path) -> str:
    """Why ``graph`` cannot be opened, and the command that prepares a store holding it."""
    held = list(graph_index(tree)["graph"])
    source = tree.attrs.get("source_argument")
    want = graph_order(set(held) | {graph})
    msg = (f"graph {graph!r} is not in the prepared vesselgraph store {path}, which holds {', '.join(held)}. "
           f"Rebuild it with the graphs you need: neuroharness datasets prepare vesselgraph --only {' '.join(want)} --force"
           + (f" --source DIR (a folder holding them all; this store was built from {source})" if source else ""))
    if graph not in graph_table() and not source:
        msg += f" (the graph table does not name {graph!r}: give --source with its files, or add it with ${ENV_TABLE})"
    return msg


def open_graph(graph: str, version: str | None = None) -> xr.Dataset:
    """Group ``/<graph>`` of the store as a lazy Dataset (without the root's index coordinates).

    Prepares the store with only this graph if there is none yet; a store
    without the graph is an error naming the graphs it holds and the command
    that adds it.
    """
    ld = loader()
    path = _prepare_graph_if_missing(ld, graph, version)
    tree = ld.open(version)
    if graph not in tree.children:
        raise NeuroharnessError(missing_graph_message(graph, tree, path))
    return tree[graph].to_dataset(inherit=False)


def content_sha256(graph: str | None = None) -> str:
    """``content_sha256`` of the prepared store (every graph it holds), the checksum result records carry.
    With ``graph``, :func:`open_graph` first: it prepares only that graph if there is no store, and a store
    without it is an error."""
    if graph is not None:
        open_graph(graph)
    return loader().content_sha256()


def part_sha256(graph: str, version: str | None = None) -> str:
    """sha256 of graph ``graph``'s content alone (its group in the store), independent of the other graphs
    the store holds. Prepares only that graph if there is no store; a store without it is an error naming
    the graphs it holds and the command that adds it. Read from the store's ``parts_sha256`` attribute
    (computed from the data for stores prepared before that attribute existed)."""
    ld = loader()
    path = _prepare_graph_if_missing(ld, graph, version)
    checksums = ld.part_checksums(version)
    if graph not in checksums:
        raise NeuroharnessError(missing_graph_message(graph, ld.open(version), path))
    return checksums[graph]


def open_vesselgraph(version: str | None = None, source: os.PathLike | str | None = None) -> xr.DataTree:
    """The whole store as a lazy ``xarray.DataTree`` (preparing it from ``source`` first if needed)."""
    return loader().open(version, source)
