"""Task fisbe-instance-segmentation: card, aggregation by hand, submissions, baselines end to end.

A synthetic release (scripts/make_fisbe_fixture.py: one volume of 64 x 128 x
128 with 4 neurons per subset and split) is prepared once for the module.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import zipfile

import numpy as np
import pytest
import zarr
from helpers import load_script, patch_zip
from neuroharness.tasks import get_task
from neuroharness.tasks.fisbe.instance_segmentation import (
    REFERENCE_ROWS,
    StoreData,
    aggregate,
    write_predictions,
)

from neuroharness.cli import main
from neuroharness.errors import DataFormatError, SubmissionError

TASK = "fisbe-instance-segmentation"


# -- card and aggregation (no store) ---------------------------------------------------
def test_card():
    card = get_task(TASK).card
    assert (card.name, card.version, card.main_metric) == (TASK, "1.0", "S")
    assert [(d.name, d.version) for d in card.datasets] == [("fisbe", "1.1")]
    assert card.higher_is_better
    lower = {m.name for m in card.metrics if not m.higher_is_better}
    assert lower == {"FS", "FM"}
    assert {"S", "avF1", "C", "clDice_TP", "tp"} <= {m.name for m in card.metrics}
    assert "S = 0" in card.chance["S"]
    assert len(REFERENCE_ROWS) == 8
    ppp = next(r for r in REFERENCE_ROWS if r["method"] == "PatchPerPix" and r["set"] == "combined")
    assert (ppp["S"], ppp["avF1"], ppp["C"], ppp["clDice_TP"], ppp["tp"], ppp["FS"], ppp["FM"]) == (.35, .34, .35, .80, .36, 19, 52)
    ffn = next(r for r in REFERENCE_ROWS if r["method"] == "FFN" and r["set"] == "completely")
    assert (ffn["S"], ffn["FS"], ffn["FM"]) == (.18, 2, 2) and "Januszewski" in ffn["citation"]
    text = " ".join(card.references)
    for s in ("arXiv:2404.00130", "ECCV 2020", "10.1101/2020.06.07.138941", "Nat Methods", "Duan et al. (test"):
        assert s in text
    assert set(get_task(TASK).models) == {"threshold-cluster", "unet-embedding"}


def _result(tp, fp, fn, coverage, cldice, fs=0, fm=0, n_removed=0):
    """A per-volume result as evaluate_instances returns it, the same counts at every threshold."""
    return {"thresholds": [round(0.1 * k, 1) for k in range(1, 10)], "tp": [tp] * 9, "fp": [fp] * 9, "fn": [fn] * 9,
            "n_gt": tp + fn, "n_pred": tp + fp, "n_removed": n_removed, "coverage": coverage, "tp_05": len(cldice),
            "cldice_tp": cldice, "fs": fs, "fm": fm, "partly": False}


def test_aggregate_by_hand():
    per = {"c1": _result(2, 0, 0, [1.0, 1.0], [1.0, 1.0]),                        # perfect: S = 1
           "p1": _result(1, 1, 1, [1.0, 0.0], [0.8], fs=1, n_removed=3)}           # F1 = 2/(2+1+1) = 0.5, C = 0.5
    m = aggregate(per, {"c1": "completely", "p1": "partly"})
    assert m["completely/S"] == 1.0 and m["partly/S"] == 0.5 and m["partly/avF1"] == 0.5 and m["partly/C"] == 0.5
    assert m["S"] == m["main_score"] == 0.75  # unweighted mean of the two sets
    assert m["avF1"] == 0.75 and m["C"] == 0.75
    assert m["FS"] == 1 and m["FM"] == 0
    assert m["tp"] == 3 / 4  # pooled
    assert m["clDice_TP"] == pytest.approx(2.8 / 3)  # pooled over the 3 TP matches
    assert m["p1/S"] == 0.5 and m["p1/n_removed"] == 3 and m["c1/clDice_TP"] == 1.0
    assert m["n_subsets"] == 2 and m["completely/n_samples"] == 1 and "note" not in m
    only = aggregate({"p1": per["p1"]}, {"p1": "partly"})
    assert only["S"] == only["main_score"] == 0.5 and only["n_subsets"] == 1
    assert "only partly-labeled" in only["note"]
    empty = aggregate({"c1": _result(0, 0, 2, [0.0, 0.0], [])}, {"c1": "completely"})
    assert empty["S"] == 0 and empty["clDice_TP"] == 0  # 0 without any TP, as the official evaluator reports it


# -- with a prepared synthetic store ------------------------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from neuroharness.loaders import prepare

    raw = tmp_path_factory.mktemp("fisbe_task_raw")
    load_script("make_fisbe_fixture").write_release(raw, n_per_split=1, shape=(64, 128, 128), n_neurons=4, seed=0)
    prepare("fisbe", source=raw, force=True)
    return get_task(TASK).data()


@pytest.fixture(scope="module")
def test_ids(data):
    return data.samples("test")


def _stacks(data, ids):
    return {s: data.gt(s) for s in ids}


def test_template(data, test_ids):
    tpl = get_task(TASK).submission_template()
    assert tpl["sample"].tolist() == test_ids and len(test_ids) == 2
    assert tpl["subset"].tolist() == ["completely", "partly"]
    assert tpl[["size_z", "size_y", "size_x"]].values.tolist() == [[64, 128, 128]] * 2


def test_perfect_submission_npz_and_zip(data, test_ids, tmp_path):
    task = get_task(TASK)
    path = write_predictions(tmp_path / "perfect.npz", _stacks(data, test_ids))  # (N, Z, Y, X) bool stacks
    m = task.evaluate(path)
    for key in ("S", "avF1", "C", "clDice_TP", "tp", "completely/S", "partly/S", f"{test_ids[0]}/S", f"{test_ids[1]}/C"):
        assert m[key] == 1.0, key
    assert m["FS"] == m["FM"] == 0 and m["main_score"] == 1.0 and m["n_gt"] == 8
    # the same as a zipped Zarr of uint8 stacks
    zpath = tmp_path / "perfect.zarr.zip"
    store = zarr.storage.ZipStore(str(zpath), mode="w")
    root = zarr.open_group(store, mode="w")
    for s in test_ids:
        root.create_array(s, data=data.gt(s).astype(np.uint8))
    store.close()
    assert task.evaluate(zpath)["S"] == 1.0


def test_empty_and_label_image_submissions(data, test_ids, tmp_path):
    task = get_task(TASK)
    empty = {s: np.zeros(data.shape(s), np.uint16) for s in test_ids}
    m = task.evaluate(empty)
    assert m["S"] == 0 and m["avF1"] == 0 and m["C"] == 0 and m["n_pred"] == 0 and m["clDice_TP"] == 0
    # one neuron per sample kept, as a label image written to a .zarr folder
    one = {}
    for s in test_ids:
        lab = np.zeros(data.shape(s), np.int32)
        lab[data.gt(s)[0]] = 7
        one[s] = lab
    m = task.evaluate(write_predictions(tmp_path / "one.zarr", one))
    assert m["completely/tp"] == 0.25 and m["completely/avF1"] == pytest.approx(2 / 5)  # F1 = 2*1/(4+1)
    assert m["partly/avF1"] == pytest.approx(2 / 5)


@pytest.mark.parametrize("case", ["unknown", "missing", "shape", "float", "negative", "ndim"])
def test_bad_submissions(data, test_ids, tmp_path, case):
    task = get_task(TASK)
    a, b = test_ids
    preds = {s: np.zeros(data.shape(s), np.uint16) for s in test_ids}
    if case == "unknown":
        preds["R00X00-nope"] = preds[a]
        msg = f"'R00X00-nope' is not one of the test samples of the prepared store; expected one entry per sample: {a}, {b}"
    elif case == "missing":
        del preds[b]
        msg = f"no entry for 1 of 2 test samples: {b}"
    elif case == "shape":
        preds[b] = np.zeros((64, 128, 127), np.uint16)
        msg = rf"array '{b}' \(sample {b}\) has shape \(64, 128, 127\); expected the raw volume's \(Z, Y, X\) = \(64, 128, 128\)"
    elif case == "float":
        preds[a] = np.zeros(data.shape(a), np.float32)
        msg = f"array '{a}' \\(sample {a}\\) has dtype float32; expected integer labels or bool"
    elif case == "negative":
        preds[a] = np.zeros(data.shape(a), np.int16)
        preds[a][0, 0, 0] = -2
        msg = f"array '{a}' \\(sample {a}\\) holds negative values \\(min -2\\)"
    else:
        preds[a] = np.zeros((2, 64, 128), np.uint16)
        msg = f"array '{a}' .* has shape \\(2, 64, 128\\)"
    path = tmp_path / "bad.npz"
    np.savez(path, **preds)
    with pytest.raises(SubmissionError, match=f"{path}: {msg}"):
        task.evaluate(path)


def test_unsafe_and_unknown_files(data, test_ids, tmp_path):
    task = get_task(TASK)
    pkl = tmp_path / "preds.npz"
    np.savez(pkl, **{test_ids[0]: np.array([{"x": 1}], dtype=object),  # a pickled object array
                     test_ids[1]: np.zeros(data.shape(test_ids[1]), np.uint8)})
    with pytest.raises(SubmissionError, match="dtype object"):
        task.evaluate(pkl)
    other = tmp_path / "preds.pkl"
    other.write_bytes(b"\x80\x04N.")
    with pytest.raises(SubmissionError, match=r"unsupported format '\.pkl'"):
        task.evaluate(other)
    nested = tmp_path / "nested.zarr"
    zarr.open_group(str(nested), mode="w", zarr_format=2).create_group(test_ids[0])
    with pytest.raises(SubmissionError, match=f"member '{test_ids[0]}' is a group"):
        task.evaluate(nested)
    with pytest.raises(SubmissionError, match="not found"):
        task.evaluate(tmp_path / "absent.npz")
    with pytest.raises(SubmissionError, match="expected a .Z, Y, X. integer label image"):
        write_predictions(tmp_path / "x.npz", {"a": np.zeros((4, 4, 4), np.float64)})


def _label_store(path, images: dict, raw_shape=(3, 4, 5, 6), chunks=None, sep=None):
    """A store with sample groups holding ``raw`` zeros and NGFF label images ``{sample: {name: array}}``
    (``{sample: None}``: no labels group)."""
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    for sample, labels in images.items():
        g = root.create_group(sample)
        g.create_array("raw", shape=raw_shape, dtype="uint16", chunks=raw_shape)
        if labels is None:
            continue
        lg = g.create_group("labels")
        lg.attrs["labels"] = list(labels)
        for name, a in labels.items():
            img = lg.create_group(name)
            img.attrs["multiscales"] = [{"version": "0.4", "datasets": [{"path": "0"}]}]
            extra = {"chunk_key_encoding": {"name": "v2", "separator": sep}} if sep else {}
            img.create_array("0", data=a, chunks=chunks or a.shape, **extra)
    return root


def test_store_errors_name_sample_and_array(tmp_path):
    import pandas as pd

    _label_store(tmp_path / "s.zarr", {"A": {"neurons_0": np.ones((4, 5, 7), np.uint8)}, "B": None,
                                       "C": {"neurons_0": np.zeros((4, 5, 6), np.uint8)},
                                       "D": {"neurons_0": np.full((4, 5, 6), 3, np.uint8)}})
    index = pd.DataFrame({"sample": list("ABCDE"), "subset": "completely", "split": "test", "n_instances": 1,
                          "size_z": 4, "size_y": 5, "size_x": 6})
    d = StoreData(str(tmp_path / "s.zarr"), index)
    with pytest.raises(DataFormatError, match=r"sample A: labels/neurons_0 has shape \(4, 5, 7\) and dtype uint8; expected "
                       r"an integer \(Z, Y, X\) = \(4, 5, 6\) label image"):
        d.gt("A")
    with pytest.raises(DataFormatError, match=r"sample B: no NGFF label images \(labels/ group"):
        d.gt("B")
    with pytest.raises(DataFormatError, match="sample C: the label images are empty"):
        d.gt("C")
    with pytest.raises(DataFormatError, match=r"sample D: labels/neurons_0 holds label 3; expected instance ids 1\.\.1"):
        d.gt("D")
    with pytest.raises(DataFormatError, match="sample E: the sample's group is missing"):
        d.gt("E")


def test_cli_prints_every_metric_per_sample(data, test_ids, tmp_path, capsys):
    path = write_predictions(tmp_path / "perfect.npz", _stacks(data, test_ids))
    out = tmp_path / "m.json"
    assert main(["evaluate", TASK, str(path), "--json-out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("main_score: 1.0000")
    header = next(line for line in text.splitlines() if line.strip().startswith("S "))
    assert header.split()[:7] == ["S", "avF1", "C", "clDice_TP", "tp", "FS", "FM"]
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.split()}
    for row in ("all", "completely", "partly", *test_ids):
        assert rows[row][:7] == ["1.0000"] * 5 + ["0", "0"], row
    assert json.loads(out.read_text())["S"] == 1.0
    assert main(["evaluate", TASK, str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["main_score"] == 1.0


def test_threshold_cluster_end_to_end(data):
    task = get_task(TASK)
    res = task.run_model("threshold-cluster", 0)
    m = res.metrics
    assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in m.values())
    for k in ("S", "avF1", "C", "tp", "FS", "FM", "completely/S", "partly/S"):
        assert k in m
    assert m["main_score"] == m["S"] == pytest.approx((m["completely/S"] + m["partly/S"]) / 2)
    assert m["S"] > 0.3  # colour clustering separates most synthetic neurons
    hp, fitted = res.hyperparameters, res.fitted
    assert hp["threshold"] is None and hp["merge_distance"] is None  # as built: tuned by fit
    assert fitted["threshold"] in hp["threshold_grid"] and fitted["merge_distance"] in hp["merge_grid"]
    assert res.n_parameters == 2
    assert res.split_sha256 == task.split_sha256()
    val = res.validation_metrics
    assert val["main_score"] == val["S"] and all(isinstance(v, (int, float)) and math.isfinite(v) for v in val.values())
    json.dumps(dataclasses.asdict(res))  # record-ready
    again = task.run_model("threshold-cluster", 0)
    assert again.metrics == m and again.fitted == fitted  # seeded


def test_unet_embedding_end_to_end(data):
    res = get_task(TASK).run_model("unet-embedding", 0, hyperparameters={"steps": 20, "patch": 32, "batch_size": 1})
    m = res.metrics
    assert 0 <= m["S"] <= 1 and m["n_gt"] == 8
    assert 5_000 < res.n_parameters < 100_000
    assert res.hyperparameters["steps"] == 20


# -- the task template: light imports, split checks, split digest, training view ------------------
def test_listing_and_task_module_import_neither_torch_nor_baselines():
    import subprocess
    import sys

    code = ("import sys\n"
            "from neuroharness.tasks import get_card\n"
            "card = get_card('fisbe-instance-segmentation')\n"
            "assert card.description.startswith('Given a three-colour') and card.split.startswith('as released'), card\n"
            "assert not [m for m in sys.modules if m.startswith(('torch', 'numba', 'numpy'))], 'listing'\n"
            "import neuroharness.tasks.fisbe.instance_segmentation\n"
            "heavy = [m for m in ('torch', 'numba', 'neuroharness.tasks.fisbe.baselines') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    for flags in ([], ["-OO"]):  # card texts are literals, not slices of __doc__
        r = subprocess.run([sys.executable, *flags, "-c", code], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def test_models_built_from_import_strings():
    from neuroharness.tasks.fisbe.baselines import ThresholdClusterModel, UNetEmbeddingModel

    task = get_task(TASK)
    assert isinstance(task.get_model("threshold-cluster").build(), ThresholdClusterModel)
    m = task.get_model("unet-embedding").build(steps=3)
    assert isinstance(m, UNetEmbeddingModel) and m.steps == 3


def test_ids_and_split_sha256(data, test_ids):
    from neuroharness.tasks.base import split_digest

    task = get_task(TASK)
    ids = task.ids(data, "test")
    assert list(ids.columns) == ["sample", "subset", "size_z", "size_y", "size_x"]
    assert ids["sample"].tolist() == test_ids
    digest = task.split_sha256()
    assert len(digest) == 64 and task.split_sha256() == digest == split_digest(task.submission_template())
    assert task.split_sha256(split="val") != digest
    moved = data.index.copy()
    moved.loc[moved["sample"] == test_ids[0], "split"] = "train"  # a changed split ...
    assert split_digest(task.ids(StoreData(data.store_path, moved), "test")) != digest  # ... a changed digest
    # the checksum of the whole store (the task reads every sample), from its metadata
    assert task.dataset_checksums({}) == {"fisbe": zarr.open_group(data.store_path, mode="r").attrs["content_sha256"]}


def test_small_stores_fail_clearly(data):
    from neuroharness.errors import NeuroharnessError

    task = get_task(TASK)
    ix = data.index
    no_test = StoreData(data.store_path, ix[ix["split"] != "test"].reset_index(drop=True))
    with pytest.raises(NeuroharnessError, match=r"the test split is empty on the prepared data \(.*1 completely train"):
        task._check_data(no_test, {})
    no_val = StoreData(data.store_path, ix[ix["split"] != "val"].reset_index(drop=True))
    with pytest.raises(NeuroharnessError, match="the val split is empty"):
        task._check_data(no_val, {})
    no_train = StoreData(data.store_path, ix[ix["split"] != "train"].reset_index(drop=True))
    with pytest.raises(NeuroharnessError, match="holds no train samples"):
        task.fit(task.get_model("threshold-cluster").build(), no_train, 0)


def test_training_view_hides_test_volumes(data, test_ids):
    view = data.without_test()
    assert view.samples("test") == [] and view.samples("train") == data.samples("train")
    view.gt(data.samples("train")[0])
    with pytest.raises(KeyError, match="not in this view"):
        view.gt(test_ids[0])
    with pytest.raises(KeyError, match="not in this view"):
        view.raw(test_ids[0])


def test_validation_split_and_duplicate_names(data, tmp_path):
    task = get_task(TASK)
    val = data.samples("val")
    assert task.evaluate({s: data.gt(s) for s in val}, "val")["S"] == 1.0
    path = tmp_path / "dup.npz"
    with zipfile.ZipFile(path, "w") as z, pytest.warns(UserWarning, match="Duplicate name"):  # the same sample twice
        for s in (*val, val[0]):
            with z.open(f"{s}.npy", "w") as f:
                np.lib.format.write_array(f, np.zeros(data.shape(s), np.uint8))
    with pytest.raises(SubmissionError, match=f"{path}: '{val[0]}' appears more than once"):
        task.evaluate(path, "val")


# -- reading volumes without full-size copies ----------------------------------------------------
def test_gt_reads_the_stored_chunks_into_a_sparse_stack(data):
    root = zarr.open_group(data.store_path, mode="r")
    for s in data.index["sample"]:
        g = data.gt(s)
        images = {name: np.asarray(root[s]["labels"][name]["0"][...]) for name in root[s]["labels"].attrs["labels"]}
        expected = np.stack([sum(im == k for im in images.values()) > 0 for k in range(1, len(g) + 1)])
        assert g.dtype == bool and g.flags.c_contiguous and g.flags.writeable
        np.testing.assert_array_equal(g, expected)
        assert (g.sum(0) >= 2).any()  # the fixture's neurons cross: overlaps come back


@pytest.mark.parametrize("layout", ["dot", "slash", "unparsed"])
def test_gt_chunk_listing(tmp_path, layout):
    import pandas as pd

    rng = np.random.default_rng(0)
    gt = np.zeros((3, 20, 33, 17), bool)
    gt[0, 2:5, 3:9, 1:4] = True
    gt[2, 15:20, 30:33, 10:17] = True  # the last, partial chunks
    gt[1][rng.random((20, 33, 17)) < 0.01] = True
    gt[1, 3, 4, 2] = True  # overlaps instance 1: instance 2 is in the other label image
    one = (gt[0] * 1 + gt[2] * 3).astype(np.uint8)  # instances 1 and 3 share no voxel
    two = (gt[1] * 2).astype(np.uint8)
    _label_store(tmp_path / "s.zarr", {"A": {"neurons_0": one, "neurons_1": two}}, raw_shape=(3, 20, 33, 17),
                 chunks=(8, 8, 8), sep="/" if layout == "slash" else None)
    if layout == "unparsed":  # a file that is no chunk key: every chunk is read through zarr
        (tmp_path / "s.zarr" / "A" / "labels" / "neurons_0" / "0" / "notes.txt").write_text("x")
    index = pd.DataFrame({"sample": ["A"], "subset": "completely", "split": "test", "n_instances": 3,
                          "size_z": 20, "size_y": 33, "size_x": 17})
    d = StoreData(str(tmp_path / "s.zarr"), index)
    a = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["A"]["labels"]["neurons_0"]["0"]
    keys = d._stored_chunks("A", a)
    if layout == "unparsed":
        assert len(keys) == 3 * 5 * 3
    else:
        assert 0 < len(keys) < 3 * 5 * 3 and (2, 4, 2) in keys and (0, 0, 0) in keys
    np.testing.assert_array_equal(d.gt("A"), gt)


def test_sparse_zeros_costs_only_written_pages():
    import sys

    from neuroharness.tasks.submission import sparse_zeros

    a = sparse_zeros((64, 1024, 1024), np.int32)  # 256 MiB of address space
    assert a.dtype == np.int32 and a.shape == (64, 1024, 1024) and a.flags.c_contiguous and a.flags.writeable
    if not sys.platform.startswith("linux"):
        return

    def rss_kb():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))

    before = rss_kb()
    a[:, ::64, 5] = 7  # 1024 voxels on 1024 pages
    assert int(a.max()) == 7 and int(a.sum()) == 7 * 1024  # reads every page
    assert rss_kb() - before < 32 * 1024  # ~4 MB written, not 256 MB
    small = sparse_zeros((3, 4), np.uint8)
    assert small.shape == (3, 4) and not small.any()


@pytest.mark.parametrize("case", ["bool_stack", "uint16", "int32_be", "int64_dense", "fortran", "stored", "tail"])
def test_npz_members_stream_like_np_load(tmp_path, monkeypatch, case):
    from neuroharness.tasks.fisbe import instance_segmentation as mod

    rng = np.random.default_rng(1)
    shape = (5, 41, 37, 29) if case == "bool_stack" else (41, 37, 29)  # sizes that are no multiple of a page
    a = np.zeros(shape, {"bool_stack": bool, "uint16": np.uint16, "int32_be": ">i4"}.get(case, np.int64))
    if case == "int64_dense":
        a[...] = rng.integers(0, 5, shape)
    else:
        a[rng.random(shape) < 0.002] = 1
        a.reshape(-1)[-1] = 1  # in the tail after the last whole page
    if case == "fortran":
        a = np.asfortranarray(a)
    if case == "tail":
        from neuroharness.tasks import submission

        monkeypatch.setattr(submission, "_PIECE", 3 * 4096 + 8)  # pieces ending inside a page
    path = tmp_path / "p.npz"
    (np.savez if case == "stored" else np.savez_compressed)(path, s=a)
    with mod.PredictionFile(path) as pf:
        got = pf.load("s")
    expected = np.load(path)["s"]
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_truncated_npz_member_is_a_submission_error(tmp_path):
    from neuroharness.tasks.fisbe.instance_segmentation import PredictionFile

    path = tmp_path / "t.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z, z.open("s.npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<i4", "fortran_order": False, "shape": (64, 64, 64)})
        f.write(np.ones(1000, np.int32).tobytes())
    with PredictionFile(path) as pf, pytest.raises(SubmissionError, match=r"array 's' is unreadable \(EOF"):
        pf.load("s")


def test_sample_index_read_with_zarr_equals_the_datatree_one(data):
    from neuroharness.loaders.fisbe import open_fisbe, read_sample_index, sample_index

    fast, tree = read_sample_index(data.store_path), sample_index(open_fisbe())
    assert fast.to_dict("records") == tree.to_dict("records")
    assert list(fast.dtypes) == list(tree.dtypes)


# -- PredictionFile: judged from headers, never a library exception (issue 13) ----------------------------------
def _label_npz(path, **extra):
    np.savez(path, s=np.zeros((4, 8, 8), np.uint16), **extra)
    return path


def test_prediction_file_encrypted_or_unknown_compression(tmp_path):
    """zipfile's RuntimeError / NotImplementedError escaped PredictionFile.header before."""
    from neuroharness.tasks.fisbe.instance_segmentation import PredictionFile

    enc = _label_npz(tmp_path / "enc.npz")
    patch_zip(enc, 8, "<H", 0x1, local=6)
    with pytest.raises(SubmissionError, match=rf"^{enc}: member 's\.npy' is encrypted"):
        PredictionFile(enc)
    meth = _label_npz(tmp_path / "meth.npz")
    patch_zip(meth, 10, "<H", 97, local=8)
    with pytest.raises(SubmissionError, match=rf"^{meth}: member 's\.npy' uses zip compression method 97"):
        PredictionFile(meth)


