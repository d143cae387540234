"""Dataset ``nsd-algonauts2023`` from the challenge release (source A): synthetic release -> store, exact values,
checksums, bad input (clear errors, nothing written), the restricted unpickler of the ROI mappings, no source."""
from __future__ import annotations

import io
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from helpers import load_script
from PIL import Image

from neuroharness.cli import main
from neuroharness.errors import DataFormatError, NeuroharnessError
from neuroharness.loaders import get_loader
from neuroharness.loaders.nsd import challenge, loader as nsd_loader
from neuroharness.loaders.nsd.store import ROI_CLASSES, RowStack, SubjectArrays, roi_variable, write_subject

gen = load_script("make_nsd_challenge_fixture")
NAME = "nsd-algonauts2023"
SMALL = dict(n_train=12, n_test=4, vertices=(9, 11), image_size=16, surface=60)


@pytest.fixture(scope="module")
def rel(tmp_path_factory):
    """Two synthetic subjects (12 train + 4 test images of 16 x 16, 9 + 11 vertices), no test fMRI."""
    root = tmp_path_factory.mktemp("nsd") / "release"
    return root, gen.write_release(root, ("subj01", "subj02"), **SMALL)


@pytest.fixture(scope="module")
def rel_test(tmp_path_factory):
    """One subject with test fMRI and noise ceilings (as the organisers' private files, or a rebuilt release)."""
    root = tmp_path_factory.mktemp("nsd_test") / "release"
    return root, gen.write_release(root, ("subj03",), with_test_fmri=True, **SMALL)


def leftovers(home: Path) -> list[str]:
    d = home / "datasets" / NAME
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def check_subject(ds, info: dict, test_fmri: bool) -> None:
    folder = info["folder"]
    n_train, n_test = len(info["nsd_train"]), len(info["nsd_test"])
    assert ds.nsd_id.dtype == np.int32 and ds.split_row.dtype == np.int32
    assert ds.nsd_id.values.tolist() == [*info["nsd_train"].tolist(), *info["nsd_test"].tolist()]
    assert ds.split.values.tolist() == ["train"] * n_train + ["test"] * n_test
    assert ds.split_row.values.tolist() == [*range(n_train), *range(n_test)]
    # vertices: lh then rh, fsaverage index = nonzero entries of the all-vertices mask (values 1 and 2)
    assert ds.hemisphere.values.tolist() == ["lh"] * 9 + ["rh"] * 11
    assert ds.fsaverage_index.dtype == np.int32
    assert ds.fsaverage_index.values.tolist() == [*np.flatnonzero(info["mask"]["lh"]), *np.flatnonzero(info["mask"]["rh"])]
    assert set(np.unique(info["mask"]["lh"])) <= {0, 1, 2}
    # fMRI: training rows exactly as released, test rows NaN unless the release holds them
    assert ds.fmri.dtype == np.float32 and ds.fmri.dims == ("stimulus", "vertex")
    train = np.concatenate([np.load(folder / f"training_split/training_fmri/{h}_training_fmri.npy") for h in ("lh", "rh")], 1)
    fmri = ds.fmri.values
    assert np.array_equal(fmri[:n_train], train)
    if test_fmri:
        test = np.concatenate([np.load(folder / f"test_split/test_fmri/{h}_test_fmri.npy") for h in ("lh", "rh")], 1)
        assert np.array_equal(fmri[n_train:], test)
        nc = np.concatenate([info["noise_ceiling"][h] for h in ("lh", "rh")]).astype(np.float32)
        assert ds.noise_ceiling.dtype == np.float32 and np.array_equal(ds.noise_ceiling.values, nc)
        assert ds.noise_ceiling.attrs["units"] == "1"
    else:
        assert np.isnan(fmri[n_train:]).all() and "noise_ceiling" not in ds
    assert ds.fmri.attrs["units"] == "z-scored beta (per session), averaged over repeats"
    # ROI labels and names
    for cls in ROI_CLASSES:
        var = ds[roi_variable(cls)]
        assert var.dtype == np.int16 and var.attrs["units"] == "1"
        assert np.array_equal(var.values, np.concatenate([info["rois"][cls][h] for h in ("lh", "rh")]))
        names = gen.ROI_NAMES[cls]
        assert var.attrs["flag_values"] == list(range(1, len(names) + 1))
        assert var.attrs["flag_meanings"] == " ".join(names)
    # images: pixel-equal to the PNGs, one chunk per image
    images = ds.images
    assert images.dims == ("stimulus", "y", "x", "rgb") and images.dtype == np.uint8
    assert images.data.chunksize == (1, 16, 16, 3) and images.attrs["long_name"] == "stimulus image (RGB)"
    files = sorted((folder / "training_split/training_images").iterdir()) + sorted((folder / "test_split/test_images").iterdir())
    pixels = images.values
    for i, f in enumerate(files):
        assert np.array_equal(pixels[i], png(f)), f.name
    assert np.array_equal(pixels[0], gen.grid_image(info["grids"][0], 16))
    assert ds.attrs["vertices_lh"] == 9 and ds.attrs["vertices_rh"] == 11
    assert ds.attrs["source_kind"] == "challenge release"


