"""Benchmarks: C. elegans prepare/open and the structure-function baselines.

Run on their own (the default test run skips them)::

    python -m pytest tests/benchmarks --benchmark-only --benchmark-columns=min,median,max,rounds

Times come from pytest-benchmark. Peak memory goes into ``extra_info``: a
separate untimed call runs under ``tracemalloc`` (Python and numpy
allocations; torch tensors are not traced), and ``peak_rss_mb`` is the
process's high-water resident set after the benchmark, which bounds
everything, including torch.
"""
from __future__ import annotations

import importlib.util
import resource
import tracemalloc

import pytest

import neuroharness as nh
from neuroharness.loaders import get_loader

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("cect") is None or importlib.util.find_spec("wormneuroatlas") is None,
    reason="needs the cect and wormneuroatlas wheels installed (pip install --no-deps cect==0.3.5 wormneuroatlas==0.0.7.3)",
)

DATASETS = ["celegans-connectome", "celegans-funatlas"]
MODELS = ["chance", "connectome-direct", "connectome-multihop", "gnn-link"]


def _traced_peak_mb(fn) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _record_memory(benchmark, fn) -> None:
    benchmark.extra_info["traced_peak_mb"] = round(_traced_peak_mb(fn), 1)
    benchmark.extra_info["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@pytest.mark.parametrize("name", DATASETS)
def test_prepare(benchmark, name):
    """Full rebuild from the raw files (read, homogenize, checksum, write Zarr)."""
    loader = get_loader(name)
    benchmark.pedantic(lambda: loader.prepare(force=True), rounds=3, iterations=1)
    _record_memory(benchmark, lambda: loader.prepare(force=True))


@pytest.mark.parametrize("name", DATASETS)
def test_open_lazy(benchmark, name):
    nh.prepare_dataset(name)
    benchmark(lambda: nh.open_dataset(name))
    _record_memory(benchmark, lambda: nh.open_dataset(name))


@pytest.mark.parametrize("name", DATASETS)
def test_open_and_load(benchmark, name):
    nh.prepare_dataset(name)
    benchmark(lambda: nh.open_dataset(name).load())
    _record_memory(benchmark, lambda: nh.open_dataset(name).load())


@pytest.mark.parametrize("model", MODELS)
def test_baseline_run(benchmark, model):
    """fit + predict (val and test) + scoring for seed 0; the task keeps the
    loaded data in memory, so this excludes I/O (see test_open_and_load)."""
    task = nh.get_task("celegans-structure-function")
    task.load()
    result = benchmark.pedantic(lambda: task.run_model(model, seed=0), rounds=3, iterations=1)
    benchmark.extra_info["roc_auc"] = round(result["metrics"]["roc_auc"], 4)
    _record_memory(benchmark, lambda: task.run_model(model, seed=0))
