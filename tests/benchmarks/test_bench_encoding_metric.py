"""Benchmark: the Algonauts 2023 metric (``metrics/encoding.py``) over all 8 subjects at real size.

The default test run skips these (``addopts`` has ``--benchmark-skip``). Run with::

    python -m pytest tests/benchmarks/test_bench_encoding_metric.py --benchmark-only \\
        --benchmark-columns=min,median,max,rounds

What is timed: per-vertex scores (:func:`vertex_scores`: Pearson r, r2, noise-normalized score)
of the 16 (subject, hemisphere) pairs of the challenge (test images 159/159/293/395/159/293/159/395,
vertices 19,004 + 20,544, subj06 18,978 + 20,220, subj08 18,981 + 20,530), float32 predictions and
responses, float32 noise ceilings, then :func:`summarize` with each pooling. Target (issue 14):
at most 2 s on 2 cores.
"""
from __future__ import annotations

import numpy as np
import pytest
from neuroharness.metrics.encoding import POOLINGS, summarize, vertex_scores

TEST_IMAGES = (159, 159, 293, 395, 159, 293, 159, 395)
VERTICES = {6: (18978, 20220), 8: (18981, 20530)}
LIMIT_S = 2.0


@pytest.fixture(scope="module")
def subjects():
    rng = np.random.default_rng(0)
    out = []
    for i, n in enumerate(TEST_IMAGES, start=1):
        for hemi, v in zip(("lh", "rh"), VERTICES.get(i, (19004, 20544))):
            target = rng.standard_normal((n, v), dtype=np.float32)
            pred = (0.3 * target + rng.standard_normal((n, v), dtype=np.float32)).astype(np.float32)
            out.append((f"subj{i:02d}", hemi, pred, target, rng.random(v, dtype=np.float32)))
    return out


@pytest.mark.parametrize("pooling", POOLINGS)
def test_metric_eight_subjects(benchmark, subjects, pooling):
    def run():
        groups = {(s, h): vertex_scores(p, t, nc) for s, h, p, t, nc in subjects}
        return summarize(groups, pooling)

    result = benchmark.pedantic(run, rounds=5, iterations=1)
    assert result.metrics["n_vertices"] == sum(len(nc) for *_, nc in subjects)
    benchmark.extra_info["n_vertices"] = result.metrics["n_vertices"]
    assert benchmark.stats.stats.median < LIMIT_S
