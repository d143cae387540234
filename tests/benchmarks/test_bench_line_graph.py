"""Benchmark: vectorized line graph (``tasks/graph/line_graph.py``) up to whole-brain size.

The default test run skips these (``addopts`` has ``--benchmark-skip``). Run them with::

    python -m pytest tests/benchmarks/test_bench_line_graph.py --benchmark-only \\
        --benchmark-columns=min,median,max,rounds [--benchmark-json=bench.json]

Input: a random simple graph with a vessel-like degree profile (configuration
model: 78% degree 3, 6% degree 1, 2% degree 2, 14% degree 4, mean 3.0; self-loops and
repeated edges dropped) at 1/4, 1/2 and 1 x BALBc_no1 (3,538,495 nodes,
5.3 M edges). What is timed (3 rounds): ``line_graph(edge_index, n)`` with
the default simple-graph check and both directions, i.e. what the vessel
classification task builds. ``extra_info``: nodes, edges, line-graph edges
(directed), ``peak_mb`` (tracemalloc peak of one untimed call: numpy buffers,
the input excluded) and ``ru_maxrss_mb``. Target at full size: <= 30 s and
<= 6 GB on 2 cores.
"""
from __future__ import annotations

import resource
import tracemalloc

import numpy as np
import pytest
from neuroharness.tasks.graph.line_graph import line_graph

WHOLE_BRAIN_NODES = 3_538_495
LIMIT_S, LIMIT_BYTES = 30.0, 6 * 1024**3


def vessel_like_graph(n_nodes: int, seed: int = 0) -> np.ndarray:
    """(2, E) int64 simple graph, endpoints row < col, degrees mostly 3 (configuration model)."""
    rng = np.random.default_rng(seed)
    deg = rng.choice([3, 1, 2, 4], size=n_nodes, p=[0.78, 0.06, 0.02, 0.14])
    stubs = np.repeat(np.arange(n_nodes, dtype=np.int64), deg)
    rng.shuffle(stubs)
    stubs = stubs[: len(stubs) // 2 * 2].reshape(-1, 2)
    u, v = stubs.min(1), stubs.max(1)
    key = np.unique(u[u != v] * n_nodes + v[u != v])
    return np.stack([key // n_nodes, key % n_nodes])


@pytest.mark.parametrize("fraction", [0.25, 0.5, 1.0])
def test_line_graph(benchmark, fraction):
    n = int(WHOLE_BRAIN_NODES * fraction)
    ei = vessel_like_graph(n)
    tracemalloc.start()
    try:
        out = line_graph(ei, n)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    deg = np.bincount(ei.ravel(), minlength=n)
    assert out.shape[1] == int((deg * (deg - 1)).sum())  # 2 * sum d(d-1)/2
    del out
    benchmark.pedantic(line_graph, args=(ei, n), rounds=3, iterations=1)
    benchmark.extra_info.update(
        nodes=n, edges=int(ei.shape[1]), line_graph_edges=int((deg * (deg - 1)).sum()),
        peak_mb=round(peak / 2**20, 1),
        ru_maxrss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    assert peak <= LIMIT_BYTES
    if fraction == 1.0:
        assert benchmark.stats.stats.median <= LIMIT_S
