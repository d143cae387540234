"""Spatial and random negative sampling: exact cube membership and uniformity on a hand-made point set,
invariants on a larger graph, determinism, worker independence, and errors."""
from __future__ import annotations

import neuroharness.tasks.graph.negative_sampling as ns
import numpy as np
import pytest
from neuroharness.tasks.graph.negative_sampling import (
    random_negatives,
    spatial_delta,
    spatial_negatives,
)
from scipy.stats import chisquare

from neuroharness.errors import NeuroharnessError

# -- a hand-made point set, delta = 1 -----------------------------------------------------------
# Cube of node i = {j != i : |p_j - p_i| <= 1 on every axis} (closed). Worked out by hand:
#   0 (0,0,0):        1 (x diff exactly 1), 2, 3        4 is 1.5 away in x; 7 is 1.0000001 away in z
#   1 (1,0,0):        0 (exactly 1), 2, 4
#   2 (.5,.5,.5):     0, 1, 4 (x diff exactly 1), 7
#   3 (-.9,.9,-.9):   0
#   4 (1.5,0,0):      1, 2
#   5, 6 (far apart): none, so they never yield a sample
#   7 (0,0,1.0000001): 2
#   8 (.1,.1,.1):     isolated (no edge): never a source nor a target, although inside 0's cube
POS = np.array([[0, 0, 0], [1, 0, 0], [.5, .5, .5], [-.9, .9, -.9], [1.5, 0, 0],
                [10, 10, 10], [20, 20, 20], [0, 0, 1.0000001], [.1, .1, .1]])
EDGES = np.array([[0, 1], [2, 3], [4, 7], [5, 6]])
CUBE = {0: [1, 2, 3], 1: [0, 2, 4], 2: [0, 1, 4, 7], 3: [0], 4: [1, 2], 5: [], 6: [], 7: [2]}
# distinct pairs with one node in the other's cube, minus the edge 0-1
POOL = {(0, 2), (0, 3), (1, 2), (1, 4), (2, 4), (2, 7)}


def test_hand_made_cubes_match_brute_force():
    for i, members in CUBE.items():
        inside = np.flatnonzero((np.abs(POS - POS[i]) <= 1.0).all(1))
        assert sorted(set(inside.tolist()) - {i, 8}) == members


@pytest.mark.parametrize("tries", [ns.MAX_TRIES, 0])  # 0: every target from the exact enumeration fallback
def test_raw_samples_are_uniform_in_the_cube(tries, monkeypatch):
    """Sources uniform over the 8 nodes with an edge (5 and 6 yield nothing); targets uniform in each cube."""
    monkeypatch.setattr(ns, "MAX_TRIES", tries)
    grid = ns._Grid.build(POS, np.arange(8), 1.0)
    src, tgt = (np.concatenate(a) for a in zip(*(ns._spatial_block(b, 7, grid, 1.0) for b in range(4))))
    n_raw = 4 * ns.BLOCK
    counts = np.bincount(src, minlength=9)
    assert counts[5] == counts[6] == counts[8] == 0
    # every sampled target is a member of its source's cube, and every member occurs
    for s, members in CUBE.items():
        t = tgt[src == s]
        assert sorted(set(t.tolist())) == members
        if len(members) > 1:
            assert chisquare(np.bincount(t, minlength=9)[members]).pvalue > 1e-3
    # the kept sources: 6 of 8 equally likely nodes, so each is n_raw / 8 in expectation
    kept = counts[[0, 1, 2, 3, 4, 7]]
    assert chisquare(kept, np.full(6, n_raw / 8) * kept.sum() / (n_raw * 6 / 8)).pvalue > 1e-3
    assert abs(kept.sum() / n_raw - 6 / 8) < 0.01


def test_exhausting_the_pool_and_too_few_negatives():
    out = spatial_negatives(POS, EDGES, 6, delta=1.0, seed=0)
    assert out.dtype == np.int64 and out.shape == (6, 2)
    assert set(map(tuple, out.tolist())) == POOL  # u < v, no edge, no repeat, all inside a cube
    with pytest.raises(NeuroharnessError, match="only 6 distinct non-edge pairs exist, 7 negatives requested"):
        spatial_negatives(POS, EDGES, 7, delta=1.0, seed=0)
    assert spatial_negatives(POS, EDGES, 0, delta=1.0, seed=0).shape == (0, 2)


def test_default_delta_and_spatial_delta():
    assert spatial_delta([1.0, 2.0, 3.0]) == 4.0  # mean 2 + 2 * sample std 1
    with pytest.raises(ValueError, match="NaN or infinite"):
        spatial_delta([1.0, np.nan])
    lengths = np.linalg.norm(POS[EDGES[:, 0]] - POS[EDGES[:, 1]], axis=1)
    delta = spatial_delta(lengths)
    assert np.array_equal(spatial_negatives(POS, EDGES, 3, seed=4),
                          spatial_negatives(POS, EDGES, 3, delta=delta, seed=4))


