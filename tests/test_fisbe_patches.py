"""The FISBe patch sampler (tasks/fisbe/patches.py) on a tiny store in the fisbe layout (NGFF label images)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from neuroharness.loaders.fisbe.release import SampleRef
from neuroharness.loaders.fisbe.store import copy_sample
from neuroharness.tasks.fisbe.patches import (
    PatchDataset,
    channel_percentiles,
    foreground_coords,
    labels_of,
    normalize,
    store_samples,
)

from neuroharness.errors import DataFormatError

SHAPE = (20, 30, 40)


def _write_store(path, samples: dict) -> str:
    """``{id: (subset, split, raw (3,Z,Y,X) uint16, gt (N,Z,Y,X) bool)}`` -> a store in the fisbe layout,
    each sample written by the loader's own copy_sample (raw levels and label images)."""
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    ids = sorted(samples)
    for name, vals in (("sample", ids), ("subset", [samples[i][0] for i in ids]), ("split", [samples[i][1] for i in ids])):
        root.create_array(name, data=np.array(vals, dtype="U"))
    for i in ids:
        subset, split, raw, gt = samples[i]
        copy_sample(root, SampleRef(i, subset, split, Path(path)), raw, gt)
    return str(path)


def _sample(seed, shape=SHAPE):
    rng = np.random.default_rng(seed)
    raw = rng.integers(90, 110, (3, *shape)).astype(np.uint16)
    gt = np.zeros((2, *shape), bool)
    gt[0, 1:4, 5:25, 10] = True  # two neurons crossing at z 2, y 5:25, x 10
    gt[1, 2, 5:25, 8:12] = True
    raw[:, gt.any(0)] = 1000
    return raw, gt


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("fisbe_patches") / "store.zarr"
    samples = {"a": ("completely", "train", *_sample(0)), "b": ("partly", "train", *_sample(1)),
               "c": ("completely", "test", *_sample(2)), "small": ("partly", "val", *_sample(3, (6, 30, 40)))}
    return _write_store(path, samples), samples


def test_channel_percentiles_match_numpy_lower():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 4096, (3, 40, 9, 7)).astype(np.uint16)  # more than one z-slab
    got = channel_percentiles(raw, (0, 50, 99.9, 100))
    for c in range(3):
        np.testing.assert_array_equal(got[c], np.percentile(raw[c], [0, 50, 99.9, 100], method="lower"))


def test_normalize_by_hand():
    raw = np.array([[[[100, 300]]], [[[10, 10]]]], np.uint16)  # (2, 1, 1, 2)
    x = normalize(raw, lo=[100, 10], hi=[500, 10])  # second channel: flat -> scale 1
    np.testing.assert_allclose(x[0, 0, 0], [0.0, 0.5])
    np.testing.assert_allclose(x[1, 0, 0], [0.0, 0.0])
    assert x.dtype == np.float32


def test_labels_of_marks_overlaps():
    stack = np.zeros((2, 1, 1, 4), bool)
    stack[0, 0, 0, [1, 2]] = True
    stack[1, 0, 0, [2, 3]] = True
    np.testing.assert_array_equal(labels_of(stack)[0, 0], [0, 1, -1, 2])


def test_foreground_coords_subsampled():
    gt = np.zeros((1, 40, 3, 3), bool)
    gt[0, [0, 33, 39], 1, 2] = True  # across z-slabs
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(foreground_coords(gt, None, rng), [[0, 1, 2], [33, 1, 2], [39, 1, 2]])
    assert len(foreground_coords(gt, 2, rng)) == 2
    images = [np.zeros((40, 3, 3), np.uint8), np.zeros((40, 3, 3), np.uint8)]  # label images, as the store holds
    images[0][0, 1, 2] = images[0][33, 1, 2] = 1
    images[1][39, 1, 2] = images[1][33, 1, 2] = 2
    np.testing.assert_array_equal(foreground_coords(images, None, rng), [[0, 1, 2], [33, 1, 2], [39, 1, 2]])


def test_store_samples(store):
    path, _ = store
    assert store_samples(path, "train") == ["a", "b"]
    assert store_samples(path, "train", ("partly",)) == ["b"]
    assert store_samples(path, "test") == ["c"]


