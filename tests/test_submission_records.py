"""Scored prediction files as leaderboard records (`evaluate --out DIR --model-name NAME`) and
`tasks template --split train|val` with targets (the Task.targets hook)."""
from __future__ import annotations

import hashlib
import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
from helpers import load_script

from neuroharness.cli import main
from neuroharness.errors import SubmissionError
from neuroharness.tasks import get_task

TASK = "celegans-structure-function"
N_TEST = 6385

needs_celegans = pytest.mark.skipif(
    importlib.util.find_spec("cect") is None or importlib.util.find_spec("wormneuroatlas") is None,
    reason="needs the cect and wormneuroatlas wheels installed (pip install --no-deps cect==0.3.5 wormneuroatlas==0.0.7.3)",
)


# -- predictions_sha256 (no data) ------------------------------------------------------------------
def test_predictions_sha256_of_a_file_and_a_folder(tmp_path):
    from neuroharness.leaderboards.runner import predictions_sha256

    f = tmp_path / "p.npz"
    f.write_bytes(b"abc")
    assert predictions_sha256(f) == hashlib.sha256(b"abc").hexdigest()
    z = tmp_path / "p.zarr"
    (z / "score").mkdir(parents=True)
    (z / ".zattrs").write_text("{}")
    (z / "score" / "0").write_bytes(b"\x00\x01")
    first = predictions_sha256(z)
    assert predictions_sha256(z) == first and len(first) == 64
    (z / "score" / "0").write_bytes(b"\x00\x02")  # other bytes
    assert predictions_sha256(z) != first
    (z / "score" / "0").write_bytes(b"\x00\x01")
    (z / "score" / "0").rename(z / "score" / "1")  # same bytes under another name
    assert predictions_sha256(z) != first


# -- usage errors (no data read) ---------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--out", "{d}"], "--out {d}: writes a leaderboard record, which needs --model-name NAME; to save the metrics "
                       "alone use --json-out FILE"),
    (["--model-name", "mine"], "--model-name mine: names the record written to --out DIR; give --out DIR"),
    (["--seed", "3"], "--seed describes the record written by --out DIR --model-name NAME"),
    (["--out", "{d}", "--model-name", "mine", "--split", "val"], "--out {d}: records are made on the test split only"),
    (["--out", "{d}", "--model-name", "../escape"], "--model-name '../escape': expected letters, digits"),
    (["--out", "{d}", "--model-name", "chance"], "--model-name chance: is already a model of task "
                                                 f"{TASK} (builtin"),
    (["--out", "{d}", "--model-name", "mine", "--seed", "-1"], "--seed -1: expected an integer >= 0"),
    (["--out", "{d}", "--model-name", "mine", "--n-parameters", "-5"], "--n-parameters -5: expected an integer >= 0"),
    (["--out", "{f}", "--model-name", "mine"], "--out {f}: is a file; expected a folder for the record"),
])
def test_evaluate_record_usage_errors(capsys, tmp_path, argv, message):
    preds = tmp_path / "p.npz"
    preds.write_bytes(b"not read")
    d, f = tmp_path / "records", tmp_path / "afile"
    f.write_text("x")
    argv = [a.format(d=d, f=f) for a in argv]
    assert main(["evaluate", TASK, str(preds), *argv]) == 2
    assert capsys.readouterr().err.startswith("usage error: " + message.format(d=d, f=f))
    assert not d.exists()


# -- records of submissions on the real task -------------------------------------------------------------
@pytest.fixture(scope="module")
def task():
    return get_task(TASK)


def _submission(task, path, shuffle_seed=None):
    test = task.data().splits["test"]
    tpl = task.submission_template("test")
    score, amplitude = test.significant.astype(float), np.asarray(test.amplitude, dtype=float)
    if shuffle_seed is not None:
        perm = np.random.default_rng(shuffle_seed).permutation(len(tpl))
        score, amplitude = score[perm], amplitude[perm]
    np.savez(path, responding=tpl["responding"].to_numpy(dtype=str), stimulated=tpl["stimulated"].to_numpy(dtype=str),
             score=score, amplitude=amplitude)
    return path