def test_prediction_file_zipped_zarr_paths_and_layout(tmp_path):
    """A zipped Zarr whose members escape, or whose group is one folder down, was a GroupNotFoundError."""
    from neuroharness.tasks.fisbe.instance_segmentation import PredictionFile

    folder = tmp_path / "p.zarr"
    write_predictions(folder, {"s": np.zeros((4, 8, 8), np.uint16)})
    down = tmp_path / "down.zip"  # the folder zipped, not its contents
    with zipfile.ZipFile(down, "w") as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f"p.zarr/{f.relative_to(folder)}")
    with pytest.raises(SubmissionError, match=rf"^{down}: no Zarr group at the archive's root \(found 'p\.zarr/\.zgroup': "
                       r"zip the folder's contents, not the folder\)") as e:
        PredictionFile(down)
    assert "GroupNotFoundError" not in str(e.value)
    for name in ("../.zgroup", "/s/.zarray", "s/../../x"):
        bad = tmp_path / "bad.zip"
        with zipfile.ZipFile(bad, "w") as zf:
            for f in sorted(folder.rglob("*")):
                if f.is_file():
                    zf.write(f, str(f.relative_to(folder)))
            zf.writestr(name, b"{}")
        with pytest.raises(SubmissionError, match=rf"member '{re.escape(name)}' is a path outside the archive's folder: "
                           r"the member path escapes the archive"):
            PredictionFile(bad)