# -- release -> store ------------------------------------------------------------------------------
def test_two_subjects_values_round_trip(rel, home, capsys):
    root, infos = rel
    path = get_loader(NAME).prepare(root)
    tree = get_loader(NAME).open()
    assert sorted(tree.children) == ["subj01", "subj02"]
    assert tree.attrs["license"] == "NSD Terms and Conditions (no redistribution)" and tree.attrs["only"] is None
    assert tree.attrs["subjects"] == ["subj01", "subj02"]
    assert set(json.loads(tree.attrs["raw_sha256"])) == {"subj01", "subj02"}
    for s in ("subj01", "subj02"):
        ds = nsd_loader.open_subject(s)
        assert ds.attrs["subject"] == s and ds.attrs["test_fmri"] == "none"
        check_subject(ds, infos[s], test_fmri=False)
    assert set(json.loads(tree.attrs["parts_sha256"])) == {"subj01", "subj02"}
    assert nsd_loader.subjects() == ["subj01", "subj02"] and (path / ".zmetadata").exists()

    assert main(["datasets", "info", NAME]) == 0
    out = capsys.readouterr().out
    assert "subj02       12     4       9      11  no        no   prf-visualrois floc-bodies" in out
    with pytest.raises(NeuroharnessError, match=r"subject 'subj05' is not in the prepared nsd-algonauts2023 store .* "
                                                r"holds subj01, subj02; .* --only subj01 subj02 subj05 --force"):
        nsd_loader.open_subject("subj05")


def test_test_fmri_and_noise_ceiling(rel_test, home, capsys):
    root, infos = rel_test
    get_loader(NAME).prepare(root / "subj03")  # one subject folder
    ds = nsd_loader.open_subject("subj03")
    assert ds.attrs["test_fmri"] == "from the release (test_split/test_fmri)"
    check_subject(ds, infos["subj03"], test_fmri=True)
    assert main(["datasets", "info", NAME]) == 0
    assert "subj03       12     4       9      11  yes       yes" in capsys.readouterr().out


def test_one_subject_only_and_part_checksums(rel, home, tmp_path):
    root, infos = rel
    loader = get_loader(NAME)
    loader.prepare(root)
    both = loader.part_checksums()
    content = loader.content_sha256()
    loader.prepare(root, force=True)  # rebuilt: same content checksum
    assert loader.content_sha256() == content
    loader.prepare(root, force=True, only="subj02")
    assert zarr.open_group(str(loader.store_path()), mode="r").attrs["only"] == ["subj02"]
    assert loader.part_checksums() == {"subj02": both["subj02"]}  # a subject's checksum does not depend on the others
    loader.prepare(root / "subj01", force=True)
    assert loader.part_checksums() == {"subj01": both["subj01"]}
    # the same fixture regenerated elsewhere: the same store content
    gen.write_release(tmp_path / "again", ("subj01", "subj02"), **SMALL)
    loader.prepare(tmp_path / "again", force=True)
    assert loader.content_sha256() == content
    with pytest.raises(DataFormatError, match=r"--source .*release: no folder for subj04 \(--only\); it holds subj01, subj02"):
        loader.prepare(root, force=True, only=["subj01", "subj04"])
    with pytest.raises(DataFormatError, match=r"unknown subject 'subj9' \(--only\); expected some of subj01, .*subj08"):
        loader.prepare(root, force=True, only="subj9")
    with pytest.raises(DataFormatError, match=r"no folder for subj02 \(--only\); it holds subj01"):
        loader.prepare(root / "subj01", force=True, only="subj02")


