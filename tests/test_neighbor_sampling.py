"""Neighbour sampler: exact neighbour sets on hand-made graphs, k limits, local/global mapping,
determinism, and agreement with full-graph SAGEConv when k >= max degree."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from neuroharness.tasks.graph.neighbor_sampling import (
    SAGE,
    CSRGraph,
    layerwise_inference,
    sample_subgraph,
    seed_batches,
)

from neuroharness.errors import NeuroharnessError


def _undirected(pairs):
    a = np.array(pairs).T
    return torch.as_tensor(np.concatenate([a, a[::-1]], axis=1))


# star around 0 (leaves 1..5), plus path 5-6-7 and an isolated node 8
STAR = [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (5, 6), (6, 7)]


def _global_edges(n_id, ei):
    return {(int(n_id[s]), int(n_id[t])) for s, t in ei.T}


def test_csr_exact_neighbours():
    g = CSRGraph.from_edge_index(_undirected(STAR).numpy(), 9)  # numpy input works too
    assert g.num_nodes == 9 and g.num_edges == 14
    assert g.degree().tolist() == [5, 1, 1, 1, 1, 2, 2, 1, 0]
    assert sorted(g.neighbors(0).tolist()) == [1, 2, 3, 4, 5]
    assert sorted(g.neighbors(5).tolist()) == [0, 6]
    assert g.neighbors(8).tolist() == []
    # edge_id points back at the input column: source of that column equals col
    ei = _undirected(STAR)
    assert torch.equal(ei[0, g.edge_id], g.col)


def test_directed_neighbours_are_message_sources():
    # 0 -> 1, 2 -> 1: node 1 receives from 0 and 2; node 0 receives nothing
    g = CSRGraph.from_edge_index(torch.tensor([[0, 2], [1, 1]]), 3)
    assert sorted(g.neighbors(1).tolist()) == [0, 2]
    assert g.neighbors(0).tolist() == []


def test_full_two_hop_subgraph_by_hand():
    g = CSRGraph.from_edge_index(_undirected(STAR), 9)
    n_id, ei, seed_local = sample_subgraph(g, torch.tensor([6]), [-1, -1])
    # hop 0: 6 <- {5, 7}; hop 1: 5 <- {0, 6}, 7 <- {6}
    assert n_id[0] == 6 and set(n_id.tolist()) == {6, 5, 7, 0}
    assert sorted(n_id[1:3].tolist()) == [5, 7]  # hop-1 nodes come before hop-2 nodes
    assert n_id[3] == 0
    assert seed_local.tolist() == [0]
    assert _global_edges(n_id, ei) == {(5, 6), (7, 6), (0, 5), (6, 5), (6, 7)}
    assert ei.shape == (2, 5)


def test_k_limits_and_sampled_edges_are_real():
    g = CSRGraph.from_edge_index(_undirected(STAR), 9)
    real = set(map(tuple, _undirected(STAR).T.tolist()))
    for s in range(20):
        gen = torch.Generator().manual_seed(s)
        n_id, ei, _ = sample_subgraph(g, torch.tensor([0, 6]), [2, 1], gen)
        edges = _global_edges(n_id, ei)
        assert edges <= real
        into0 = [e for e in edges if e[1] == 0]
        assert len(into0) == 2  # degree 5 > k = 2: exactly 2 sampled
        assert {e for e in edges if e[1] == 6} == {(5, 6), (7, 6)}  # degree 2 <= k: all
        assert len({tuple(e) for e in ei.T.tolist()}) == ei.shape[1]  # no edge sampled twice
        assert len(n_id) == len(set(n_id.tolist()))
        # every node first reached at hop 0 keeps at most k = 1 incoming edge at hop 1
        for v in set(n_id.tolist()) - {0, 6}:
            assert sum(1 for e in edges if e[1] == v) <= 1
        assert {e[1] for e in edges} - {0, 6}  # hop 1 did sample something


def test_sampling_is_uniform_without_replacement():
    # 4000 disjoint stars, centre 6c with leaves 6c+1..6c+5; sample 2 of 5 leaves for every centre at once
    n_star = 4000
    c = 6 * np.arange(n_star)
    pairs = np.stack([np.repeat(c, 5), (c[:, None] + np.arange(1, 6)).ravel()], axis=1)
    g = CSRGraph.from_edge_index(_undirected(pairs), 6 * n_star)
    n_id, ei, _ = sample_subgraph(g, torch.as_tensor(c), [2], torch.Generator().manual_seed(0))
    src, dst = n_id[ei[0]].numpy(), n_id[ei[1]].numpy()
    assert np.array_equal(np.bincount(dst // 6, minlength=n_star), np.full(n_star, 2))
    assert np.all(src // 6 == dst // 6) and np.all(src % 6 > 0)
    assert len(np.unique(src)) == len(src)  # without replacement
    # each leaf is in a 2-of-5 sample with probability 2/5 (std of the mean 0.008)
    np.testing.assert_allclose(np.bincount(src % 6, minlength=6)[1:] / n_star, 0.4, atol=0.03)


def test_seeds_first_duplicates_and_mapping():
    g = CSRGraph.from_edge_index(_undirected(STAR), 9)
    seeds = torch.tensor([7, 3, 7, 8])
    n_id, ei, seed_local = sample_subgraph(g, seeds, [-1])
    assert n_id[:3].tolist() == [7, 3, 8]
    assert torch.equal(n_id[seed_local], seeds)
    assert seed_local.tolist() == [0, 1, 0, 2]
    assert _global_edges(n_id, ei) == {(6, 7), (0, 3)}


def test_determinism_under_generator():
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, 200, size=(1000, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    g = CSRGraph.from_edge_index(_undirected(pairs), 200)
    out = [sample_subgraph(g, torch.arange(10), [3, 3], torch.Generator().manual_seed(5), return_edge_id=True)
           for _ in range(2)]
    for a, b in zip(*out):
        assert torch.equal(a, b)
    other = sample_subgraph(g, torch.arange(10), [3, 3], torch.Generator().manual_seed(6))
    assert not torch.equal(out[0][1], other[1]) or not torch.equal(out[0][0], other[0])
    # e_id maps each sampled edge back to its input column
    n_id, ei, _, e_id = out[0]
    full = _undirected(pairs)
    assert torch.equal(full[:, e_id], n_id[ei])


def test_errors():
    with pytest.raises(NeuroharnessError, match=r"\[0, 3\)"):
        CSRGraph.from_edge_index(torch.tensor([[0], [3]]), 3)
    with pytest.raises(NeuroharnessError, match="shape"):
        CSRGraph.from_edge_index(torch.tensor([0, 1, 2]), 3)
    with pytest.raises(NeuroharnessError, match="integer"):
        CSRGraph.from_edge_index(torch.tensor([[0.0], [1.0]]), 3)
    g = CSRGraph.from_edge_index(torch.tensor([[0], [1]]), 3)
    with pytest.raises(NeuroharnessError, match="seeds"):
        sample_subgraph(g, torch.tensor([5]), [1])
    with pytest.raises(NeuroharnessError, match="num_neighbors"):
        sample_subgraph(g, torch.tensor([0]), [-2])


def test_seed_batches_cover_every_node_once():
    gen = torch.Generator().manual_seed(0)
    batches = list(seed_batches(torch.arange(10), 4, gen))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
    assert torch.cat(list(seed_batches(torch.arange(10), 4, shuffle=False))).tolist() == list(range(10))


@pytest.fixture
def random_graph():
    rng = np.random.default_rng(1)
    n = 300
    pairs = rng.integers(0, n, size=(900, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    ei = _undirected(pairs)
    x = torch.as_tensor(rng.normal(size=(n, 5)), dtype=torch.float32)
    return ei, x, n


def test_sampled_sage_equals_full_graph_when_k_covers_degree(random_graph):
    ei, x, n = random_graph
    g = CSRGraph.from_edge_index(ei, n)
    kmax = int(g.degree().max())
    torch.manual_seed(0)
    model = SAGE(5, 16, 4, num_layers=2).eval()
    with torch.no_grad():
        full = model(x, ei)
        seeds = torch.tensor([0, 17, 42, 299, 150])
        n_id, sub, seed_local = sample_subgraph(g, seeds, [kmax, kmax], torch.Generator().manual_seed(0))
        part = model(x[n_id], sub)[seed_local]
        torch.testing.assert_close(part, full[seeds], rtol=1e-5, atol=1e-5)
        # with k below the max degree the outputs of high-degree seeds differ
        hub = int(torch.argmax(g.degree()))
        n_id, sub, seed_local = sample_subgraph(g, torch.tensor([hub]), [1, 1], torch.Generator().manual_seed(0))
        assert not torch.allclose(model(x[n_id], sub)[seed_local], full[[hub]], atol=1e-4)


def test_layerwise_inference_equals_full_graph(random_graph):
    ei, x, n = random_graph
    g = CSRGraph.from_edge_index(ei, n)
    torch.manual_seed(1)
    model = SAGE(5, 8, 3, num_layers=3, dropout=0.5)
    model.train()
    with torch.no_grad():
        full = model.eval()(x, ei)
    model.train()
    out = layerwise_inference(model, x, g, batch_size=37)
    assert model.training  # mode restored
    torch.testing.assert_close(out, full, rtol=1e-5, atol=1e-5)
    some = layerwise_inference(model, x, g, batch_size=37, nodes=torch.tensor([3, 1]))
    torch.testing.assert_close(some, full[[3, 1]], rtol=1e-5, atol=1e-5)
