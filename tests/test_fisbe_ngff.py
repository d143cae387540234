"""FISBe samples as OME-NGFF 0.4 images (loaders/fisbe/ngff.py, store.copy_sample): the raw pyramid, the
neurons as label images, the metadata (validated with ome-zarr-models, read with ome-zarr's reader as
napari-ome-zarr does, and checked against what neuroglancer's zarr source reads), and the real crop."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from helpers import load_script
from neuroharness.loaders import get_loader
from neuroharness.loaders.fisbe import ngff, store
from neuroharness.loaders.fisbe.release import SampleRef

gen = load_script("make_fisbe_fixture")
VOXEL = 0.44
CROP = Path(__file__).resolve().parents[2] / "shared" / "data" / "fisbe" / "JRC_SS05008-20160318_24_B2_crop.zarr"
CROP_NAME = "JRC_SS05008-20160318_24_B2_crop"


# -- independent numpy references (no code shared with ngff.py) ---------------------------------------
def padded_blocks(a: np.ndarray, factors) -> np.ndarray:
    """``a`` (..., z, y, x) edge-padded to multiples of ``factors`` as (..., z', fz, y', fy, x', fx)."""
    lead = a.ndim - 3
    a = np.pad(a, [(0, 0)] * lead + [(0, (f - n % f) % f) for n, f in zip(a.shape[lead:], factors)], mode="edge")
    return a.reshape(a.shape[:lead] + sum(((n // f, f) for n, f in zip(a.shape[lead:], factors)), ()))


def mean_reference(a: np.ndarray, factors) -> np.ndarray:
    lead = a.ndim - 3
    m = padded_blocks(a.astype(np.float64), factors).mean(axis=(lead + 1, lead + 3, lead + 5))
    return np.floor(m + 0.5).astype(a.dtype)  # round half up; exact: sums of <= 8 integers over a power of 2


def max_reference(a: np.ndarray, factors) -> np.ndarray:
    lead = a.ndim - 3
    return padded_blocks(a, factors).max(axis=(lead + 1, lead + 3, lead + 5))


def write_sample(raw, gt, name="S0001-20240101_01_A1", root=None):
    """copy_sample of arrays into an in-memory Zarr v2 store; returns the sample group."""
    root = root if root is not None else zarr.open_group(zarr.storage.MemoryStore(), mode="w", zarr_format=2)
    store.copy_sample(root, SampleRef(name, "completely", "train", Path("mem")), raw, gt)
    return root[name]


def multiscale_paths(group) -> list[str]:
    return [d["path"] for d in group.attrs["multiscales"][0]["datasets"]]


def check_pyramid(g, raw: np.ndarray) -> list:
    """Every raw level = the block mean of the previous one; every label level = the block maximum."""
    levels = ngff.pyramid_levels(raw.shape[1:])
    paths = multiscale_paths(g)
    assert paths == [ngff.raw_path(k) for k in range(len(levels))]
    prev = np.asarray(g[paths[0]][...])
    np.testing.assert_array_equal(prev, raw)
    for k, lv in enumerate(levels[1:], 1):
        got = np.asarray(g[paths[k]][...])
        assert got.shape == (3, *lv.shape) and got.dtype == np.uint16
        np.testing.assert_array_equal(got, mean_reference(prev, lv.factors), err_msg=f"raw level {k}")
        prev = got
    for name, _ in ngff.label_images(g, "test"):
        lg = g["labels"][name]
        prev = np.asarray(lg["0"][...])
        for k, lv in enumerate(levels[1:], 1):
            got = np.asarray(lg[str(k)][...])
            assert got.shape == lv.shape and got.dtype == np.uint8
            np.testing.assert_array_equal(got, max_reference(prev, lv.factors), err_msg=f"{name} level {k}")
            prev = got
    return levels


def check_labels(g, gt: np.ndarray) -> dict[int, str]:
    """Each instance's voxels carry its id in exactly one label image and nowhere else; overlaps are kept.
    Returns {instance: label image name}."""
    masks = gt != 0
    images = {name: np.asarray(a[...]) for name, a in ngff.label_images(g, "test")}
    home = {}
    for k in range(1, len(gt) + 1):
        holders = [name for name, im in images.items() if (im == k).any()]
        if not masks[k - 1].any():
            assert holders == [], k
            continue
        assert len(holders) == 1, (k, holders)
        home[k] = holders[0]
        np.testing.assert_array_equal(images[holders[0]] == k, masks[k - 1], err_msg=f"instance {k}")
    for name, im in images.items():  # nothing else: every nonzero voxel is one of the image's instances
        assert set(np.unique(im[im != 0]).tolist()) == {k for k, h in home.items() if h == name}
    # voxels in two or more neurons: one label image per neuron there, so the count of images agrees
    covered = sum((im != 0).astype(np.int64) for im in images.values())
    np.testing.assert_array_equal(covered, masks.sum(0))
    assert g.attrs["overlap_voxels"] == int((masks.sum(0) >= 2).sum())
    empty = list(g.attrs["empty_instances"])  # they overlap nothing: the first label image lists them
    assert g.attrs["label_images"] == {name: sorted([k for k, h in home.items() if h == name]
                                                    + (empty if name == "neurons_0" else [])) for name in images}
    return home


# -- the pyramid plan and the reductions ------------------------------------------------------------
def test_pyramid_levels_for_fisbe_sizes():
    shapes = [lv.shape for lv in ngff.pyramid_levels((400, 700, 700))]
    assert shapes == [(400, 700, 700), (200, 350, 350), (100, 175, 175), (100, 88, 88)]  # as documented
    real = ngff.pyramid_levels((385, 685, 686))  # R14A02-20180905_65_A6
    assert [lv.shape for lv in real] == [(385, 685, 686), (193, 343, 343), (97, 172, 172), (97, 86, 86)]
    assert 64 <= min(real[-1].shape) <= 128
    assert [lv.scale for lv in real] == [(0.44,) * 3, (0.88,) * 3, (1.76,) * 3, (1.76, 3.52, 3.52)]
    assert real[1].translation == (0.22, 0.22, 0.22) and real[3].translation == pytest.approx((0.66, 1.54, 1.54))
    for lv in real:  # translation = (scale_k - scale_0) / 2: coarse voxels centred on the voxels they average
        assert lv.translation == pytest.approx(tuple((s - 0.44) / 2 for s in lv.scale))
    assert [lv.shape for lv in ngff.pyramid_levels((50, 50, 50))] == [(50, 50, 50)]  # the crop: too small
    assert [lv.shape for lv in ngff.pyramid_levels((64, 128, 128))] == [(64, 128, 128), (64, 64, 64)]
    # anisotropic voxels: the fine axes are halved first, the coarse one only once they catch up
    aniso = ngff.pyramid_levels((300, 1024, 1024), (2.0, 0.5, 0.5))
    assert [lv.factors for lv in aniso[1:]] == [(1, 2, 2), (1, 2, 2), (2, 2, 2), (2, 2, 2)]
    assert aniso[-1].scale == (8.0, 8.0, 8.0) and aniso[-1].shape == (75, 64, 64)


def test_reductions_match_numpy_on_odd_shapes():
    rng = np.random.default_rng(0)
    for shape in [(3, 5, 7, 9), (3, 4, 6, 8), (3, 1, 1, 3), (2, 9, 2, 1)]:
        a = rng.integers(0, 4096, shape).astype(np.uint16)
        a.reshape(-1)[:3] = 4095  # the 12-bit maximum, summed in 16 bits with max_value
        lab = rng.integers(0, 6, shape[1:]).astype(np.uint8)
        for f in [(2, 2, 2), (1, 2, 2), (2, 1, 1), (1, 1, 2), (1, 1, 1)]:
            np.testing.assert_array_equal(ngff.downsample_mean(a, f), mean_reference(a, f))
            np.testing.assert_array_equal(ngff.downsample_mean(a, f, 4095), mean_reference(a, f))
            np.testing.assert_array_equal(ngff.downsample_max(lab, f), max_reference(lab, f))
    big = np.full((3, 3, 3, 3), 65535, np.uint16)  # full 16-bit values need the 32-bit sums
    assert int(ngff.downsample_mean(big, (2, 2, 2)).min()) == 65535
    half = np.array([[[[1, 2]]]], np.uint16)  # (1+2)/2 = 1.5 rounds up
    assert ngff.downsample_mean(half, (1, 1, 2)).tolist() == [[[[2]]]]


def test_instance_groups_colour_the_overlap_graph():
    ov = np.zeros((5, 5), int)
    for i, j in [(0, 1), (1, 2), (2, 3)]:  # a chain 1-2-3-4 and a lone 5
        ov[i, j] = ov[j, i] = 7
    assert ngff.instance_groups(ov) == [(1, 3, 5), (2, 4)]
    full = np.ones((3, 3), int)  # every pair overlaps (the real crop): one label image each
    assert ngff.instance_groups(full) == [(1,), (2,), (3,)]
    assert ngff.instance_groups(np.diag([5, 5])) == [(1, 2)]  # the diagonal is not an overlap


# -- a written sample ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def deep(tmp_path_factory):
    """A synthetic sample with odd sizes and several levels (MIN_SIDE lowered), written once."""
    mp = pytest.MonkeyPatch()
    mp.setattr(ngff, "MIN_SIDE", 8)
    try:
        raw, gt = gen.synthetic_sample((37, 50, 45), 5, seed=4)
        return raw, gt, write_sample(raw, gt), ngff.pyramid_levels(raw.shape[1:])
    finally:
        mp.undo()


def test_pyramid_values_by_hand(deep, monkeypatch):
    raw, gt, g, levels = deep
    monkeypatch.setattr(ngff, "MIN_SIDE", 8)
    assert [lv.shape for lv in levels] == [(37, 50, 45), (19, 25, 23), (10, 13, 12)]
    assert check_pyramid(g, raw) == levels


def test_labels_map_every_instance_once_and_keep_overlaps(deep):
    raw, gt, g, _ = deep
    home = check_labels(g, gt)
    masks = gt != 0
    shared = {(i + 1, j + 1): int((masks[i] & masks[j]).sum()) for i in range(len(gt)) for j in range(i + 1, len(gt))}
    assert g.attrs["overlap_pairs"] == [[i, j, n] for (i, j), n in shared.items() if n]
    for (i, j), n in shared.items():  # overlapping neurons never share a label image
        assert not n or home[i] != home[j]
    assert np.asarray(g["n_voxels"][...]).tolist() == masks.reshape(len(gt), -1).sum(1).tolist()
    assert [home[k] for k in range(1, len(gt) + 1)] == [f"neurons_{i}" for i in np.asarray(g["label_image"][...])]
    assert int((masks.sum(0) >= 2).sum()) > 0  # the fixture's neurons do cross


def test_same_store_in_thin_slabs_and_when_masks_are_not_kept(deep, monkeypatch):
    """Slabs of 2 planes (the pyramid's z factor) and the second pass re-reading the source write the
    same arrays as one slab with the masks kept."""
    raw, gt, g, _ = deep
    monkeypatch.setattr(ngff, "MIN_SIDE", 8)
    monkeypatch.setattr(store, "Z_SLAB", 3)  # rounded down to a multiple of 4 (two z halvings), at least 4
    monkeypatch.setattr(store, "SPARSE_BYTES", 0)
    other = write_sample(raw, gt)

    def arrays(group, prefix=""):
        out = {prefix + k: np.asarray(a[...]) for k, a in group.arrays()}
        for k, sub in group.groups():
            out.update(arrays(sub, f"{prefix}{k}/"))
        return out

    mine, theirs = arrays(g), arrays(other)
    assert sorted(mine) == sorted(theirs) and "labels/neurons_0/2" in mine
    for k in mine:
        np.testing.assert_array_equal(mine[k], theirs[k], err_msg=k)
    assert store._slab_step(37, 50, 45, 5, 4) == 4


def test_empty_instance_has_no_voxel_in_any_label_image():
    raw, gt = gen.synthetic_sample((16, 24, 24), 3, seed=1)
    gt[1] = 0
    with pytest.warns(UserWarning, match=r"instance\(s\) \[2\]"):
        g = write_sample(raw, gt)
    check_labels(g, gt)
    props = {p["label-value"]: p for name in g["labels"].attrs["labels"]
             for p in g["labels"][name].attrs["image-label"]["properties"]}
    assert props[2]["voxels"] == 0 and sorted(props) == [1, 2, 3]  # listed, so every id has a colour


# -- metadata: ome-zarr-models, ome-zarr's reader (what napari-ome-zarr uses), neuroglancer's needs -----------
@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared store (version 1.1) of one 130 x 260 x 262 sample (3 levels at the real MIN_SIDE)."""
    root = tmp_path_factory.mktemp("fisbe_ngff")
    raw, gt = gen.synthetic_sample((130, 260, 262), 5, seed=2)
    name = "SYN0002-20240101_02_A1"
    gen.write_sample(root / "rel" / "completely" / "train" / f"{name}.zarr", raw, gt)
    mp = pytest.MonkeyPatch()
    mp.setenv("NEUROHARNESS_HOME", str(root / "home"))
    try:
        path = get_loader("fisbe").prepare(root / "rel")
    finally:
        mp.undo()
    return path, name, raw, gt


def validate(group) -> None:
    """ome-zarr-models' v0.4 models of the image, its labels group and every label image."""
    from ome_zarr_models.v04 import Image, ImageLabel
    from ome_zarr_models.v04.labels import Labels

    image = Image.from_zarr(group)
    assert [d.path for d in image.attributes.multiscales[0].datasets] == multiscale_paths(group)
    labels = Labels.from_zarr(group["labels"])
    for name in labels.attributes.labels:
        ImageLabel.from_zarr(group["labels"][name])


def test_metadata_validates_and_has_micrometer_scales(prepared):
    path, name, raw, gt = prepared
    g = zarr.open_group(str(path), mode="r")[name]
    validate(g)
    levels = check_pyramid(g, raw)
    assert [lv.shape for lv in levels] == [(130, 260, 262), (65, 130, 131), (65, 65, 66)]
    check_labels(g, gt)
    ms = g.attrs["multiscales"][0]
    assert ms["version"] == "0.4" and ms["type"] == "mean" and ms["name"] == name
    assert [(a["name"], a["type"], a.get("unit")) for a in ms["axes"]] == [
        ("c", "channel", None), ("z", "space", "micrometer"), ("y", "space", "micrometer"), ("x", "space", "micrometer")]
    for k, (d, lv) in enumerate(zip(ms["datasets"], levels)):
        scale = d["coordinateTransformations"][0]
        assert scale["type"] == "scale" and scale["scale"] == pytest.approx([1.0, *lv.scale])
        assert scale["scale"][1:] == pytest.approx([VOXEL * n0 / n for n0, n in zip(raw.shape[1:], lv.shape)], rel=0.02)
        shift = d["coordinateTransformations"][1:]
        assert shift == ([] if k == 0 else [{"type": "translation", "translation": pytest.approx([0.0, *lv.translation])}])
    assert len(g.attrs["omero"]["channels"]) == 3
    for lname in g["labels"].attrs["labels"]:
        lg = g["labels"][lname]
        lms, il = lg.attrs["multiscales"][0], lg.attrs["image-label"]
        assert [a["name"] for a in lms["axes"]] == ["z", "y", "x"] and {a["unit"] for a in lms["axes"]} == {"micrometer"}
        assert [d["coordinateTransformations"] for d in lms["datasets"]] == [
            d["coordinateTransformations"] for d in _without_channel(ms["datasets"])]
        assert il["version"] == "0.4" and il["source"] == {"image": "../../"}
        values = sorted(g.attrs["label_images"][lname])
        assert sorted(c["label-value"] for c in il["colors"]) == values
        assert [(p["label-value"], p["instance"], p["release_channel"]) for p in il["properties"]] == [
            (k, k, k - 1) for k in values]
        assert all(len(c["rgba"]) == 4 and c["rgba"][3] == 255 for c in il["colors"])
    colours = [tuple(c["rgba"]) for lname in g["labels"].attrs["labels"]
               for c in g["labels"][lname].attrs["image-label"]["colors"]]
    assert len(set(colours)) == len(colours)  # each neuron its own colour


def _without_channel(datasets):
    out = []
    for d in datasets:
        out.append({"coordinateTransformations": [
            {k: (v[1:] if isinstance(v, list) else v) for k, v in t.items()} for t in d["coordinateTransformations"]]})
    return out


def test_ome_zarr_reader_sees_the_pyramid_and_the_labels(prepared):
    """ome-zarr's Reader, which napari-ome-zarr turns into layers: one image node with every level and
    three channels, one label node per label image with the colours and properties of its values."""
    from ome_zarr.format import FormatV04
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    path, name, raw, gt = prepared
    nodes = list(Reader(parse_url(str(path / name), fmt=FormatV04()))())
    image = nodes[0]
    levels = ngff.pyramid_levels(raw.shape[1:])
    assert [tuple(d.shape) for d in image.data] == [(3, *lv.shape) for lv in levels]
    assert image.metadata["channel_names"] == ["channel 0", "channel 1", "channel 2"]
    coarsest = zarr.open_group(str(path), mode="r")[name][ngff.raw_path(len(levels) - 1)]
    np.testing.assert_array_equal(np.asarray(image.data[-1]), coarsest[...])
    labels = {n.metadata["name"]: n for n in nodes if "color" in n.metadata}
    groups = zarr.open_group(str(path), mode="r")[name].attrs["label_images"]
    assert sorted(labels) == sorted(groups)
    for lname, node in labels.items():
        assert [tuple(d.shape) for d in node.data] == [lv.shape for lv in levels] and node.data[0].dtype == np.uint8
        assert sorted(node.metadata["color"]) == groups[lname] == sorted(node.metadata["properties"])
        assert all(node.metadata["properties"][k]["instance"] == k for k in groups[lname])


def test_arrays_are_what_neuroglancer_reads(prepared):
    """neuroglancer's zarr source: Zarr v2 arrays with "/" chunk keys, blosc/gzip/zlib or no compressor,
    no filters, dtypes it decodes (uint8 labels, uint16 image), axis names and units it knows."""
    path, name, _, _ = prepared
    sample = path / name
    arrays = [sample / p for p in multiscale_paths(zarr.open_group(str(path), mode="r")[name])]
    for lname in json.loads((sample / "labels" / ".zattrs").read_text())["labels"]:
        arrays += [sample / "labels" / lname / d["path"]
                   for d in json.loads((sample / "labels" / lname / ".zattrs").read_text())["multiscales"][0]["datasets"]]
    n_labels = len(zarr.open_group(str(path), mode="r")[name].attrs["label_images"])
    assert n_labels >= 2 and len(arrays) == 3 * (1 + n_labels)  # 3 levels of raw and of each label image
    for a in arrays:
        meta = json.loads((a / ".zarray").read_text())
        assert meta["zarr_format"] == 2 and meta["dimension_separator"] == "/" and meta["order"] == "C"
        assert meta["filters"] is None and meta["compressor"]["id"] in ("blosc", "gzip", "zlib")
        assert meta["dtype"] in ("|u1", "<u2")
        dims = json.loads((a / ".zattrs").read_text())["_ARRAY_DIMENSIONS"]
        assert len(dims) == len(meta["shape"]) and dims[-3][0] == "z" and dims[-1][0] == "x"
        chunk_files = [p for p in a.rglob("*") if p.is_file() and not p.name.startswith(".")]
        assert all(len(p.relative_to(a).parts) == len(meta["shape"]) for p in chunk_files)  # nested "/" keys


def test_label_image_chunks_of_background_are_not_stored(prepared):
    path, name, _, _ = prepared
    lg = zarr.open_group(str(path), mode="r")[name]["labels"]["neurons_0"]["0"]
    grid = int(np.prod([-(-s // c) for s, c in zip(lg.shape, lg.chunks)]))
    stored = [p for p in (path / name / "labels" / "neurons_0" / "0").rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert 0 < len(stored) < grid


# -- the real crop --------------------------------------------------------------------------------------
@pytest.mark.skipif(not CROP.exists(), reason=f"real FISBe crop not found at {CROP} (../shared is absent)")
def test_real_crop_as_ngff(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROHARNESS_HOME", str(tmp_path / "home"))
    (tmp_path / "rel" / "partly" / "val").mkdir(parents=True)
    (tmp_path / "rel" / "partly" / "val" / f"{CROP_NAME}.zarr").symlink_to(CROP, target_is_directory=True)
    path = get_loader("fisbe").prepare(tmp_path / "rel")
    g = zarr.open_group(str(path), mode="r")[CROP_NAME]
    src = zarr.open_group(str(CROP), mode="r", zarr_format=2)
    raw, gt = src["volumes/raw"][:], src["volumes/gt_instances"][:]
    validate(g)
    assert check_pyramid(g, raw) == ngff.pyramid_levels((50, 50, 50)) and multiscale_paths(g) == ["raw"]  # 50^3: one level
    home = check_labels(g, gt)
    # every pair of the 3 neurons overlaps (168, 262 and 2025 voxels; 70 voxels lie in all three): 3 label images
    assert g.attrs["overlap_pairs"] == [[1, 2, 168], [1, 3, 262], [2, 3, 2025]]
    assert g.attrs["overlap_voxels"] == 2315 and int(((gt != 0).sum(0) == 3).sum()) == 70
    assert home == {1: "neurons_0", 2: "neurons_1", 3: "neurons_2"}
    assert np.asarray(g["n_voxels"][...]).tolist() == [3765, 6193, 14246]
    props = [g["labels"][f"neurons_{i}"].attrs["image-label"]["properties"][0] for i in range(3)]
    # voxels shared with another neuron: 168 + 262 - 70 for neuron 1, and so on
    assert [(p["instance"], p["voxels"], p["voxels_shared"]) for p in props] == [
        (1, 3765, 360), (2, 6193, 2123), (3, 14246, 2217)]
