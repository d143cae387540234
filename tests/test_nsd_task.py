"""Task nsd-encoding: card, splits, scoring through the store, submissions, run_model vs evaluate.

Stores are prepared by the nsd-algonauts2023 loader from synthetic challenge releases
(scripts/make_nsd_challenge_fixture.py): ``with_test`` (subj01, subj02, with test fMRI and noise
ceilings, as a release supplied with the organisers' files) and ``no_test`` (all eight subjects,
no test fMRI, as the public release). Responses there are linear in the 8 x 8 grid of each image,
so :class:`GridRidge` below predicts them well and :class:`MeanModel` not at all.
"""
from __future__ import annotations

import math
import pickle
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from helpers import load_script

from neuroharness.errors import NeuroharnessError, SubmissionError
from neuroharness.loaders import get_loader
from neuroharness.tasks import get_card, get_task
from neuroharness.tasks.card import import_object
from neuroharness.tasks.nsd import cards
from neuroharness.tasks.nsd.encoding import split_rows, write_predictions

gen = load_script("make_nsd_challenge_fixture")
TASK = "nsd-encoding"
DATASET = "nsd-algonauts2023"
SMALL = dict(n_train=40, n_test=6, vertices=(9, 11), image_size=16, surface=60)


# -- models for run_model (imported by the task through "test_nsd_task:...") ---------------------------------
class GridRidge:
    """Ridge on the 8 x 8 x 3 block means of the images (what the fixture's responses are linear in)."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    @staticmethod
    def _features(data) -> np.ndarray:
        x = gen.grid_features(np.asarray(data.images.values))
        return np.hstack([x / 255.0, np.ones((len(x), 1))])

    def fit(self, train, seed):
        x = self._features(train)
        self.weights = np.linalg.solve(x.T @ x + self.alpha * np.eye(x.shape[1]), x.T @ train.fmri)
        self.n_parameters = int(self.weights.size)
        self.n_train = len(train)

    def predict(self, data):
        return (self._features(data) @ self.weights).astype(np.float32)


class MeanModel:
    """Every vertex's mean training response: a constant prediction (r undefined, counted 0)."""

    def fit(self, train, seed):
        self.mean = train.fmri.mean(axis=0)
        return self

    def predict(self, data):
        return np.tile(self.mean, (len(data), 1)).astype(np.float32)


# -- stores -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """``{name: (home, release info)}``; each store prepared once into its own cache."""
    base = tmp_path_factory.mktemp("nsd_task")
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        for name, subjects, with_test in (("with_test", ("subj01", "subj02"), True),
                                          ("no_test", cards.SUBJECTS, False)):
            home, rel = base / name / "home", base / name / "release"
            info = gen.write_release(rel, subjects, with_test_fmri=with_test, **SMALL)
            mp.setenv("NEUROHARNESS_HOME", str(home))
            get_loader(DATASET).prepare(source=rel)
            out[name] = (home, info)
    return out


@pytest.fixture
def use(stores, monkeypatch):
    """``use("with_test")`` points the cache at that store; returns (task, release info)."""
    task = get_task(TASK)

    def switch(name):
        home, info = stores[name]
        monkeypatch.setenv("NEUROHARNESS_HOME", str(home))
        task.clear_cache()
        return task, info

    yield switch
    task.clear_cache()


def _truth(task, options, split="test"):
    """``{member: (n, V_h) responses}`` of the scored rows of ``split``, read independently of the task: the
    rows are found by (nsd_id) in the store, in the template's order."""
    ids = task.ids(task.data(options), split)
    out = {}
    path = get_loader(DATASET).store_path()
    for s, rows in ids.groupby("subject", sort=False):
        ds = xr.open_zarr(path, group=s, consolidated=True)
        where = pd.Index(ds["nsd_id"].values).get_indexer(rows["nsd_id"].to_numpy())
        assert (where >= 0).all()
        fmri = ds["fmri"].values[where]
        hemi = ds["hemisphere"].values.astype(str)
        for h in ("lh", "rh"):
            out[f"{s}_{h}"] = fmri[:, hemi == h]
    return out