def test_patches_match_the_store(store):
    path, samples = store
    ds = PatchDataset(path, ["a", "b"], patch=(4, 8, 8), n_patches=12, foreground_p=0.5, seed=3)
    assert len(ds) == 12
    for item in ds:
        name = ds.samples[item["sample"]]
        raw, gt = samples[name][2], samples[name][3]
        z, y, x = item["offset"]
        sl = (slice(z, z + 4), slice(y, y + 8), slice(x, x + 8))
        lo, hi = channel_percentiles(raw).T
        np.testing.assert_allclose(item["raw"], normalize(raw[(slice(None), *sl)], lo, hi))
        np.testing.assert_array_equal(item["labels"], labels_of(gt[(slice(None), *sl)]))
        np.testing.assert_array_equal(item["foreground"], gt[(slice(None), *sl)].any(0))
        assert item["raw"].shape == (3, 4, 8, 8) and item["raw"].dtype == np.float32
    # the normalisation: background (median 100-ish) near 0, neuron voxels (1000) at the 99.9th pct -> 1
    assert ds.hi[0][0] == 1000


def test_foreground_bias(store):
    path, _ = store
    ds = PatchDataset(path, ["a"], patch=4, n_patches=20, foreground_p=1.0, seed=0)
    assert all(item["foreground"].any() for item in ds)
    ds0 = PatchDataset(path, ["a"], patch=4, n_patches=200, foreground_p=0.0, seed=0)
    offsets = np.array([ds0.offset(i)[1] for i in range(200)])
    assert offsets.min() == 0 and (offsets.max(0) == np.array(SHAPE) - 4).all()  # uniform over the volume


def test_small_volume_is_padded(store):
    path, _ = store
    ds = PatchDataset(path, ["small"], patch=(8, 8, 8), n_patches=3, foreground_p=0.0, seed=0)
    for item in ds:
        assert item["offset"][0] == -1  # (6 - 8) // 2: centred along z
        assert item["raw"].shape == (3, 8, 8, 8)
        assert (item["raw"][:, 0] == 0).all() and (item["raw"][:, 7] == 0).all()
        assert (item["labels"][0] == 0).all()


def test_seeded_and_worker_independent(store):
    import torch

    path, _ = store

    def patches(seed, workers, epoch=0):
        ds = PatchDataset(path, ["a", "b"], patch=4, n_patches=10, foreground_p=0.5, seed=seed)
        ds.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers)
        return sorted((int(b["sample"]), *map(int, b["offset"])) for b in loader)

    base = patches(0, 0)
    assert len(base) == 10
    assert patches(0, 0) == base
    assert patches(0, 2) == base  # same set of patches with two workers
    assert patches(1, 0) != base
    assert patches(0, 0, epoch=1) != base


def test_collated_batches(store):
    import torch

    path, _ = store
    ds = PatchDataset(path, ["a", "b"], patch=4, n_patches=6, seed=0)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["raw"].shape == (3, 3, 4, 4, 4) and batch["raw"].dtype == torch.float32
    assert batch["labels"].shape == (3, 4, 4, 4) and batch["foreground"].dtype == torch.bool


def test_bad_arguments(store, tmp_path):
    path, _ = store
    with pytest.raises(DataFormatError, match="nope"):
        PatchDataset(path, ["nope"])
    with pytest.raises(ValueError, match="patch"):
        PatchDataset(path, ["a"], patch=(4, 4))
    with pytest.raises(ValueError, match="foreground_p"):
        PatchDataset(path, ["a"], foreground_p=2)
    raw, gt = _sample(0)
    bad = _write_store(tmp_path / "bad.zarr", {"x": ("completely", "train", raw, gt)})
    g = zarr.open_group(bad, mode="r+")["x"]["labels"]
    name = g.attrs["labels"][0]
    del g[name]["0"]
    g[name].create_array("0", data=np.zeros((10, 30, 40), np.uint8))  # a label image of another shape
    with pytest.raises(DataFormatError, match=rf"x: raw \(3, 20, 30, 40\) and labels/{name} \(10, 30, 40\) are not"):
        PatchDataset(bad, ["x"])
    del zarr.open_group(bad, mode="r+")["x"]["labels"]
    with pytest.raises(DataFormatError, match=r"bad\.zarr/x: no NGFF label images \(labels/ group"):
        PatchDataset(bad, ["x"])


def test_labels_read_from_label_images_equal_the_stack(store):
    """The sampler's labels (one read per label image) equal labels_of() of the instance stack,
    on two crossing neurons that the store keeps in two label images."""
    path, samples = store
    g = zarr.open_group(path, mode="r")["a"]
    assert len(g["labels"].attrs["labels"]) == 2  # the two neurons overlap
    ds = PatchDataset(path, ["a"], patch=(20, 30, 40), n_patches=1, foreground_p=0.0)
    item = ds.read(0, np.zeros(3, np.int64))
    np.testing.assert_array_equal(item["labels"], labels_of(samples["a"][3]))
    assert (item["labels"] == -1).sum() == (samples["a"][3].sum(0) == 2).sum() > 0
