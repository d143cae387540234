"""Line graph: hand-computed small cases and agreement with PyG's LineGraph(force_directed=False)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from neuroharness.tasks.graph.line_graph import line_graph

from neuroharness.errors import NeuroharnessError


def _pairs(ei) -> set[tuple[int, int]]:
    return {(int(a), int(b)) for a, b in np.asarray(ei).T}


def _undirected_pairs(ei) -> set[frozenset]:
    return {frozenset((int(a), int(b))) for a, b in np.asarray(ei).T}


def _both(pairs) -> set[tuple[int, int]]:
    return {(a, b) for a, b in pairs} | {(b, a) for a, b in pairs}


def test_path():
    # path 0-1-2-3: edges e0={0,1}, e1={1,2}, e2={2,3}; L is the path e0-e1-e2
    ei = np.array([[0, 1, 2], [1, 2, 3]])
    assert _pairs(line_graph(ei, 4)) == _both([(0, 1), (1, 2)])
    assert sorted(_pairs(line_graph(ei, 4, both_directions=False))) == [(0, 1), (1, 2)]


def test_star_k13_becomes_triangle():
    ei = np.array([[0, 0, 0], [1, 2, 3]])
    out = line_graph(ei, 4)
    assert out.shape == (2, 6)  # 3*2/2 = 3 pairs, both directions
    assert _pairs(out) == _both([(0, 1), (0, 2), (1, 2)])


def test_triangle_is_its_own_line_graph():
    # e0={0,1}, e1={1,2}, e2={0,2}: every pair shares one node
    ei = np.array([[0, 1, 2], [1, 2, 0]])  # orientation does not matter
    out = line_graph(ei, 3, both_directions=False)
    assert out.shape == (2, 3)
    assert _pairs(out) == {(0, 1), (0, 2), (1, 2)}


def test_multi_component_with_isolated_nodes():
    # component A: star 0-{1,2,3} plus 3-4; component B: 6-7 alone; nodes 5 and 8 isolated
    ei = torch.tensor([[0, 0, 0, 3, 6], [1, 2, 3, 4, 7]])
    out = line_graph(ei, 9)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.int64
    # node 0 (d=3): e0,e1,e2 pairwise; node 3 (d=2): e2,e3; e4 isolated in L
    assert _pairs(out.numpy()) == _both([(0, 1), (0, 2), (1, 2), (2, 3)])
    assert out.shape[1] == 2 * (3 + 1)


def test_degree_count_formula():
    # node 0 has degree 5: C(5,2) = 10 pairs; node 1 degree 2 (edges {0,1}, {1,6}): 1 pair
    ei = np.array([[0, 0, 0, 0, 0, 1], [1, 2, 3, 4, 5, 6]])
    out = line_graph(ei, 7, both_directions=False)
    assert out.shape[1] == 10 + 1
    assert np.all(out[0] < out[1])
    assert len(_pairs(out)) == out.shape[1]


def test_empty_and_edgeless():
    assert line_graph(np.zeros((2, 0), dtype=np.int64), 3).shape == (2, 0)
    assert line_graph(np.array([[0], [1]]), 2).shape == (2, 0)


def test_matches_pyg_linegraph_on_random_graph():
    from torch_geometric.data import Data
    from torch_geometric.transforms import LineGraph

    rng = np.random.default_rng(3)
    n = 60
    raw = rng.integers(0, n, size=(2, 200))
    raw = raw[:, raw[0] != raw[1]]
    key = np.unique(np.minimum(*raw) * n + np.maximum(*raw))
    edges = np.stack([key // n, key % n])  # simple graph, row < col, sorted like PyG's coalesce
    perm = rng.permutation(edges.shape[1])
    mine_in = edges[:, perm]
    flip = rng.random(edges.shape[1]) < 0.5   # random orientation of each edge
    mine_in[:, flip] = mine_in[::-1, flip]
    mine = line_graph(mine_in, n)
    # PyG numbers L's nodes by the coalesced row<col order, i.e. ``edges``; map ours through perm
    both = torch.as_tensor(np.concatenate([edges, edges[::-1]], axis=1))
    pyg = LineGraph(force_directed=False)(Data(edge_index=both, num_nodes=n))
    assert pyg.num_nodes == edges.shape[1]
    assert _pairs(perm[mine]) == _pairs(pyg.edge_index.numpy())
    assert mine.shape[1] == pyg.edge_index.shape[1]  # no duplicates on our side either


def test_errors():
    with pytest.raises(NeuroharnessError, match="self-loop"):
        line_graph(np.array([[0, 1], [1, 1]]), 2)
    with pytest.raises(NeuroharnessError, match=r"repeated edge.*\{0, 1\}"):
        line_graph(np.array([[0, 1], [1, 0]]), 2)
    with pytest.raises(NeuroharnessError, match=r"\[0, 2\)"):
        line_graph(np.array([[0], [2]]), 2)
    with pytest.raises(NeuroharnessError, match="shape"):
        line_graph(np.array([0, 1]), 2)
    with pytest.raises(NeuroharnessError, match="integer"):
        line_graph(np.array([[0.0], [1.0]]), 2)