@needs_celegans
def test_submission_records_are_ranked_beside_the_official_ones(task, tmp_path, capsys):
    from neuroharness.leaderboards.records import read_records, record_digest
    from neuroharness.leaderboards.runner import dataset_entries

    out = tmp_path / "records"
    perfect = _submission(task, tmp_path / "perfect.npz")
    assert main(["evaluate", TASK, str(perfect), "--model-name", "oracle", "--description", "knows the answers",
                 "--n-parameters", "12", "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    metrics = json.loads(captured.out)
    assert metrics["main_score"] == 1.0
    path = out / f"{TASK}__oracle__seed0.json"
    assert f"record: {path}" in captured.err
    for seed in (0, 1):  # a shuffled submission, two training seeds of the user's
        shuffled = _submission(task, tmp_path / f"shuffled{seed}.npz", shuffle_seed=seed)
        assert main(["evaluate", TASK, str(shuffled), "--model-name", "shuffled", "--seed", str(seed),
                     "--out", str(out)]) == 0
    capsys.readouterr()

    (_, rec), = read_records([path])
    assert rec["model"] == {"name": "oracle", "description": "knows the answers", "n_parameters": 12,
                            "origin": {"kind": "submission", "package": None, "version": None},
                            "hyperparameters": {}, "fitted": {}}
    assert rec["predictions_sha256"] == hashlib.sha256(perfect.read_bytes()).hexdigest()
    assert rec["seed"] == 0 and rec["split"] == "test" and rec["validation_metrics"] == {}
    assert rec["split_sha256"] == task.split_sha256()
    assert rec["datasets"] == dataset_entries(task, task.resolve_options())
    assert rec["metrics"] == metrics and rec["record_digest"] == record_digest(rec)
    (_, rec1), = read_records([out / f"{TASK}__shuffled__seed1.json"])
    assert rec1["seed"] == 1 and rec1["model"]["origin"]["kind"] == "submission"

    assert main(["leaderboard", TASK, "--results", str(out), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    ours = {r["model"]: r for r in rows if r["source"] == "results"}
    assert set(ours) == {"oracle", "shuffled"}
    assert ours["oracle"]["rank"] == 1 and ours["oracle"]["roc_auc_mean"] == 1.0
    assert ours["shuffled"]["n_seeds"] == 2
    assert {"chance", "connectome-direct"} <= {r["model"] for r in rows if r["source"] == "official"}

    # a forged edit of the written record is refused, naming the file
    forged = json.loads(path.read_text())
    forged["metrics"]["average_precision"] = 0.99
    path.write_text(json.dumps(forged))
    assert main(["leaderboard", TASK, "--results", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "record_digest" in err


@needs_celegans
def test_nothing_is_written_when_scoring_fails(task, tmp_path, capsys):
    path = _submission(task, tmp_path / "bad.npz")
    with np.load(path) as z:
        arrays = dict(z)
    arrays["score"][5] = np.nan
    np.savez(path, **arrays)
    out = tmp_path / "records"
    json_out = tmp_path / "metrics.json"
    assert main(["evaluate", TASK, str(path), "--model-name", "mine", "--out", str(out),
                 "--json-out", str(json_out)]) == 2
    assert "score" in capsys.readouterr().err
    assert not out.exists() and not json_out.exists()


# -- tasks template --split train|val ----------------------------------------------------------------------
@needs_celegans
def test_template_train_and_val_hold_the_targets(task, tmp_path, capsys):
    view = task.training_view()
    for split in ("train", "val"):
        out = tmp_path / f"{split}.parquet"
        assert main(["tasks", "template", TASK, str(out), "--split", split]) == 0
        assert capsys.readouterr().out.strip() == str(out)
        t = pd.read_parquet(out)
        assert list(t.columns) == ["responding", "stimulated", "significant", "amplitude"]
        pd.testing.assert_frame_equal(t, view.table(split), check_dtype=False)
        pd.testing.assert_frame_equal(t[["responding", "stimulated"]], task.ids(task.data(), split))
    npz = tmp_path / "val.npz"
    assert main(["tasks", "template", TASK, str(npz), "--split", "val"]) == 0
    with np.load(npz) as z:
        assert z["significant"].dtype == bool and z["amplitude"].dtype == np.float64
    # test: ids only, never targets
    out = tmp_path / "test.parquet"
    assert main(["tasks", "template", TASK, str(out), "--split", "test"]) == 0
    t = pd.read_parquet(out)
    assert list(t.columns) == ["responding", "stimulated"] and len(t) == N_TEST
    with pytest.raises(SubmissionError, match="targets of the test split are never given"):
        task.labelled_table("test")


@pytest.mark.parametrize("name, hint", [("fisbe-instance-segmentation", "view.raw(sample)"),
                                        ("celegans-forecast", "view.store.worm(w, lo, hi)")])
def test_targets_that_are_not_tables_are_refused(name, hint):
    task = get_task(name)
    for split in ("train", "val"):
        with pytest.raises(SubmissionError) as e:
            task.targets(None, split)
        msg = str(e.value)
        assert "not a table" in msg and f"get_task({name!r}).training_view()" in msg and hint in msg
        assert f"--split {split}" in msg


def test_labelled_table_refuses_test_before_reading_data():
    with pytest.raises(SubmissionError, match="never given"):
        get_task("celegans-forecast").labelled_table("test")
    with pytest.raises(SubmissionError, match="expected 'train' or 'val'"):
        get_task("celegans-forecast").labelled_table("nope")


@pytest.fixture(scope="module")
def vessel_graph(tmp_path_factory):
    """The name of a small synthetic vesselgraph graph, prepared into a fresh home."""
    from neuroharness.loaders import get_loader
    from neuroharness.loaders.vesselgraph import graph_index, open_vesselgraph

    gen = load_script("make_vesselgraph_fixture")
    root = tmp_path_factory.mktemp("vg_targets")
    nodes, edges, _ = gen.synthetic_graph(600, seed=1)
    gen.write_graph(root / "src", "vgtargets", nodes, edges)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROHARNESS_HOME", str(root / "home"))
        get_loader("vesselgraph").prepare(source=root / "src")
        (name,) = graph_index(open_vesselgraph())["graph"]
        yield name


def test_vesselgraph_link_targets(vessel_graph, tmp_path, capsys):
    from neuroharness.tasks.vesselgraph.link_prediction import LABELS

    task = get_task("vesselgraph-link-prediction")
    opts = {"graph": vessel_graph}
    data = task.data(opts)
    for split in ("train", "val"):
        out = tmp_path / f"{split}.parquet"
        assert main(["tasks", "template", task.name, str(out), "--split", split, "--option", f"graph={vessel_graph}"]) == 0
        t = pd.read_parquet(out)
        assert list(t.columns) == ["node1", "node2", "label"] and t["label"].dtype == np.int64
        pairs, kind = data.scored(split)
        assert (t[["node1", "node2"]].to_numpy() == data.node_id[pairs]).all()
        positives = {tuple(p) for p in data.node_id[data.pos_pairs[split]]}
        labelled = {tuple(p) for p in t.loc[t["label"] == 1, ["node1", "node2"]].to_numpy()}
        assert labelled == positives
        n_neg = len(data.neg_pairs[split]) + len(data.random_pairs.get(split, ()))
        assert (t["label"] == 0).sum() == n_neg and len(t) == len(positives) + n_neg
        assert ((t["label"] == 1) == (kind == LABELS["positive"])).all()
    # val: the scored val ids; train pairs never include a test pair
    val = pd.read_parquet(tmp_path / "val.parquet")
    pd.testing.assert_frame_equal(val[["node1", "node2"]], task.submission_template("val", options=opts))
    train = {tuple(p) for p in pd.read_parquet(tmp_path / "train.parquet")[["node1", "node2"]].to_numpy()}
    test = {tuple(p) for p in task.submission_template("test", options=opts).to_numpy()}
    assert not train & test


def test_vesselgraph_vessel_targets(vessel_graph, tmp_path):
    task = get_task("vesselgraph-vessel-classification")
    opts = {"graph": vessel_graph}
    data = task.data(opts)
    for split in ("train", "val"):
        out = tmp_path / f"{split}.npz"
        assert main(["tasks", "template", task.name, str(out), "--split", split, "--option", f"graph={vessel_graph}"]) == 0
        with np.load(out) as z:
            assert sorted(z.files) == ["label", "vessel"]
            assert (z["vessel"] == data.split[split]).all()
            assert (z["label"] == data.label[data.split[split]]).all() and set(np.unique(z["label"])) <= {0, 1, 2}
