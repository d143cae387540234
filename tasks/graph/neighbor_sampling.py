"""Mini-batch neighbour sampling and a GraphSAGE encoder, without pyg-lib / torch-sparse.

PyG's ``NeighborLoader`` needs pyg-lib or torch-sparse, which this harness does
not install; this module samples the same kind of subgraph with plain torch
ops (no Python loop over nodes), and the result feeds ``SAGEConv`` directly.

Usage::

    from neuroharness.tasks.graph.neighbor_sampling import (
        CSRGraph, SAGE, sample_subgraph, seed_batches, layerwise_inference)

    graph = CSRGraph.from_edge_index(edge_index, num_nodes)   # (2, E), both directions for undirected
    model = SAGE(in_channels=F, hidden_channels=64, out_channels=64, num_layers=2)
    gen = torch.Generator().manual_seed(seed)
    for seeds in seed_batches(train_nodes, batch_size=1024, generator=gen):
        n_id, ei, seed_local = sample_subgraph(graph, seeds, num_neighbors=[10, 10], generator=gen)
        h = model(x[n_id], ei)[seed_local]            # (len(seeds), out) embeddings of the seeds
        ...
    model.eval()
    z = layerwise_inference(model, x, graph, batch_size=65536)   # (N, out), exact full neighbourhoods

Conventions. ``edge_index[0]`` is the source and ``edge_index[1]`` the target
of a message (PyG's ``source_to_target`` flow), so the neighbours of ``v`` are
the sources of the edges that end at ``v``. For an undirected graph pass both
directions. Sampling is uniform without replacement: a node with in-degree
``d > k`` keeps ``k`` of its incoming edges, chosen by drawing one random key
per edge and keeping the ``k`` smallest keys; a node with ``d <= k`` keeps all.
``k = -1`` keeps every neighbour. ``sample_subgraph(..., return_edge_id=True)``
also returns the input column of every sampled edge (e.g. to drop the target
edges of a link-prediction batch from message passing).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch

from neuroharness.errors import NeuroharnessError


def _as_long(name: str, a) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a)
    if t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
        raise NeuroharnessError(f"{name}: expected integer node ids, got dtype {t.dtype}")
    return t.to(torch.long)


@dataclass(frozen=True)
class CSRGraph:
    """Incoming adjacency in compressed-sparse-row form.

    ``rowptr`` (N+1,) int64 and ``col`` (E,) int64: the neighbours (message
    sources) of node ``v`` are ``col[rowptr[v]:rowptr[v+1]]``. ``edge_id`` (E,)
    int64 gives, for each CSR slot, the column of the input ``edge_index`` it
    came from (stable: edges into one node keep their input order).
    """

    rowptr: torch.Tensor
    col: torch.Tensor
    edge_id: torch.Tensor
    num_nodes: int

    @classmethod
    def from_edge_index(cls, edge_index, num_nodes: int) -> CSRGraph:
        """Build from ``edge_index`` (2, E) integer (torch or numpy), rows (source, target)."""
        ei = _as_long("edge_index", edge_index)
        if ei.dim() != 2 or ei.shape[0] != 2:
            raise NeuroharnessError(f"edge_index: expected shape (2, E), got {tuple(ei.shape)}")
        num_nodes = int(num_nodes)
        if num_nodes < 0:
            raise NeuroharnessError(f"num_nodes: expected >= 0, got {num_nodes}")
        if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= num_nodes):
            raise NeuroharnessError(
                f"edge_index: node ids must lie in [0, {num_nodes}), found [{int(ei.min())}, {int(ei.max())}]")
        src, dst = ei[0], ei[1]
        perm = torch.sort(dst, stable=True).indices
        rowptr = torch.zeros(num_nodes + 1, dtype=torch.long)
        rowptr[1:] = torch.cumsum(torch.bincount(dst, minlength=num_nodes), 0)
        return cls(rowptr=rowptr, col=src[perm].contiguous(), edge_id=perm, num_nodes=num_nodes)

    @property
    def num_edges(self) -> int:
        return int(self.col.numel())

    def degree(self) -> torch.Tensor:
        """(N,) int64 in-degree of every node."""
        return self.rowptr[1:] - self.rowptr[:-1]

    def neighbors(self, v: int) -> torch.Tensor:
        """Neighbours (sources of incoming edges) of one node, in input order."""
        return self.col[self.rowptr[v]:self.rowptr[v + 1]]


def _sample_hop(graph: CSRGraph, nodes: torch.Tensor, k: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sampled incoming edges of ``nodes`` (global ids): (CSR slots, index into ``nodes`` of the target)."""
    start = graph.rowptr[nodes]
    deg = graph.rowptr[nodes + 1] - start
    total = int(deg.sum())
    if total == 0:
        empty = torch.empty(0, dtype=torch.long)
        return empty, empty
    seg = torch.repeat_interleave(torch.arange(len(nodes)), deg)           # which target each slot feeds
    seg_start = torch.cumsum(deg, 0) - deg                                  # first slot of each target
    slot = start[seg] + (torch.arange(total) - seg_start[seg])              # CSR position
    if k < 0 or int(deg.max()) <= k:
        return slot, seg
    # random-key trick: one uniform key per candidate edge; ordering by (target, key) and keeping the
    # first k of each target is a uniform sample without replacement. Sort by key, then stably by target.
    keys = torch.rand(total, generator=generator)
    by_key = torch.argsort(keys, stable=True)
    order = by_key[torch.sort(seg[by_key], stable=True).indices]
    rank = torch.arange(total) - seg_start[seg[order]]
    keep = order[rank < k]
    return slot[keep], seg[keep]


