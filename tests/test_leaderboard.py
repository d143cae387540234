"""Result records, leaderboard aggregation and rendering, and the runner end to end."""
from __future__ import annotations

import copy
import csv
import datetime as dt
import importlib.util
import io
import json
import math
import re

import numpy as np
import pytest

from neuroharness.errors import DataFormatError, IncomparableResultsError
from neuroharness.leaderboards import table
from neuroharness.leaderboards.records import SCHEMA_VERSION, read_records, record_digest, record_filename, write_record

TASK = "celegans-structure-function"
SHA_A = "a" * 64
SHA_B = "b" * 64
SPLIT_A = "5" * 64
SPLIT_B = "6" * 64

needs_celegans = pytest.mark.skipif(
    importlib.util.find_spec("cect") is None or importlib.util.find_spec("wormneuroatlas") is None,
    reason="needs the cect and wormneuroatlas wheels installed (pip install --no-deps cect==0.3.5 wormneuroatlas==0.0.7.3)",
)


def make_record(model: str, seed: int, roc_auc: float, ap: float = 0.1, *, task: str = TASK, version: str = "1.0",
                sha: str = SHA_A, higher_is_better: bool = True, n_parameters: int = 2, options: dict | None = None,
                split_sha: str = SPLIT_A, evaluator: str = "1") -> dict:
    t = {"name": task, "version": version, "evaluator_version": evaluator, "main_metric": "roc_auc",
         "higher_is_better": higher_is_better}
    if options is not None:
        t["options"] = options
    return {
        "schema_version": SCHEMA_VERSION,
        "task": t,
        "datasets": [
            {"name": "celegans-funatlas", "version": "1.0", "content_sha256": sha},
            {"name": "celegans-connectome", "version": "1.0", "content_sha256": SHA_A},
        ],
        "model": {"name": model, "description": f"{model} model", "n_parameters": n_parameters, "hyperparameters": {},
                  "fitted": {}},
        "seed": seed,
        "split": "test",
        "split_sha256": split_sha,
        "metrics": {"roc_auc": roc_auc, "average_precision": ap, "spearman": 0.0, "chance_average_precision": 0.05,
                    "n_pairs": 100, "n_significant": 5, "main_score": roc_auc},
        "validation_metrics": {},
        "environment": {"harness_version": "0.1.0", "git_commit": None, "python": "3.11", "platform": "linux",
                        "packages": {"numpy": "2.3.5"}},
        "wall_time_s": 0.5,
        "created": "2026-01-01T00:00:00+00:00",
    }


# model "good": roc 0.6, 0.7, 0.8 -> mean 0.7, sample std sqrt((0.01 + 0 + 0.01) / 2) = 0.1
#               ap  0.1, 0.2, 0.3 -> mean 0.2, std 0.1
# model "spiky": roc 0.9, 0.6, 0.9 -> mean 0.8, std sqrt((0.01 + 0.04 + 0.01) / 2) = sqrt(0.03)
#               ap  0.4 x 3      -> mean 0.4, std 0
# model "weak":  roc 0.45, 0.55, 0.5 -> mean 0.5, std sqrt((0.0025 + 0.0025 + 0) / 2) = 0.05
SEEDS = {
    "good": [(0.6, 0.1), (0.7, 0.2), (0.8, 0.3)],
    "spiky": [(0.9, 0.4), (0.6, 0.4), (0.9, 0.4)],
    "weak": [(0.45, 0.3), (0.55, 0.3), (0.5, 0.3)],
}


@pytest.fixture
def results(tmp_path):
    out = tmp_path / "results"
    for model, vals in SEEDS.items():
        for seed, (roc, ap) in enumerate(vals):
            write_record(make_record(model, seed, roc, ap, n_parameters=len(model)), out)
    return out


