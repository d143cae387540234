"""Benchmark: spatial negative sampling (``tasks/graph/negative_sampling.py``) up to whole-brain size.

The default test run skips these (``addopts`` has ``--benchmark-skip``). Run them with::

    python -m pytest tests/benchmarks/test_bench_negative_sampling.py --benchmark-only \\
        --benchmark-columns=min,median,max,rounds [--benchmark-json=bench.json]

Input: a jittered cubic lattice (spacing 10, each node moved by U(-3, 3) per
axis) whose nodes are joined to each of their +x, +y, +z lattice neighbours
with probability 1/2 (mean degree 3, E ~ 1.5 N), at 0.1, 0.3 and 1 x
BALBc_no1 (3,538,495 nodes; ~5.3 M edges at full size). What is timed (2
rounds): ``spatial_negatives(pos, edges, E, delta=spatial_delta(distance),
n_workers=2)``, i.e. as many negatives as edges, as the link-prediction task
draws them. ``extra_info``: nodes, edges, delta, ``peak_mb`` (tracemalloc
peak of one untimed call: numpy buffers, inputs excluded; numba's own
allocations are small per-block arrays) and ``ru_maxrss_mb``. Target at
full size: <= 60 s and <= 6 GB on 2 cores.
"""
from __future__ import annotations

import resource
import tracemalloc

import numpy as np
import pytest
from neuroharness.tasks.graph.negative_sampling import spatial_delta, spatial_negatives

WHOLE_BRAIN_NODES = 3_538_495
LIMIT_S, LIMIT_BYTES = 60.0, 6 * 1024**3


def lattice_graph(n_nodes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(pos (N, 3) float64, edges (E, 2) int64 with u < v) of a jittered lattice; see the module docstring."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(n_nodes ** (1 / 3)))
    idx = np.arange(n_nodes, dtype=np.int64)
    ijk = np.stack([idx // (side * side), idx // side % side, idx % side], 1)
    pos = ijk * 10.0 + rng.uniform(-3, 3, (n_nodes, 3))
    edges = []
    for axis, step in enumerate((side * side, side, 1)):
        ok = (ijk[:, axis] + 1 < side) & (idx + step < n_nodes) & (rng.random(n_nodes) < 0.5)
        edges.append(np.stack([idx[ok], idx[ok] + step], 1))
    return pos, np.concatenate(edges)


@pytest.mark.parametrize("fraction", [0.1, 0.3, 1.0])
def test_spatial_negatives(benchmark, fraction):
    n = int(WHOLE_BRAIN_NODES * fraction)
    pos, edges = lattice_graph(n)
    delta = spatial_delta(np.linalg.norm(pos[edges[:, 0]] - pos[edges[:, 1]], axis=1))
    warm = np.column_stack([np.arange(10.0), np.zeros(10), np.zeros(10)])  # a chain, delta 3: 15 candidates
    spatial_negatives(warm, np.column_stack([np.arange(9), np.arange(1, 10)]), 1, delta=3.0, seed=0)  # numba load
    tracemalloc.start()
    try:
        out = spatial_negatives(pos, edges, len(edges), delta=delta, seed=0, n_workers=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.shape == (len(edges), 2) and (out[:, 0] < out[:, 1]).all()
    assert (np.abs(pos[out[:, 0]] - pos[out[:, 1]]) <= delta).all()
    del out
    benchmark.pedantic(spatial_negatives, args=(pos, edges, len(edges)),
                       kwargs={"delta": delta, "seed": 0, "n_workers": 2}, rounds=2, iterations=1)
    benchmark.extra_info.update(
        nodes=n, edges=len(edges), delta=round(delta, 3), peak_mb=round(peak / 2**20, 1),
        ru_maxrss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    assert peak <= LIMIT_BYTES
    if fraction == 1.0:
        assert benchmark.stats.stats.median <= LIMIT_S