def test_prediction_file_damaged_zarr_chunk_is_a_submission_error(tmp_path):
    """Found by fuzzing: a corrupt compressed chunk raised numcodecs' RuntimeError from PredictionFile.load."""
    from neuroharness.tasks.fisbe.instance_segmentation import PredictionFile

    folder = write_predictions(tmp_path / "p.zarr", {"s": np.arange(4 * 8 * 8, dtype=np.uint16).reshape(4, 8, 8)})
    chunk = next(p for p in (folder / "s").iterdir() if not p.name.startswith("."))
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2 :] = bytes(len(data) - len(data) // 2)
    chunk.write_bytes(bytes(data))
    with PredictionFile(folder) as pf, pytest.raises(SubmissionError, match=rf"^{folder}: array 's' is unreadable"):
        pf.load("s")


def test_prediction_file_pickles_objects_and_links(tmp_path):
    import os
    import pickle

    from neuroharness.tasks.fisbe.instance_segmentation import PredictionFile

    sentinel = tmp_path / "unpickled"

    class Boom:
        def __reduce__(self):
            return (os.mkdir, (str(sentinel),))

    for suffix, what in ((".npz", r"not an \.npz \(zip\) archive"), (".zip", "not a zipped Zarr store"),
                         (".pkl", r"unsupported format '\.pkl'")):
        path = tmp_path / f"p{suffix}"
        path.write_bytes(pickle.dumps({"s": Boom()}))
        with pytest.raises(SubmissionError, match=rf"^{path}: .*{what}.*pickles are never loaded"):
            PredictionFile(path)
    obj = _label_npz(tmp_path / "obj.npz", t=np.array([Boom()], dtype=object))
    with pytest.raises(SubmissionError, match=r"array 't' \(sample t\) has dtype object \(Python objects, which numpy "
                       r"stores as a pickle\); pickles are never loaded"):
        PredictionFile(obj)
    assert not sentinel.exists()
    folder = write_predictions(tmp_path / "l.zarr", {"s": np.zeros((4, 8, 8), np.uint16)})
    (folder / "t").symlink_to(tmp_path)
    with pytest.raises(SubmissionError, match=r"'t' is a symbolic link; links could point outside the submission"):
        PredictionFile(folder)