# -- card -------------------------------------------------------------------------------------------------
def test_card():
    from neuroharness.metrics.encoding import DEFAULT_POOLING, POOLINGS

    card = get_card(TASK)
    assert (card.name, card.version, card.main_metric) == (TASK, "1.0", "mean_pearson_r")
    assert [(d.name, d.version) for d in card.datasets] == [(DATASET, "1.0")]
    ranges = {m.name: (m.low, m.high) for m in card.metrics}
    assert ranges["mean_pearson_r"] == (-1.0, 1.0) and ranges["median_nc_score"] == (0.0, 100.0)
    assert card.options["pooling"].choices == POOLINGS and card.options["pooling"].default == DEFAULT_POOLING
    assert card.options["subject"].default == "subj01" and card.options["subject"].choices[-1] == "all"
    assert card.options["split"].choices == ("official", "heldout")
    assert card.chance["mean_pearson_r"].startswith("0")
    assert {m.name for m in card.models} == {"mean-response", "pixels-pca-ridge", "alexnet-pca-ridge", "features-ridge"}
    assert "mean_pearson_r because it exists on both splits" in card.description
    assert get_task(TASK).card is card


def test_every_factory_imports():
    """Fails until tasks/nsd/baselines.py (another engineer's) defines the four classes."""
    for spec in get_card(TASK).models:
        assert callable(import_object(spec.factory)), spec.factory


# -- splits -----------------------------------------------------------------------------------------------
def test_split_rows_deterministic_and_disjoint():
    rng = np.random.default_rng(0)
    nsd = rng.choice(73000, 120, replace=False)
    split = np.array(["train"] * 100 + ["test"] * 20)
    for kind in ("official", "heldout"):
        a = split_rows(nsd, split, kind)
        assert {k: v.tolist() for k, v in a.items()} == {k: v.tolist() for k, v in split_rows(nsd, split, kind).items()}
        rows = np.concatenate(list(a.values()))
        assert len(np.unique(rows)) == len(rows)  # disjoint
        assert all((np.diff(v) > 0).all() for v in a.values())  # ascending store order
        assert len(a["val"]) == {"official": 10, "heldout": 9}[kind] and (split[a["val"]] == "train").all()
    off, held = split_rows(nsd, split, "official"), split_rows(nsd, split, "heldout")
    assert off["test"].tolist() == list(range(100, 120)) and len(off["train"]) == 90
    assert len(held["test"]) == 10 and (split[held["test"]] == "train").all() and len(held["train"]) == 81
    used = set(held["test"]) | set(held["train"]) | set(held["val"])
    assert not used & set(range(100, 120))  # the challenge's test images are not used by split=heldout
    # chosen by image, not by row: the same images whatever the row order
    perm = rng.permutation(100)
    shuffled = split_rows(np.concatenate([nsd[:100][perm], nsd[100:]]), split, "heldout")
    assert sorted(nsd[:100][perm][shuffled["test"]]) == sorted(nsd[held["test"]])
    assert split_rows(nsd[:12], np.array(["train"] * 12), "heldout")["test"].size == 2  # at least 2 scored


def test_splits_through_the_task(use):
    task, info = use("with_test")
    options = {"subject": "subj01"}
    ids = {s: task.ids(task.data(options), s) for s in ("train", "val", "test")}
    assert list(ids["test"].columns) == ["subject", "nsd_id", "split_row"]
    assert ids["test"]["nsd_id"].tolist() == info["subj01"]["nsd_test"].tolist()
    assert ids["test"]["split_row"].tolist() == list(range(SMALL["n_test"]))
    assert (len(ids["train"]), len(ids["val"])) == (36, 4)
    sets = {k: set(v["nsd_id"]) for k, v in ids.items()}
    assert not (sets["train"] & sets["val"] or sets["train"] & sets["test"] or sets["val"] & sets["test"])
    first = task.split_sha256(options)
    task.clear_cache()
    assert task.split_sha256(options) == first == task.split_sha256(options)
    assert task.split_sha256({"subject": "subj01", "split": "heldout"}) != first
    assert task.split_sha256({"subject": "subj02"}) != first
    assert task.split_sha256(options, "val") != first
    # the training view never reaches the test images
    view = task.training_view(options)
    train, val = view.train("subj01"), view.val("subj01")
    assert train.fmri.shape == (36, 20) and train.fmri.dtype == np.float32 and val.fmri.shape == (4, 20)
    assert not set(train.nsd_id) & sets["test"] and not set(val.nsd_id) & sets["test"]
    assert train.images.shape == (36, 16, 16, 3) and train.images.dtype == np.uint8
    assert list(train.hemisphere) == ["lh"] * 9 + ["rh"] * 11
    held = task.ids(task.data({"split": "heldout"}), "test")
    assert len(held) == 4 and set(held["nsd_id"]) <= set(info["subj01"]["nsd_train"])


