"""Benchmarks: vesselgraph ``prepare`` from CSV and ``open_graph`` + ``to_pyg`` at whole-brain scale.

    python -m pytest tests/benchmarks/test_bench_vesselgraph_loader.py --benchmark-only \\
        --benchmark-columns=min,median,max,rounds [--benchmark-json=bench.json]

Synthetic graphs in the exact CSV layout (``scripts/make_vesselgraph_fixture.py``,
mean degree ~3) are written once per session into ``$NH_BENCH_VESSELGRAPH_DIR``
(default: a temp dir; reused when the CSVs are already there) at the sizes in
``$NH_BENCH_VESSELGRAPH_NODES`` (default 884,624 / 1,769,248 / 3,538,495 nodes:
a quarter, half and one whole BALBc_no1 brain), to show how cost grows.

What is timed (wall clock, pytest-benchmark):

* ``test_prepare``: ``get_loader("vesselgraph").prepare(DIR, force=True)``: parse,
  validate, write the compressed store, checksum it, hash the raw files. 1 round.
* ``test_open_to_pyg``: ``to_pyg(open_graph(graph))`` (undirected, isolated nodes
  removed, ``x`` = positions). 3 rounds.

Memory: each step is also run once, untimed, in a fresh Python process;
``extra_info`` gets its wall time there (``subprocess_s``, imports excluded)
and the process's peak RSS (``peak_rss_mb``, ``VmHWM``: everything, torch
and the interpreter included; ``baseline_rss_mb`` is the same process after
the imports alone).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import bench_dir

ROOT = Path(__file__).resolve().parents[2]
SIZES = [int(s) for s in os.environ.get("NH_BENCH_VESSELGRAPH_NODES", "884624,1769248,3538495").split(",")]

CHILD = r"""
import json, os, resource, sys, time
from neuroharness.loaders import get_loader
from neuroharness.loaders.vesselgraph import graph_index, open_graph, to_pyg
import torch, torch_geometric  # imported before the clock starts, as in a training script
step, src = sys.argv[1], sys.argv[2]
t = time.perf_counter()
if step == "prepare":
    get_loader("vesselgraph").prepare(src, force=True)
elif step == "open_to_pyg":
    graph = graph_index(get_loader("vesselgraph").open())["graph"][0]
    data = to_pyg(open_graph(graph))
seconds = time.perf_counter() - t
try:  # VmHWM: this process's own peak; ru_maxrss may carry the parent's peak over a vfork + exec
    peak = next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM:")) / 1024
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak}))
"""


@pytest.fixture(scope="module")
def bench_root(tmp_path_factory):
    return bench_dir("NH_BENCH_VESSELGRAPH_DIR", tmp_path_factory, "vesselgraph_bench")


def _csvs(root: Path, n: int) -> Path:
    """CSVs of an ``n``-node synthetic graph (written once; the generator runs in its own process)."""
    out = root / f"csv_{n}"
    if not list(out.rglob("*_edges_processed.csv")):
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_vesselgraph_fixture.py"), str(out), "--nodes", str(n)],
                       check=True)
    return out


def _child(step: str, src: Path, home: Path) -> dict:
    env = {**os.environ, "NEUROHARNESS_HOME": str(home), "NEUROHARNESS_QUIET": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, step, str(src)], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def baseline_rss_mb(bench_root) -> float:
    """Peak RSS of the child process that only imports (harness, torch, torch_geometric)."""
    return round(_child("imports", bench_root, bench_root / "home_none")["peak_rss_mb"])


@pytest.fixture
def home_for(bench_root, monkeypatch):
    def use(n: int) -> Path:
        home = bench_root / f"home_{n}"
        monkeypatch.setenv("NEUROHARNESS_HOME", str(home))
        monkeypatch.setenv("NEUROHARNESS_QUIET", "1")
        return home
    return use


@pytest.mark.parametrize("n", SIZES)
def test_prepare(benchmark, bench_root, home_for, baseline_rss_mb, n):
    from neuroharness.loaders import get_loader
    from neuroharness.loaders.vesselgraph import graph_index

    src = _csvs(bench_root, n)
    home = home_for(n)
    child = _child("prepare", src, home)
    benchmark.pedantic(lambda: get_loader("vesselgraph").prepare(src, force=True), rounds=2, iterations=1)
    idx = graph_index(get_loader("vesselgraph").open())
    size = sum(p.stat().st_size for p in src.rglob("*.csv"))
    store = sum(p.stat().st_size for p in get_loader("vesselgraph").store_path().rglob("*") if p.is_file())
    benchmark.extra_info.update(nodes=int(idx.n_nodes[0]), edges=int(idx.n_edges[0]), csv_mb=round(size / 2**20),
                                store_mb=round(store / 2**20), subprocess_s=round(child["seconds"], 2),
                                peak_rss_mb=round(child["peak_rss_mb"]), baseline_rss_mb=baseline_rss_mb)


@pytest.mark.parametrize("n", SIZES)
def test_open_to_pyg(benchmark, bench_root, home_for, baseline_rss_mb, n):
    from neuroharness.loaders import get_loader
    from neuroharness.loaders.vesselgraph import graph_index, open_graph, to_pyg

    src = _csvs(bench_root, n)
    home = home_for(n)
    loader = get_loader("vesselgraph")
    if not loader.store_path().exists():
        loader.prepare(src)
    graph = graph_index(loader.open())["graph"][0]
    child = _child("open_to_pyg", src, home)
    data = benchmark.pedantic(lambda: to_pyg(open_graph(graph)), rounds=3, iterations=1)
    benchmark.extra_info.update(nodes=int(data.num_nodes), directed_edges=int(data.edge_index.shape[1]),
                                subprocess_s=round(child["seconds"], 2), peak_rss_mb=round(child["peak_rss_mb"]),
                                baseline_rss_mb=baseline_rss_mb)
