"""Dataset ``fisbe``: release -> store (DataTree), Zenodo download against a local server, bad input, the real crop."""
from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import zarr
from helpers import load_script
from neuroharness.loaders import get_loader
from neuroharness.loaders.fisbe import open_fisbe, release, sample_index, zenodo

from neuroharness.cli import main
from neuroharness.errors import ChecksumError, DataFormatError

gen = load_script("make_fisbe_fixture")
SHAPE, N = (32, 64, 64), 3
CROP = Path(__file__).resolve().parents[2] / "shared" / "data" / "fisbe" / "JRC_SS05008-20160318_24_B2_crop.zarr"


@pytest.fixture
def home(tmp_path, monkeypatch):
    root = tmp_path / "home"
    monkeypatch.setenv("NEUROHARNESS_HOME", str(root))
    return root


@pytest.fixture(scope="module")
def rel(tmp_path_factory):
    """A synthetic release: 6 samples (1 per subset and split) of 32 x 64 x 64 with 3 neurons, plus its zips."""
    return gen.write_release(tmp_path_factory.mktemp("fisbe") / "release", 1, SHAPE, N, seed=0, zip=True)


@pytest.fixture(scope="module")
def tree_checksum(rel, tmp_path_factory):
    """content_sha256 of the store prepared from the release tree (a separate cache)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("NEUROHARNESS_HOME", str(tmp_path_factory.mktemp("home_ref")))
    try:
        path = get_loader("fisbe").prepare(rel["root"])
        return zarr.open_group(str(path), mode="r").attrs["content_sha256"]
    finally:
        mp.undo()


def leftovers(home: Path) -> list[str]:
    d = home / "datasets" / "fisbe"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


# -- release -> store --------------------------------------------------------------------------
def test_store_layout_values_and_metadata(rel, home, capsys):
    tree = open_fisbe(source=rel["root"])
    names = list(rel["samples"])  # ordered by subset, split (train, val, test), name
    idx = sample_index(tree)
    assert idx["sample"].tolist() == names
    assert idx["subset"].tolist() == ["completely"] * 3 + ["partly"] * 3
    assert idx["split"].tolist() == ["train", "val", "test"] * 2
    assert idx["n_instances"].tolist() == [N] * 6 and (idx[["size_z", "size_y", "size_x"]].to_numpy() == SHAPE).all()
    assert tree.attrs["complete_release"] is False and "whatever samples the prepared source held" in tree.attrs["release_note"]
    assert tree.attrs["dataset"] == "fisbe" and tree.attrs["dataset_version"] == "1.1" and tree.attrs["license"] == "CC BY 4.0"
    assert set(json.loads(tree.attrs["raw_sha256"])) == {f"{s['subset']}/{s['split']}/{n}.zarr" for n, s in rel["samples"].items()} | {
        "sample_list_per_split.txt"}
    assert (get_loader("fisbe").store_path() / ".zmetadata").exists()

    name, info = names[4], rel["samples"][names[4]]  # partly/val
    ds = tree[name].to_dataset(inherit=False)
    assert dict(ds.sizes) == {"channel": 3, "z": 32, "y": 64, "x": 64, "instance": N}  # 32 x 64 x 64: one level
    assert ds.raw.dims == ("channel", "z", "y", "x") and ds.raw.dtype == np.uint16
    assert ds.raw.data.chunksize == (3, 32, 64, 64)
    assert ds.n_voxels.dims == ds.label_image.dims == ("instance",)
    for v in ("raw", "n_voxels", "label_image"):
        assert ds[v].attrs["units"] == "1" and ds[v].attrs["long_name"]
    assert ds.z.attrs["units"] == "micrometer" and ds.z.dtype == np.float64
    np.testing.assert_allclose(ds.x.values[:3], [0.0, 0.44, 0.88])
    assert float(ds.z[-1]) == pytest.approx(31 * 0.44)
    assert ds.channel.values.tolist() == [0, 1, 2]
    assert ds.instance.dtype == np.int32 and ds.instance.values.tolist() == [1, 2, 3]
    assert {k: ds.attrs[k] for k in ("sample", "subset", "split")} == {"sample": name, "subset": "partly", "split": "val"}
    assert ds.attrs["voxel_size_um"] == [0.44] * 3 and ds.attrs["empty_instances"] == []

    # values: raw as released; GT channel k (value k+1) -> instance k+1, in exactly one NGFF label image
    src = zarr.open_group(str(info["path"]), mode="r", zarr_format=2)
    assert np.array_equal(ds.raw.values, src["volumes/raw"][:])
    gt = src["volumes/gt_instances"][:]
    groups = ds.attrs["label_images"]
    assert sorted(k for members in groups.values() for k in members) == [1, 2, 3]
    labels = {g: tree[f"{name}/labels/{g}"].to_dataset(inherit=False)["0"] for g in groups}
    for g, im in labels.items():
        assert im.dims == ("z", "y", "x") and im.dtype == np.uint8
        assert im.attrs["units"] == "1" and im.attrs["long_name"]
    for k in range(N):
        (home,) = (g for g, members in groups.items() if k + 1 in members)
        assert np.array_equal(labels[home].values == k + 1, gt[k] == k + 1)
        assert int(ds.label_image.sel(instance=k + 1)) == int(home.split("_")[1])
        assert int(ds.n_voxels.sel(instance=k + 1)) == int((gt[k] != 0).sum())
    in_two = sum((im.values != 0).astype(int) for im in labels.values()) >= 2
    assert int(in_two.sum()) == int(((gt > 0).sum(0) >= 2).sum()) == ds.attrs["overlap_voxels"] > 0  # overlaps kept

    # OME-NGFF v0.4: multiscale levels (here only "raw"), axes c, z, y, x in micrometer, scale [1, 0.44, 0.44, 0.44]
    ms = ds.attrs["multiscales"]
    assert len(ms) == 1 and ms[0]["version"] == "0.4"
    assert [a["name"] for a in ms[0]["axes"]] == ["c", "z", "y", "x"]
    assert [a["type"] for a in ms[0]["axes"]] == ["channel", "space", "space", "space"]
    assert [a.get("unit") for a in ms[0]["axes"]] == [None, "micrometer", "micrometer", "micrometer"]
    assert ms[0]["datasets"] == [{"path": "raw", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 0.44, 0.44, 0.44]}]}]
    assert len(ds.attrs["omero"]["channels"]) == 3
    raw_meta = json.loads((get_loader("fisbe").store_path() / name / "raw" / ".zarray").read_text())
    assert raw_meta["dimension_separator"] == "/" and raw_meta["shape"] == [3, *SHAPE]  # NGFF 0.4 for zarr v2
    # what viewers and training code use: zarr directly
    g = zarr.open_group(str(get_loader("fisbe").store_path()), mode="r")
    assert g[name]["raw"].shape == (3, *SHAPE) and g[name].attrs["multiscales"][0]["datasets"][0]["path"] == "raw"
    assert g[name]["labels"].attrs["labels"] == sorted(groups)

    assert main(["datasets", "info", "fisbe"]) == 0
    out = capsys.readouterr().out
    assert "partly      val          1        3" in out and "release: 6 samples, 0 of the 101 official" in out


def test_checksum_stable_across_rebuilds_and_source_forms(rel, home, tree_checksum):
    loader = get_loader("fisbe")
    path = loader.prepare(rel["root"] / "zips")  # both zips, read in place + the split list beside them
    attrs = zarr.open_group(str(path), mode="r").attrs
    assert attrs["content_sha256"] == tree_checksum
    assert set(json.loads(attrs["raw_sha256"])) == {"fisbe_v1.0_completely.zip", "fisbe_v1.0_partly.zip", "sample_list_per_split.txt"}
    path = loader.prepare(rel["root"], force=True)
    assert zarr.open_group(str(path), mode="r").attrs["content_sha256"] == tree_checksum
    # one zip: only its subset
    path = loader.prepare(rel["zips"][1], force=True)
    assert sample_index(loader.open())["subset"].tolist() == ["partly"] * 3


# -- download from a Zenodo-compatible server ------------------------------------------------
def serve_record(http_server, rel, *, links_host=None, md5_override=None):
    """Serve a fake Zenodo record for the synthetic zips (+ a MIP zip that must not be fetched)."""
    files = {z.name: z.read_bytes() for z in rel["zips"]}
    files["sample_list_per_split.txt"] = rel["split_file"].read_bytes()
    files["fisbe_v1.0_mips.zip"] = b"not needed"
    entries = []
    for key, data in files.items():
        path = f"/api/records/{zenodo.RECORD_ID}/files/{key}/content"
        http_server.add(path, data)
        md5 = (md5_override or {}).get(key, hashlib.md5(data).hexdigest())
        entries.append({"key": key, "size": len(data), "checksum": f"md5:{md5}",
                        "links": {"self": (links_host or http_server.base) + path}})
    http_server.add(f"/api/records/{zenodo.RECORD_ID}", json.dumps({"id": zenodo.RECORD_ID, "files": entries}).encode())
    return files


def test_download_prepare_equals_local(http_server, rel, home, tree_checksum):
    serve_record(http_server, rel)
    path = get_loader("fisbe").prepare(http_server.base)
    attrs = zarr.open_group(str(path), mode="r").attrs
    assert attrs["content_sha256"] == tree_checksum
    assert attrs["source"].startswith(f"Zenodo record {zenodo.RECORD_ID}") and http_server.base in attrs["source"]
    assert http_server.requests_for(f"/api/records/{zenodo.RECORD_ID}/files/fisbe_v1.0_mips.zip/content") == []


def test_download_md5_mismatch(http_server, rel, home):
    serve_record(http_server, rel, md5_override={"fisbe_v1.0_partly.zip": "0" * 32})
    with pytest.raises(ChecksumError, match=r"fisbe_v1\.0_partly\.zip: md5 of the download from .* expected 0{32}"):
        get_loader("fisbe").prepare(http_server.base)
    assert leftovers(home) == []
    folder = home / "downloads" / f"fisbe-zenodo-{zenodo.RECORD_ID}"
    assert not (folder / "fisbe_v1.0_partly.zip").exists() and not (folder / "fisbe_v1.0_partly.zip.part").exists()


def test_download_resumes_after_truncation(http_server, rel, home):
    files = serve_record(http_server, rel)
    path = f"/api/records/{zenodo.RECORD_ID}/files/fisbe_v1.0_completely.zip/content"
    http_server.truncate(path, 5000)
    got, _ = zenodo.download_release(http_server.base)
    assert got["fisbe_v1.0_completely.zip"].read_bytes() == files["fisbe_v1.0_completely.zip"]
    assert [r.range for r in http_server.requests_for(path)] == [None, "bytes=5000-"]
    # downloaded files are re-verified, not fetched again
    http_server.clear()
    zenodo.download_release(http_server.base)
    assert http_server.requests_for(path) == []


def test_download_mirror_from_env(http_server, rel, home, monkeypatch):
    # the record's links point at zenodo.org; the mirror serves the same paths
    serve_record(http_server, rel, links_host="https://zenodo.org")
    monkeypatch.setenv(zenodo.ENV_URL, http_server.base)
    got, origin = get_loader("fisbe").fetch(None)
    assert sorted(got) == ["fisbe_v1.0_completely.zip", "fisbe_v1.0_partly.zip", "sample_list_per_split.txt"]
    assert http_server.base in origin
    assert len(http_server.requests_for(f"/api/records/{zenodo.RECORD_ID}")) == 1


def test_record_variants_and_selection():
    rec = {"entries": [{"key": "fisbe_v1.0_completely.zip", "size": 3, "checksum": "md5:ab",
                        "links": {"content": "https://zenodo.org/x/c"}},
                       {"key": "fisbe_v1.0_mips.zip", "size": 1, "checksum": "md5:cd", "links": {}},
                       {"key": "sample_list_per_split.txt", "size": 2, "checksum": "md5:ef"}]}
    files = zenodo.record_files(rec, "http://mirror")
    assert [f.url for f in files] == ["http://mirror/x/c", f"http://mirror/api/records/{zenodo.RECORD_ID}/files/fisbe_v1.0_mips.zip/content",
                                      f"http://mirror/api/records/{zenodo.RECORD_ID}/files/sample_list_per_split.txt/content"]
    assert [f.key for f in zenodo.select_files(files)] == ["fisbe_v1.0_completely.zip", "sample_list_per_split.txt"]
    assert files[0].md5 == "ab" and files[0].size == 3


# -- bad input ------------------------------------------------------------------------------------
def one_sample_release(root: Path, raw, gt, name="BAD0001-20240101_01_A1", drop=None) -> Path:
    p = gen.write_sample(root / "completely" / "train" / f"{name}.zarr", raw, gt)
    if drop:
        shutil.rmtree(p / "volumes" / drop)
    return root


def good_arrays():
    return gen.synthetic_sample((16, 24, 24), 2, seed=1)


def _case(name):
    raw, gt = good_arrays()
    if name == "shape":
        return raw, gt[:, :, :, :-1], r"arrays volumes/raw \(3, 16, 24, 24\) and volumes/gt_instances \(2, 16, 24, 23\) differ"
    if name == "missing":
        return raw, gt, r"array volumes/gt_instances is missing in .*; expected \(N, Z, Y, X\) uint8"
    if name == "raw_dtype":
        return raw.astype(np.float32), gt, r"array volumes/raw has dtype float32, expected uint16"
    if name == "gt_dtype":
        return raw, gt.astype(np.int32), r"array volumes/gt_instances has dtype int32, expected uint8"
    if name == "empty":
        return raw, np.zeros_like(gt), r"array volumes/gt_instances is empty \(all 2 channels are 0\)"
    if name == "too_bright":
        raw = raw.copy()
        raw[1, 3, 4, 5] = 5000
        return raw, gt, r"array volumes/raw has maximum 5000 .*expected 12-bit values <= 4095"
    if name == "channels":
        return raw[:2], gt, r"array volumes/raw has shape \(2, 16, 24, 24\), expected \(3, Z, Y, X\)"
    if name == "gt_3d":
        return raw, gt[0], r"array volumes/gt_instances has shape \(16, 24, 24\), expected 4-D"
    raise AssertionError(name)


@pytest.mark.parametrize("case", ["shape", "missing", "raw_dtype", "gt_dtype", "empty", "too_bright", "channels", "gt_3d"])
def test_bad_sample_names_sample_and_array_and_leaves_nothing(tmp_path, home, case):
    raw, gt, pattern = _case(case)
    src = one_sample_release(tmp_path / "rel", raw, gt, drop="gt_instances" if case == "missing" else None)
    with pytest.raises(DataFormatError, match=r"sample BAD0001-20240101_01_A1: " + pattern):
        get_loader("fisbe").prepare(src)
    assert leftovers(home) == []


def test_empty_channel_kept_with_warning(tmp_path, home):
    raw, gt = good_arrays()
    gt[1] = 0
    src = one_sample_release(tmp_path / "rel", raw, gt)
    with pytest.warns(UserWarning, match=r"sample BAD0001-20240101_01_A1: GT channel\(s\) for instance\(s\) \[2\]"):
        tree = open_fisbe(source=src)
    ds = tree["BAD0001-20240101_01_A1"]
    assert ds.attrs["empty_instances"] == [2] and ds.sizes["instance"] == 2 and int(ds.n_voxels.sel(instance=2)) == 0
    assert all(not (tree[f"BAD0001-20240101_01_A1/labels/{g}"]["0"].values == 2).any() for g in ds.attrs["label_images"])


def test_split_list_and_official_split_are_enforced(tmp_path, home):
    raw, gt = good_arrays()
    src = one_sample_release(tmp_path / "a", raw, gt)
    (src / "sample_list_per_split.txt").write_text("(1) samples for FlyLight completely:\n\ntest:\nBAD0001-20240101_01_A1\n")
    with pytest.raises(DataFormatError, match=r"sample BAD0001-20240101_01_A1: in completely/train but .* lists it under completely/test"):
        get_loader("fisbe").prepare(src)
    # an official sample in the wrong place (R14A02-20180905_65_A6 is completely/test)
    src = one_sample_release(tmp_path / "b", raw, gt, name="R14A02-20180905_65_A6")
    with pytest.raises(DataFormatError, match=r"sample R14A02-20180905_65_A6: in completely/train, but the official FISBe split puts it in completely/test"):
        get_loader("fisbe").prepare(src)
    assert leftovers(home) == []


def test_complete_release_detected():
    refs = [release.SampleRef(n, s, p, Path(f"/x/{n}.zarr")) for (s, p), names in release.official_split().items() for n in names]
    assert len(refs) == 101
    from neuroharness.loaders.fisbe import check_splits

    attrs = check_splits(refs, None)
    assert attrs["complete_release"] is True and attrs["n_official_samples"] == 101
    assert attrs["release_note"] == "the full official FISBe v1.0 release (101 samples)"
    attrs = check_splits(refs[1:], None)
    assert attrs["complete_release"] is False and attrs["n_official_samples"] == 100


def test_zip_path_traversal_rejected(tmp_path, home):
    bad = tmp_path / "evil.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("completely/train/X.zarr/.zgroup", '{"zarr_format": 2}')
        zf.writestr("../../outside/completely/train/Y.zarr/.zgroup", '{"zarr_format": 2}')
    with pytest.raises(DataFormatError, match=r"evil\.zip: unsafe member name '\.\./\.\./outside/"):
        get_loader("fisbe").prepare(bad)
    assert leftovers(home) == []


def test_missing_source(tmp_path, home):
    with pytest.raises(DataFormatError, match=r"--source .*nope: no such file or directory; expected a local copy of fisbe: "):
        get_loader("fisbe").prepare(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match=r"FISBe source .*empty: no samples found"):
        get_loader("fisbe").prepare(tmp_path / "empty")


# -- the real crop -------------------------------------------------------------------------
@pytest.mark.skipif(not CROP.exists(), reason=f"real FISBe crop not found at {CROP} (../shared is absent)")
def test_real_crop(tmp_path, home):
    name = "JRC_SS05008-20160318_24_B2_crop"  # not an official sample name: a crop of partly/val JRC_SS05008-20160318_24_B2
    (tmp_path / "rel" / "partly" / "val").mkdir(parents=True)
    (tmp_path / "rel" / "partly" / "val" / f"{name}.zarr").symlink_to(CROP, target_is_directory=True)
    tree = open_fisbe(source=tmp_path / "rel")
    ds = tree[name].to_dataset(inherit=False)
    assert ds.raw.shape == (3, 50, 50, 50) and ds.sizes["instance"] == 3
    from neuroharness.tasks.fisbe.instance_segmentation import StoreData

    path = get_loader("fisbe").store_path()
    gt = StoreData(str(path), sample_index(tree)).gt(name)  # the neurons read back from the label images
    assert gt.sum(axis=(1, 2, 3)).tolist() == [3765, 6193, 14246] == ds.n_voxels.values.tolist()
    assert int((gt.sum(0) >= 2).sum()) == 2315 == ds.attrs["overlap_voxels"]  # voxels in two or more neurons (reference: 2,315)
    assert len(ds.attrs["label_images"]) == 3  # every pair overlaps: one label image per neuron
    assert int(ds.raw.max()) == 3287
    src = zarr.open_group(str(CROP), mode="r", zarr_format=2)
    assert np.array_equal(ds.raw.values, src["volumes/raw"][:])
    assert np.array_equal(gt, src["volumes/gt_instances"][:] != 0)
    assert sample_index(tree).to_dict("records") == [{"sample": name, "subset": "partly", "split": "val", "n_instances": 3,
                                                          "size_z": 50, "size_y": 50, "size_x": 50}]