def test_fixture_responses_depend_on_images(tmp_path):
    """A linear model of the images' block means beats the mean response on held-out images (the task needs this)."""
    info = gen.write_subject(tmp_path, "subj01", n_train=80, n_test=40, vertices=(20, 20), image_size=8, surface=50,
                             grid=2, with_test_fmri=True)
    folder = info["folder"]
    load = lambda split: np.stack([png(f) for f in sorted((folder / split).iterdir())])  # noqa: E731
    xtr = gen.grid_features(load("training_split/training_images"), grid=2)
    xte = gen.grid_features(load("test_split/test_images"), grid=2)
    ytr = np.load(folder / "training_split/training_fmri/lh_training_fmri.npy")
    yte = np.load(folder / "test_split/test_fmri/lh_test_fmri.npy")
    mu, sd = xtr.mean(0), xtr.std(0)
    a = np.c_[(xtr - mu) / sd, np.ones(len(xtr))]
    w = np.linalg.lstsq(a, ytr, rcond=None)[0]
    pred = np.c_[(xte - mu) / sd, np.ones(len(xte))] @ w
    r = [np.corrcoef(pred[:, v], yte[:, v])[0, 1] for v in range(yte.shape[1])]
    assert np.median(r) > 0.4
    assert np.all((info["noise_ceiling"]["lh"] > 0.1) & (info["noise_ceiling"]["lh"] < 0.85))


# -- bad input -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("nsd_pristine") / "release"
    gen.write_release(root, ("subj01", "subj02"), with_test_fmri=True, **SMALL)
    return root


def _rename(folder: Path, old_prefix: str, new_name: str) -> None:
    (src,) = [p for p in folder.iterdir() if p.name.startswith(old_prefix)]
    src.rename(folder / new_name)


def _edit_npy(path: Path, fn) -> None:
    a = np.load(path)
    np.save(path, fn(a))


