"""Line graph L(G) of an undirected simple graph, vectorized.

The nodes of L(G) are the edges of G (node ``e`` of L is column ``e`` of the
input ``edge_index``); two nodes of L are joined when their edges of G share
an endpoint. A node of G with degree d contributes its d(d-1)/2 pairs of
incident edges, generated with ``repeat``/``cumsum`` arithmetic over one
stable sort of the 2E edge endpoints, never a Python loop over nodes, so the
line graph of a whole brain (5.3 M edges) takes seconds.

PyG's ``LineGraph(force_directed=False)`` builds the same edge set (with its
nodes numbered in the order of the coalesced ``row < col`` edges) but with a
Python list per node of G.
"""
from __future__ import annotations

import numpy as np

from neuroharness.errors import NeuroharnessError


def line_graph(edge_index, num_nodes: int, *, both_directions: bool = True, check: bool = True):
    """Edges of the line graph of the undirected graph ``edge_index``.

    ``edge_index`` (2, E) integer (numpy or torch), each undirected edge of G
    listed ONCE, in either orientation (e.g. VesselGraph's ``node1id, node2id``);
    ``num_nodes`` is the number of nodes of G. G must be simple: with ``check``
    (default) self-loops and repeated edges raise ``NeuroharnessError``.

    Returns ``edge_index_L`` (2, M) int64, same kind as the input (numpy or
    torch), over E line-graph nodes. With ``both_directions`` (default, what
    message passing wants) M = 2 * sum_v d_v (d_v - 1) / 2 and every pair
    appears as (a, b) and (b, a); otherwise each pair appears once with a < b.
    Pairs are grouped by the shared node of G, in increasing node order.
    """
    is_torch = type(edge_index).__module__.startswith("torch")
    ei = edge_index.detach().cpu().numpy() if is_torch else np.asarray(edge_index)
    if ei.ndim != 2 or ei.shape[0] != 2:
        raise NeuroharnessError(f"edge_index: expected shape (2, E), got {ei.shape}")
    if ei.dtype.kind not in "iu":
        raise NeuroharnessError(f"edge_index: expected integer node ids, got dtype {ei.dtype}")
    ei = ei.astype(np.int64, copy=False)
    n_edges = ei.shape[1]
    num_nodes = int(num_nodes)
    if n_edges and (ei.min() < 0 or ei.max() >= num_nodes):
        raise NeuroharnessError(
            f"edge_index: node ids must lie in [0, {num_nodes}), found [{ei.min()}, {ei.max()}]")
    if check and n_edges:
        _check_simple(ei, num_nodes)

    # incident-edge lists: sort the 2E endpoints by node; slot s holds edge inc[s]
    ends = ei.reshape(-1)                                       # [src..., dst...]
    order = np.argsort(ends, kind="stable")
    inc = (order % n_edges) if n_edges else order              # edge id of each slot
    deg = np.bincount(ends, minlength=num_nodes)
    start = np.cumsum(deg) - deg                                # first slot of each node
    node = ends[order]
    pos = np.arange(2 * n_edges, dtype=np.int64) - start[node]  # rank of the slot within its node
    # slot at rank i pairs with the d - 1 - i slots after it (j > i): d(d-1)/2 pairs per node
    partners = deg[node] - 1 - pos
    first = np.repeat(np.arange(2 * n_edges, dtype=np.int64), partners)
    run_start = np.cumsum(partners) - partners
    second = first + 1 + (np.arange(len(first), dtype=np.int64) - np.repeat(run_start, partners))
    a, b = inc[first], inc[second]
    del first, second
    if both_directions:
        out = np.stack([np.concatenate([a, b]), np.concatenate([b, a])])
    else:
        out = np.stack([np.minimum(a, b), np.maximum(a, b)])
    if is_torch:
        import torch

        return torch.from_numpy(out)
    return out


def _check_simple(ei: np.ndarray, num_nodes: int) -> None:
    u, v = ei
    loops = np.flatnonzero(u == v)
    if loops.size:
        raise NeuroharnessError(
            f"edge_index: {loops.size} self-loop(s), first at column {loops[0]} (node {u[loops[0]]}); "
            "expected a simple graph")
    key = np.minimum(u, v) * num_nodes + np.maximum(u, v)
    srt = np.sort(key)
    dup = np.flatnonzero(srt[1:] == srt[:-1])
    if dup.size:
        k = srt[dup[0]]
        raise NeuroharnessError(
            f"edge_index: {dup.size} repeated edge(s), e.g. {{{k // num_nodes}, {k % num_nodes}}}; "
            "expected each undirected edge once")