def sample_subgraph(graph: CSRGraph, seeds, num_neighbors: Sequence[int], generator: torch.Generator | None = None,
                    *, return_edge_id: bool = False):
    """Sample a ``len(num_neighbors)``-hop subgraph around ``seeds``.

    Hop ``h`` samples up to ``num_neighbors[h]`` neighbours (``-1``: all) of
    each node first reached at hop ``h-1`` (the seeds for hop 0), so every
    node's incoming edges are sampled at most once and, with ``k >= max
    degree``, a ``len(num_neighbors)``-layer GNN gives the seeds exactly their
    full-graph outputs.

    Returns ``(n_id, edge_index, seed_local)``: ``n_id`` (n,) int64 global ids,
    the distinct seeds first in order of first appearance, then new nodes hop
    by hop; ``edge_index`` (2, m) int64 local ids into ``n_id`` (source,
    target), ready for ``SAGEConv``; ``seed_local`` (len(seeds),) int64 with
    ``n_id[seed_local] == seeds`` (duplicates in ``seeds`` map to one node).
    With ``return_edge_id=True`` also ``e_id`` (m,), the input ``edge_index``
    column of each sampled edge.
    """
    seeds = _as_long("seeds", seeds).reshape(-1)
    if seeds.numel() and (int(seeds.min()) < 0 or int(seeds.max()) >= graph.num_nodes):
        raise NeuroharnessError(
            f"seeds: node ids must lie in [0, {graph.num_nodes}), found [{int(seeds.min())}, {int(seeds.max())}]")
    for k in num_neighbors:
        if int(k) < -1:
            raise NeuroharnessError(f"num_neighbors: expected counts >= 0 or -1 (all), got {list(num_neighbors)}")

    n_id, seed_local = _append_new(torch.empty(0, dtype=torch.long), seeds)
    frontier = torch.arange(len(n_id))                  # local ids of the nodes reached last hop
    rows, cols, eids = [], [], []
    for k in num_neighbors:
        if frontier.numel() == 0:
            break
        slot, seg = _sample_hop(graph, n_id[frontier], int(k), generator)
        before = len(n_id)
        n_id, src_local = _append_new(n_id, graph.col[slot])
        rows.append(src_local)
        cols.append(frontier[seg])
        eids.append(graph.edge_id[slot])
        frontier = torch.arange(before, len(n_id))
    if rows:
        edge_index = torch.stack([torch.cat(rows), torch.cat(cols)])
        e_id = torch.cat(eids)
    else:
        edge_index = torch.empty(2, 0, dtype=torch.long)
        e_id = torch.empty(0, dtype=torch.long)
    if return_edge_id:
        return n_id, edge_index, seed_local, e_id
    return n_id, edge_index, seed_local