def _mutate(case: str, s: Path):
    tr, te, masks = s / "training_split/training_images", s / "test_split/test_images", s / "roi_masks"
    fm = s / "training_split/training_fmri"
    first = sorted(tr.iterdir())[0].name
    if case == "missing_hemisphere":
        (fm / "rh_training_fmri.npy").unlink()
        return r"rh_training_fmri\.npy is missing; expected a \.npy file .*both hemispheres"
    if case == "missing_test_hemisphere":
        (s / "test_split/test_fmri/lh_test_fmri.npy").unlink()
        return r"lh_test_fmri\.npy is missing"
    if case == "missing_roi_hemisphere":
        (masks / "rh.streams_challenge_space.npy").unlink()
        return r"rh\.streams_challenge_space\.npy is missing, but lh\.streams_challenge_space\.npy is there"
    if case == "missing_mask":
        (masks / "lh.all-vertices_fsaverage_space.npy").unlink()
        return r"lh\.all-vertices_fsaverage_space\.npy is missing"
    if case == "rows_mismatch":
        sorted(tr.iterdir())[-1].unlink()
        return r"lh_training_fmri\.npy has 12 rows but training_images holds 11 images; expected one fMRI row per training image"
    if case == "test_rows_mismatch":
        sorted(te.iterdir())[-1].unlink()
        return r"lh_test_fmri\.npy has shape \(4, 9\), expected \(3, 9\)"
    if case == "malformed_nsd":
        _rename(tr, "train-0003", "train-0003_nsd-123.png")
        return r"train-0003_nsd-123\.png: malformed image name 'train-0003_nsd-123\.png'; expected files named train-NNNN_nsd-IIIII\.png"
    if case == "malformed_row":
        _rename(tr, "train-0003", "train-3_nsd-00123.png")
        return r"malformed image name 'train-3_nsd-00123\.png'"
    if case == "wrong_split":
        _rename(tr, "train-0003", "test-0003_nsd-00123.png")
        return r"malformed image name 'test-0003_nsd-00123\.png'; expected files named train-NNNN"
    if case == "duplicated_row":
        shutil.copy(tr / first, tr / "train-0001_nsd-00000.png")
        return r"duplicated image number 0001, also in train-0001_nsd-"
    if case == "duplicated_nsd":
        nsd = first.split("nsd-")[1]
        _rename(tr, "train-0005", f"train-0005_nsd-{nsd}")
        return rf"train-0005_nsd-{nsd[:5]}\.png: duplicated NSD image {nsd[:5]}, also in {first}"
    if case == "duplicated_nsd_across_splits":
        nsd = first.split("nsd-")[1]
        _rename(te, "test-0002", f"test-0002_nsd-{nsd}")
        return rf"test-0002_nsd-{nsd[:5]}\.png: duplicated NSD image {nsd[:5]}, also in {first}"
    if case == "gap":
        _rename(tr, "train-0012", "train-0013_nsd-00001.png")
        return r"train image number 0012 is missing \(found train-0013_nsd-00001\.png instead\); expected numbers 1\.\.12"
    if case == "nsd_out_of_range":
        _rename(tr, "train-0004", "train-0004_nsd-73000.png")
        return r"train-0004_nsd-73000\.png: NSD image index 73000 is out of range; expected 0\.\.72999"
    if case == "nan":
        _edit_npy(fm / "lh_training_fmri.npy", lambda a: (a.__setitem__((3, 5), np.nan), a)[1])
        return r"lh_training_fmri\.npy row 3 column 5 is nan; expected finite values \(the challenge release has no NaN"
    if case == "nan_column":  # what subj06/08 had before the devkit removed those vertices
        _edit_npy(fm / "rh_training_fmri.npy", lambda a: (a.__setitem__((slice(None), 7), np.nan), a)[1])
        return r"rh_training_fmri\.npy row 0 column 7 is nan"
    if case == "nan_test":
        _edit_npy(s / "test_split/test_fmri/rh_test_fmri.npy", lambda a: (a.__setitem__((2, 1), np.nan), a)[1])
        return r"rh_test_fmri\.npy row 2 column 1 is nan"
    if case == "inf":
        _edit_npy(fm / "lh_training_fmri.npy", lambda a: (a.__setitem__((11, 0), np.inf), a)[1])
        return r"lh_training_fmri\.npy row 11 column 0 is inf"
    if case == "float64":
        _edit_npy(fm / "lh_training_fmri.npy", lambda a: a.astype(np.float64))
        return r"lh_training_fmri\.npy has dtype float64, expected float32"
    if case == "fmri_1d":
        _edit_npy(fm / "lh_training_fmri.npy", lambda a: a[:, 0])
        return r"lh_training_fmri\.npy has shape \(12,\) and dtype float32, expected a 2-D array of floats"
    if case == "not_npy":
        (fm / "lh_training_fmri.npy").write_bytes(b"not a numpy file")
        return r"lh_training_fmri\.npy: not a readable \.npy array"
    if case == "pickled_fmri":
        np.save(fm / "lh_training_fmri.npy", np.array([{"a": 1}], dtype=object))
        return r"lh_training_fmri\.npy holds Python objects \(dtype object, a pickle\); expected a numeric array"
    if case == "mask_count":
        _edit_npy(masks / "rh.all-vertices_fsaverage_space.npy",
                  lambda a: (a.__setitem__(int(np.flatnonzero(a == 0)[0]), 1), a)[1])
        return r"rh\.all-vertices_fsaverage_space\.npy marks 12 vertices but .*rh_training_fmri\.npy has 11 columns"
    if case == "roi_length":
        _edit_npy(masks / "lh.floc-faces_challenge_space.npy", lambda a: a[:-1])
        return r"lh\.floc-faces_challenge_space\.npy has 8 vertices but .*lh_training_fmri\.npy has 9"
    if case == "roi_label":
        _edit_npy(masks / "rh.floc-places_challenge_space.npy", lambda a: (a.__setitem__(4, 9), a)[1])
        return r"rh\.floc-places_challenge_space\.npy vertex 4 has label 9, which mapping_floc-places\.npy does not name; expected 0 or one of \[0, 1, 2, 3\]"
    if case == "nc_length":
        _edit_npy(s / "test_split/noise_ceiling/lh_noise_ceiling.npy", lambda a: a[:-2])
        return r"lh_noise_ceiling\.npy has 7 vertices but .*lh_training_fmri\.npy has 9"
    if case == "nc_percent":
        _edit_npy(s / "test_split/noise_ceiling/rh_noise_ceiling.npy", lambda a: a * 100)
        return r"rh_noise_ceiling\.npy vertex 0 is .*, expected a finite noise ceiling fraction in 0\.\.1 \(the devkit's NC, not a percentage\)"
    if case == "png_size":
        name = sorted(tr.iterdir())[3].name
        Image.new("RGB", (16, 15)).save(tr / name)
        return rf"{name}: PNG image of mode RGB, size 16 x 15; expected an RGB PNG of 16 x 16"
    if case == "png_mode":
        Image.new("L", (16, 16)).save(te / sorted(te.iterdir())[1].name)
        return r"test-0002_nsd-\d{5}\.png: PNG image of mode L, size 16 x 16; expected an RGB PNG"
    if case == "png_damaged":
        name = sorted(tr.iterdir())[6].name
        (tr / name).write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
        return rf"{name}: not a readable PNG image"
    if case == "jpeg":
        name = sorted(tr.iterdir())[2].name
        Image.new("RGB", (16, 16)).save(tr / name, format="jpeg")
        return rf"{name}: JPEG image of mode RGB, size 16 x 16; expected an RGB PNG"
    if case == "no_training_images":
        for p in tr.iterdir():
            p.unlink()
        return r"training_images holds no train-NNNN_nsd-IIIII\.png images"
    if case == "mapping_pickle_global":
        np.save(masks / "mapping_streams.npy", np.array(Evil(), dtype=object))
        return r"mapping_streams\.npy: refused: the pickle calls posix\.system, which is not allowed"
    if case == "mapping_not_dict":
        np.save(masks / "mapping_streams.npy", np.array([1, 2, 3]))
        return r"mapping_streams\.npy holds an array of shape \(3,\) and dtype int64; expected a numpy \.npy file holding a dict"
    if case == "mapping_bad_entry":
        np.save(masks / "mapping_streams.npy", {0: "Unknown", 1: 7})
        return r"mapping_streams\.npy: entry 1: 7 is not an int label and a name"
    raise AssertionError(case)


