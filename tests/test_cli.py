"""The ``neuroharness`` command line, called in-process through ``cli.main``."""
from __future__ import annotations

import csv
import importlib.util
import io
import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neuroharness import __version__, progress
from neuroharness.cli import main
from neuroharness.leaderboards import official_dir
from neuroharness.leaderboards.records import SCHEMA_VERSION, write_record

TASK = "celegans-structure-function"

needs_celegans = pytest.mark.skipif(
    importlib.util.find_spec("cect") is None or importlib.util.find_spec("wormneuroatlas") is None,
    reason="needs the cect and wormneuroatlas wheels installed (pip install --no-deps cect==0.3.5 wormneuroatlas==0.0.7.3)",
)


@pytest.fixture(autouse=True)
def _reset_quiet():
    yield
    progress.set_quiet(None)


def _record(model: str, seed: int, roc: float) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "task": {"name": TASK, "version": "1.0", "main_metric": "roc_auc", "higher_is_better": True},
        "datasets": [{"name": "celegans-funatlas", "version": "1.0", "content_sha256": "c" * 64}],
        "model": {"name": model, "description": "", "n_parameters": 1234, "hyperparameters": {}},
        "seed": seed,
        "split": "test",
        "split_sha256": "5" * 64,
        "metrics": {"roc_auc": roc, "average_precision": 0.25, "main_score": roc},
        "environment": {"git_commit": None, "packages": {}},
    }


@pytest.fixture
def results(tmp_path):
    # "a": 0.6, 0.8 -> 0.7000 ± 0.1414 (sqrt(0.02)); "b": 0.9, 0.9 -> 0.9000 ± 0.0000
    for model, rocs in {"a": [0.6, 0.8], "b": [0.9, 0.9]}.items():
        for seed, roc in enumerate(rocs):
            write_record(_record(model, seed, roc), tmp_path)
    return tmp_path


# -- listing and describing ----------------------------------------------------
def test_datasets_list(capsys):
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["celegans-activity", "celegans-connectome", "celegans-funatlas", "fisbe",
                                                      "nsd-algonauts2023", "nszed", "repod-schizophrenia",
                                                      "vesselgraph"]
    assert all(re.search(r" v1\.[01] +(prepared|not prepared) ", line) for line in lines)


