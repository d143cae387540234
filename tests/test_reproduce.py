"""`neuroharness reproduce`: rerun official baselines and compare with their records."""
from __future__ import annotations

import copy
import importlib.util
import json

import pytest

from neuroharness.leaderboards.reproduce import compare

TASK = "celegans-structure-function"

needs_celegans = pytest.mark.skipif(
    importlib.util.find_spec("cect") is None or importlib.util.find_spec("wormneuroatlas") is None,
    reason="needs the cect and wormneuroatlas wheels installed (pip install --no-deps cect==0.3.5 wormneuroatlas==0.0.7.3)",
)

RECORD = {
    "seed": 0, "split_sha256": "5" * 64,
    "datasets": [{"name": "a", "version": "1.0", "content_sha256": "a" * 64}],
    "model": {"name": "m", "hyperparameters": {"k": 1}},
    "metrics": {"roc_auc": 0.7, "n_pairs": 10, "main_score": 0.7},
    "validation_metrics": {"roc_auc": 0.6},
}


def test_compare_exact_and_within_tolerance():
    same = copy.deepcopy(RECORD)
    assert compare(RECORD, same, "r.json", 0) == []
    off = copy.deepcopy(RECORD)
    off["metrics"]["roc_auc"] = 0.7 + 1e-15  # one ulp away is a difference when bit-identity is promised
    (d,) = [x for x in compare(RECORD, off, "r.json", 0) if x.field == "metrics.roc_auc"]
    assert (d.official, d.reproduced) == (0.7, 0.7 + 1e-15)
    assert [x.field for x in compare(RECORD, off, "r.json", 1e-9)] == []
    off["validation_metrics"]["extra"] = 1.0
    assert [x.field for x in compare(RECORD, off, "r.json", 1e-9)] == ["validation_metrics.extra"]


def test_compare_names_data_split_and_settings_changes():
    other = copy.deepcopy(RECORD)
    other["datasets"][0]["content_sha256"] = "b" * 64
    other["split_sha256"] = "6" * 64
    other["model"]["hyperparameters"] = {"k": 2}
    fields = [x.field for x in compare(RECORD, other, "r.json", 0)]
    assert fields == ["split_sha256", "model.hyperparameters", "datasets.a.content_sha256"]


@needs_celegans
def test_reproduce_official_fast_baselines():
    from neuroharness.leaderboards.reproduce import reproduce

    report = reproduce(TASK, models=["chance", "connectome-direct"])
    assert report.ok, "\n".join(report.lines())
    assert len(report.checked) == 6 and report.tolerance == 0
    assert report.lines()[-1] == f"6 of 6 official records of {TASK} reproduced (bit-identical)"


@needs_celegans
def test_reproduce_reports_a_changed_number_and_the_cli_exits_nonzero(tmp_path, capsys):
    from neuroharness.cli import main
    from neuroharness.leaderboards import official_dir
    from neuroharness.leaderboards.records import write_record
    from neuroharness.leaderboards.reproduce import reproduce

    src = official_dir(TASK) / f"{TASK}__connectome-direct__seed0.json"
    rec = json.loads(src.read_text())
    rec.pop("record_digest", None)  # a record made by another version of the code, written properly
    rec["metrics"]["roc_auc"] = rec["metrics"]["main_score"] = 0.5758
    write_record(rec, tmp_path)
    report = reproduce(TASK, records_dir=tmp_path)
    assert not report.ok
    fields = {d.field for d in report.differences}
    assert fields == {"metrics.roc_auc", "metrics.main_score"}
    assert main(["-q", "reproduce", TASK, "--records", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"differs  {TASK}__connectome-direct__seed0.json" in out and "metrics.roc_auc: official 0.5758" in out


@needs_celegans
def test_interrupted_runs_resume_and_force_recomputes(tmp_path, caplog, monkeypatch):
    from neuroharness.leaderboards.runner import run
    from neuroharness.tasks import get_task

    caplog.set_level("INFO", logger="neuroharness")
    task = get_task(TASK)
    calls = []
    real = task.run_model
    monkeypatch.setattr(task, "run_model", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    (first,) = run(TASK, "connectome-direct", [0], tmp_path)
    before = first.read_bytes()
    # seed 0 is finished: only seed 1 is computed
    paths = run(TASK, "connectome-direct", [0, 1], tmp_path)
    assert calls == [0, 1] and paths[0] == first and first.read_bytes() == before
    assert f"seed 0: kept {first} (finished before; --force reruns it)" in caplog.text
    caplog.clear()
    # other hyperparameters: the old record does not stand for this run
    run(TASK, "connectome-direct", [0], tmp_path, hyperparameters={"annotation": "witvliet_2020_8"})
    assert calls == [0, 1, 0]
    assert f"rerunning, {first.name} was made with other hyperparameters" in caplog.text
    run(TASK, "connectome-direct", [0], tmp_path, force=True)
    assert calls == [0, 1, 0, 0]
