"""Benchmark: random 3-D training patches per second from the fisbe store.

    python -m pytest tests/benchmarks/test_bench_fisbe_patches.py --benchmark-only \\
        --benchmark-columns=min,median,max,rounds

A synthetic release (scripts/make_fisbe_fixture.py: 2 volumes per subset and
split of 128 x 256 x 256 voxels, 6 neurons) is prepared once into
``$NH_BENCH_FISBE_DIR`` (default: a temp dir). :class:`PatchDataset` reads
64^3 patches of the 4 training volumes (half of them centred on foreground)
through a torch ``DataLoader`` with 0 and 2 workers; ``extra_info`` has
patches/s. Construction (normalisation levels and foreground coordinates,
one pass over each volume) is timed separately.
"""
from __future__ import annotations

import os

import pytest
from helpers import bench_dir, load_script

SHAPE, PATCH, N_PATCHES = (128, 256, 256), 64, 64


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from neuroharness.loaders import get_loader

    root = bench_dir("NH_BENCH_FISBE_DIR", tmp_path_factory, "fisbe_bench")
    raw = root / "raw"
    if not (raw / "sample_list_per_split.txt").exists():
        load_script("make_fisbe_fixture").write_release(raw, n_per_split=2, shape=SHAPE, n_neurons=6, seed=0)
    os.environ["NEUROHARNESS_HOME"] = str(root / "home")
    loader = get_loader("fisbe")
    if not loader.store_path().exists():
        loader.prepare(source=raw)
    return loader.store_path()


def _dataset(path, **kw):
    from neuroharness.tasks.fisbe.patches import PatchDataset, store_samples

    return PatchDataset(path, store_samples(path, "train"), patch=PATCH, n_patches=N_PATCHES, foreground_p=0.5, seed=0, **kw)


def test_construction(benchmark, store):
    ds = benchmark.pedantic(_dataset, args=(store,), rounds=1, iterations=1)
    benchmark.extra_info.update(volumes=len(ds.samples), fg_coords=int(sum(len(c) for c in ds.fg_coords)))


@pytest.mark.parametrize("workers", [0, 2])
def test_patches_per_second(benchmark, store, workers):
    import torch

    ds = _dataset(store)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers)

    def epoch():
        n = 0
        for item in loader:
            assert item["raw"].shape == (3, PATCH, PATCH, PATCH)
            n += 1
        return n

    n = benchmark.pedantic(epoch, rounds=2, iterations=1)
    benchmark.extra_info.update(patches=n, patches_per_s=round(n / benchmark.stats.stats.median, 1), workers=workers,
                                patch=PATCH)
