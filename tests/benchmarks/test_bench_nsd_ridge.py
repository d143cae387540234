"""Benchmarks: the per-vertex cross-validated ridge of the nsd-encoding baselines at the size of one subject.

The default test run skips these (``addopts`` has ``--benchmark-skip``). Run them with::

    python -m pytest tests/benchmarks/test_bench_nsd_ridge.py --benchmark-only \\
        --benchmark-columns=min,median,max,rounds [--benchmark-json=bench.json]

The case (synthetic, with NSD's sizes for subj01): 9,841 training and 159 test images × 100 features
(like principal components: column standard deviations from 100 down to 3), 39,548 vertices (19,004 lh +
20,544 rh) of float32 responses, ``features @ W + noise`` with a signal-to-noise ratio that varies over the
vertices (so the chosen penalties vary). BLAS runs on 2 threads (threadpoolctl) for everything timed.

What is timed (wall clock):

* ``ridge_cv``: :func:`neuroharness.tasks.nsd.ridge.ridge_cv` (5 folds, the default 21 penalties, every
  vertex) + predicting the 159 test images, 3 rounds. ``extra_info``: ``rss_before_mb`` and
  ``peak_rss_mb``, the process's resident set before one untimed fit + predict and its high-water mark
  during it (Linux ``VmHWM`` reset through ``/proc/self/clear_refs``; it includes the 1.6 GB of inputs).
  Targets: <= 30 s and <= 4 GB.
* ``linear_regression_loop``: the devkit's way, scikit-learn ``LinearRegression`` fitted and applied per
  vertex in a loop, timed on the first ``N_LOOP`` vertices and extrapolated linearly to all of them
  (``extra_info["extrapolated_s"]``, and ``ratio``: extrapolated / ``ridge_cv``'s median).
* ``sklearn_ridgecv``: scikit-learn ``RidgeCV(alphas=the same grid, alpha_per_target=True)`` (its default
  efficient leave-one-out), timed on ``N_SKLEARN`` vertices and extrapolated the same way.
* ``himalaya_ridgecv``: ``himalaya.ridge.RidgeCV`` on the same folds and grid (numpy backend, float32,
  ``n_targets_batch=2000``), timed on ``N_HIMALAYA`` vertices and extrapolated, after timing its work that
  does not depend on the vertices (an alphas × validation × training rows matrix per fold) on ``N_FIXED``
  vertices (``fixed_s``): extrapolated = fixed + (time - fixed) × the vertex ratio. ``alpha_agreement``:
  the share of those vertices where it chose the same penalty as ``ridge_cv``.

Beyond the decomposition of the features (and himalaya's fixed part, timed apart), each compared method
costs the same for every vertex (each vertex is an independent problem), which makes the linear
extrapolation fair.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from helpers import peak_rss

threadpoolctl = pytest.importorskip("threadpoolctl")

N_TRAIN, N_TEST, P, V = 9_841, 159, 100, 19_004 + 20_544
THREADS = 2
LIMIT_S, LIMIT_MB = 30.0, 4096
N_LOOP, N_SKLEARN, N_HIMALAYA, N_FIXED = 200, 2_000, 2_000, 10

_timings: dict[str, float] = {}


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((N_TRAIN + N_TEST, P)) * np.geomspace(100, 3, P)).astype(np.float32)
    Y = np.empty((N_TRAIN, V), np.float32)
    snr = np.geomspace(0.01, 1.0, V).astype(np.float32)
    for j0 in range(0, V, 4096):  # column blocks: no full-size temporaries
        j1 = min(V, j0 + 4096)
        W = rng.standard_normal((P, j1 - j0), dtype=np.float32) * (snr[j0:j1] / 100)
        Y[:, j0:j1] = X[:N_TRAIN] @ W
        Y[:, j0:j1] += rng.standard_normal((N_TRAIN, j1 - j0), dtype=np.float32)
    return X[:N_TRAIN], X[N_TRAIN:], Y


def _ratio(benchmark, seconds: float, n_timed: int) -> None:
    extrapolated = seconds * V / n_timed
    benchmark.extra_info.update(vertices_timed=n_timed, extrapolated_s=round(extrapolated, 1))
    if "ridge_cv" in _timings:
        benchmark.extra_info["ratio"] = round(extrapolated / _timings["ridge_cv"], 1)


def test_ridge_cv(benchmark, problem):
    from neuroharness.tasks.nsd.ridge import ridge_cv

    X, Xt, Y = problem
    out = {}

    def fit_predict():
        fit = ridge_cv(X, Y, folds=5, seed=0)
        out["fit"], out["pred"] = fit, fit.predict(Xt)

    with threadpoolctl.threadpool_limits(THREADS):
        benchmark.extra_info.update(peak_rss(fit_predict))
        benchmark.pedantic(fit_predict, rounds=3, iterations=1)
    _timings["ridge_cv"] = benchmark.stats.stats.median
    fit = out["fit"]
    benchmark.extra_info["distinct_alphas"] = int(len(np.unique(fit.alphas)))
    assert out["pred"].shape == (N_TEST, V) and np.isfinite(out["pred"]).all()
    # the noisier vertices (low SNR, first columns) must get larger penalties than the cleaner ones
    assert np.median(fit.alphas[: V // 10]) > np.median(fit.alphas[-V // 10:])
    assert benchmark.stats.stats.median < LIMIT_S
    if "peak_rss_mb" in benchmark.extra_info:
        assert benchmark.extra_info["peak_rss_mb"] < LIMIT_MB


def test_linear_regression_loop(benchmark, problem):
    from sklearn.linear_model import LinearRegression

    X, Xt, Y = problem

    def loop():
        for v in range(N_LOOP):
            LinearRegression().fit(X, Y[:, v]).predict(Xt)

    with threadpoolctl.threadpool_limits(THREADS):
        benchmark.pedantic(loop, rounds=1, iterations=1)
    _ratio(benchmark, benchmark.stats.stats.median, N_LOOP)


def test_sklearn_ridgecv(benchmark, problem):
    from sklearn.linear_model import RidgeCV

    from neuroharness.tasks.nsd.ridge import alpha_grid

    X, Xt, Y = problem
    Ys = np.ascontiguousarray(Y[:, :N_SKLEARN])

    def fit_predict():
        RidgeCV(alphas=alpha_grid(), alpha_per_target=True).fit(X, Ys).predict(Xt)

    with threadpoolctl.threadpool_limits(THREADS):
        benchmark.pedantic(fit_predict, rounds=1, iterations=1)
    _ratio(benchmark, benchmark.stats.stats.median, N_SKLEARN)


def test_himalaya_ridgecv(benchmark, problem):
    from neuroharness.tasks.nsd.ridge import himalaya_ridge_cv, ridge_cv

    X, Xt, Y = problem
    Ys = np.ascontiguousarray(Y[:, :N_HIMALAYA])
    out = {}

    def fit_predict(Y_):
        out["fit"] = himalaya_ridge_cv(X, Y_, folds=5, seed=0)
        out["fit"].predict(Xt)

    with threadpoolctl.threadpool_limits(THREADS):
        t = time.perf_counter()
        fit_predict(Ys[:, :N_FIXED])
        fixed = time.perf_counter() - t
        benchmark.pedantic(fit_predict, args=(Ys,), rounds=1, iterations=1)
        ours = ridge_cv(X, Ys, folds=5, seed=0)
    seconds = benchmark.stats.stats.median
    # per fold, himalaya first builds an (alphas × validation × training rows) matrix whatever the number of
    # vertices: that part is timed once (N_FIXED vertices), only the rest scales with the vertices
    extrapolated = fixed + (seconds - fixed) * (V - N_FIXED) / (N_HIMALAYA - N_FIXED)
    benchmark.extra_info.update(vertices_timed=N_HIMALAYA, fixed_s=round(fixed, 1),
                                extrapolated_s=round(extrapolated, 1))
    if "ridge_cv" in _timings:
        benchmark.extra_info["ratio"] = round(extrapolated / _timings["ridge_cv"], 1)
    agree = float(np.mean(np.isclose(ours.alphas, out["fit"].alphas, rtol=1e-4)))
    benchmark.extra_info["alpha_agreement"] = round(agree, 4)
    assert agree > 0.95