# -- records -----------------------------------------------------------------
def test_write_record_is_atomic_and_round_trips(tmp_path):
    rec = make_record("good", 3, 0.7)
    path = write_record(rec, tmp_path / "new" / "dir")
    assert path.name == record_filename(TASK, "good", 3) == f"{TASK}__good__seed3.json"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp file left
    [(p, back)] = read_records(path.parent)
    assert "record_digest" not in rec  # the caller's dict is not changed; the file holds the digest
    assert p == path and back == {**rec, "record_digest": record_digest(rec)}
    # rewriting replaces the file in place, still leaving nothing else behind
    write_record(make_record("good", 3, 0.9), path.parent)
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert read_records([path])[0][1]["metrics"]["roc_auc"] == 0.9


def test_write_record_refuses_invalid_record_and_writes_nothing(tmp_path):
    rec = make_record("good", 0, 0.7)
    rec["metrics"]["roc_auc"] = float("nan")
    with pytest.raises(DataFormatError, match=r"metrics\.roc_auc = nan"):
        write_record(rec, tmp_path)
    assert list(tmp_path.iterdir()) == []


def _write_raw(path, record) -> None:
    """Write ``record`` as is, with a matching record_digest: only what the test broke is wrong."""
    if isinstance(record, dict):
        record = {**record, "record_digest": record_digest(record)}
    path.write_text(json.dumps(record))  # json writes NaN as a bare token; read back as float nan


def _drop(rec, *keys):
    d = rec
    for k in keys[:-1]:
        d = d[k]
    del d[keys[-1]]


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda r: _drop(r, "metrics"), r"missing field\(s\) \['metrics'\]"),
        (lambda r: _drop(r, "seed"), r"missing field\(s\) \['seed'\]"),
        (lambda r: _drop(r, "task", "version"), r"task\.version"),
        (lambda r: _drop(r, "datasets", 0, "content_sha256"), r"datasets\[0\]\.content_sha256"),
        (lambda r: _drop(r, "metrics", "main_score"), r"metrics\.main_score"),
        (lambda r: _drop(r, "metrics", "roc_auc"), r"metrics\.roc_auc"),
        (lambda r: _drop(r, "model", "name"), r"model\.name"),
        (lambda r: _drop(r, "model", "n_parameters"), r"model\.n_parameters"),
        (lambda r: r["metrics"].update(roc_auc=float("nan")), r"metrics\.roc_auc = nan"),
        (lambda r: r["metrics"].update(average_precision=float("inf")), r"metrics\.average_precision = inf"),
        (lambda r: r["metrics"].update(spearman="0.3"), r"metrics\.spearman = '0\.3'"),
        (lambda r: r.update(schema_version=3), r"schema_version 3, expected 2"),
        (lambda r: r.update(schema_version=1), r"a schema_version 1 record \(neuroharness 0\.1\): it has no split_sha256.*"
                                               rf"remake it with `neuroharness run {TASK} --model good --seeds 1`"),
        (lambda r: _drop(r, "split_sha256"), r"missing field\(s\) \['split_sha256'\]"),
        (lambda r: r.update(split_sha256="abc"), r"field split_sha256 = 'abc', expected 64 hex digits"),
        (lambda r: r["datasets"][0].update(parts={"g": SHA_B}), r"datasets\[0\]\.content_sha256 is not the digest of its parts"),
        (lambda r: r["datasets"][0].update(parts={}), r"datasets\[0\]\.parts must map part names to sha256 strings"),
        (lambda r: r.update(seed="0"), r"seed = '0', expected an integer"),
        (lambda r: r.update(seed=1.0), r"seed = 1\.0, expected an integer"),
        (lambda r: r.update(seed=True), r"seed = True, expected an integer"),
        (lambda r: r.update(task="celegans"), r"field task is a str, expected a dict"),
    ],
)
def test_invalid_record_names_file_and_field(tmp_path, mutate, field):
    good = tmp_path / "good.json"
    _write_raw(good, make_record("good", 0, 0.7))
    bad = tmp_path / "bad.json"
    rec = make_record("good", 1, 0.7)
    mutate(rec)
    _write_raw(bad, rec)
    with pytest.raises(DataFormatError, match=field) as exc:
        read_records(tmp_path)
    assert str(bad) in str(exc.value)


