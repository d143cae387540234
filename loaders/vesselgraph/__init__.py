"""VesselGraph (whole-brain vessel graphs, Paetzold et al. 2021) as dataset ``vesselgraph``.

Source: the preprocessed release, one zip per named graph (URLs, checksums and
sizes in ``graphs.tsv``; see :mod:`.download` for mirrors), or a local copy
(``--source PATH``: a folder of CSVs, of ``<file_id>/`` subfolders, of release
folders or zips, or one zip; see :mod:`.layout`). ``--only GRAPH ...`` selects
graphs; by default the download takes ``BALBc_no1`` (the ogbl-vessel graph)
and a local source every graph it holds. Formats and checks: :mod:`.csv`.

Store (Zarr v2, consolidated, read as an ``xarray.DataTree``)::

    /              graph index, dim ``graph`` (table order: VesSAP, Kleinfeld, ROI, synthetic, others)
        coords  graph (str, short name), file_id (str, CSV prefix),
                kind (str: vessap | kleinfeld | roi | synthetic | other),
                n_nodes, n_edges (int64), has_atlas (bool)
        attrs   provenance (base class; ``only`` = the selection, or None for the default)
                content_sha256 (every graph), parts_sha256 (JSON {graph: sha256 of that graph's group};
                :func:`part_sha256`)
    /<graph>       dims node (N), edge (E), axis (3), endpoint (2), region (R, with an atlas)
        pos               (node, axis) float64   pos_x, pos_y, pos_z as in the CSV
        degree            (node) int32;  isAtSampleBorder (node) bool
        edge_index        (edge, endpoint) int64  node1id, node2id (node1id < node2id, file order)
        <edge column>     (edge,) one per numeric CSV column, named as in the CSV: length,
                          distance, curveness, volume, avgCrossSection, min/avg/maxRadiusAvg|Std,
                          roundnessAvg|Std (float64); node1_degree, node2_degree, num_voxels
                          (int32); hasNodeAtSampleBorder (bool)
        coords  axis ("x", "y", "z"), endpoint ("node1id", "node2id");
                with an atlas: region (str acronyms), atlas_region (node, region) bool one-hot
        attrs   graph, file_id, kind, n_nodes, n_edges, n_isolated, has_atlas, n_regions,
                raw_files, nonfinite_edge_values ({column: count}), units_comment

Node rows are the CSV rows (isolated nodes kept; :func:`to_pyg` drops them).
Arrays are chunked by 2**20 rows along node and edge, Blosc-zstd compressed;
every variable has ``units`` and ``long_name``. Units of positions, lengths and
radii are given as voxels: **uncertain** (VesselGraph states its radius class
thresholds in pixels; the VesSAP volumes are 3 um isotropic).
"""
from __future__ import annotations

from neuroharness.registry import lazy_exports

# public names -> the submodule defining them; imported on first use, so that importing this
# package (e.g. to read its cards) imports neither numpy nor xarray
_EXPORTS = {
    **dict.fromkeys(("DEFAULT_GRAPH", "VesselGraphLoader", "content_sha256", "part_sha256", "graph_index",
                     "local_files", "loader", "missing_graph_message", "open_graph", "open_vesselgraph",
                     "store_location", "store_path"), ".loader"),
    "ENV_MIRROR": ".download", "download_graphs": ".download",
    "ENV_TABLE": ".table", "graph_table": ".table", "graph_order": ".table",
    "to_pyg": ".pyg",
    "write_store": ".store",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "DEFAULT_GRAPH",
    "ENV_MIRROR",
    "ENV_TABLE",
    "VesselGraphLoader",
    "content_sha256",
    "graph_index",
    "graph_table",
    "local_files",
    "open_graph",
    "open_vesselgraph",
    "part_sha256",
    "store_location",
    "store_path",
    "to_pyg",
]
