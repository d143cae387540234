"""The synthetic FISBe generator (scripts/make_fisbe_fixture.py): values, overlaps, determinism, release layout."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import zarr
from helpers import load_script
from neuroharness.loaders.fisbe import official_split, parse_split_list

gen = load_script("make_fisbe_fixture")


@pytest.fixture(scope="module")
def sample():
    return gen.synthetic_sample((64, 128, 128), 4, seed=3)


def test_sample_dtypes_values_and_sizes(sample):
    raw, gt = sample
    assert raw.shape == (3, 64, 128, 128) and raw.dtype == np.uint16
    assert gt.shape == (4, 64, 128, 128) and gt.dtype == np.uint8
    assert int(raw.max()) <= 4095
    for k in range(4):  # channel k holds k+1 (the release convention), 0 elsewhere
        assert set(np.unique(gt[k]).tolist()) == {0, k + 1}
    sizes = (gt > 0).sum(axis=(1, 2, 3))
    assert sizes.min() > 800  # survives the evaluator preset's removal of instances <= 800 voxels
    fg = (gt > 0).any(0)
    assert 0.001 < fg.mean() < 0.03  # sparse, FISBe-like
    # background ~100 with sd 10 (robust: IQR / 1.349, the blur halo next to neurons is the tail)
    bg = raw[:, ~fg].astype(float)
    q1, q3 = np.percentile(bg, [25, 75])
    assert abs(float(np.median(bg)) - 100) <= 1 and 9 < (q3 - q1) / 1.349 < 11
    assert float(raw.max(0)[fg].mean()) > 300


def test_sample_has_forced_crossings(sample):
    _, gt = sample
    overlap = ((gt > 0).sum(0) >= 2).sum()
    assert overlap > 0  # the same voxel is set in two GT channels, as in the real data


def test_sample_deterministic_by_seed():
    a = gen.synthetic_sample((32, 48, 48), 2, seed=7)
    b = gen.synthetic_sample((32, 48, 48), 2, seed=7)
    c = gen.synthetic_sample((32, 48, 48), 2, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[1], c[1])


def test_unlabeled_neuron_only_in_raw():
    raw0, gt0 = gen.synthetic_sample((32, 64, 64), 2, seed=1)
    raw1, gt1 = gen.synthetic_sample((32, 64, 64), 2, seed=1, unlabeled=1)
    assert gt1.shape[0] == 2
    # the extra neuron adds bright voxels outside every GT channel
    bright_outside = lambda raw, gt: int(((raw.max(0) > 400) & ~(gt > 0).any(0)).sum())
    assert bright_outside(raw1, gt1) > bright_outside(raw0, gt0) + 100


def test_write_release_layout(tmp_path):
    info = gen.write_release(tmp_path / "rel", n_per_split=1, shape=(32, 64, 64), n_neurons=3, seed=1, zip=True)
    root = info["root"]
    assert len(info["samples"]) == 6
    for name, s in info["samples"].items():
        p = root / s["subset"] / s["split"] / f"{name}.zarr"
        assert s["path"] == p and p.is_dir()
        raw_meta = json.loads((p / "volumes/raw/.zarray").read_text())
        gt_meta = json.loads((p / "volumes/gt_instances/.zarray").read_text())
        assert raw_meta["zarr_format"] == 2 and raw_meta["dtype"] == "<u2" and raw_meta["shape"] == [3, 32, 64, 64]
        assert raw_meta["chunks"] == [2, 25, 50, 50] and raw_meta["compressor"] == {"id": "gzip", "level": 1}
        assert gt_meta["dtype"] == "|u1" and gt_meta["shape"] == [3, 32, 64, 64] and gt_meta["chunks"] == [2, 32, 50, 50]
        g = zarr.open_group(str(p), mode="r", zarr_format=2)
        raw, gt = gen.synthetic_sample((32, 64, 64), 3, s["seed"], unlabeled=1 if s["subset"] == "partly" else 0)
        assert np.array_equal(g["volumes/raw"][:], raw) and np.array_equal(g["volumes/gt_instances"][:], gt)
    # the split file parses back to the tree
    listed = parse_split_list(info["split_file"].read_text())
    assert listed == {n: (s["subset"], s["split"]) for n, s in info["samples"].items()}
    assert info["split_file"].read_text().startswith("(1) samples for FlyLight completely:\n\ntrain:\n")
    # zips: one per subset, members <subset>/<split>/<sample>.zarr/..., plus the split file beside them
    assert [z.name for z in info["zips"]] == ["fisbe_v1.0_completely.zip", "fisbe_v1.0_partly.zip"]
    with zipfile.ZipFile(info["zips"][0]) as zf:
        members = zf.namelist()
    assert all(m.startswith("completely/") for m in members)
    assert sum(m.endswith("/volumes/raw/.zarray") for m in members) == 3
    assert (root / "zips" / "sample_list_per_split.txt").read_bytes() == info["split_file"].read_bytes()


def test_write_release_official_names(tmp_path):
    info = gen.write_release(tmp_path / "rel", n_per_split=1, shape=(16, 24, 24), n_neurons=1, official=True)
    off = official_split()
    assert sorted(info["samples"]) == sorted(off[(s, p)][0] for s in ("completely", "partly") for p in ("train", "val", "test"))


def test_cli(tmp_path, capsys):
    assert gen.main([str(tmp_path / "r"), "--shape", "16", "24", "24", "--neurons", "1", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count(".zarr") == 6
    assert (tmp_path / "r" / "sample_list_per_split.txt").exists()
