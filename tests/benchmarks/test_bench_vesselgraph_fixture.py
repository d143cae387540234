"""Benchmark: the synthetic VesselGraph generator (scripts/make_vesselgraph_fixture.py) up to whole-brain size.

The default test run skips this (``addopts`` has ``--benchmark-skip``). Run it with::

    python -m pytest tests/benchmarks/test_bench_vesselgraph_fixture.py --benchmark-only \\
        --benchmark-columns=min,median,max,rounds [--benchmark-json=bench.json]

What is timed (wall clock, pytest-benchmark, 1 round per size): one fresh Python process that imports the
generator, builds the graph with ``synthetic_graph(n, seed=0, atlas=True)`` and writes the three CSVs
with ``write_graph`` into a temp dir. Sizes: ``$NH_BENCH_VESSELGRAPH_FIXTURE_NODES`` (default 35,385 /
353,850 / 3,538,495 nodes: 1 %, 10 % and 100 % of BALBc_no1), to show how cost grows.

``extra_info`` per size: nodes, edges, ``generate_s`` and ``write_s`` (measured inside the child, imports
excluded), ``cpu_s`` (the child's user + system time), ``peak_rss_mb`` (the child's ``ru_maxrss``:
everything, interpreter and imports included) and ``csv_mb``.
Targets at whole-brain size: generate + write < 90 s and peak RSS < 6 GB on 2 cores.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_vesselgraph_fixture.py"
SIZES = [int(s) for s in os.environ.get("NH_BENCH_VESSELGRAPH_FIXTURE_NODES", "35385,353850,3538495").split(",")]
LIMIT_S = 90.0
LIMIT_RSS_MB = 6 * 1024

CHILD = r"""
import importlib.util, json, resource, sys, time
spec = importlib.util.spec_from_file_location("gen", sys.argv[1])
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)
n, out = int(sys.argv[2]), sys.argv[3]
t0 = time.perf_counter()
nodes, edges, atlas = gen.synthetic_graph(n, seed=0, atlas=True)
t1 = time.perf_counter()
gen.write_graph(out, "bench", nodes, edges, atlas)
t2 = time.perf_counter()
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"nodes": len(nodes), "edges": len(edges), "generate_s": t1 - t0, "write_s": t2 - t1,
                  "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": ru.ru_maxrss / 1024}))
"""


@pytest.mark.parametrize("n", SIZES)
def test_generate_and_write(benchmark, tmp_path, n):
    result = {}

    def run():
        out = subprocess.run([sys.executable, "-c", CHILD, str(SCRIPT), str(n), str(tmp_path)],
                             check=True, capture_output=True, text=True)
        result.update(json.loads(out.stdout.strip().splitlines()[-1]))

    benchmark.pedantic(run, rounds=1, iterations=1)
    csv_mb = sum(p.stat().st_size for p in tmp_path.glob("*.csv")) / 2**20
    benchmark.extra_info.update(nodes=result["nodes"], edges=result["edges"],
                                generate_s=round(result["generate_s"], 2), write_s=round(result["write_s"], 2),
                                cpu_s=round(result["cpu_s"], 1), peak_rss_mb=round(result["peak_rss_mb"]),
                                csv_mb=round(csv_mb))
    assert result["nodes"] == n and 1.45 < result["edges"] / n < 1.56
    assert result["generate_s"] + result["write_s"] < LIMIT_S * n / SIZES[-1] + 5  # about linear in n
    assert result["peak_rss_mb"] < LIMIT_RSS_MB