def _append_new(n_id: torch.Tensor, cand: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Append the ids of ``cand`` not yet in ``n_id`` (order of first appearance); local id of each candidate.

    Uses one ``unique`` over (n_id, cand) instead of an (N,) lookup table, so a
    batch costs O(subgraph log subgraph), not O(whole graph)."""
    both = torch.cat([n_id, cand])
    uniq, inv = torch.unique(both, return_inverse=True)
    first = torch.full((len(uniq),), len(both), dtype=torch.long)
    first.scatter_reduce_(0, inv, torch.arange(len(both)), reduce="amin")
    is_new = first >= len(n_id)
    new_first = first[is_new]
    order = torch.argsort(new_first)
    local = torch.empty(len(uniq), dtype=torch.long)
    local[~is_new] = first[~is_new]                     # existing ids are unique, so first == their local id
    new_local = torch.empty(len(new_first), dtype=torch.long)
    new_local[order] = torch.arange(len(n_id), len(n_id) + len(new_first))
    local[is_new] = new_local
    new_ids = uniq[is_new][order]
    return torch.cat([n_id, new_ids]), local[inv[len(n_id):]]


def seed_batches(nodes, batch_size: int, generator: torch.Generator | None = None,
                 shuffle: bool = True) -> Iterator[torch.Tensor]:
    """Yield ``nodes`` (1-D ids) in batches of ``batch_size``, permuted with ``generator`` if ``shuffle``."""
    nodes = _as_long("nodes", nodes).reshape(-1)
    if batch_size < 1:
        raise NeuroharnessError(f"batch_size: expected >= 1, got {batch_size}")
    if shuffle:
        nodes = nodes[torch.randperm(len(nodes), generator=generator)]
    for i in range(0, len(nodes), batch_size):
        yield nodes[i:i + batch_size]


class SAGE(torch.nn.Module):
    """GraphSAGE encoder: ``num_layers`` ``SAGEConv`` (mean aggregation) with ReLU and dropout between.

    ``forward(x (n, in), edge_index (2, m)) -> (n, out)``; ``layer(i, x, edge_index)``
    applies layer ``i`` alone (with its activation unless last), for
    :func:`layerwise_inference`; ``x`` may be a bipartite pair ``(x_src, x_dst)``.
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int = 2,
                 dropout: float = 0.0):
        super().__init__()
        from torch_geometric.nn import SAGEConv

        if num_layers < 1:
            raise NeuroharnessError(f"num_layers: expected >= 1, got {num_layers}")
        dims = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
        self.convs = torch.nn.ModuleList(SAGEConv(a, b) for a, b in pairwise(dims))
        self.dropout = float(dropout)

    @property
    def num_layers(self) -> int:
        return len(self.convs)

    def layer(self, i: int, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        x = self.convs[i](x, edge_index)
        if i < self.num_layers - 1:
            x = torch.relu(x)
            x = torch.nn.functional.dropout(x, p=self.dropout, training=self.training)
        return x

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        for i in range(self.num_layers):
            x = self.layer(i, x, edge_index)
        return x


@torch.no_grad()
def layerwise_inference(model: SAGE, x: torch.Tensor, graph: CSRGraph, batch_size: int = 65536,
                        nodes=None) -> torch.Tensor:
    """Exact full-neighbourhood outputs of ``model`` (eval mode) for every node, one layer at a time.

    Each layer is computed for all N nodes in contiguous blocks of
    ``batch_size`` target nodes, as a bipartite ``SAGEConv((h, h[block]),
    edges into block)`` over the block's CSR slice, so memory is
    O(N * hidden + block edges * hidden) instead of O(E * hidden) for a
    full-batch pass. ``x`` (N, in) float; returns (N, out), or
    (len(nodes), out) for the given ``nodes`` (the last layer is then
    computed only for them).
    """
    if x.shape[0] != graph.num_nodes:
        raise NeuroharnessError(f"x: expected {graph.num_nodes} rows (one per node), got {x.shape[0]}")
    if batch_size < 1:
        raise NeuroharnessError(f"batch_size: expected >= 1, got {batch_size}")
    was_training = model.training
    model.eval()
    try:
        h = x
        for i in range(model.num_layers):
            if i == model.num_layers - 1 and nodes is not None:
                wanted = _as_long("nodes", nodes).reshape(-1)
                outs = []
                for batch in seed_batches(wanted, batch_size, shuffle=False):
                    n_id, ei, seed_local = sample_subgraph(graph, batch, [-1])
                    outs.append(model.layer(i, h[n_id], ei)[seed_local])
                h = torch.cat(outs) if outs else h.new_empty(0, model.convs[i].out_channels)
                break
            outs = []
            for lo in range(0, graph.num_nodes, batch_size):
                hi = min(lo + batch_size, graph.num_nodes)
                a, b = int(graph.rowptr[lo]), int(graph.rowptr[hi])
                dst = torch.repeat_interleave(torch.arange(hi - lo), graph.rowptr[lo + 1:hi + 1] - graph.rowptr[lo:hi])
                ei = torch.stack([graph.col[a:b], dst])
                outs.append(model.layer(i, (h, h[lo:hi]), ei))
            h = torch.cat(outs) if outs else h.new_empty(0, model.convs[i].out_channels)
        return h
    finally:
        model.train(was_training)
