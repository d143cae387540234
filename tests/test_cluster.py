"""dask.distributed: `neuroharness run` spread over a LocalCluster of 2 worker processes gives the records of the
in-process run (same metrics, splits and dataset checksums), and a bad scheduler is a clear error."""
from __future__ import annotations

import json
import re

import pytest
from helpers import closed_port_url, load_script

from neuroharness import cluster
from neuroharness.cli import main
from neuroharness.errors import NeuroharnessError, UsageError
from neuroharness.leaderboards.runner import run_models

distributed = pytest.importorskip("distributed")

TASK = "eeg-schizophrenia"
MODELS = ["majority", "bandpower-logreg"]
SEEDS = [0, 1]


@pytest.fixture(scope="module")
def eeg_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    src = root / "release"
    load_script("make_eeg_fixture").write_fixture("nszed", src, n_patients=4, n_controls=4, seconds=24)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROHARNESS_HOME", str(root / "home"))
        from neuroharness.loaders import get_loader

        get_loader("nszed").prepare(src, force=True)
        yield root


@pytest.fixture(scope="module")
def local_cluster(eeg_home):
    # started after NEUROHARNESS_HOME points at the fixture's cache: the worker processes inherit it
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROHARNESS_HOME", str(eeg_home / "home"))
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                      silence_logs=40) as lc:
            yield lc


def _records(paths):
    return [json.loads(p.read_text()) for p in paths]


def test_run_on_a_local_cluster_equals_the_in_process_run(eeg_home, local_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROHARNESS_HOME", str(eeg_home / "home"))
    monkeypatch.delenv(cluster.ENV, raising=False)
    options = {"n_folds": "2"}
    here_paths = run_models(TASK, MODELS, SEEDS, tmp_path / "here", options=options)
    here = _records(here_paths)
    there_paths = run_models(TASK, MODELS, SEEDS, tmp_path / "there", options=options,
                             scheduler=local_cluster.scheduler_address)
    there = _records(there_paths)
    # (model, seed) order, whatever order the workers finished in
    assert [p.name for p in there_paths] == [p.name for p in here_paths]
    assert len(here) == len(there) == 4
    for a, b in zip(here, there):
        assert (a["model"]["name"], a["seed"]) == (b["model"]["name"], b["seed"])
        assert a["metrics"] == b["metrics"]
        assert a["split_sha256"] == b["split_sha256"] and a["datasets"] == b["datasets"]
    # the workers ran in other processes: the records' environment is theirs (same machine, same versions)
    assert {r["environment"]["python"] for r in there} == {here[0]["environment"]["python"]}


def test_rerun_on_the_cluster_keeps_finished_records(eeg_home, local_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROHARNESS_HOME", str(eeg_home / "home"))
    out = tmp_path / "out"
    first = run_models(TASK, ["majority"], [0], out, options={"n_folds": "2"})
    stamp = first[0].stat().st_mtime_ns
    monkeypatch.setenv(cluster.ENV, local_cluster.scheduler_address)  # the environment variable, not the argument
    again = run_models(TASK, ["majority"], [0, 1], out, options={"n_folds": "2"})
    assert again[0] == first[0] and again[0].stat().st_mtime_ns == stamp
    assert again[1].is_file()


def test_cli_flag(eeg_home, local_cluster, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEUROHARNESS_HOME", str(eeg_home / "home"))
    out = tmp_path / "cli"
    assert main(["run", TASK, "--model", "majority", "--seeds", "0", "--option", "n_folds=2", "--out", str(out),
                 "--dask-scheduler", local_cluster.scheduler_address]) == 0
    assert [p.name for p in out.iterdir()] == [capsys.readouterr().out.strip().rsplit("/", 1)[-1]]


def test_unreachable_scheduler_is_a_clear_error(eeg_home, tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROHARNESS_HOME", str(eeg_home / "home"))
    address = closed_port_url().replace("http://", "tcp://")
    with pytest.raises(NeuroharnessError, match=rf"could not reach the dask scheduler at {re.escape(address)} "
                                                r".*unset NEUROHARNESS_DASK_SCHEDULER"):
        list(cluster.run_parts(print, [(1,)], cluster.scheduler_address(address)))
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("value, expected", [(None, None), ("", None), ("  ", None),
                                             ("tcp://10.0.0.5:8786", "tcp://10.0.0.5:8786"),
                                             ("10.0.0.5:8786", "10.0.0.5:8786")])
def test_scheduler_address(monkeypatch, value, expected):
    monkeypatch.delenv(cluster.ENV, raising=False)
    assert cluster.scheduler_address(value) == expected
    monkeypatch.setenv(cluster.ENV, "tcp://env:1")
    assert cluster.scheduler_address(value) == (expected if value is not None else "tcp://env:1")


def test_scheduler_address_needs_a_port():
    with pytest.raises(UsageError, match=r"dask scheduler 'localhost': expected an address such as tcp://HOST:8786"):
        cluster.scheduler_address("localhost")
