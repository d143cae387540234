"""VesselGraph graphs as Hugging Face datasets: one ``DatasetDict`` per graph with a ``nodes`` and an ``edges`` table.

- ``nodes``: one row per node: ``node`` (int64 row index: what ``edge_index`` refers to), ``pos``
  (3 float64, axes x, y, z), ``degree``, ``isAtSampleBorder`` and, for graphs with an atlas,
  ``atlas_region`` (one bool per region; the region acronyms are in the feature's ``id``).
- ``edges``: one row per edge: ``edge`` (int64 row index), ``edge_index`` (2 int64: node1id < node2id as
  ``node`` numbers) and every edge feature of the store with its dtype (float64 geometry in voxels,
  int32 counts, bool border flags).

The two tables have different columns, so ``push_to_hub`` takes them one at a time, e.g.
``dd["edges"].push_to_hub(repo, config_name="edges", split=graph)``.
"""
from __future__ import annotations

import json

from ._common import store_plan, xarray_table


def graph(card, tree, part):
    """The ``DatasetDict`` plan of graph ``part`` of the vesselgraph store (the DataTree ``tree``)."""
    where = f"{card.name} graph {part}"
    ds = tree[part].to_dataset(inherit=False)
    nodes = xarray_table(ds, "node", where=where, index_column="node",
                         about=f"Graph {part}: one row per node; `node` is the row number `edge_index` refers to.")
    edges = xarray_table(ds, "edge", where=where, index_column="edge",
                         about=f"Graph {part}: one row per edge (vessel); `edge_index` holds the `node` numbers of "
                               "its two end nodes, node1id < node2id.")
    facts = [f"graph {part} {k}: {v if isinstance(v, str) else json.dumps(v)}" for k, v in ds.attrs.items()]
    return store_plan(card, tree.attrs, {"nodes": nodes, "edges": edges}, part=part, provenance=facts)