def test_unreadable_json_and_missing_dir(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(DataFormatError, match=r"broken\.json: not a readable JSON record"):
        read_records(tmp_path)
    with pytest.raises(DataFormatError, match="results directory not found"):
        read_records(tmp_path / "nope")


# -- build -------------------------------------------------------------------
def test_build_mean_and_sample_std_by_hand(results):
    t = table.build(read_records(results))
    by_model = t.set_index("model")
    assert by_model.loc["good", "roc_auc_mean"] == pytest.approx(0.7)
    assert by_model.loc["good", "roc_auc_std"] == pytest.approx(0.1)
    assert by_model.loc["good", "average_precision_mean"] == pytest.approx(0.2)
    assert by_model.loc["good", "average_precision_std"] == pytest.approx(0.1)
    assert by_model.loc["spiky", "roc_auc_mean"] == pytest.approx(0.8)
    assert by_model.loc["spiky", "roc_auc_std"] == pytest.approx(math.sqrt(0.03))
    assert by_model.loc["spiky", "average_precision_std"] == pytest.approx(0.0)
    assert by_model.loc["weak", "roc_auc_mean"] == pytest.approx(0.5)
    assert by_model.loc["weak", "roc_auc_std"] == pytest.approx(0.05)
    assert list(by_model["n_seeds"]) == [3, 3, 3]
    assert by_model.loc["good", "seeds"] == "0 1 2"
    assert by_model.loc["weak", "n_parameters"] == 4
    assert "main_score_mean" not in t.columns
    assert t.attrs["task"] == TASK and t.attrs["task_version"] == "1.0" and t.attrs["main_metric"] == "roc_auc"


def test_build_sorts_by_main_score(results):
    t = table.build(read_records(results))
    assert list(t["model"]) == ["spiky", "good", "weak"]
    assert list(t["rank"]) == [1, 2, 3]


def test_build_sorts_ascending_when_lower_is_better(tmp_path):
    # version 0.9: the card (v1.0) says roc_auc is higher-is-better, and a record of its own version must agree
    for model, vals in SEEDS.items():
        for seed, (roc, ap) in enumerate(vals):
            write_record(make_record(model, seed, roc, ap, higher_is_better=False, version="0.9"), tmp_path)
    t = table.build(read_records(tmp_path))
    assert list(t["model"]) == ["weak", "good", "spiky"]


def test_single_seed_has_zero_std(tmp_path):
    write_record(make_record("solo", 4, 0.66), tmp_path)
    t = table.build(read_records(tmp_path))
    assert t.loc[0, "roc_auc_mean"] == pytest.approx(0.66)
    assert t.loc[0, "roc_auc_std"] == 0.0
    assert t.loc[0, "seeds"] == "4"


def test_build_filters_by_task(results):
    other = "vesselgraph-link-prediction"
    write_record(make_record("other", 0, 0.99, task=other), results)
    recs = read_records(results)
    assert "other" not in set(table.build(recs, task=TASK)["model"])
    assert list(table.build(recs, task=other)["model"]) == ["other"]
    with pytest.raises(DataFormatError, match="no result records for task nope"):
        table.build(recs, task="nope")


def test_different_task_versions_are_incomparable(results):
    write_record(make_record("newer", 0, 0.9, version="2.0"), results)
    with pytest.raises(IncomparableResultsError) as exc:
        table.build(read_records(results))
    msg = str(exc.value)
    assert f"task {TASK} 1.0" in msg and f"task {TASK} 2.0" in msg
    assert "9 record(s)" in msg and "1 record(s)" in msg
    # the field that differs, each value and the records carrying it
    [line] = [x for x in msg.splitlines() if "differs" in x]
    newer = results / f"{TASK}__newer__seed0.json"
    assert line.strip() == (f"task.version differs: '1.0' in 9 record(s): {results / f'{TASK}__good__seed0.json'}, "
                            f"{results / f'{TASK}__good__seed1.json'}, {results / f'{TASK}__good__seed2.json'} and 6 more; "
                            f"'2.0' in 1 record(s): {newer}")


def test_different_evaluator_versions_are_incomparable(results):
    """Same task version, scoring code changed (e.g. a metric fix): never ranked together, and the message says so."""
    write_record(make_record("rescored", 0, 0.9, evaluator="2"), results)
    with pytest.raises(IncomparableResultsError) as exc:
        table.build(read_records(results))
    msg = str(exc.value)
    assert "evaluator versions" in msg and "evaluator version 1" in msg and "evaluator version 2" in msg
    [line] = [x for x in msg.splitlines() if "differs" in x]
    assert line.startswith("  task.evaluator_version differs: '1' in 9 record(s): ")
    assert line.endswith(f"'2' in 1 record(s): {results / f'{TASK}__rescored__seed0.json'}")


def test_different_dataset_checksums_are_incomparable(results):
    write_record(make_record("rebuilt", 0, 0.9, sha=SHA_B), results)
    with pytest.raises(IncomparableResultsError) as exc:
        table.build(read_records(results))
    msg = str(exc.value)
    assert f"sha256 {SHA_A[:12]}" in msg and f"sha256 {SHA_B[:12]}" in msg
    assert "celegans-funatlas 1.0" in msg
    [line] = [x for x in msg.splitlines() if "differs" in x]
    assert line.startswith(f"  datasets[celegans-funatlas].content_sha256 differs: '{SHA_A}' in 9 record(s): ")
    assert line.endswith(f"'{SHA_B}' in 1 record(s): {results / f'{TASK}__rebuilt__seed0.json'}")


def test_different_splits_are_incomparable(results):
    write_record(make_record("resplit", 0, 0.9, split_sha=SPLIT_B), results)
    with pytest.raises(IncomparableResultsError) as exc:
        table.build(read_records(results))
    msg = str(exc.value)
    assert f"split sha256 {SPLIT_A[:12]}" in msg and f"split sha256 {SPLIT_B[:12]}" in msg
    assert "different task or dataset versions, task options or splits" in msg
    assert [x.split(":")[0].strip() for x in msg.splitlines() if "differs" in x] == ["split_sha256 differs"]
    assert f"'{SPLIT_B}' in 1 record(s): {results / f'{TASK}__resplit__seed0.json'}" in msg


def test_records_read_in_parts_compare_by_the_parts_they_read(tmp_path):
    from neuroharness.tasks.base import parts_digest

    out = tmp_path / "results"
    # two users scored graph g1; one store also held g2 (whole-store checksums would differ): one leaderboard
    for model, roc in (("a", 0.6), ("b", 0.7)):
        rec = make_record(model, 0, roc)
        rec["datasets"] = [{"name": "vesselgraph", "version": "1.0", "content_sha256": parts_digest({"g1": SHA_A}),
                            "parts": {"g1": SHA_A}}]
        write_record(rec, out)
    assert table.build(read_records(out))["model"].tolist() == ["b", "a"]
    assert parts_digest({"g1": SHA_A}) != parts_digest({"g1": SHA_B}) != parts_digest({"g1": SHA_A, "g2": SHA_A})


def test_different_task_options_are_incomparable_and_filterable(tmp_path):
    out = tmp_path / "results"
    for graph, roc in (("g1", 0.6), ("g2", 0.9)):
        for seed in (0, 1):
            write_record(make_record("m", seed, roc + 0.1 * seed, options={"graph": graph}), out)
    # one file per (model, seed, options): the second graph did not overwrite the first
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{TASK}__m__seed{s}__graph={g}.json" for g in ("g1", "g2") for s in (0, 1))
    with pytest.raises(IncomparableResultsError) as exc:
        table.build(read_records(out))
    msg = str(exc.value)
    assert f"task {TASK} 1.0, graph=g1 on" in msg and f"task {TASK} 1.0, graph=g2 on" in msg
    assert f"  task.options.graph differs: 'g1' in 2 record(s): {out / f'{TASK}__m__seed0__graph=g1.json'}, " in msg
    t = table.build(read_records(out), options={"graph": "g2"})
    assert t["roc_auc_mean"].tolist() == pytest.approx([0.95])
    assert t.attrs["options"] == {"graph": "g2"}
    assert ", graph=g2 on celegans-funatlas" in table.render(t).splitlines()[0]
    with pytest.raises(DataFormatError, match="no result records with graph=g3"):
        table.build(read_records(out), options={"graph": "g3"})


def test_duplicated_model_seed_is_refused(results):
    dup = results / "copy" / "again.json"
    dup.parent.mkdir()
    _write_raw(dup, make_record("good", 1, 0.75))
    with pytest.raises(IncomparableResultsError, match=r"model good seed 1 appears twice"):
        table.build(read_records(results))


# -- render ------------------------------------------------------------------
def test_render_markdown(results):
    md = table.render(table.build(read_records(results)), "md")
    lines = md.splitlines()
    assert lines[0].startswith(f"Task {TASK} v1.0 on celegans-funatlas 1.0, celegans-connectome 1.0")
    header = [c.strip() for c in lines[2].strip("|").split("|")]
    assert header == ["rank", "model", "roc_auc (main)", "average_precision", "spearman", "seeds", "params", "gap vs next"]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[4:7]]
    assert rows[0] == ["1", "spiky", f"0.8000 ± {math.sqrt(0.03):.4f}", "0.4000 ± 0.0000", "0.0000 ± 0.0000", "3", "5",
                       "no (p = 0.447)"]
    assert rows[1] == ["2", "good", "0.7000 ± 0.1000", "0.2000 ± 0.1000", "0.0000 ± 0.0000", "3", "4", "no (p = 0.055)"]
    assert rows[2] == ["3", "weak", "0.5000 ± 0.0500", "0.3000 ± 0.0000", "0.0000 ± 0.0000", "3", "4", "–"]
    assert lines[7] == ""
    assert lines[8] == ("gap vs next: whether the main-score gap to the next row is larger than the seed-to-seed spread, "
                        "by a two-sided Welch t-test (unequal variances) on the two rows' per-seed roc_auc scores: yes if "
                        "p < 0.05; n/a when a row has a single seed or both rows have zero spread.")
    assert "chance_" not in md and "n_pairs" not in md


