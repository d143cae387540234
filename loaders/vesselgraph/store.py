"""Writing the vesselgraph store: one Zarr v2 group per graph, streamed graph by graph.

Each graph's files are parsed, validated and written one at a time (nodes,
then edges, then atlas), so memory holds one file's table at most; a failed
check raises before :meth:`DatasetLoader.prepare` renames the temporary store,
so nothing is left behind.
"""
from __future__ import annotations

import collections
from pathlib import Path

import numcodecs
import numpy as np
import zarr

from neuroharness.errors import DataFormatError
from neuroharness.progress import status

from .. import io
from . import csv
from .layout import SUFFIXES, FileRef, GraphRef, graphs_in_zip
from .table import graph_order, kind_of

CHUNK_ROWS = 1 << 20  # rows per chunk along node and edge
COMPRESSOR = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.SHUFFLE)
INDEX_COORDS = ("file_id", "kind", "n_nodes", "n_edges", "has_atlas")


def graph_refs(files: dict[str, Path]) -> list[GraphRef]:
    """The graphs named by :meth:`VesselGraphLoader.fetch`'s files, in table order.

    Keys are ``<graph>/<file name>``: a zip holding the graph, or its CSV files.
    A downloaded zip that holds one graph under another folder name is taken as ``<graph>``.
    """
    parts: dict[str, dict[str, Path]] = collections.defaultdict(dict)
    for key, path in files.items():
        graph, _, base = key.partition("/")
        parts[graph][base] = path
    refs = []
    for graph in graph_order(parts):
        named = parts[graph]
        zips = [p for b, p in named.items() if b.lower().endswith(".zip")]
        if zips:
            found = graphs_in_zip(zips[0])
            match = [r for r in found if r.name == graph]
            if not match and len(found) == 1:
                match = [found[0].renamed(graph)]
            if not match:
                raise DataFormatError(f"{zips[0]}: holds no graph {graph}; found {', '.join(r.name for r in found) or 'none'} "
                                      "(expected members <graph>/<file_id>/<file_id>_nodes_processed.csv)")
            refs.append(match[0])
            continue
        by_kind = {k: next((p for b, p in named.items() if b.endswith(s)), None) for k, s in SUFFIXES.items()}
        if by_kind["nodes"] is None or by_kind["edges"] is None:
            raise DataFormatError(f"graph {graph}: raw files {sorted(named)} lack a nodes or edges file")
        file_id = by_kind["nodes"].name[: -len(SUFFIXES["nodes"])]
        refs.append(GraphRef(graph, file_id, FileRef(by_kind["nodes"]), FileRef(by_kind["edges"]),
                             FileRef(by_kind["atlas"]) if by_kind["atlas"] else None))
    return refs


def _array(group: zarr.Group, name: str, data: np.ndarray, dims: tuple[str, ...], attrs: dict) -> None:
    """Write ``data`` as a compressed zarr v2 array chunked by :data:`CHUNK_ROWS` rows."""
    chunks = (max(1, min(data.shape[0], CHUNK_ROWS)),) + tuple(max(1, s) for s in data.shape[1:])
    attrs = dict(attrs)
    io.create_array(group, name, dims=dims, units=attrs.pop("units", None), long_name=attrs.pop("long_name"),
                    attrs=attrs, data=data, chunks=chunks, compressor=COMPRESSOR)


def _meta(col: csv.Column) -> dict:
    attrs = {"units": col.units, "long_name": col.long_name, "csv_column": col.name}
    if col.units.startswith("voxel"):
        attrs["comment"] = csv.UNITS_COMMENT
    return attrs