@pytest.fixture(scope="module")
def graph():
    """(pos, edges): 3,000 jittered lattice nodes, each joined to a random half of its +x/+y/+z neighbours."""
    rng = np.random.default_rng(0)
    side = 15
    ijk = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)[:3000]
    pos = ijk * 10.0 + rng.uniform(-3, 3, ijk.shape)
    index = {tuple(p): i for i, p in enumerate(ijk.tolist())}
    edges = [(i, index[tuple(p + d)]) for i, p in enumerate(ijk) for d in np.eye(3, dtype=int)
             if tuple(p + d) in index and rng.random() < 0.5]
    return pos, np.array(edges)


def test_invariants_on_a_lattice_graph(graph):
    pos, edges = graph
    n = len(edges)
    delta = spatial_delta(np.linalg.norm(pos[edges[:, 0]] - pos[edges[:, 1]], axis=1))
    out = spatial_negatives(pos, edges, n, delta=delta, seed=1)
    u, v = out[:, 0], out[:, 1]
    assert out.shape == (n, 2) and (u < v).all()
    d = np.abs(pos[u] - pos[v])
    assert (d <= delta).all()  # inside the cube (one direction suffices up to rounding)
    keys = u * len(pos) + v
    assert len(np.unique(keys)) == n
    edge_keys = edges.min(1) * len(pos) + edges.max(1)
    assert not np.isin(keys, edge_keys).any()
    # the cube is not a ball: some pairs are farther apart than delta
    assert (np.linalg.norm(pos[u] - pos[v], axis=1) > delta).any()
    # edges given in the other direction are excluded as well
    swapped = spatial_negatives(pos, edges[:, ::-1], n, delta=delta, seed=1)
    assert np.array_equal(swapped, out)


def test_determinism_workers_and_prefix(graph, monkeypatch):
    pos, edges = graph
    monkeypatch.setattr(ns, "BLOCK", 512)  # many blocks, so the two workers really share them
    a = spatial_negatives(pos, edges, 4000, seed=5)
    assert np.array_equal(a, spatial_negatives(pos, edges, 4000, seed=5, n_workers=2))
    assert np.array_equal(a, spatial_negatives(pos, edges, 4000, seed=5, n_workers=3))
    assert np.array_equal(a[:1000], spatial_negatives(pos, edges, 1000, seed=5))  # fewer: a prefix
    assert not np.array_equal(a, spatial_negatives(pos, edges, 4000, seed=6))
    r = random_negatives(len(pos), edges, 4000, seed=5)
    assert np.array_equal(r, random_negatives(len(pos), edges, 4000, seed=5, n_workers=2))
    assert np.array_equal(r[:10], random_negatives(len(pos), edges, 10, seed=5))


def test_random_negatives_exact_pool_and_uniformity():
    edges = np.array([[0, 1], [1, 2], [3, 2]])  # 4 nodes: 6 pairs, 3 of them edges
    out = random_negatives(4, edges, 3, seed=0)
    assert set(map(tuple, out.tolist())) == {(0, 2), (0, 3), (1, 3)}
    with pytest.raises(NeuroharnessError, match="only 3 distinct non-edge pairs exist among 4 nodes"):
        random_negatives(4, edges, 4, seed=0)
    u, v = ns._random_block(0, 3, 5)
    assert (u != v).all()
    pairs = np.bincount(np.minimum(u, v) * 5 + np.maximum(u, v), minlength=25)
    assert chisquare(pairs[pairs > 0]).pvalue > 1e-3 and (pairs > 0).sum() == 10  # all 10 pairs, equally often


@pytest.mark.parametrize("kwargs, match", [
    ({"pos": np.zeros((3, 2))}, r"pos: expected shape \(N, 3\)"),
    ({"pos": np.array([[0, 0, 0], [1, 1, np.nan], [2, 2, 2]])}, "NaN or infinite coordinates"),
    ({"edge_index": np.array([[0, 3]])}, r"node ids must lie in \[0, 3\)"),
    ({"edge_index": np.array([[0, 1, 2]])}, r"expected shape \(E, 2\)"),
    ({"edge_index": np.array([[0.0, 1.0]])}, "integer node ids"),
    ({"delta": 0.0}, "finite positive"),
    ({"n": -1}, "non-negative integer"),
    ({"n_workers": 0}, "n_workers"),
])
def test_bad_input(kwargs, match):
    args = {"pos": np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]), "edge_index": np.array([[0, 1]]), "n": 1,
            "delta": 2.0, "seed": 0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        spatial_negatives(args.pop("pos"), args.pop("edge_index"), args.pop("n"), **args)


def test_too_few_nodes_with_an_edge():
    with pytest.raises(NeuroharnessError, match="0 node"):
        spatial_negatives(np.zeros((3, 3)), np.empty((0, 2), dtype=np.int64), 1, delta=1.0, seed=0)
