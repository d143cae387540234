"""``torch_geometric.data.Data`` from one graph of the vesselgraph store (vectorized)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from neuroharness.errors import NeuroharnessError


def _columns(ds: xr.Dataset, names: Sequence[str], dim: str, keep: np.ndarray | None = None,
             loaded: dict | None = None) -> np.ndarray | None:
    """Variables (data or coordinates) along ``dim`` as one float32 (n, F) matrix; 2-D ones add all their columns.

    ``loaded``: arrays already read (``{name: values}``), so none is read twice."""
    if not names:
        return None
    blocks = []
    for name in names:
        if name not in ds.variables or ds[name].dims[:1] != (dim,):
            valid = sorted(str(v) for v in ds.variables if ds[v].dims[:1] == (dim,))
            raise NeuroharnessError(f"graph {ds.attrs.get('graph', '?')}: no {dim} variable {name!r}; "
                                    f"valid: {', '.join(valid)}")
        v = (loaded or {}).get(name)
        if v is None:
            v = np.asarray(ds[name].values)
        if keep is not None:
            v = v[keep]
        blocks.append(v.reshape(len(v), -1).astype(np.float32, copy=False))
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)


def to_pyg(ds_or_graph, *, edge_attrs: Sequence[str] | None = None, node_attrs: Sequence[str] = ("pos",),
           undirected: bool = True, remove_isolated: bool = True):
    """One graph as a ``torch_geometric.data.Data``.

    ``ds_or_graph``: a graph name (opened with :func:`open_graph`) or its Dataset.
    Fields: ``pos`` float32 (N, 3); ``x`` float32 (N, F), the ``node_attrs``
    (any node variable or coordinate, e.g. ``pos``, ``degree``,
    ``isAtSampleBorder``, ``atlas_region``; none when empty); ``edge_index``
    int64 (2, E) with, when ``undirected``, both directions: column k + E_file is
    column k reversed, so ``edge_attr`` rows line up; ``edge_attr`` float32
    (E, F) of the ``edge_attrs`` (e.g. ``["length", "distance"]``) when given;
    ``node_id`` int64 (N,), the CSV id of each node (differs from the row once
    isolated nodes are removed); ``num_nodes``. Units are the store's.
    """
    import torch
    from torch_geometric.data import Data

    if isinstance(ds_or_graph, str):
        from . import open_graph

        ds = open_graph(ds_or_graph)
    else:
        ds = ds_or_graph
    n = int(ds.sizes["node"])
    ei = np.asarray(ds["edge_index"].values)  # (E, 2)
    keep = None
    node_id = np.arange(n, dtype=np.int64)
    if remove_isolated:
        touched = np.zeros(n, dtype=bool)
        touched[ei.ravel()] = True
        if not touched.all():
            keep = touched
            node_id = np.flatnonzero(touched).astype(np.int64)
            new = np.cumsum(touched, dtype=np.int64) - 1  # old row -> new row for kept nodes
            ei = new[ei]
    pos_all = np.asarray(ds["pos"].values)
    pos = (pos_all[keep] if keep is not None else pos_all).astype(np.float32)
    x = _columns(ds, list(node_attrs), "node", keep, {"pos": pos_all})
    del pos_all
    edge_attr = _columns(ds, list(edge_attrs or []), "edge")
    edge_index = np.ascontiguousarray(ei.T)
    if undirected:
        edge_index = np.concatenate([edge_index, edge_index[::-1]], axis=1)
        if edge_attr is not None:
            edge_attr = np.concatenate([edge_attr, edge_attr])
    data = Data(pos=torch.from_numpy(pos), edge_index=torch.from_numpy(edge_index),
                node_id=torch.from_numpy(node_id), num_nodes=len(node_id))
    if x is not None:
        data.x = torch.from_numpy(np.ascontiguousarray(x))
    if edge_attr is not None:
        data.edge_attr = torch.from_numpy(np.ascontiguousarray(edge_attr))
    return data