def test_render_csv(results):
    text = table.render(table.build(read_records(results)), "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["model"] for r in rows] == ["spiky", "good", "weak"]
    assert float(rows[1]["roc_auc_mean"]) == pytest.approx(0.7)
    assert float(rows[1]["roc_auc_std"]) == pytest.approx(0.1)
    assert float(rows[2]["roc_auc_std"]) == pytest.approx(0.05)
    assert rows[0]["rank"] == "1"
    assert [r["gap_vs_next"] for r in rows] == ["no", "no", ""]
    assert float(rows[1]["gap_p_value"]) == pytest.approx(0.05478676604107661) and rows[2]["gap_p_value"] == ""


def test_render_json(results):
    out = json.loads(table.render(table.build(read_records(results)), "json"))
    assert out["meta"]["main_metric"] == "roc_auc" and out["meta"]["task_version"] == "1.0"
    good = next(r for r in out["rows"] if r["model"] == "good")
    assert good["rank"] == 2
    assert good["roc_auc_mean"] == pytest.approx(0.7) and good["roc_auc_std"] == pytest.approx(0.1)
    assert good["gap_vs_next"] == "no" and good["gap_p_value"] == pytest.approx(0.05478676604107661)
    assert out["rows"][-1]["gap_vs_next"] == "" and out["rows"][-1]["gap_p_value"] is None  # null, not NaN
    assert "Welch t-test" in out["meta"]["gap_test"]


def test_render_unknown_format(results):
    with pytest.raises(ValueError, match="format 'html'"):
        table.render(table.build(read_records(results)), "html")


# -- the runner on the real task --------------------------------------------
@pytest.fixture(scope="module")
def runner_records(tmp_path_factory):
    from neuroharness.leaderboards.runner import run

    out = tmp_path_factory.mktemp("runner")
    paths = run(TASK, "chance", [0, 1], out) + run(TASK, "connectome-direct", [0, 1], out)
    other = tmp_path_factory.mktemp("runner_again")
    again = run(TASK, "chance", [0], other) + run(TASK, "connectome-direct", [0], other)
    return out, paths, again


@needs_celegans
def test_runner_writes_provenance_complete_records(runner_records):
    from neuroharness.tasks import get_task

    out, paths, _ = runner_records
    assert sorted(p.name for p in paths) == sorted(
        f"{TASK}__{m}__seed{s}.json" for m in ("chance", "connectome-direct") for s in (0, 1)
    )
    task = get_task(TASK)
    checksums = task.dataset_checksums({})
    for path in paths:
        rec = json.loads(path.read_text())
        assert rec["schema_version"] == SCHEMA_VERSION
        assert re.fullmatch(r"[0-9a-f]{64}", rec["split_sha256"]) and rec["split_sha256"] == task.split_sha256()
        assert rec["model"]["fitted"] == {}
        assert rec["task"] == {"name": TASK, "version": task.card.version, "evaluator_version": task.card.evaluator_version,
                               "main_metric": "roc_auc", "higher_is_better": True,
                               "headline_metrics": ["roc_auc", "average_precision", "spearman"], "options": {}}
        assert [d["name"] for d in rec["datasets"]] == ["celegans-funatlas", "celegans-connectome"]
        for d in rec["datasets"]:
            assert d["version"] == "1.0"
            assert re.fullmatch(r"[0-9a-f]{64}", d["content_sha256"])
            assert d["content_sha256"] == checksums[d["name"]]
        env = rec["environment"]
        assert "git_commit" in env
        assert env["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", env["git_commit"])
        assert env["packages"]["numpy"] == np.__version__
        assert set(env["packages"]) >= {"numpy", "scipy", "pandas", "xarray", "zarr", "scikit-learn"}
        from neuroharness import __version__

        assert env["harness_version"] == __version__
        assert isinstance(env["threads"], int) and env["threads"] >= 1 and isinstance(env["device"], str)
        assert {"numba", "numcodecs", "dask", "huggingface-hub"} <= set(env["packages"])
        assert rec["model"]["n_parameters"] == {"chance": 0, "connectome-direct": 2}[rec["model"]["name"]]
        assert isinstance(rec["wall_time_s"], float) and rec["wall_time_s"] >= 0
        assert dt.datetime.fromisoformat(rec["created"]).tzinfo is not None
        m = rec["metrics"]
        assert m["main_score"] == m["roc_auc"]
        assert m["n_pairs"] == 6385
        assert 0 < m["chance_average_precision"] < 1
        assert set(rec["validation_metrics"]) == set(m)
        assert rec["validation_metrics"]["n_pairs"] != m["n_pairs"]
    # the records make a valid leaderboard
    t = table.build(read_records(out), task=TASK)
    assert set(t["model"]) == {"chance", "connectome-direct"} and list(t["n_seeds"]) == [2, 2]


@needs_celegans
def test_runner_is_reproducible_and_seeds_matter(runner_records):
    out, paths, again = runner_records
    recs = {(r["model"]["name"], r["seed"]): r for r in (json.loads(p.read_text()) for p in paths)}
    for path in again:
        rec = json.loads(path.read_text())
        first = recs[(rec["model"]["name"], rec["seed"])]
        assert rec["metrics"] == first["metrics"]
        assert rec["validation_metrics"] == first["validation_metrics"]
    # chance draws different scores per seed; the connectome baseline ignores the seed
    assert recs[("chance", 0)]["metrics"]["roc_auc"] != recs[("chance", 1)]["metrics"]["roc_auc"]
    assert abs(recs[("chance", 0)]["metrics"]["roc_auc"] - 0.5) < 0.1
    assert recs[("connectome-direct", 0)]["metrics"] == recs[("connectome-direct", 1)]["metrics"]


@needs_celegans
def test_runner_unknown_model_fails_before_work(tmp_path):
    from neuroharness.errors import UnknownNameError
    from neuroharness.leaderboards.runner import run

    with pytest.raises(UnknownNameError, match="valid models: chance, connectome-direct"):
        run(TASK, "nope", [0], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_records_are_not_mutated_by_build(results):
    recs = read_records(results)
    before = copy.deepcopy(recs)
    table.build(recs)
    assert recs == before


# -- seed noise: Welch's t-test between neighbouring rows ----------------------
def _welch_by_hand(a, b):
    """t, df and the two-sided p of Welch's test, written out."""
    from scipy import stats

    a, b = np.asarray(a), np.asarray(b)
    sa, sb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(sa + sb)
    df = (sa + sb) ** 2 / (sa**2 / (len(a) - 1) + sb**2 / (len(b) - 1))
    return t, df, 2 * stats.t.sf(abs(t), df)


def test_gap_vs_next_is_welch_t_test_by_hand(results):
    from scipy import stats

    t = table.build(read_records(results))
    # spiky (0.9, 0.6, 0.9) vs good (0.6, 0.7, 0.8): se^2 = 0.03/3 + 0.01/3, t = 0.1 / sqrt(0.04/3) = 0.8660,
    # df = (0.04/3)^2 / ((0.01^2 + (0.01/3)^2) / 2) = 3.2
    t1, df1, p1 = _welch_by_hand([0.9, 0.6, 0.9], [0.6, 0.7, 0.8])
    assert t1 == pytest.approx(math.sqrt(3) / 2) and df1 == pytest.approx(3.2)
    # good vs weak (0.45, 0.55, 0.5): se^2 = 0.01/3 + 0.0025/3, t = 0.2 / sqrt(0.0125/3) = 3.098, df = 50/17 = 2.941
    t2, df2, p2 = _welch_by_hand([0.6, 0.7, 0.8], [0.45, 0.55, 0.5])
    assert t2 == pytest.approx(0.2 / math.sqrt(0.0125 / 3)) and df2 == pytest.approx(50 / 17)
    assert p1 == pytest.approx(0.4465390233, rel=1e-8) and p2 == pytest.approx(0.0547867660, rel=1e-8)
    for (a, b), p in (((SEEDS["spiky"], SEEDS["good"]), p1), ((SEEDS["good"], SEEDS["weak"]), p2)):
        scipy_p = stats.ttest_ind([x for x, _ in a], [x for x, _ in b], equal_var=False).pvalue
        assert scipy_p == pytest.approx(p, rel=1e-10)
    assert t["gap_p_value"].tolist()[:2] == pytest.approx([p1, p2], rel=1e-10)
    # a 0.2 gap over three seeds of this spread is not significant at 0.05: both gaps are "no"
    assert t["gap_vs_next"].tolist() == ["no", "no", ""]
    assert math.isnan(t["gap_p_value"].iloc[2])


def test_gap_vs_next_yes_and_not_applicable(tmp_path):
    rows = {"strong": [0.90, 0.91, 0.92], "weak": [0.45, 0.55, 0.5],  # gap 0.41 >> spread: yes
            "flat-a": [0.4, 0.4, 0.4], "flat-b": [0.3, 0.3, 0.3],     # both without spread: n/a
            "solo": [0.2]}                                          # one seed: n/a (vs flat-b and as last row)
    for model, rocs in rows.items():
        for seed, roc in enumerate(rocs):
            write_record(make_record(model, seed, roc), tmp_path)
    t = table.build(read_records(tmp_path))
    assert t["model"].tolist() == ["strong", "weak", "flat-a", "flat-b", "solo"]
    p_strong = _welch_by_hand(rows["strong"], rows["weak"])[2]
    assert p_strong < 0.05
    # weak vs flat-a: one row has spread, Welch uses it alone (df = n - 1 = 2)
    p_weak = _welch_by_hand(rows["weak"], [0.4, 0.4, 0.4 + 1e-300])[2]
    assert t["gap_vs_next"].tolist() == ["yes", "yes" if p_weak < 0.05 else "no", "n/a", "n/a", ""]
    assert t["gap_p_value"].iloc[0] == pytest.approx(p_strong)
    assert t["gap_p_value"].iloc[1] == pytest.approx(p_weak)
    md = table.render(t)
    assert "| 3 | flat-a | 0.4000 ± 0.0000 | 0.1000 ± 0.0000 | 0.0000 ± 0.0000 | 3 | 2 | n/a |" in md
    assert "| 5 | solo | 0.2000 ± 0.0000 | 0.1000 ± 0.0000 | 0.0000 ± 0.0000 | 1 | 2 | – |" in md


# -- official records with the user's --------------------------------------------------
@pytest.fixture
def official(tmp_path, monkeypatch):
    """A stand-in for the installed official records of TASK: "base" (0.6, 0.62, 0.64) and "good" (0.55 x 3)."""
    import neuroharness.leaderboards as lb

    folder = tmp_path / "official" / TASK
    for seed, roc in enumerate((0.6, 0.62, 0.64)):
        write_record(make_record("base", seed, roc), folder)
    for seed in range(3):
        write_record(make_record("good", seed, 0.55), folder)
    monkeypatch.setattr(lb, "official_dir", lambda task: tmp_path / "official" / task)
    return folder


def _md_rows(out: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if re.match(r"\| \d", line)]


def test_leaderboard_shows_official_and_user_records(capsys, official, results):
    from neuroharness.cli import main

    assert main(["leaderboard", TASK, "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "| rank | model | source | roc_auc (main) | average_precision | spearman | seeds | params | gap vs next |" in out
    # "good" is both an official model and one of the user's: one row each, told apart by source
    assert [r[:4] for r in _md_rows(out)] == [
        ["1", "spiky", "results", f"0.8000 ± {math.sqrt(0.03):.4f}"],
        ["2", "good", "results", "0.7000 ± 0.1000"],
        ["3", "base", "official", "0.6200 ± 0.0200"],
        ["4", "good", "official", "0.5500 ± 0.0000"],
        ["5", "weak", "results", "0.5000 ± 0.0500"],
    ]
    assert main(["leaderboard", TASK, "--results", str(results), "--only-results"]) == 0
    out = capsys.readouterr().out
    assert [r[1] for r in _md_rows(out)] == ["spiky", "good", "weak"] and "source" not in out
    assert main(["leaderboard", TASK]) == 0  # the official records alone
    assert [r[1] for r in _md_rows(capsys.readouterr().out)] == ["base", "good"]
    assert main(["leaderboard", TASK, "--results", str(results), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["model"], r["source"]) for r in rows][:3] == [("spiky", "results"), ("good", "results"), ("base", "official")]


def test_leaderboard_refuses_user_records_incomparable_with_official(capsys, official, tmp_path):
    mine = tmp_path / "mine"
    write_record(make_record("new", 0, 0.9, sha=SHA_B), mine)
    from neuroharness.cli import main

    assert main(["leaderboard", TASK, "--results", str(mine)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: refusing to rank records made on different task or dataset versions")
    [line] = [x for x in err.splitlines() if "differs" in x]
    assert line == (f"  datasets[celegans-funatlas].content_sha256 differs: '{SHA_A}' in 6 record(s): "
                    f"official {TASK}__base__seed0.json, official {TASK}__base__seed1.json, "
                    f"official {TASK}__base__seed2.json and 3 more; '{SHA_B}' in 1 record(s): {mine / f'{TASK}__new__seed0.json'}")
    assert str(official) not in err  # official records by name, not by their installed path
    assert main(["leaderboard", TASK, "--results", str(mine), "--only-results"]) == 0


def test_leaderboard_without_official_records_suggests_results(capsys, tmp_path, monkeypatch):
    import neuroharness.leaderboards as lb
    from neuroharness.cli import main

    monkeypatch.setattr(lb, "official_dir", lambda task: tmp_path / "site-packages" / "official" / task)
    assert main(["leaderboard", "fisbe-instance-segmentation"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: task fisbe-instance-segmentation has no official records yet; rank your own: `neuroharness "
                   "run fisbe-instance-segmentation --model M --out DIR`, then `neuroharness leaderboard "
                   "fisbe-instance-segmentation --results DIR`")
    assert "site-packages" not in err
    assert main(["leaderboard", TASK, "--only-results"]) == 2
    assert capsys.readouterr().err.strip() == (
        "usage error: --only-results shows the records of --results DIR alone; give --results DIR")