def test_official_split_needs_test_fmri(use):
    task, _ = use("no_test")
    with pytest.raises(NeuroharnessError, match=r"split=official: subject subj01 .* no responses for its 6 challenge "
                                                r"test images.*--option split=heldout"):
        task.data()
    with pytest.raises(NeuroharnessError, match="split=heldout"):
        task.submission_template()
    assert len(task.submission_template(options={"split": "heldout"})) == 4


def test_missing_subject_is_a_clear_error(use):
    task, _ = use("with_test")
    with pytest.raises(NeuroharnessError, match=r"holds subj01, subj02, not subj03, .*--only subj01 subj02 subj03"):
        task.data({"subject": "all"})


# -- scoring ----------------------------------------------------------------------------------------------
def test_perfect_and_noisy_submission_official(use, tmp_path):
    from neuroharness.metrics.encoding import summarize, vertex_scores

    task, info = use("with_test")
    truth = _truth(task, None)
    assert set(truth) == {"subj01_lh", "subj01_rh"}
    perfect = task.evaluate(truth)
    assert perfect["main_score"] == perfect["mean_pearson_r"] == pytest.approx(1.0, abs=1e-12)
    nc = np.concatenate([info["subj01"]["noise_ceiling"][h] for h in ("lh", "rh")])
    assert perfect["median_nc_score"] == pytest.approx(float(np.median(np.minimum(100, 100 / nc))))
    assert perfect["mean_nc_score"] == 100.0 and perfect["n_undefined_r"] == 0 and perfect["n_vertices"] == 20
    per = task.vertex_scores(truth)
    for h in ("lh", "rh"):
        want = np.minimum(100.0, 100.0 / info["subj01"]["noise_ceiling"][h].astype(np.float32))
        np.testing.assert_allclose(per[("subj01", h)].nc_score, want, rtol=1e-12)
    # a noisy submission: every number equals the metric on arrays read independently of the task
    rng = np.random.default_rng(1)
    noisy = {k: (v + rng.normal(0, 1.0, v.shape)).astype(np.float32) for k, v in truth.items()}
    got = task.evaluate(noisy)
    groups = {("subj01", h): vertex_scores(noisy[f"subj01_{h}"], truth[f"subj01_{h}"],
                                           info["subj01"]["noise_ceiling"][h].astype(np.float32)) for h in ("lh", "rh")}
    rois = {("subj01", h): {c: (info["subj01"]["rois"][c][h], {k: v for k, v in info["subj01"]["mappings"][c].items()
                                                                if k})
                            for c in info["subj01"]["rois"]} for h in ("lh", "rh")}
    want = summarize(groups, "all-vertices", rois).metrics
    assert {k: v for k, v in got.items() if k != "main_score"} == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert "roi/prf-visualrois/V1v/median_nc_score" in got and "subj01/lh/median_nc_score" in got
    per_sh = task.evaluate(noisy, options={"pooling": "per-subject-hemisphere"})
    assert per_sh["median_nc_score"] == pytest.approx((got["subj01/lh/median_nc_score"]
                                                       + got["subj01/rh/median_nc_score"]) / 2)
    # the same through files: .npz and .zarr
    for name in ("noisy.npz", "noisy.zarr"):
        path = write_predictions(tmp_path / name, noisy)
        assert task.evaluate(path) == got
    for v in got.values():
        assert isinstance(v, (int, float)) and math.isfinite(v)


def test_big_endian_floats_score_like_native_ones(use, tmp_path):
    """``>f4``/``>f8`` are float32/float64 in another byte order (written on big-endian machines, or by tools
    that choose it): accepted in every format, with the scores of the native arrays."""
    task, _ = use("with_test")
    rng = np.random.default_rng(2)
    native = {k: (v + rng.normal(0, 1.0, v.shape)).astype(np.float32) for k, v in _truth(task, None).items()}
    want = task.evaluate(native)
    for dtype in (">f4", ">f8"):
        swapped = {k: v.astype(dtype) for k, v in native.items()}
        assert task.evaluate(swapped) == pytest.approx(want, rel=1e-12)
        path = tmp_path / f"be{dtype[-1]}.npz"
        np.savez(path, **swapped)
        assert task.evaluate(path) == pytest.approx(want, rel=1e-12)


