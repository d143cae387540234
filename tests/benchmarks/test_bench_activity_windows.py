"""Benchmark: training windows per second from the celegans-activity store vs pandas.

    python -m pytest tests/benchmarks/test_bench_activity_windows.py --benchmark-only \\
        --benchmark-columns=min,median,max,rounds

The store is built from a synthetic collection of full size (912 worms, the
published per-source counts; ``scripts/make_celegans_activity_fixture.py``),
generated once into ``$NH_BENCH_ACTIVITY_DIR`` (default: a temp dir), which
takes about a minute and 1.4 GB. Windows have context 200 + horizon 1, 256
per batch, 5 per 100 samples of each worm per epoch.

- ``test_windows_store``: :class:`WindowDataset` through a torch
  ``DataLoader`` with 0 and 2 workers; ``extra_info`` has windows/s.
- ``test_windows_pandas``: the same windows for a subset of worms, reading
  each worm's rows with ``pandas.read_parquet(filters=...)`` and assembling
  the (T, neuron) matrix; windows/s and the ratio to the store path.
- ``test_worker_memory``: tracemalloc peak of one epoch in-process, against
  the largest worm's size (the sampler holds one worm at a time).
"""
from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from helpers import load_script

CONTEXT, HORIZON, BATCH, DENSITY = 200, 1, 256, 0.05
RESULTS: dict[str, float] = {}


def _fixture_module():
    return load_script("make_celegans_activity_fixture")


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    from neuroharness.loaders import get_loader

    root = Path(os.environ.get("NH_BENCH_ACTIVITY_DIR") or tmp_path_factory.mktemp("activity_full"))
    raw = root / "raw"
    if not (raw / "worm_data_short.parquet").exists():
        _fixture_module().write_activity_fixture(raw, n_worms=912, seed=0)
    os.environ["NEUROHARNESS_HOME"] = str(root / "home")
    loader = get_loader("celegans-activity")
    if not loader.store_path().exists():
        loader.prepare(source=raw)
    return raw / "worm_data_short.parquet", loader.store_path()


def _dataset(store_path, worms=None, compact=False):
    from neuroharness.tasks.celegans.windows import RaggedActivity, Segment, WindowDataset

    store = RaggedActivity(store_path)
    worms = range(len(store)) if worms is None else worms
    segs = [Segment(w, 0, int(store.length[w])) for w in worms]
    return store, WindowDataset(store, segs, CONTEXT, HORIZON, batch_size=BATCH, windows_per_step=DENSITY, seed=0, compact=compact)


@pytest.mark.parametrize("compact", [False, True], ids=["dense", "compact"])
@pytest.mark.parametrize("workers", [0, 2])
def test_windows_store(benchmark, full, workers, compact):
    import torch

    _, store_path = full
    _, ds = _dataset(store_path, compact=compact)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers)

    def epoch():
        n = 0
        for ctx, tgt, mask in loader:
            n += len(ctx)
        return n

    n = benchmark.pedantic(epoch, rounds=2, iterations=1)
    rate = n / benchmark.stats.stats.median
    RESULTS[f"store_{workers}_{'compact' if compact else 'dense'}"] = rate
    benchmark.extra_info.update(windows=n, windows_per_s=round(rate), workers=workers, compact=compact)


def test_windows_pandas(benchmark, full):
    import pandas as pd

    from neuroharness.loaders.celegans import canonical_name, neuron_names
    from neuroharness.tasks.celegans.windows import windows_of

    parquet, store_path = full
    store, ds = _dataset(store_path, worms=range(0, 912, 57))  # 16 worms across sources
    index = {n: i for i, n in enumerate(neuron_names())}

    def epoch():
        n = 0
        for seg in ds.segments:
            src, worm = store.worm_ids[seg.worm].split("/")
            rows = pd.read_parquet(parquet, columns=["neuron", "is_labeled_neuron", "calcium_data"],
                                   filters=[("source_dataset", "==", src), ("worm", "==", worm)])
            rows = rows[rows.is_labeled_neuron]
            trace = np.full((int(store.length[seg.worm]), len(index)), np.nan, dtype=np.float32)
            for name, values in zip(rows.neuron, rows.calcium_data):
                trace[:, index[canonical_name(name)]] = values
            rng = np.random.default_rng([0, 0, seg.worm])
            starts = np.sort(rng.integers(0, seg.hi - CONTEXT - HORIZON + 1, size=ds.n_windows(seg)))
            for b in range(0, len(starts), BATCH):
                ctx, _ = windows_of(trace, starts[b : b + BATCH], CONTEXT, HORIZON)
                n += len(ctx)
        return n

    n = benchmark.pedantic(epoch, rounds=2, iterations=1)
    rate = n / benchmark.stats.stats.median
    benchmark.extra_info.update(windows=n, windows_per_s=round(rate))
    for key, value in RESULTS.items():
        benchmark.extra_info[f"{key}_over_pandas"] = round(value / rate, 1)


def test_worker_memory(benchmark, full):
    _, store_path = full
    store, ds = _dataset(store_path, worms=range(0, 912, 8))

    def epoch():
        tracemalloc.start()
        try:
            for _ in ds:
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak = benchmark.pedantic(epoch, rounds=1, iterations=1)
    worm_mb = float(store.length.max()) * store.n_neurons * 4 / 2**20
    batch_mb = BATCH * (CONTEXT + HORIZON) * store.n_neurons * 4 / 2**20
    benchmark.extra_info.update(traced_peak_mb=round(peak / 2**20, 1), largest_worm_mb=round(worm_mb, 1),
                                batch_mb=round(batch_mb, 1))
