"""Benchmarks: C. elegans prepare/open and the structure-function baselines.

The default test run skips these (``addopts`` has ``--benchmark-skip``). Run
them on their own::

    python -m pytest tests/benchmarks --benchmark-only \\
        --benchmark-columns=min,median,max,rounds [--benchmark-json=bench.json]

What is timed (wall clock, pytest-benchmark):

* ``test_prepare``: ``get_loader(name).prepare(force=True)``, a full rebuild
  from the installed ``cect`` / ``wormneuroatlas`` files (read, homogenize,
  checksum, write the Zarr store), 3 rounds.
* ``test_open_lazy``: ``open_dataset(name)``, metadata only (dask-backed).
* ``test_open_load``: ``open_dataset(name).load()``, every array into memory.
* ``test_baseline_run``: ``get_task("celegans-structure-function")
  .run_model(model, seed=0)`` per baseline (3 rounds for ``gnn-link``).

Memory goes into ``extra_info`` (see ``--benchmark-json``): before timing,
the operation runs once, untimed, under ``tracemalloc``; ``peak_mb`` is the
traced peak (Python and numpy allocations; torch tensors are not traced).
For ``gnn-link``, ``ru_maxrss_mb`` (process high-water RSS after that run)
and ``ru_maxrss_growth_mb`` (how much that run raised it) are added, which
do include torch; both are coarse, since the high-water mark is for the
whole process.

The stores go to a temporary ``NEUROHARNESS_HOME`` for this module.
"""
from __future__ import annotations

import importlib.util
import resource
import sys
import tracemalloc

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("cect") is None or importlib.util.find_spec("wormneuroatlas") is None,
    reason="needs the cect and wormneuroatlas packages (pip install --no-deps cect==0.3.5 wormneuroatlas==0.0.7.3)",
)

import neuroharness as nh  # noqa: E402
from neuroharness.loaders import get_loader  # noqa: E402

DATASETS = ["celegans-connectome", "celegans-funatlas"]
TASK = "celegans-structure-function"
MODELS = ["chance", "connectome-direct", "connectome-multihop", "gnn-link"]
SLOW_ROUNDS = 3


@pytest.fixture(scope="module", autouse=True)
def bench_home(tmp_path_factory):
    """A fresh cache root for this module, so prepare never touches a real cache."""
    home = tmp_path_factory.mktemp("neuroharness_bench_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROHARNESS_HOME", str(home))
        mp.setenv("NEUROHARNESS_QUIET", "1")
        yield home


def _maxrss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def _traced_peak_mb(fn):
    """Run ``fn`` once under tracemalloc; return (traced peak in MB, result)."""
    tracemalloc.start()
    try:
        result = fn()
        return tracemalloc.get_traced_memory()[1] / 2**20, result
    finally:
        tracemalloc.stop()


def _record_peak(benchmark, fn):
    peak, result = _traced_peak_mb(fn)
    benchmark.extra_info["peak_mb"] = round(peak, 1)
    return result


@pytest.mark.parametrize("name", DATASETS)
def test_prepare(benchmark, name):
    """Full rebuild each round (force=True): read raw files, homogenize, checksum, write Zarr."""
    loader = get_loader(name)
    _record_peak(benchmark, lambda: loader.prepare(force=True))
    benchmark.pedantic(lambda: loader.prepare(force=True), rounds=SLOW_ROUNDS, iterations=1)


@pytest.mark.parametrize("name", DATASETS)
def test_open_lazy(benchmark, name):
    nh.prepare_dataset(name)  # build once, untimed
    _record_peak(benchmark, lambda: nh.open_dataset(name))
    benchmark(lambda: nh.open_dataset(name))


@pytest.mark.parametrize("name", DATASETS)
def test_open_load(benchmark, name):
    nh.prepare_dataset(name)  # build once, untimed
    _record_peak(benchmark, lambda: nh.open_dataset(name).load())
    benchmark(lambda: nh.open_dataset(name).load())


@pytest.mark.parametrize("model", MODELS)
def test_baseline_run(benchmark, model):
    """fit + predict (val and test) + scoring for seed 0.

    The data are prepared and loaded once before timing, and the task keeps
    the built pairs in memory, so this measures fit+predict+scoring, not I/O
    (each run only re-opens the two stores lazily to check their checksums;
    see test_open_lazy for that cost, test_open_load for the reads).
    """
    task = nh.get_task(TASK)
    task.data()  # prepare + build the split, untimed
    rss_before = _maxrss_mb()
    result = _record_peak(benchmark, lambda: task.run_model(model, seed=0))
    if model == "gnn-link":  # torch allocations are invisible to tracemalloc
        benchmark.extra_info["ru_maxrss_mb"] = round(_maxrss_mb(), 1)
        benchmark.extra_info["ru_maxrss_growth_mb"] = round(_maxrss_mb() - rss_before, 1)
    benchmark.extra_info["roc_auc"] = round(result.metrics["roc_auc"], 4)
    if model == "gnn-link":
        benchmark.pedantic(lambda: task.run_model(model, seed=0), rounds=SLOW_ROUNDS, iterations=1)
    else:
        benchmark(lambda: task.run_model(model, seed=0))
