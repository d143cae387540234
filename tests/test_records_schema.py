"""The published record schema, record digests, and records checked against their task card."""
from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path

import pytest

from neuroharness.errors import DataFormatError
from neuroharness.leaderboards import table
from neuroharness.leaderboards.records import (
    read_records,
    record_digest,
    schema_path,
    write_record,
)
from neuroharness.tasks import get_card, list_tasks
from neuroharness.tasks.card import CardError, DatasetRef, MetricSpec, TaskCard

from test_leaderboard import SHA_A, TASK, _write_raw, make_record

ROOT = Path(__file__).resolve().parents[1]


def _schema() -> dict:
    return json.loads(schema_path().read_text())


# -- the schema file -----------------------------------------------------------------
def test_schema_is_valid_draft_2020_12_and_packaged():
    import jsonschema

    schema = _schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema_version"] == {"const": 2}
    assert "record_digest" in schema["required"]
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "record.schema.json" in data["neuroharness.leaderboards"]
    assert schema_path().parent.name == "leaderboards"


def test_written_records_validate_with_any_json_schema_validator(tmp_path):
    """The schema is public: a record written by the harness passes a stock validator."""
    import jsonschema

    rec = make_record("m", 0, 0.7)
    rec["model"]["origin"] = {"kind": "plugin", "package": "my-models", "version": "1.2.0"}
    rec["predictions_sha256"] = "f" * 64
    path = write_record(rec, tmp_path)
    on_disk = json.loads(path.read_text())
    jsonschema.Draft202012Validator(_schema()).validate(on_disk)
    assert read_records(tmp_path)[0][1]["model"]["origin"]["kind"] == "plugin"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r["model"].update(origin={"kind": "pip"}),
         "field model.origin.kind = 'pip', expected one of ['builtin', 'plugin', 'submission']"),
        (lambda r: r["model"].update(origin={"package": "x"}), "missing field(s) ['model.origin.kind']"),
        (lambda r: r["model"].update(origin={"kind": "plugin", "package": 3}),
         "field model.origin.package = 3, expected string or null"),
        (lambda r: r["model"].update(origin={"kind": "builtin", "url": "x"}),
         "field(s) ['url'] not allowed in model.origin (the schema allows kind, package, version)"),
        (lambda r: r.update(predictions_sha256="xyz"), "field predictions_sha256 = 'xyz', expected 64 lowercase hex digits"),
        (lambda r: r.update(score=1.0), "field(s) ['score'] not allowed in a record (the schema allows "),
        (lambda r: r.update(split="train"), "field split = 'train', expected one of ['test', 'val']"),
        (lambda r: r.update(seed=-1), "field seed = -1, expected >= 0"),
        (lambda r: r.update(datasets=[]), "field datasets = [], expected at least 1 item(s)"),
        (lambda r: r["datasets"][0].update(content_sha256="A" * 64),
         "field datasets[0].content_sha256 = 'AAAA"),
        (lambda r: r["model"].update(n_parameters=-3), "field model.n_parameters = -3, expected >= 0"),
        (lambda r: r["environment"].update(threads="2"), "field environment.threads = '2', expected integer"),
        (lambda r: r["validation_metrics"].update(roc_auc="0.5"),
         "field validation_metrics.roc_auc = '0.5', expected number"),
        (lambda r: r.update(wall_time_s=-1.0), "field wall_time_s = -1.0, expected >= 0"),
    ],
)
def test_schema_violations_name_file_field_found_and_expected(tmp_path, mutate, message):
    rec = make_record("m", 0, 0.7)
    mutate(rec)
    bad = tmp_path / "bad.json"
    _write_raw(bad, rec)  # with a matching digest: only the schema is broken
    with pytest.raises(DataFormatError) as exc:
        read_records(tmp_path)
    assert str(exc.value).startswith(f"{bad}: {message}")
    assert str(exc.value).endswith("(schema record.schema.json)")
    # nor can it be written
    with pytest.raises(DataFormatError, match="schema record.schema.json"):
        write_record(rec, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- record_digest --------------------------------------------------------------------
def test_record_digest_is_sha256_of_canonical_json(tmp_path):
    rec = make_record("m", 0, 0.7)
    rec["model"]["description"] = "Modèle – ünïcode"
    canonical = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert record_digest(rec) == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    path = write_record(rec, tmp_path)
    on_disk = json.loads(path.read_text())
    assert on_disk["record_digest"] == record_digest(rec) == record_digest(on_disk)  # the field itself is left out
    # rewriting a record that already has a (stale) digest stamps the right one
    write_record({**on_disk, "seed": 0, "record_digest": "0" * 64}, tmp_path)
    assert json.loads(path.read_text())["record_digest"] == record_digest(rec)


def test_forged_metric_is_refused_by_digest(tmp_path):
    """Chance edited to ROC-AUC 0.99 by hand: refused, with the file and the reason; nothing ranked."""
    for seed in (0, 1):
        write_record(make_record("chance", seed, 0.5), tmp_path)
    write_record(make_record("honest", 0, 0.7), tmp_path)
    forged = tmp_path / f"{TASK}__chance__seed1.json"
    rec = json.loads(forged.read_text())
    rec["metrics"].update(roc_auc=0.99, main_score=0.99)
    forged.write_text(json.dumps(rec, indent=2, sort_keys=True))
    with pytest.raises(DataFormatError) as exc:
        table.build(read_records(tmp_path))
    msg = str(exc.value)
    assert msg.startswith(f"{forged}: record_digest ")
    assert "the record was edited after it was written" in msg


def test_record_without_digest_is_refused_with_the_remake_command(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps(make_record("chance", 2, 0.5)))
    with pytest.raises(DataFormatError) as exc:
        read_records(tmp_path)
    assert str(exc.value) == (
        f"{path}: field record_digest missing: the record was not written by neuroharness's write_record (or predates "
        f"record digests); remake it with `neuroharness run {TASK} --model chance --seeds 2`")


# -- the task card: ranges, main score, main metric -----------------------------------------
def test_metric_outside_card_range_is_refused_even_with_a_valid_digest(tmp_path):
    rec = make_record("liar", 0, 1.5)  # main_score = roc_auc = 1.5
    path = tmp_path / "liar.json"
    _write_raw(path, rec)
    with pytest.raises(DataFormatError) as exc:
        read_records(tmp_path)
    assert str(exc.value) == (f"{path}: metrics.roc_auc = 1.5, outside the range [0, 1] that task card {TASK} gives "
                              "for roc_auc")
    with pytest.raises(DataFormatError, match=r"^record: metrics\.roc_auc = 1\.5, outside the range \[0, 1\]"):
        write_record(rec, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "group, name, value, bounds",
    [("metrics", "spearman", -1.2, "[-1, 1]"), ("metrics", "average_precision", -0.1, "[0, 1]"),
     ("validation_metrics", "roc_auc", 1.01, "[0, 1]")],
)
def test_every_card_range_is_checked(tmp_path, group, name, value, bounds):
    rec = make_record("m", 0, 0.7)
    rec[group][name] = value
    if group == "validation_metrics":
        rec[group]["main_score"] = value
    _write_raw(tmp_path / "r.json", rec)
    with pytest.raises(DataFormatError, match=rf"{group}\.{name} = {value}, outside the range \{bounds}"):
        read_records(tmp_path)


def test_values_within_float_noise_of_a_bound_pass(tmp_path):
    rec = make_record("m", 0, 0.7)
    rec["metrics"]["spearman"] = 1 + 2e-16
    write_record(rec, tmp_path)
    assert read_records(tmp_path)[0][1]["metrics"]["spearman"] == 1 + 2e-16


def test_main_score_must_be_the_main_metric(tmp_path):
    rec = make_record("m", 0, 0.6)
    rec["metrics"]["main_score"] = 0.95
    path = tmp_path / "r.json"
    _write_raw(path, rec)
    with pytest.raises(DataFormatError) as exc:
        read_records(tmp_path)
    assert str(exc.value) == (f"{path}: metrics.main_score = 0.95 differs from metrics.roc_auc = 0.6; expected the "
                              "value of the task's main_metric roc_auc")


def test_record_must_agree_with_its_card_version_on_main_metric_and_direction(tmp_path):
    rec = make_record("m", 0, 0.6)
    rec["task"]["main_metric"] = "average_precision"
    rec["metrics"]["main_score"] = rec["metrics"]["average_precision"]
    _write_raw(tmp_path / "r.json", rec)
    with pytest.raises(DataFormatError, match=rf"field task\.main_metric = 'average_precision', but task card {TASK} "
                                              r"v1\.0 says 'roc_auc'"):
        read_records(tmp_path)
    _write_raw(tmp_path / "r.json", make_record("m", 0, 0.6, higher_is_better=False))
    with pytest.raises(DataFormatError, match=r"field task\.higher_is_better = False, but task card .* says True"):
        read_records(tmp_path)


def test_record_of_an_unregistered_task_is_refused(tmp_path):
    _write_raw(tmp_path / "r.json", make_record("m", 0, 0.6, task="no-such-task"))
    with pytest.raises(DataFormatError, match=r"r\.json: field task\.name = 'no-such-task': unknown task 'no-such-task'"):
        read_records(tmp_path)


def test_card_metric_ranges_are_validated():
    def card(*metrics):
        return TaskCard(name="t", version="1", title="t", description="d", datasets=(DatasetRef("d", "1"),), split="s",
                        inputs="i", targets="t", metrics=metrics, main_metric=metrics[0].name, implementation="m:C")

    assert card(MetricSpec("a", True, "d", 0.0, 1.0)).metrics[0].high == 1.0
    with pytest.raises(CardError, match=r"metric a has low = 1\.0 > high = 0\.0"):
        card(MetricSpec("a", True, "d", 1.0, 0.0))
    with pytest.raises(CardError, match=r"metric a low = '0', expected a finite number or None"):
        card(MetricSpec("a", True, "d", "0", None))
    with pytest.raises(CardError, match=r"metric a high = inf"):
        card(MetricSpec("a", True, "d", None, float("inf")))


def test_every_registered_card_metric_has_a_range():
    """Every metric of the registered tasks is bounded on at least one side (the ranges the leaderboard enforces)."""
    unbounded = [f"{t}:{m.name}" for t in list_tasks() for m in get_card(t).metrics if m.low is None and m.high is None]
    assert unbounded == []
    sf = {m.name: (m.low, m.high) for m in get_card(TASK).metrics}
    assert sf == {"roc_auc": (0, 1), "average_precision": (0, 1), "spearman": (-1, 1)}
    fisbe = {m.name: (m.low, m.high) for m in get_card("fisbe-instance-segmentation").metrics}
    assert fisbe["FS"] == fisbe["FM"] == (0, None) and fisbe["S"] == (0, 1)
    forecast = {m.name: (m.low, m.high) for m in get_card("celegans-forecast").metrics}
    assert forecast["worms/skill_h1"] == (None, 1) and forecast["worms/mse_h1"] == (0, None)
    assert get_card(TASK).to_dict()["metrics"][0]["low"] == 0.0  # `tasks info --json` shows them


def test_dataset_sha_fixture_is_hex():  # the fixtures' checksums satisfy the schema's pattern
    assert set(SHA_A) <= set("0123456789abcdef")


# -- evaluator version ----------------------------------------------------------------
def test_evaluator_version_is_required_by_the_schema_and_defaults_on_cards():
    schema = _schema()
    assert "evaluator_version" in schema["properties"]["task"]["required"]
    # every card starts at "1"; fisbe is at "2" since its FS/FM follow the official evaluator (issue 11)
    assert {name: get_card(name).evaluator_version for name in list_tasks()} == {
        name: "2" if name == "fisbe-instance-segmentation" else "1" for name in list_tasks()}


def test_record_without_evaluator_version_is_refused_with_the_remake_command(tmp_path):
    rec = make_record("old", 2, 0.7)
    del rec["task"]["evaluator_version"]
    _write_raw(tmp_path / "old.json", rec)
    with pytest.raises(DataFormatError) as exc:
        read_records(tmp_path)
    assert str(exc.value) == (
        f"{tmp_path / 'old.json'}: field task.evaluator_version missing: the record predates evaluator versions (the "
        f"version of the task's scoring code), so it cannot be compared with current records; remake it with "
        f"`neuroharness run {TASK} --model old --seeds 2`")


def test_write_record_stamps_the_cards_evaluator_version(tmp_path):
    rec = make_record("m", 0, 0.7)
    del rec["task"]["evaluator_version"]
    path = write_record(rec, tmp_path)
    assert json.loads(path.read_text())["task"]["evaluator_version"] == get_card(TASK).evaluator_version
    assert "evaluator_version" not in rec["task"]  # the caller's dict is not changed


def test_card_evaluator_version_must_be_a_non_empty_string():
    card = get_card(TASK)
    import dataclasses

    with pytest.raises(CardError, match="field evaluator_version must be a non-empty string"):
        dataclasses.replace(card, evaluator_version="")
