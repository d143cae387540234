"""Benchmarks: ``datasets prepare`` in one process vs on a 2-worker dask ``LocalCluster``, and what the measured
per-part costs imply for a 32-worker cluster.

    python -m pytest tests/benchmarks/test_bench_cluster.py --benchmark-only -s \\
        --benchmark-columns=min,rounds [--benchmark-json=bench.json]

Data (written once per session into ``$NH_BENCH_CLUSTER_DIR``, default a temp dir; reused when there):

* ``fisbe``: the release fixture with all 101 official sample names (``scripts/make_fisbe_fixture.py
  --official-names``) at ``$NH_BENCH_CLUSTER_FISBE_SHAPE`` (default ``64,128,128`` voxels; the real volumes
  are ~1.2 GB each: the per-part figures scale with voxels).
* ``vesselgraph``: ``$NH_BENCH_CLUSTER_VG_GRAPHS`` graphs (default 4) of ``$NH_BENCH_CLUSTER_VG_NODES`` nodes
  each (default 884,624: a quarter of the whole-brain BALBc_no1 graph, so four make one brain's worth)
  in the release's CSV layout.

What is measured, each command in a fresh process (``tests/helpers.run_child``: wall time and peak RSS of
that process; the workers' memory is not in it):

* ``one process``: ``neuroharness datasets prepare NAME --source DIR --force``;
* ``LocalCluster``: the same with ``--dask-scheduler`` of a 2-worker cluster (1 thread each) started by the
  test; the store's ``content_sha256`` and ``parts_sha256`` must equal the one-process store's;
* per-part costs: the in-process prepare run once more with each part timed (``write_parts``' function
  wrapped), so ``serial`` = total - sum(parts) is what stays in the client (the index, the checks, the
  content checksum, hashing the raw files).

The model: T(n workers) = serial + makespan of the measured part times on n workers (longest part first),
plus the per-run cluster overhead measured here as T_cluster(2) - model(2). ``extra_info`` holds the
measured and modelled times, and the 32-worker prediction.
"""
from __future__ import annotations

import heapq
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import bench_dir, run_child

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[2]
SHAPE = tuple(int(s) for s in os.environ.get("NH_BENCH_CLUSTER_FISBE_SHAPE", "64,128,128").split(","))
VG_GRAPHS = int(os.environ.get("NH_BENCH_CLUSTER_VG_GRAPHS", "4"))
VG_NODES = int(os.environ.get("NH_BENCH_CLUSTER_VG_NODES", "884624"))

# the in-process prepare with each part's function timed (the module global the store writer calls)
TIMED = r"""
import json, sys, time
from neuroharness.loaders import get_loader
name, src = sys.argv[1], sys.argv[2]
if name == "fisbe":
    import neuroharness.loaders.fisbe.store as mod; attr = "write_sample"
else:
    import neuroharness.loaders.vesselgraph.store as mod; attr = "write_graph_part"
inner, parts = getattr(mod, attr), []
def timed(*args, **kw):
    t = time.perf_counter(); out = inner(*args, **kw); parts.append(time.perf_counter() - t); return out
setattr(mod, attr, timed)
t = time.perf_counter()
get_loader(name).prepare(src, force=True)
print(json.dumps({"total_s": time.perf_counter() - t, "parts_s": parts}))
"""


def makespan(costs: list[float], workers: int) -> float:
    """Finish time of ``costs`` on ``workers`` (longest first, each to the least loaded worker)."""
    loads = [0.0] * workers
    for c in sorted(costs, reverse=True):
        heapq.heapreplace(loads, loads[0] + c)
    return max(loads)


@pytest.fixture(scope="module")
def bench_root(tmp_path_factory):
    return bench_dir("NH_BENCH_CLUSTER_DIR", tmp_path_factory, "cluster_bench")


def _source(root: Path, name: str) -> Path:
    if name == "fisbe":
        out = root / f"fisbe_{'x'.join(map(str, SHAPE))}"
        if not (out / "sample_list_per_split.txt").exists():
            code = ("import sys; sys.path.insert(0, 'scripts'); import make_fisbe_fixture as g; "
                    f"g.write_release({str(out)!r}, None, {SHAPE!r}, 4, seed=0, official=True)")
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
        return out
    out = root / f"vesselgraph_{VG_GRAPHS}x{VG_NODES}"
    if len(list(out.rglob("*_edges_processed.csv"))) < VG_GRAPHS:
        graphs = {f"synthetic_graph_{i + 1}": VG_NODES for i in range(VG_GRAPHS)}
        code = ("import sys; sys.path.insert(0, 'scripts'); import make_vesselgraph_fixture as g; "
                f"g.write_release({str(out)!r}, {graphs!r})")
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return out


@pytest.fixture(scope="module")
def local_cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=40) as lc:
        yield lc


def _env(home: Path) -> dict:
    return {**os.environ, "NEUROHARNESS_HOME": str(home), "NEUROHARNESS_QUIET": "1"}


def _attrs(home: Path, name: str) -> dict:
    from neuroharness.loaders.base import root_attrs

    (store,) = (home / "datasets" / name).glob("*.zarr")
    return root_attrs(store)


@pytest.mark.parametrize("name", ["fisbe", "vesselgraph"])
def test_prepare_one_process_vs_local_cluster(benchmark, name, bench_root, local_cluster, tmp_path):
    src = _source(bench_root, name)
    cli = [sys.executable, "-m", "neuroharness.cli", "datasets", "prepare", name, "--source", str(src), "--force"]
    one = run_child(cli, _env(tmp_path / "one"), tmp_path)
    box = {}

    def on_cluster():
        box.update(run_child(cli + ["--dask-scheduler", local_cluster.scheduler_address], _env(tmp_path / "two"),
                             tmp_path))

    benchmark.pedantic(on_cluster, rounds=1, iterations=1)
    a, b = _attrs(tmp_path / "one", name), _attrs(tmp_path / "two", name)
    assert a["content_sha256"] == b["content_sha256"] and a["parts_sha256"] == b["parts_sha256"]

    timed = json.loads(run_child([sys.executable, "-c", TIMED, name, str(src)], _env(tmp_path / "timed"),
                                 tmp_path)["stdout"].strip().splitlines()[-1])
    parts = timed["parts_s"]
    serial = timed["total_s"] - sum(parts)
    model2 = serial + makespan(parts, 2)
    overhead = box["wall_s"] - model2 - (one["wall_s"] - timed["total_s"])  # startup (imports) counted once
    info = {
        "parts": len(parts), "part_s_min": min(parts), "part_s_median": sorted(parts)[len(parts) // 2],
        "part_s_max": max(parts), "parts_s_sum": sum(parts), "serial_s": serial,
        "one_process_wall_s": one["wall_s"], "one_process_peak_rss_mb": one["peak_rss_mb"],
        "cluster2_wall_s": box["wall_s"], "cluster2_client_peak_rss_mb": box["peak_rss_mb"],
        "speedup_2": one["wall_s"] / box["wall_s"], "model_2_s": model2, "cluster_overhead_s": overhead,
        "model_32_s": serial + makespan(parts, 32) + max(0.0, overhead) + (one["wall_s"] - timed["total_s"]),
    }
    info["speedup_32_model"] = one["wall_s"] / info["model_32_s"]
    benchmark.extra_info.update({k: round(v, 3) if isinstance(v, float) else v for k, v in info.items()})
    print(f"\n{name}: " + json.dumps(benchmark.extra_info))