MARKER = Path("/tmp") / f"nsd-unpickle-marker-{os.getpid()}"


class Evil:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


BAD_CASES = ["missing_hemisphere", "missing_test_hemisphere", "missing_roi_hemisphere", "missing_mask", "rows_mismatch",
             "test_rows_mismatch", "malformed_nsd", "malformed_row", "wrong_split", "duplicated_row", "duplicated_nsd",
             "duplicated_nsd_across_splits", "gap", "nsd_out_of_range", "nan", "nan_column", "nan_test", "inf",
             "float64", "fmri_1d", "not_npy", "pickled_fmri", "mask_count", "roi_length", "roi_label", "nc_length",
             "nc_percent", "png_size", "png_mode", "png_damaged", "jpeg", "no_training_images",
             "mapping_pickle_global", "mapping_not_dict", "mapping_bad_entry"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_release_names_subject_and_file_and_leaves_nothing(pristine, tmp_path, home, case):
    """The damage is in subj02: subj01 is read (and, for errors found while streaming, written) first."""
    root = tmp_path / "release"
    shutil.copytree(pristine, root)
    pattern = _mutate(case, root / "subj02")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    with pytest.raises(DataFormatError, match=r"^subj02: .*" + pattern):
        get_loader(NAME).prepare(root)
    assert leftovers(home) == []  # no store, no temporary store
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written beside the source
    assert not MARKER.exists()


def test_restricted_unpickler(tmp_path):
    # what the devkit writes (np.save of a dict), under numpy 2 names and under numpy 1.x ones (protocol 3, numpy.core)
    good = tmp_path / "mapping_streams.npy"
    np.save(good, gen.mapping_of("streams"))
    assert challenge.read_mapping(good) == gen.mapping_of("streams")
    arr = np.empty((), dtype=object)
    arr[()] = {np.int64(0): "Unknown", 1: np.str_("V1v")}
    body = pickle.dumps(arr, protocol=3).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray\n_reconstruct" in body
    old = tmp_path / "old.npy"
    old.write_bytes(_npy_header() + body)
    assert challenge.read_mapping(old) == {0: "Unknown", 1: "V1v"}

    # other globals are refused when named, before anything runs
    for payload, name in ((pickle.dumps(Evil(), protocol=3), "posix.system"),
                          (b"cbuiltins\neval\n(S'__import__(\"os\").system(\"touch " + str(MARKER).encode() + b"\")'\ntR.", "builtins.eval"),
                          (b"\x80\x02cnumpy\nload\nq\x00.", "numpy.load")):
        bad = tmp_path / "bad.npy"
        bad.write_bytes(_npy_header() + payload)
        with pytest.raises(DataFormatError, match=rf"bad\.npy: refused: the pickle calls {name}, which is not allowed"):
            challenge.read_mapping(bad, "subj01")
        assert not MARKER.exists()
    # numpy names are allowed only for what np.save writes: not another array class, not other dtypes
    for bad_obj, why in ((np.ma.masked_array([1]), r"the pickle calls numpy\.ma\.core\._mareconstruct, which is not allowed"),
                         (np.zeros(1, dtype=[("a", "O")]), r"numpy\.dtype\('V8'\), expected an object, integer or string dtype"),
                         (np.float64(1.5), r"numpy\.dtype\('f8'\), expected an object, integer or string dtype"),
                         (NotAnArray(), r"_reconstruct of _Dtype, expected numpy\.ndarray"),
                         ({1: "V1"}, r"a pickled dict, expected a numpy array"),
                         (np.array(["V1"]), r"an array of shape \(1,\) and dtype kind U, expected a 0-d object array"),
                         (np.array(5, dtype=object), r"holds int, expected a numpy \.npy file")):
        bad = tmp_path / "bad2.npy"
        bad.write_bytes(_npy_header() + pickle.dumps(bad_obj, protocol=3))
        with pytest.raises(DataFormatError, match=r"bad2\.npy:? (refused: )?" + why):
            challenge.read_mapping(bad)
    # damaged and oversized files
    (tmp_path / "cut.npy").write_bytes(good.read_bytes()[:-20])
    with pytest.raises(DataFormatError, match=r"cut\.npy: not a readable pickle"):
        challenge.read_mapping(tmp_path / "cut.npy")
    (tmp_path / "big.npy").write_bytes(b"\0" * (challenge.MAX_MAPPING_BYTES + 1))
    with pytest.raises(DataFormatError, match=r"big\.npy is 1048577 bytes, more than 1048576"):
        challenge.read_mapping(tmp_path / "big.npy")
    # a damaged dtype state (flags 135 instead of 63) once crashed numpy's own __setstate__ a few reads later;
    # the stand-ins never hand the file's states to numpy
    flags = good.read_bytes()
    assert flags.count(b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK?") == 1
    (tmp_path / "flags.npy").write_bytes(flags.replace(b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK?", b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x87"))
    for _ in range(50):
        assert challenge.read_mapping(tmp_path / "flags.npy") == gen.mapping_of("streams")
    # numpy's own shared dtypes are never modified by a pickle's BUILD
    assert np.dtype(object).byteorder == "|" and np.dtype("i8") == np.int64


class NotAnArray:
    def __reduce__(self):  # numpy's _reconstruct asked to build something else than an ndarray
        return (np.empty(0, dtype=object).__reduce__()[0], (np.dtype, (0,), b"b"))


def _npy_header() -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": ()})
    return buf.getvalue()


def test_no_source_explains_how_to_obtain_the_data(home, tmp_path, capsys):
    pattern = (r"nsd-algonauts2023 has no download: the NSD terms forbid redistribution.*NSD Data Access Agreement.*"
               r"Google form linked from the README of https://github\.com/gifale95/algonauts_2023.*"
               r"aws s3 sync --no-sign-request s3://natural-scenes-dataset DIR.*"
               r"scripts/make_nsd_challenge_fixture\.py DIR.*scripts/make_nsd_bucket_fixture\.py DIR")
    with pytest.raises(DataFormatError, match=pattern):
        get_loader(NAME).prepare()
    assert leftovers(home) == []
    assert main(["datasets", "prepare", NAME]) == 2
    assert "NSD Data Access Agreement" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match=r"--source .*empty: neither the Algonauts 2023 challenge release .* nor the NSD files "
                                              r"\(nsddata/experiments/nsd/nsd_expdesign\.mat\)"):
        get_loader(NAME).prepare(tmp_path / "empty")
    with pytest.raises(DataFormatError, match=r"--source https://example\.org/nsd: only local folders and s3:// URLs"):
        get_loader(NAME).fetch("https://example.org/nsd")
    (tmp_path / "my_subject" / "training_split").mkdir(parents=True)
    with pytest.raises(DataFormatError, match=r"must be named subj01\.\.subj08 .* not 'my_subject'"):
        get_loader(NAME).prepare(tmp_path / "my_subject")
    assert leftovers(home) == []
    card = get_loader(NAME).card
    assert card.parts == "subject" and "make_nsd_challenge_fixture.py" in card.offline and "make_nsd_bucket_fixture.py" in card.offline


# -- write_subject checks (the interface both sources use) ------------------------------------------------
def arrays(**over) -> SubjectArrays:
    rng = np.random.default_rng(0)
    n_train, n_test, n = 5, 2, 7
    fmri = {"lh": rng.normal(size=(n, 3)).astype(np.float32), "rh": rng.normal(size=(n, 4)).astype(np.float32)}
    for h in fmri:
        fmri[h][n_train:] = np.nan
    imgs = rng.integers(0, 256, size=(n, 4, 5, 3), dtype=np.uint8)
    base = dict(subject="subj04", nsd_id=np.arange(10, 10 + n), split=np.array(["train"] * n_train + ["test"] * n_test),
                split_row=np.r_[np.arange(n_train), np.arange(n_test)], fmri=fmri,
                fsaverage_index={"lh": np.array([1, 5, 9]), "rh": np.array([0, 2, 3, 8])}, noise_ceiling=None,
                rois={"streams": ({"lh": np.array([0, 1, 2]), "rh": np.array([7, 0, 0, 1])}, gen.mapping_of("streams"))},
                image=lambda i: imgs[i], image_shape=(4, 5), attrs={"source_kind": "NSD files", "test_fmri": "none",
                                                                     "n_sessions": 30})
    base.update(over)
    return SubjectArrays(**base)


def _with_fmri(h, row, col, value, rows=None):
    a = arrays()
    f = {k: v.copy() for k, v in a.fmri.items()}
    f[h][row if rows is None else rows, col] = value
    return dict(fmri=f)


def _ones(inf_at=None):
    f = {"lh": np.ones((7, 3), np.float32), "rh": np.ones((7, 4), np.float32)}
    if inf_at is not None:
        f[inf_at[0]][inf_at[1], inf_at[2]] = np.inf
    return f


WRITE_CASES = {
    "subject": (dict(subject="subj9"), r"subject 'subj9': expected one of subj01"),
    "nsd_range": (dict(nsd_id=np.r_[np.arange(6), 73000]), r"subj04: nsd_id row 6 is 73000, expected 0\.\.72999"),
    "nsd_dup": (dict(nsd_id=np.r_[np.arange(6), 3]), r"subj04: nsd_id 3 appears in rows 3 and 6"),
    "split_order": (dict(split=np.array(["train"] * 4 + ["test", "train", "test"])),
                    r"subj04: split row 4 is 'test' before the last 'train' row"),
    "split_value": (dict(split=np.array(["train"] * 5 + ["val", "test"])), r"subj04: split row 5 is 'val'"),
    "split_row": (dict(split_row=np.r_[np.arange(5), 1, 2]), r"subj04: split_row row 5 \(test\) is 1, expected 0"),
    "hemispheres": (dict(fsaverage_index={"lh": np.arange(3)}), r"subj04: fsaverage_index: expected a dict with 'lh' and 'rh'"),
    "fsavg_order": (dict(fsaverage_index={"lh": np.array([1, 5, 5]), "rh": np.arange(4)}),
                    r"subj04: fsaverage_index lh entry 2 is 5 after 5, expected strictly increasing"),
    "fmri_dtype": (dict(fmri={"lh": np.zeros((7, 3)), "rh": np.zeros((7, 4), np.float32)}),
                   r"subj04: fmri lh has dtype float64, expected float32"),
    "fmri_rows": (dict(fmri={"lh": np.zeros((6, 3), np.float32), "rh": np.zeros((7, 4), np.float32)}),
                  r"subj04: fmri lh has 6 rows, expected 7 \(one per stimulus: 5 train \+ 2 test\)"),
    "fmri_vertices": (dict(fsaverage_index={"lh": np.arange(3), "rh": np.arange(5)}),
                      r"subj04: fmri rh has 4 vertices \(columns\), but fsaverage_index rh has 5"),
    "nc_vertices": (dict(noise_ceiling={"lh": np.ones(3), "rh": np.ones(5)}),
                    r"subj04: noise_ceiling rh has 5 vertices, but fmri rh has 4"),
    "nc_range": (dict(noise_ceiling={"lh": np.full(3, 0.5), "rh": np.array([0.1, np.nan, 0.2, 0.3])}),
                 r"subj04: noise_ceiling rh vertex 1 is nan, expected a finite fraction in 0\.\.1"),
    "roi_vertices": (dict(rois={"streams": ({"lh": np.zeros(2, int), "rh": np.zeros(4, int)}, {0: "U", 1: "early"})}),
                     r"subj04: ROI streams lh has 2 vertices, but fmri lh has 3"),
    "roi_class": (dict(rois={"visual": ({"lh": np.zeros(3, int), "rh": np.zeros(4, int)}, {1: "V1"})}),
                  r"subj04: ROI class 'visual', expected one of prf-visualrois"),
    "roi_name": (dict(rois={"streams": ({"lh": np.zeros(3, int), "rh": np.zeros(4, int)}, {1: "early visual"})}),
                 r"subj04: ROI class streams: mapping of label 1 is 'early visual', expected a name without spaces"),
    "roi_label": (dict(rois={"streams": ({"lh": np.array([0, 3, 0]), "rh": np.zeros(4, int)}, {1: "early"})}),
                  r"subj04: ROI streams lh vertex 1 has label 3, which the mapping of streams does not name"),
    "attrs_kind": (dict(attrs={"test_fmri": "none"}), r"subj04: attrs source_kind is None"),
    "nan_train": (_with_fmri("rh", 2, 3, np.nan),
                  r"subj04: fmri rh row 2 \(train row 2, nsd_id 12\) column 3 is nan; expected finite values in every training row"),
    "nan_partial_test": (_with_fmri("lh", 6, 1, 0.5),
                         r"subj04: fmri lh row 6 \(test row 1, nsd_id 16\) column 0 is nan; expected finite values, or NaN in "
                         r"the whole row \(both hemispheres\)"),
    "inf_test": (dict(fmri=_ones(inf_at=("rh", 5, 0)), attrs={"source_kind": "NSD files", "test_fmri": "rebuilt"}),
                 r"subj04: fmri rh row 5 \(test row 0, nsd_id 15\) column 0 is inf; expected finite values"),
    "test_given_but_none": (dict(fmri=_ones()),
                            r"subj04: fmri row 5 \(test row 0\) has responses but attrs test_fmri is 'none'"),
    "test_missing_but_given": (dict(attrs={"source_kind": "NSD files", "test_fmri": "rebuilt"}),
                               r"subj04: fmri lh row 5 \(test row 0, nsd_id 15\) column 0 is nan; expected finite test "
                               r"responses, since attrs test_fmri is 'rebuilt'"),
    "image_shape": (dict(image=lambda i: np.zeros((4, 4, 3), np.uint8)),
                    r"subj04: image of row 0 \(train row 0, nsd_id 10\) has shape \(4, 4, 3\) and dtype uint8, expected \(4, 5, 3\) uint8"),
}


@pytest.mark.parametrize("case", sorted(WRITE_CASES))
def test_write_subject_checks(tmp_path, case):
    over, pattern = WRITE_CASES[case]
    root = zarr.open_group(str(tmp_path / "s.zarr"), mode="w", zarr_format=2)
    with pytest.raises(DataFormatError, match="^" + pattern):
        write_subject(root, arrays(**over))


def test_write_subject_streams_a_row_stack(tmp_path):
    """What the NSD-files source writes: n_sessions kept, a RowStack of memmap + NaN rows, NaN test rows kept."""
    a = arrays()
    mm = {}
    for h, f in a.fmri.items():
        mm[h] = np.lib.format.open_memmap(tmp_path / f"{h}.npy", mode="w+", dtype=np.float32, shape=(5, f.shape[1]))
        mm[h][:] = f[:5]
    stacked = {h: RowStack([mm[h], 2], mm[h].shape[1]) for h in mm}
    root = zarr.open_group(str(tmp_path / "s.zarr"), mode="w", zarr_format=2)
    write_subject(root, arrays(fmri=stacked))
    g = root["subj04"]
    got = g["fmri"][...]
    assert np.array_equal(got[:5], np.concatenate([a.fmri["lh"][:5], a.fmri["rh"][:5]], 1)) and np.isnan(got[5:]).all()
    assert dict(g.attrs) == {"source_kind": "NSD files", "test_fmri": "none", "n_sessions": 30, "subject": "subj04",
                             "vertices_lh": 3, "vertices_rh": 4}
    assert g["roi_streams"][...].tolist() == [0, 1, 2, 7, 0, 0, 1] and g["images"].chunks == (1, 4, 5, 3)


def test_nsd_files_layout_and_s3_go_to_the_bucket_reader(tmp_path, home, monkeypatch):
    """Routing only (the NSD-files reader has its own tests): a folder with the experiment design, or an s3:// URL."""
    from neuroharness.loaders.nsd import bucket

    calls = []
    monkeypatch.setattr(bucket, "subjects_in", lambda root, *a, **k: calls.append(("subjects_in", str(root))) or ["subj04"])
    monkeypatch.setattr(bucket, "raw_files", lambda root, subjects, *a, **k: {})
    monkeypatch.setattr(bucket, "check_nsd_subject", lambda root, s, *a, **k: calls.append(("check", s)) or
                        {"n_train": 5, "n_test": 2})
    monkeypatch.setattr(bucket, "subject_from_nsd", lambda root, s, *a, **k: calls.append(("build", s)) or arrays())
    src = tmp_path / "nsd"
    (src / "nsddata/experiments/nsd").mkdir(parents=True)
    (src / nsd_loader.NSD_DESIGN).write_bytes(b"")
    files, origin = get_loader(NAME).fetch(src)
    assert (files.kind, files.root, files.subjects, origin) == ("NSD files", src, ["subj04"], f"NSD files {src}")
    files, _ = get_loader(NAME).fetch("s3://natural-scenes-dataset", only=["subj04"])
    assert (files.kind, files.root, files.subjects) == ("NSD files", "s3://natural-scenes-dataset", ["subj04"])
    assert calls == [("subjects_in", str(src))]  # --only needs no listing
    calls.clear()
    get_loader(NAME).prepare(src)
    assert calls == [("subjects_in", str(src)), ("check", "subj04"), ("build", "subj04")]
    ds = nsd_loader.open_subject("subj04")
    assert ds.attrs["source_kind"] == "NSD files" and ds.attrs["n_sessions"] == 30
    assert get_loader(NAME).open().attrs["source_kind"] == "NSD files"
    # the challenge layout through the command line, --only selecting a subject
    root = tmp_path / "rel"
    gen.write_release(root, ("subj01", "subj02"), **SMALL)
    assert main(["datasets", "prepare", NAME, "--source", str(root), "--only", "subj02", "--force"]) == 0
    assert nsd_loader.subjects() == ["subj02"]