def test_heldout_has_no_noise_ceiling(use, caplog):
    task, _ = use("no_test")
    options = {"split": "heldout", "subject": "subj03"}
    truth = _truth(task, options)
    with caplog.at_level("WARNING", logger="neuroharness"):
        m = task.evaluate(truth, options=options)
    assert m["mean_pearson_r"] == pytest.approx(1.0) and m["mean_r2"] == pytest.approx(1.0)
    assert not any("nc_score" in k for k in m)
    assert any("noise-normalized score" in r.getMessage() and "unavailable" in r.getMessage() for r in caplog.records)
    val = task.evaluate(_truth(task, options, "val"), "val", options=options)
    assert val["median_pearson_r"] == pytest.approx(1.0) and not any("nc_score" in k for k in val)


def test_all_subjects_and_pooling(use):
    task, _ = use("no_test")
    options = {"split": "heldout", "subject": "all"}
    template = task.submission_template(options=options)
    assert template["subject"].unique().tolist() == list(cards.SUBJECTS)
    truth = _truth(task, options)
    rng = np.random.default_rng(2)
    noisy = {k: v + rng.normal(0, 1.0, v.shape) for k, v in truth.items()}
    a = task.evaluate(noisy, options=options)
    p = task.evaluate(noisy, options={**options, "pooling": "per-subject-hemisphere"})
    per = task.vertex_scores(noisy, options=options)
    assert len(per) == 16
    r = {k: np.nan_to_num(v.r) for k, v in per.items()}
    assert a["median_pearson_r"] == pytest.approx(float(np.median(np.concatenate(list(r.values())))))
    assert p["median_pearson_r"] == pytest.approx(float(np.mean([np.median(v) for v in r.values()])))
    assert a["subj05/rh/median_pearson_r"] == p["subj05/rh/median_pearson_r"]
    assert a["n_vertices"] == 16 * 10 and "subj08/mean_r2" in a


def test_run_model_agrees_with_evaluate(use, tmp_path):
    task, _ = use("with_test")
    options = {"subject": "subj02"}
    result = task.run_model("test_nsd_task:GridRidge", seed=0, options=options)
    # the responses follow the grid (36 training images for 193 weights: far from the ceiling, well above 0)
    assert result.metrics["main_score"] == result.metrics["mean_pearson_r"] > 0.15
    assert result.metrics["median_nc_score"] > 0 and "median_nc_score" not in result.validation_metrics
    assert result.validation_metrics["mean_pearson_r"] > 0.15
    assert result.hyperparameters == {"alpha": 1.0}
    assert result.fitted == {"subj02/n_train": 36} and result.n_parameters == (8 * 8 * 3 + 1) * 20
    assert result.split_sha256 == task.split_sha256(options)
    # the same model fitted by hand, its predictions written to a file and evaluated
    data = task.data(options)
    fitted = task.fit(get_task(TASK).build_model("test_nsd_task:GridRidge"), data, 0)
    path = write_predictions(tmp_path / "grid.npz", task.predict(fitted, data, "test"))
    assert task.evaluate(path, options=options) == result.metrics
    val = write_predictions(tmp_path / "val.npz", task.predict(fitted, data, "val"))
    assert task.evaluate(val, "val", options=options) == result.validation_metrics
    floor = task.run_model("test_nsd_task:MeanModel", seed=0, options=options)
    assert floor.metrics["mean_pearson_r"] == 0.0 and floor.metrics["median_nc_score"] == 0.0
    assert floor.metrics["n_undefined_r"] == floor.metrics["n_vertices"] == 20


# -- bad submissions ---------------------------------------------------------------------------------------
def _bad(task, predictions, pattern, split="test", options=None):
    with pytest.raises(SubmissionError, match=pattern):
        task.evaluate(predictions, split, options=options)