def test_tasks_list(capsys):
    assert main(["tasks", "list"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^{TASK} +v1\.0 +Predict signal propagation", out, re.M)
    # one column for the versions, however long the longest task name
    assert len({line.index(" v1.0 ") for line in out.splitlines()}) == 1


def test_tasks_info(capsys):
    assert main(["tasks", "info", TASK]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^main_metric: +roc_auc$", out, re.M)
    assert re.search(r"^version: +1\.0$", out, re.M)
    assert re.search(r"^datasets: +celegans-funatlas 1\.0, celegans-connectome 1\.0$", out, re.M)
    assert re.search(r"^  roc_auc +higher is better", out, re.M)
    for model in ("chance", "connectome-direct", "connectome-multihop", "gnn-link"):
        assert re.search(rf"^  {model} ", out, re.M)


def test_tasks_info_json(capsys):
    assert main(["tasks", "info", TASK, "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["name"] == TASK and card["main_metric"] == "roc_auc"
    assert card["seeds"] == [0, 1, 2]
    assert set(card["models"]) == {"chance", "connectome-direct", "connectome-multihop", "gnn-link"}


# -- usage errors: bad command-line values, reported before any work -----------------
VALID_TASKS = (f"celegans-forecast, {TASK}, eeg-schizophrenia, fisbe-instance-segmentation, nsd-encoding, "
               "vesselgraph-link-prediction, "
               "vesselgraph-vessel-classification")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["datasets", "info", "nope"], "unknown dataset 'nope'; valid datasets: celegans-activity, celegans-connectome, celegans-funatlas, fisbe, nsd-algonauts2023, nszed, repod-schizophrenia, vesselgraph"),
        (["datasets", "prepare", "celegans-connectome", "nope"], "unknown dataset 'nope'; valid datasets: celegans-activity, celegans-connectome, celegans-funatlas, fisbe, nsd-algonauts2023, nszed, repod-schizophrenia, vesselgraph"),
        (["datasets", "prepare", "celegans-connectome", "celegans-funatlas", "--source", "x"],
         "--source applies to one dataset; got 2: celegans-connectome, celegans-funatlas"),
        (["datasets", "prepare", "fisbe", "--only", "x"],
         "dataset fisbe cannot be prepared in parts; only=['x'] (--only) applies to datasets made of selectable parts, "
         "e.g. the graphs of vesselgraph"),
        (["tasks", "info", "nope"], f"unknown task 'nope'; valid tasks: {VALID_TASKS}"),
        (["tasks", "template", "nope", "t.parquet"], f"unknown task 'nope'; valid tasks: {VALID_TASKS}"),
        (["tasks", "template", TASK, "t.csv"], "OUT t.csv: unsupported format '.csv'; use .parquet or .npz"),
        (["leaderboard", "nope"], f"unknown task 'nope'; valid tasks: {VALID_TASKS}"),
        (["leaderboard", TASK, "--results", "missing"], "missing: no such file or folder (--results: the folder of records)"),
        (["evaluate", "nope", "x.npz"], f"unknown task 'nope'; valid tasks: {VALID_TASKS}"),
        (["evaluate", TASK, "missing.npz"], "missing.npz: no such file or folder (the predictions to score)"),
        (["run", TASK, "--model", "nope"],
         "unknown model 'nope'; valid models: chance, connectome-direct, connectome-multihop, gnn-link"),
        (["run", TASK, "--model", "all", "chance"], "--model all runs every model; got it together with chance"),
        (["run", TASK, "--model", "chance", "--option", "graph=g1"],
         f"task {TASK} has no option 'graph'; valid options: none"),
        (["run", "vesselgraph-link-prediction", "--model", "adamic-adar", "--option", "graph=BALBc_no1",
          "--option", "graph=BALBc_no2"], "--option graph: given twice ('BALBc_no1' and 'BALBc_no2'); give each key once"),
        (["run", TASK, "--model", "chance", "--option", "graph"],
         "--option 'graph': expected KEY=VALUE, e.g. --option graph=BALBc_no1"),
        (["run", TASK, "--model", "chance", "--seeds", "0", "-1"],
         "--seeds 0 -1: seed -1 is negative; expected integers >= 0"),
        (["run", TASK, "--model", "chance", "--seeds", "1", "2", "1"],
         "--seeds 1 2 1: seed 1 is given twice; each seed writes one record"),
        (["run", TASK, "--model", "chance", "--hyperparameter", "epochs"],
         "--hyperparameter 'epochs': expected KEY=VALUE, e.g. --hyperparameter epochs=50"),
        (["run", TASK, "--model", "chance", "--hyperparameter", "epochs=3"],
         f"--hyperparameter epochs: model chance of task {TASK} has no hyperparameter 'epochs'; valid hyperparameters: none"),
        (["run", TASK, "--model", "connectome-multihop", "--hyperparameter", "epochs=3"],
         f"--hyperparameter epochs: model connectome-multihop of task {TASK} has no hyperparameter 'epochs'; "
         "valid hyperparameters: annotation, hops, alphas"),
    ],
)
def test_usage_errors_exit_2_before_any_work(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    from neuroharness.leaderboards import runner

    monkeypatch.setattr(runner, "run_models", lambda *a, **k: pytest.fail("run started despite a usage error"))
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == f"usage error: {message}"
    assert captured.out == ""
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_run_out_must_not_be_a_file(capsys, tmp_path):
    out = tmp_path / "results"
    out.write_text("not a folder")
    assert main(["run", TASK, "--model", "chance", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"usage error: --out {out}: is a file; expected a folder for the records (it is created if missing)")


def test_data_errors_print_error_not_usage_error(capsys, results):
    bad = results / "bad.json"
    bad.write_text(json.dumps({**_record("c", 0, 0.5), "seed": "zero"}))
    assert main(["leaderboard", TASK, "--results", str(results)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {bad}: seed = 'zero', expected an integer"


def test_usage_error_is_a_neuroharness_error():
    from neuroharness.errors import DataFormatError, NeuroharnessError, UsageError

    assert issubclass(UsageError, NeuroharnessError) and not issubclass(UsageError, DataFormatError)


# -- run: options, seeds and hyperparameters reach the runner ------------------------
def test_run_passes_options_seeds_and_hyperparameters(capsys, tmp_path, monkeypatch):
    from neuroharness.leaderboards import runner

    calls = []
    monkeypatch.delenv("NEUROHARNESS_DASK_SCHEDULER", raising=False)
    monkeypatch.setattr(runner, "run_models", lambda *a, **k: calls.append((a, k)) or
                        [Path(f"record{i}.json") for i in (1, 2)][:len(a[1])])
    out = tmp_path / "r"
    assert main(["run", TASK, "--model", "connectome-multihop", "connectome-direct", "--seeds", "4", "0",
                 "--out", str(out), "--hyperparameter", "annotation=cook_2019"]) == 0
    hp = {"annotation": "cook_2019"}
    assert calls == [((TASK, ["connectome-multihop", "connectome-direct"], [4, 0], out),
                      {"options": {}, "hyperparameters": hp, "force": False, "scheduler": None})]
    assert capsys.readouterr().out.split() == ["record1.json", "record2.json"]

    calls.clear()
    assert main(["run", TASK, "--model", "connectome-multihop", "--out", str(out), "--force",
                 "--hyperparameter", "hops=[1, 2]", "--hyperparameter", "alphas=[0.5]"]) == 0
    assert calls == [((TASK, ["connectome-multihop"], [0, 1, 2], out),  # the card's seeds
                      {"options": {}, "hyperparameters": {"hops": [1, 2], "alphas": [0.5]}, "force": True,
                       "scheduler": None})]

    calls.clear()
    assert main(["run", "vesselgraph-link-prediction", "--model", "adamic-adar", "--seeds", "0", "--out", str(out),
                 "--option", "graph=BALBc_no1", "--dask-scheduler", "tcp://10.0.0.5:8786"]) == 0
    assert calls == [(("vesselgraph-link-prediction", ["adamic-adar"], [0], out),
                      {"options": {"graph": "BALBc_no1"}, "hyperparameters": None, "force": False,
                       "scheduler": "tcp://10.0.0.5:8786"})]


def test_hyperparameter_values_are_json_literals_else_strings():
    from neuroharness.cli import _json_or_str

    assert [_json_or_str(v) for v in ("3", "1e-3", "true", "null", "[64, 64]", '"7"', "abc", "cook_2019", "")] == \
        [3, 1e-3, True, None, [64, 64], "7", "abc", "cook_2019", ""]


def test_usage_error_is_argparse_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["leaderboard", TASK, "--format", "html"])
    assert exc.value.code == 2
    assert "invalid choice: 'html'" in capsys.readouterr().err


# -- evaluate --------------------------------------------------------------------
@needs_celegans
def test_evaluate_perfect_npz(capsys, tmp_path):
    from neuroharness.tasks import get_task

    task = get_task(TASK)
    test = task.data().splits["test"]
    tpl = task.submission_template("test")
    path = tmp_path / "perfect.npz"
    np.savez(path, responding=tpl["responding"].to_numpy(dtype=str), stimulated=tpl["stimulated"].to_numpy(dtype=str),
             score=test.significant.astype(float), amplitude=test.amplitude)
    out_json = tmp_path / "metrics.json"
    assert main(["evaluate", TASK, str(path), "--json-out", str(out_json)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["main_score"] == 1.0
    assert metrics["roc_auc"] == 1.0 and metrics["average_precision"] == 1.0
    assert metrics["spearman"] == pytest.approx(1.0)
    assert metrics["n_pairs"] == 6385
    assert json.loads(out_json.read_text()) == metrics


@needs_celegans
def test_evaluate_bad_file_exits_2(capsys, tmp_path):
    path = tmp_path / "preds.pkl"
    path.write_bytes(b"\x80\x04N.")
    assert main(["evaluate", TASK, str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: unsupported format '.pkl'")


@needs_celegans
def test_tasks_template(capsys, tmp_path):
    out = tmp_path / "template.parquet"
    assert main(["tasks", "template", TASK, str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    import pandas as pd

    tpl = pd.read_parquet(out)
    assert list(tpl.columns) == ["responding", "stimulated"] and len(tpl) == 6385


# -- leaderboard -----------------------------------------------------------------
def test_leaderboard_markdown(capsys, results):
    assert main(["leaderboard", TASK, "--results", str(results), "--only-results"]) == 0
    out = capsys.readouterr().out
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if re.match(r"\| \d", line)]
    assert rows == [
        ["1", "b", "0.9000 ± 0.0000", "0.2500 ± 0.0000", "2", "1,234", "no (p = 0.295)"],
        ["2", "a", "0.7000 ± 0.1414", "0.2500 ± 0.0000", "2", "1,234", "–"],
    ]
    assert "| rank | model | roc_auc (main) | average_precision | seeds | params | gap vs next |" in out


def test_leaderboard_csv(capsys, results):
    assert main(["leaderboard", TASK, "--results", str(results), "--only-results", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["model"] for r in rows] == ["b", "a"]
    assert float(rows[1]["roc_auc_mean"]) == pytest.approx(0.7)
    assert float(rows[1]["roc_auc_std"]) == pytest.approx(2**0.5 / 10)


def test_leaderboard_json(capsys, results):
    assert main(["leaderboard", TASK, "--results", str(results), "--only-results", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["meta"]["task"] == TASK and data["meta"]["main_metric"] == "roc_auc"
    assert [(r["rank"], r["model"]) for r in data["rows"]] == [(1, "b"), (2, "a")]
    assert data["rows"][0]["roc_auc_mean"] == pytest.approx(0.9)


def test_leaderboard_official_records(capsys):
    assert len(list(official_dir(TASK).glob("*.json"))) == 12  # 4 baselines x 3 seeds, installed with the package
    code = main(["leaderboard", TASK])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = [line for line in captured.out.splitlines() if line.startswith("| ")]
    ranked = [line.split(" | ")[1] for line in lines[1:]]
    # the official baselines: 4 models x 3 seeds, the GNN first and chance last
    assert ranked == ["gnn-link", "connectome-multihop", "connectome-direct", "chance"]
    assert "| 2 | connectome-multihop | 0.6845 ± 0.0000 |" in captured.out
    assert all(line.split(" | ")[-3] == "3" for line in lines[1:])


# -- flags -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [["-q", "tasks", "list"], ["--quiet", "tasks", "list"], ["tasks", "-q", "list"], ["tasks", "list", "-q"]],
)
def test_quiet_before_and_after_verb(capsys, argv):
    progress.set_quiet(False)
    assert main(argv) == 0
    assert progress._QUIET is True
    assert TASK in capsys.readouterr().out


def test_not_quiet_by_default(capsys):
    progress.set_quiet(True)
    assert main(["tasks", "list"]) == 0
    assert progress._QUIET is False


def test_version_in_process(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"neuroharness {__version__}"


def test_console_script_version():
    script = Path(sys.executable).with_name("neuroharness")
    commands = [[sys.executable, "-m", "neuroharness.cli", "--version"]]
    if script.exists():
        commands.append([str(script), "--version"])
    elif shutil.which("neuroharness"):
        commands.append([shutil.which("neuroharness"), "--version"])
    for cmd in commands:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"neuroharness {__version__}"


# -- logging and progress ----------------------------------------------------------
@pytest.fixture
def watched(monkeypatch):
    """Neither CI nor NEUROHARNESS_QUIET (the test session sets both to silence the suite)."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("NEUROHARNESS_QUIET", raising=False)


def _run_saying(monkeypatch, msg):
    from neuroharness.leaderboards import runner

    monkeypatch.setattr(runner, "run_models", lambda *a, **k: progress.status(msg) or [])


@pytest.mark.parametrize("argv, env, shown", [
    ([], {}, True),
    (["-q"], {}, False),
    ([], {"CI": "true"}, False),
    ([], {"CI": "false"}, True),
    ([], {"NEUROHARNESS_QUIET": "1"}, False),
])
def test_cli_prints_status_lines_on_stderr_unless_quiet(capsys, monkeypatch, tmp_path, watched, argv, env, shown):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    _run_saying(monkeypatch, "[task] model seed 0: roc_auc = 0.5000")
    assert main([*argv, "run", TASK, "--model", "chance", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert err == ("[task] model seed 0: roc_auc = 0.5000\n" if shown else "")  # the plain message, no prefix


def test_library_default_logs_but_prints_nothing(capsys, caplog, watched):
    progress.set_quiet(None)
    with caplog.at_level(logging.INFO, logger="neuroharness"):
        progress.status("building the split")
    assert capsys.readouterr().err == ""
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [("neuroharness", logging.INFO, "building the split")]
    assert progress.logger.level == logging.NOTSET and progress._HANDLER not in progress.logger.handlers


def test_set_quiet_false_or_env_prints_status_lines(capsys, monkeypatch, watched):
    progress.set_quiet(False)
    progress.status("one")
    progress.set_quiet(True)
    progress.status("two")
    progress.logger.warning("a warning shows even when quiet")
    progress.set_quiet(None)
    progress.status("three")
    monkeypatch.setenv("NEUROHARNESS_QUIET", "0")
    progress.status("four")
    assert capsys.readouterr().err == "one\na warning shows even when quiet\nfour\n"
    monkeypatch.delenv("NEUROHARNESS_QUIET")
    progress.set_quiet(None)
    assert progress.logger.level == logging.NOTSET and progress._HANDLER not in progress.logger.handlers


class _Kernel:
    config = {"IPKernelApp": {"connection_file": "kernel.json"}}


def test_progress_bars_show_in_notebooks_but_not_when_quiet(monkeypatch, watched):
    import types

    import tqdm.auto  # noqa: F401 - picked before the fake kernel exists, as in a real session

    assert not progress.in_notebook()
    with progress.progress_bar(total=3) as bar:  # stderr is pytest's capture, not a terminal
        assert bar.disable
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: _Kernel()))
    assert progress.in_notebook()
    with progress.progress_bar(total=3) as bar:
        assert not bar.disable
    monkeypatch.setenv("CI", "1")
    with progress.progress_bar(total=3) as bar:
        assert bar.disable
    monkeypatch.delenv("CI")
    progress.set_quiet(True)
    with progress.progress_bar(total=3) as bar:
        assert bar.disable
    # a terminal IPython (no kernel) is not a notebook
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: types.SimpleNamespace(config={})))
    assert not progress.in_notebook()
