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
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
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


# -- datasets prepare: one part per cluster task, the same store -------------------------------------------------
def _sources(root):
    """Small sources of every dataset made of parts, in their real raw layouts."""
    load_script("make_fisbe_fixture").write_release(root / "fisbe", 1, (16, 48, 48), 3, seed=0)
    load_script("make_vesselgraph_fixture").write_release(root / "vesselgraph", {"synthetic_graph_1": 400,
                                                                                "synthetic_graph_2": 300})
    load_script("make_nsd_challenge_fixture").write_release(root / "challenge", ("subj01", "subj02"))
    load_script("make_nsd_bucket_fixture").write_bucket(root / "bucket", ("subj01",))
    return {"fisbe": root / "fisbe", "vesselgraph": root / "vesselgraph", "nsd-challenge": root / "challenge",
            "nsd-bucket": root / "bucket", "nszed": root / "eeg"}


@pytest.fixture(scope="module")
def part_sources(eeg_home, tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    sources = _sources(root)
    import shutil

    shutil.copytree(eeg_home / "release", sources["nszed"])
    # one damaged recording: skipped, with the same reason, on both sides
    edf = sorted(sources["nszed"].rglob("*.edf"))[0]
    edf.write_bytes(edf.read_bytes()[: edf.stat().st_size // 2])
    return sources


def _prepare(name, source, home, monkeypatch, scheduler=None):
    from neuroharness.loaders import get_loader
    from neuroharness.loaders.base import root_attrs

    monkeypatch.setenv("NEUROHARNESS_HOME", str(home))
    dataset = "nsd-algonauts2023" if name.startswith("nsd") else name
    path = get_loader(dataset).prepare(source, dask_scheduler=scheduler)
    return path, root_attrs(path)


@pytest.mark.parametrize("name", ["fisbe", "vesselgraph", "nsd-challenge", "nsd-bucket", "nszed"])
def test_prepare_on_a_local_cluster_writes_the_in_process_store(name, part_sources, local_cluster, tmp_path,
                                                                 monkeypatch):
    monkeypatch.delenv(cluster.ENV, raising=False)
    here, a = _prepare(name, part_sources[name], tmp_path / "here", monkeypatch)
    before = _task_counts(local_cluster)
    there, b = _prepare(name, part_sources[name], tmp_path / "there", monkeypatch, local_cluster.scheduler_address)
    ran = {k: v - before.get(k, 0) for k, v in _task_counts(local_cluster).items() if v != before.get(k, 0)}
    assert a["content_sha256"] == b["content_sha256"]
    parts = json.loads(a["parts_sha256"])
    assert parts == json.loads(b["parts_sha256"]) and len(parts) >= 2 - (name == "nsd-bucket")
    # provenance other than the build time is equal too (the index order, the skips, the release facts)
    volatile = {"created"}
    assert {k: v for k, v in a.items() if k not in volatile} == {k: v for k, v in b.items() if k not in volatile}
    if name == "nsd-bucket":  # the parts were the sessions: one cluster task per hemisphere and session file
        import zarr

        sessions = zarr.open_group(str(there), mode="r")["subj01"].attrs["n_sessions"]
        assert ran == {"neuroharness-map": 2 * sessions}, ran
    else:  # one task per part (a skipped recording too)
        assert ran == {"neuroharness-part": len(json.loads(b["parts_sha256"])) + len(json.loads(b.get("skipped", "[]")))}
    if name == "nszed":
        skipped = json.loads(b["skipped"])
        assert len(skipped) == 1 and "truncated" in skipped[0]["reason"].lower()
    assert not list(there.parent.glob(".*tmp-*"))


def _task_counts(lc) -> dict:
    """{task prefix: tasks finished so far (entered the memory state)} on the cluster's scheduler."""
    def counts(dask_scheduler):
        return {name: p.state_counts["memory"] for name, p in dask_scheduler.task_prefixes.items()}

    with distributed.Client(lc.scheduler_address, set_as_default=False) as client:
        return client.run_on_scheduler(counts)


def test_map_ordered_yields_in_order(local_cluster):
    parts = [(i, 0.2 if i % 3 == 0 else 0.0) for i in range(7)]  # early parts finish last
    assert list(cluster.map_ordered(_sleep_then, parts, local_cluster.scheduler_address, window=3)) == list(range(7))
    assert list(cluster.map_ordered(_sleep_then, parts, None)) == list(range(7))
    with pytest.raises(ValueError, match="part 4"):
        list(cluster.map_ordered(_sleep_then, [*parts[:4], (-4, 0.0), *parts[5:]], local_cluster.scheduler_address))


def _sleep_then(i, seconds):
    import time

    time.sleep(seconds)
    if i < 0:
        raise ValueError(f"part {-i}")
    return i


def test_prepare_on_a_cluster_fails_cleanly_on_a_bad_part(part_sources, local_cluster, tmp_path, monkeypatch):
    """A part that fails on a worker is the loader's own error here, and nothing is left half-written."""
    import shutil

    src = tmp_path / "fisbe"
    shutil.copytree(part_sources["fisbe"], src)
    chunk = sorted(src.rglob("volumes/raw/0.0.0.0"))[-1]
    chunk.write_bytes(b"not a compressed chunk")
    home = tmp_path / "home"
    with pytest.raises(Exception, match=r"cannot be read .*the sample is damaged") as info:
        _prepare("fisbe", src, home, monkeypatch, local_cluster.scheduler_address)
    assert isinstance(info.value, NeuroharnessError)
    assert not [p for p in (home / "datasets").rglob("*") if p.is_dir() and p.name.endswith(".zarr")]
    assert not list((home / "datasets").rglob(".*tmp-*"))


def test_parts_need_paths_the_workers_see(local_cluster, tmp_path):
    lost = tmp_path / "only-here"
    with pytest.raises(UsageError, match=rf"the dask worker .* cannot see {re.escape(str(lost))}; the store must be on "
                                         r"a filesystem shared by this machine and every worker"):
        list(cluster.run_parts(print, [(1,)], local_cluster.scheduler_address, shared=[lost], purpose="the store"))


def test_no_scheduler_from_the_environment_inside_a_worker(local_cluster, monkeypatch):
    monkeypatch.setenv(cluster.ENV, local_cluster.scheduler_address)
    client = distributed.Client(local_cluster.scheduler_address, set_as_default=False)
    try:
        # workers inherited no variable, so set it there, then ask what a part running there would use
        assert client.submit(_address_seen_on_worker, local_cluster.scheduler_address, pure=False).result() is None
    finally:
        client.close()


def _address_seen_on_worker(address):
    import os

    os.environ[cluster.ENV] = address
    return cluster.scheduler_address()


# -- evaluate of FISBe: one sample per cluster task, the same metrics ----------------------------------------------
def _fisbe_predictions(task, path):
    """Label images from the GT of each test sample, with one neuron merged into another and one voxel noise
    blob, so that the metrics are neither perfect nor trivial."""
    import numpy as np

    from neuroharness.tasks.fisbe.instance_segmentation import write_predictions

    data = task.data({})
    preds = {}
    for sample in data.samples("test"):
        gt = data.gt(sample)
        labels = np.zeros(gt.shape[1:], np.uint16)
        for k in range(gt.shape[0]):
            labels[gt[k]] = k + 1
        labels[labels == 2] = 1
        labels[:2, :4, :4] = 9
        preds[sample] = labels
    return write_predictions(path, preds)


def test_fisbe_evaluate_on_a_local_cluster_equals_the_in_process_scores(part_sources, local_cluster, tmp_path,
                                                                         monkeypatch, capsys):
    monkeypatch.delenv(cluster.ENV, raising=False)
    _prepare("fisbe", part_sources["fisbe"], tmp_path / "home", monkeypatch)
    from neuroharness.tasks import get_task

    task = get_task("fisbe-instance-segmentation")
    preds = _fisbe_predictions(task, tmp_path / "preds.npz")
    here = task.evaluate(preds)
    with cluster.using(local_cluster.scheduler_address):
        there = task.evaluate(preds)
    assert there == here and len({k.split("/")[0] for k in here if k.startswith("SYN")}) == 2  # per-sample rows
    # a Zarr-folder submission is read by the workers the same way
    folder = _fisbe_predictions(task, tmp_path / "preds.zarr")
    before = _task_counts(local_cluster)
    with cluster.using(local_cluster.scheduler_address):
        assert task.evaluate(folder) == here
    after = _task_counts(local_cluster)
    assert after["neuroharness-part"] - before.get("neuroharness-part", 0) == 2  # one task per test sample
    assert 0 < here["main_score"] < 1
    # the command: --dask-scheduler, and the same metrics as JSON
    assert main(["evaluate", "fisbe-instance-segmentation", str(preds), "--json", "--dask-scheduler",
                 local_cluster.scheduler_address]) == 0
    assert json.loads(capsys.readouterr().out) == here


def test_evaluate_flag_only_where_scoring_is_spread(eeg_home, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("NEUROHARNESS_HOME", str(eeg_home / "home"))
    preds = tmp_path / "p.npz"
    preds.write_bytes(b"")
    assert main(["evaluate", TASK, str(preds), "--dask-scheduler", "tcp://127.0.0.1:1"]) == 2
    assert re.search(r"task eeg-schizophrenia scores in this process .*--dask-scheduler applies to evaluate of "
                     r"fisbe-instance-segmentation", capsys.readouterr().err)


def test_prepare_cli_flag(part_sources, local_cluster, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEUROHARNESS_HOME", str(tmp_path / "home"))
    assert main(["datasets", "prepare", "vesselgraph", "--source", str(part_sources["vesselgraph"]),
                 "--dask-scheduler", local_cluster.scheduler_address]) == 0
    path = capsys.readouterr().out.strip()
    from neuroharness.loaders.base import root_attrs

    assert sorted(json.loads(root_attrs(path)["parts_sha256"])) == ["synthetic_graph_1", "synthetic_graph_2"]
    assert main(["datasets", "prepare", "vesselgraph", "--from-hub", "org/x", "--dask-scheduler", "tcp://h:1"]) == 2
    assert "--from-hub installs the store as it was published; --dask-scheduler" in capsys.readouterr().err