def test_bad_submissions(use, tmp_path, monkeypatch):
    task, _ = use("with_test")
    truth = _truth(task, None)
    lh, rh = truth["subj01_lh"], truth["subj01_rh"]
    _bad(task, {"subj01_left": lh, "subj01_rh": rh}, r"array 'subj01_left' is not named <subject>_<hemisphere>.*"
                                                     r"expected exactly the arrays subj01_lh, subj01_rh")
    _bad(task, {"subj09_lh": lh, "subj01_lh": lh, "subj01_rh": rh}, r"'subj09_lh' names an unknown subject 'subj09'")
    _bad(task, {"subj02_lh": lh, "subj01_lh": lh, "subj01_rh": rh},
         r"'subj02_lh': subject subj02 is not scored with option subject=subj01")
    _bad(task, {"subj01_lh": lh}, r"no entry for 1 of 2 test arrays.*subj01_rh")
    _bad(task, {"subj01_lh": lh[:-1], "subj01_rh": rh},
         r"array 'subj01_lh' \(subject subj01, hemisphere lh\) has shape \(5, 9\); expected \(6, 9\)")
    _bad(task, {"subj01_lh": lh, "subj01_rh": rh[:, :-1]}, r"'subj01_rh' .* shape \(6, 10\); expected \(6, 11\)")
    _bad(task, {"subj01_lh": lh.astype(np.int32), "subj01_rh": rh},
         r"'subj01_lh' .* dtype int32; expected float32 or float64")
    nan = lh.copy()
    nan[3, 4] = np.nan
    ids = task.submission_template()
    store = xr.open_zarr(get_loader(DATASET).store_path(), group="subj01", consolidated=True)
    fs = int(store["fsaverage_index"].values[4])
    _bad(task, {"subj01_lh": nan, "subj01_rh": rh},
         rf"'subj01_lh' \(subject subj01, hemisphere lh\) row 3 \(nsd_id {ids['nsd_id'][3]}, split_row 3\), column 4 "
         rf"\(vertex 4 of lh, fsaverage vertex {fs}\) is nan; expected finite values")
    inf = rh.copy()
    inf[0, 0] = np.inf
    path = write_predictions(tmp_path / "inf.npz", {"subj01_lh": lh, "subj01_rh": inf})
    _bad(task, path, rf"{re.escape(str(path))}: array 'subj01_rh' .* row 0 .* is inf")
    # a pickle, whatever it is called; object arrays; unsupported formats; files that are not what they say
    pk = tmp_path / "preds.npz"
    pk.write_bytes(pickle.dumps({"subj01_lh": lh, "subj01_rh": rh}))
    _bad(task, pk, "pickle is never accepted")
    obj = tmp_path / "obj.npz"
    np.savez(obj, subj01_lh=np.array([[object()]] * 6, dtype=object), subj01_rh=rh)
    _bad(task, obj, r"'subj01_lh' .* dtype object .*pickles are never loaded")
    csv = tmp_path / "preds.csv"
    csv.write_text("a,b\n")
    _bad(task, csv, r"unsupported format '\.csv'")
    npy = tmp_path / "single.npz"
    np.save(tmp_path / "single.npy", lh)
    (tmp_path / "single.npy").rename(npy)
    _bad(task, npy, r"not an \.npz \(zip\) archive .*single \.npy array")
    _bad(task, tmp_path / "missing.npz", "file not found")
    # Zarr: a link out of the folder, a nested group
    z = write_predictions(tmp_path / "good.zarr", truth)
    (z / "escape").symlink_to(tmp_path)
    _bad(task, z, "is a symbolic link")
    nested = tmp_path / "nested.zarr"
    g = zarr.open_group(str(nested), mode="w", zarr_format=2)
    g.create_group("subj01_lh")
    g.create_array("subj01_rh", data=rh)
    _bad(task, nested, "member 'subj01_lh' is a group")
    # the size limit, from the headers, before anything is loaded
    big = write_predictions(tmp_path / "big.npz", truth)
    with monkeypatch.context() as mp:
        mp.setenv("NEUROHARNESS_MAX_SUBMISSION_BYTES", "100")
        _bad(task, big, "over the submission size limit")
    # the right arrays for the wrong split
    val = _truth(task, None, "val")
    _bad(task, val, r"has shape \(4, 9\); expected \(6, 9\)")