def write_graph(root: zarr.Group, ref: GraphRef) -> dict:
    """Parse, validate and write one graph into group ``/<name>``; return its index row."""
    g = root.create_group(ref.name)
    nodes = csv.read_nodes(ref.nodes)
    n = len(nodes["degree"])
    cols = {c.name: c for c in csv.NODE_COLUMNS}
    _array(g, "axis", np.array(["x", "y", "z"]), ("axis",), {"long_name": "spatial axis"})
    _array(g, "pos", nodes["pos"], ("node", "axis"),
           {**_meta(cols["pos_x"]), "long_name": "node position", "csv_column": "pos_x;pos_y;pos_z"})
    _array(g, "degree", nodes["degree"], ("node",), _meta(cols["degree"]))
    _array(g, "isAtSampleBorder", nodes["isAtSampleBorder"], ("node",), _meta(cols["isAtSampleBorder"]))
    del nodes

    table = csv.read_edges(ref.edges, n)
    e = table.num_rows
    n1, n2 = table.column("node1id").to_numpy(), table.column("node2id").to_numpy()
    counts = np.bincount(n1, minlength=n) + np.bincount(n2, minlength=n)
    n_isolated = int((counts == 0).sum())
    del counts
    _array(g, "endpoint", np.array(["node1id", "node2id"]), ("endpoint",), {"long_name": "CSV column of the end node"})
    _array(g, "edge_index", np.column_stack((n1, n2)), ("edge", "endpoint"),
           {"units": "1", "long_name": "end nodes of the edge (node1id < node2id), as row indices of node",
            "csv_column": "node1id;node2id"})
    del n1, n2
    nonfinite = {}
    for col in csv.EDGE_FEATURES:
        values = csv.numpy_column(table, col, ref.edges)
        if col.kind == "float":
            bad = int((~np.isfinite(values)).sum())
            if bad:
                nonfinite[col.name] = bad
        _array(g, col.name, values, ("edge",), _meta(col))
    del table, values

    has_atlas = ref.atlas is not None
    attrs = {"graph": ref.name, "file_id": ref.file_id, "kind": kind_of(ref.name), "n_nodes": n, "n_edges": e,
             "n_isolated": n_isolated, "has_atlas": has_atlas, "raw_files": ref.where,
             "nonfinite_edge_values": nonfinite, "units_comment": csv.UNITS_COMMENT}
    if has_atlas:
        regions, onehot = csv.read_atlas(ref.atlas, n)
        _array(g, "region", np.array(regions), ("region",), {"long_name": "grouped Allen CCFv3 region acronym"})
        _array(g, "atlas_region", onehot, ("node", "region"),
               {"units": "1", "long_name": "node lies in the atlas region (one-hot)", "csv_column": f"{csv.ATLAS_PREFIX}*"})
        attrs["coordinates"] = "atlas_region"  # a coordinate, not a data variable (CF; xarray reads it so)
        attrs["n_regions"] = len(regions)
    if nonfinite:
        status(f"[vesselgraph] {ref.name}: non-finite edge values kept as they are: {nonfinite}")
    g.attrs.update(attrs)
    return {"graph": ref.name, "file_id": ref.file_id, "kind": attrs["kind"], "n_nodes": n, "n_edges": e,
            "has_atlas": has_atlas}


def write_graph_part(target: str, ref: GraphRef, progress=None) -> dict:
    """Write one graph into its group of the (existing) store at ``target``; return its index row.

    One part of :func:`write_store`, which may run on a dask worker (so it opens the store itself)."""
    status(f"[vesselgraph] {ref.name}: {ref.where}")
    row = write_graph(zarr.open_group(target, mode="r+", zarr_format=2), ref)
    if progress is not None:
        progress.update(1)
    return row


def write_store(files: dict[str, Path], target: Path, write_parts) -> list[dict]:
    """Write every graph of ``files`` into a new store at ``target``; return the index rows.

    ``write_parts``: the loader's :meth:`~neuroharness.loaders.base.DatasetLoader.write_parts`, which
    writes the graphs in this process with a progress bar, or one dask task each."""
    refs = graph_refs(files)
    for ref in refs:  # cheap checks first, so a bad header fails before minutes of parsing
        csv.check_header(ref.nodes, [c.name for c in csv.NODE_COLUMNS])
        csv.check_header(ref.edges, [c.name for c in csv.EDGE_COLUMNS])
    root = zarr.open_group(str(target), mode="w", zarr_format=2)
    files_read = sorted({str(f.path) for r in refs for f in (r.nodes, r.edges, r.atlas) if f is not None})
    rows = write_parts(write_graph_part, [(str(target), ref) for ref in refs], desc="vesselgraph", unit="graph",
                       shared=[target, *files_read])
    index = {
        "graph": (np.array([r["graph"] for r in rows]), {"long_name": "graph short name (VesselGraph dataset name)"}),
        "file_id": (np.array([r["file_id"] for r in rows]), {"long_name": "prefix of the graph's CSV files"}),
        "kind": (np.array([r["kind"] for r in rows]), {"long_name": "vessap | kleinfeld | roi | synthetic | other"}),
        "n_nodes": (np.array([r["n_nodes"] for r in rows], dtype=np.int64), {"units": "1", "long_name": "nodes"}),
        "n_edges": (np.array([r["n_edges"] for r in rows], dtype=np.int64), {"units": "1", "long_name": "edges"}),
        "has_atlas": (np.array([r["has_atlas"] for r in rows], dtype=bool),
                      {"units": "1", "long_name": "the graph has an atlas file"}),
    }
    for name, (values, attrs) in index.items():
        _array(root, name, values, ("graph",), attrs)
    root.attrs["coordinates"] = " ".join(INDEX_COORDS)
    return rows
