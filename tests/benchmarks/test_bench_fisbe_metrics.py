"""Benchmarks: FISBe metrics (``evaluate_instances``) on real-size volumes.

The default test run skips these (``addopts`` has ``--benchmark-skip``). Run them with::

    python -m pytest tests/benchmarks/test_bench_fisbe_metrics.py --benchmark-only \\
        --benchmark-columns=min,median,max,rounds [--benchmark-json=bench.json]

What is timed (wall clock, pytest-benchmark, 5 rounds): one ``evaluate_instances``
call with the default settings (``remove_small=800``, not partly) on

* ``synthetic``: a (385, 685, 686) volume (the FISBe size) from
  ``scripts/make_fisbe_fixture.py`` with 7 GT neurons as a (7, Z, Y, X) uint8 stack
  (crossing, so overlapping), against a uint16 label image derived from it with 12
  labels (one kept, two merged, one split in 2, one split in 3, one dropped, one
  kept; 3 small and 1 larger spurious balls): ``derive_prediction`` in
  ``tests/test_instance_segmentation_metrics.py``;
* ``real``: ``../shared/data/fisbe/predictions/R14A02-20180905_65_A6.hdf`` (int32
  (385, 685, 686)), ``volumes/gmm_label`` as a stand-in GT and
  ``volumes/gmm_label_cleaned`` as the prediction; skipped when absent.

Memory goes into ``extra_info``: before timing, the call runs once untimed under
``tracemalloc``; ``peak_mb`` is the traced peak of that call (numpy buffers included;
the inputs, allocated beforehand, are not counted) and must stay below 2 GB.
``ru_maxrss_growth_mb`` is how much that call raised the process high-water RSS
(coarse: 0 when earlier set-up already went higher).  The first call of the session
also pays numba's compile (or cache load): ``first_call_s``.
Target: at most 5 s and 2 GB per volume on 2 cores.
"""
from __future__ import annotations

import resource
import time
import tracemalloc
from pathlib import Path

import pytest
from helpers import load_script
from neuroharness.metrics.instance_segmentation import evaluate_instances
from test_instance_segmentation_metrics import derive_prediction

SHAPE = (385, 685, 686)
REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "fisbe" / "predictions" \
    / "R14A02-20180905_65_A6.hdf"
LIMIT_BYTES = 2 * 1024**3
LIMIT_S = 5.0
ROUNDS = 5

_first_call = {}


@pytest.fixture(scope="module")
def synthetic():
    _, gt = load_script("make_fisbe_fixture").synthetic_sample(SHAPE, n_neurons=7, seed=0)
    return gt, derive_prediction(gt, seed=0)


@pytest.fixture(scope="module")
def real():
    if not REAL.exists():
        pytest.skip(f"real FISBe prediction file not found at {REAL}")
    h5py = pytest.importorskip("h5py")
    with h5py.File(REAL, "r") as f:
        return f["volumes/gmm_label"][:], f["volumes/gmm_label_cleaned"][:]


def _measure(benchmark, gt, pred):
    if not _first_call:  # numba compile or cache load happens here, once per process
        t = time.perf_counter()
        evaluate_instances(gt, pred)
        _first_call["s"] = time.perf_counter() - t
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    try:
        expected = evaluate_instances(gt, pred)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    benchmark.extra_info.update(
        peak_mb=round(peak / 2**20, 1), ru_maxrss_mb=round(rss1 / 1024, 1),
        ru_maxrss_growth_mb=round((rss1 - rss0) / 1024, 1),
        first_call_s=round(_first_call["s"], 3), gt_shape=list(gt.shape), n_gt=expected["n_gt"],
        n_pred=expected["n_pred"], n_removed=expected["n_removed"])
    assert peak < LIMIT_BYTES, f"traced peak {peak / 2**30:.2f} GiB >= 2 GiB"
    result = benchmark.pedantic(evaluate_instances, args=(gt, pred), rounds=ROUNDS, iterations=1)
    assert result == expected
    assert benchmark.stats.stats.median < LIMIT_S
    return result


def test_synthetic(benchmark, synthetic):
    gt, pred = synthetic
    r = _measure(benchmark, gt, pred)
    assert r["n_gt"] == 7 and r["n_pred"] + r["n_removed"] == 12
    assert r["fm"] >= 1 and r["n_removed"] >= 3


def test_real(benchmark, real):
    gt, pred = real
    r = _measure(benchmark, gt, pred)
    assert r["n_gt"] == 2 and r["n_pred"] + r["n_removed"] == 11
