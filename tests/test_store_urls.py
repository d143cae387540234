"""Stores read from fsspec URLs: a remote cache (``NEUROHARNESS_HOME=s3://...``), ``open_dataset(store=URL)``,
``file://`` and ``https://``, against a real local S3 server and a real local HTTP server.

Stores are prepared once into a local cache: the C. elegans connectome and functional atlas from the files
the cect and wormneuroatlas wheels ship (skipped without them), and small fixtures of a flat dataset made
of worms (celegans-activity), and of two tree datasets (vesselgraph: one synthetic graph; nszed: a short
EEG fixture). The cache's ``datasets/`` folder is uploaded to a moto S3 server on 127.0.0.1 with s3fs;
reads go through anonymous s3fs pointed at it by ``$NEUROHARNESS_S3_ENDPOINT``, as a user's would.
Everything read remotely must equal the local store (values, attributes, checksums recomputed from the
data read), tasks run from the remote cache through the CLI must write the records the local runs wrote,
and nothing may ever be written into a remote cache.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from helpers import load_script

from neuroharness.errors import CacheError, DataFormatError, NeuroharnessError

moto_server = pytest.importorskip("moto.server")
s3fs = pytest.importorskip("s3fs")

HAVE_CELEGANS = all(importlib.util.find_spec(p) is not None for p in ("cect", "wormneuroatlas"))
needs_celegans = pytest.mark.skipif(not HAVE_CELEGANS, reason="needs the cect and wormneuroatlas wheels installed "
                                    "(pip install --no-deps cect==0.3.5 wormneuroatlas==0.0.7.3)")
BUCKET = "neuroharness-stores"
PREFIX = f"s3://{BUCKET}/cache"
TREES = ("vesselgraph", "nszed")
FIXTURES = ("celegans-activity", *TREES)
CELEGANS = ("celegans-connectome", "celegans-funatlas")


def _version(name: str) -> str:
    from neuroharness.loaders import get_card

    return get_card(name).version


def _rel(name: str) -> str:
    return f"datasets/{name}/{_version(name)}.zarr"


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- the local cache and the S3 server ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """``(home, names)``: a local cache holding the fixture stores and, with the wheels, the C. elegans ones."""
    from neuroharness.loaders import prepare

    base = tmp_path_factory.mktemp("store_urls")
    home = base / "home"
    names = list(FIXTURES) + (list(CELEGANS) if HAVE_CELEGANS else [])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROHARNESS_HOME", str(home))
        load_script("make_celegans_activity_fixture").write_activity_fixture(base / "activity", n_worms=14, seed=1,
                                                                           max_len=1400)
        prepare("celegans-activity", source=base / "activity")
        vg = load_script("make_vesselgraph_fixture")
        nodes, edges, _ = vg.synthetic_graph(1500, seed=0)
        vg.write_graph(base / "vg", "vgtest", nodes, edges)
        prepare("vesselgraph", source=base / "vg")
        load_script("make_eeg_fixture").write_fixture("nszed", base / "nszed", seconds=20)
        prepare("nszed", source=base / "nszed")
        for name in CELEGANS if HAVE_CELEGANS else ():
            prepare(name)
    return home, names


@pytest.fixture(scope="module")
def server(local):
    """``(endpoint, s3fs filesystem with write access)``: a moto S3 server on 127.0.0.1 whose public-read
    bucket holds the local cache's ``datasets/`` below ``cache/``."""
    home, _ = local
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    srv = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    try:
        host, port = srv.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        fs = s3fs.S3FileSystem(key="fixture", secret="fixture", client_kwargs={"endpoint_url": endpoint},
                               skip_instance_cache=True)
        fs.mkdir(BUCKET, acl="public-read")
        fs.put(str(home / "datasets"), f"{BUCKET}/cache/datasets", recursive=True)
        yield endpoint, fs
    finally:
        srv.stop()


@pytest.fixture
def s3(server, monkeypatch):
    """The S3 server for this test: ``$NEUROHARNESS_S3_ENDPOINT`` set, no AWS credentials (anonymous reads)."""
    endpoint, fs = server
    monkeypatch.setenv("NEUROHARNESS_S3_ENDPOINT", endpoint)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    fs.invalidate_cache()
    return fs


def _assert_same(remote, here, name):
    """Same values, dims, coords and attributes; for a tree, in every group."""
    if isinstance(here, xr.DataTree):
        assert isinstance(remote, xr.DataTree), name
        assert sorted(n.path for n in remote.subtree) == sorted(n.path for n in here.subtree)
        for node in here.subtree:
            xr.testing.assert_identical(remote[node.path].to_dataset(inherit=False).load(),
                                        node.to_dataset(inherit=False).load())
    else:
        xr.testing.assert_identical(remote.load(), here.load())


def _local_open(home, name):
    from neuroharness.loaders import open_dataset

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROHARNESS_HOME", str(home))
        return open_dataset(name).load()


# -- reading -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [*FIXTURES, *(pytest.param(n, marks=needs_celegans) for n in CELEGANS)])
def test_remote_home_reads_every_store_as_the_local_one(name, local, s3, monkeypatch):
    """``NEUROHARNESS_HOME=s3://...``: values, metadata and checksums equal the local store's, and the
    checksums recomputed from the bytes read over S3 equal the recorded ones."""
    from neuroharness.loaders import get_loader, open_dataset
    from neuroharness.loaders.base import content_checksum, tree_checksums

    home, _ = local
    here = _local_open(home, name)
    loader = get_loader(name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROHARNESS_HOME", str(home))
        attrs_here, sha_here = loader.root_attrs(), loader.content_sha256()
        parts_here = loader.part_checksums() if name in TREES else None
    monkeypatch.setenv("NEUROHARNESS_HOME", PREFIX)
    location = loader.store_location()
    assert str(location) == f"{PREFIX}/{_rel(name)}" and not location.is_local
    remote = open_dataset(name)
    _assert_same(remote, here, name)
    assert loader.root_attrs() == attrs_here
    assert loader.content_sha256() == sha_here
    if name in TREES:
        assert loader.part_checksums() == parts_here
        content, parts = tree_checksums(remote)
        assert (content, parts) == (sha_here, parts_here)
    else:
        assert content_checksum(remote) == sha_here
    # prepare reuses a store that is already in the remote cache, as in a local one, and returns its URL
    assert loader.prepare() == str(location)


@pytest.mark.parametrize("scheme", ["s3", "file", "path"])
def test_open_dataset_store_argument(scheme, local, s3, monkeypatch, tmp_path):
    """``open_dataset(name, store=...)`` opens that store directly (nothing prepared, whatever the cache)."""
    from neuroharness.loaders import open_dataset

    home, _ = local
    monkeypatch.setenv("NEUROHARNESS_HOME", str(tmp_path / "empty-cache"))
    for name in ("celegans-activity", "vesselgraph"):
        where = {"s3": f"{PREFIX}/{_rel(name)}", "file": (home / _rel(name)).as_uri(),
                 "path": str(home / _rel(name))}[scheme]
        _assert_same(open_dataset(name, store=where), _local_open(home, name), name)
        _assert_same(open_dataset(name, _version(name), store=where), _local_open(home, name), name)
    assert not (tmp_path / "empty-cache" / "datasets").exists()


def test_file_url_home_is_a_local_cache(local, monkeypatch):
    """``NEUROHARNESS_HOME=file:///...`` is the folder itself: read and written like a local path."""
    from neuroharness.loaders import get_loader, open_dataset, prepare

    home, _ = local
    monkeypatch.setenv("NEUROHARNESS_HOME", home.as_uri())
    location = get_loader("vesselgraph").store_location()
    assert location.is_local and location.path == home / _rel("vesselgraph")
    assert prepare("vesselgraph") == home / _rel("vesselgraph")  # reused, as a Path
    _assert_same(open_dataset("vesselgraph"), _local_open(home, "vesselgraph"), "vesselgraph")


def test_s3_is_anonymous_unless_credentials_are_configured(monkeypatch, tmp_path):
    from neuroharness.loaders.location import storage_options

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("NEUROHARNESS_STORAGE_OPTIONS", raising=False)
    monkeypatch.setenv("NEUROHARNESS_S3_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none-config"))
    assert storage_options("s3://b/x") == {"anon": True, "client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}}
    assert storage_options("https://h/x") == {} and storage_options("gs://b/x") == {}
    creds = tmp_path / "credentials"
    creds.write_text("[default]\naws_access_key_id = AKIAFIXTURE\naws_secret_access_key = fixture\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    assert storage_options("s3://b/x")["anon"] is False
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFIXTURE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fixture")
    assert storage_options("s3://b/x")["anon"] is False
    monkeypatch.setenv("NEUROHARNESS_STORAGE_OPTIONS", '{"s3": {"anon": true, "requester_pays": true}}')
    assert storage_options("s3://b/x", {"client_kwargs": {}}) == {"anon": True, "requester_pays": True,
                                                                  "client_kwargs": {}}


def test_store_argument_checks_what_it_opens(local, s3, tmp_path):
    from neuroharness.loaders import open_dataset

    with pytest.raises(DataFormatError, match=rf"no vesselgraph store at {tmp_path} \(no \.zmetadata"):
        open_dataset("vesselgraph", store=tmp_path)  # a folder, but no store

    nszed = f"{PREFIX}/{_rel('nszed')}"
    with pytest.raises(DataFormatError, match=rf"{nszed}: a store of dataset 'nszed' .*not of 'vesselgraph'"):
        open_dataset("vesselgraph", store=nszed)
    with pytest.raises(DataFormatError, match=rf"{nszed}: nszed version '{_version('nszed')}' .*not the requested "
                                              r"'0\.9'"):
        open_dataset("nszed", "0.9", store=nszed)
    missing = f"s3://{BUCKET}/nowhere/vesselgraph.zarr"
    with pytest.raises(DataFormatError, match=rf"no vesselgraph store at {missing} \(no \.zmetadata"):
        open_dataset("vesselgraph", store=missing)
    with pytest.raises(NeuroharnessError, match="storage_options apply to store=URL"):
        open_dataset("vesselgraph", storage_options={"anon": True})


def test_storage_options_reach_s3fs_without_the_environment(local, server, monkeypatch):
    """Without ``$NEUROHARNESS_S3_ENDPOINT``, ``storage_options`` (or ``$NEUROHARNESS_STORAGE_OPTIONS``) say
    where the server is."""
    from neuroharness.loaders import open_dataset

    endpoint, _ = server
    home, _ = local
    monkeypatch.delenv("NEUROHARNESS_S3_ENDPOINT", raising=False)
    here = _local_open(home, "vesselgraph")
    url = f"{PREFIX}/{_rel('vesselgraph')}"
    options = {"anon": True, "client_kwargs": {"endpoint_url": endpoint}}
    _assert_same(open_dataset("vesselgraph", store=url, storage_options=options), here, "vesselgraph")
    monkeypatch.setenv("NEUROHARNESS_STORAGE_OPTIONS", json.dumps({"s3": options}))
    monkeypatch.setenv("NEUROHARNESS_HOME", PREFIX)
    _assert_same(open_dataset("vesselgraph"), here, "vesselgraph")
    monkeypatch.setenv("NEUROHARNESS_STORAGE_OPTIONS", "[1, 2]")
    with pytest.raises(NeuroharnessError, match=r"\$NEUROHARNESS_STORAGE_OPTIONS is '\[1, 2\]'.*expected a JSON "
                                                "object"):
        open_dataset("vesselgraph")


def test_ragged_activity_reads_worms_over_s3(local, s3):
    """The forecast task's fast chunk reader works through the location, and travels to worker processes."""
    from neuroharness.tasks.celegans.windows import RaggedActivity

    home, _ = local
    here = RaggedActivity(home / _rel("celegans-activity"))
    remote = RaggedActivity(f"{PREFIX}/{_rel('celegans-activity')}")
    assert remote._chunks is not None  # the plain chunk reader, not zarr's, as for a local store
    copy = pickle.loads(pickle.dumps(remote))
    assert len(remote) == len(here) == 14
    for w in (0, 5, 13):
        np.testing.assert_array_equal(remote.worm(w), here.worm(w))
        np.testing.assert_array_equal(copy.worm(w, 10, 200), here.worm(w, 10, 200))
    np.testing.assert_array_equal(remote.labeled, here.labeled)


# -- tasks end to end ------------------------------------------------------------------------------------------------
RUNS = [
    pytest.param("celegans-structure-function", "connectome-direct", {}, marks=needs_celegans,
                 id="structure-function"),
    pytest.param("celegans-forecast", "naive", {}, marks=needs_celegans, id="forecast"),
    pytest.param("eeg-schizophrenia", "majority", {}, id="eeg"),
    pytest.param("vesselgraph-link-prediction", "common-neighbours", {"graph": "vgtest"}, id="link-prediction"),
    pytest.param("vesselgraph-vessel-classification", "majority", {"graph": "vgtest"}, id="vessel-classification"),
]


def _run(task, model, options, out):
    from neuroharness.cli import main
    from neuroharness.leaderboards.records import read_records
    from neuroharness.tasks import get_task

    get_task(task).clear_cache()  # the data view is cached by checksums, which are the same on both sides
    argv = ["-q", "run", task, "--model", model, "--seeds", "0", "--out", str(out)]
    for k, v in options.items():
        argv += ["--option", f"{k}={v}"]
    assert main(argv) == 0
    ((_, record),) = read_records(out)
    get_task(task).clear_cache()
    return record


@pytest.mark.parametrize("task,model,options", RUNS)
def test_task_runs_from_the_remote_cache_as_from_the_local_one(task, model, options, local, s3, monkeypatch,
                                                               tmp_path):
    home, _ = local
    monkeypatch.setenv("NEUROHARNESS_HOME", str(home))
    here = _run(task, model, options, tmp_path / "local")
    monkeypatch.setenv("NEUROHARNESS_HOME", PREFIX)
    remote = _run(task, model, options, tmp_path / "remote")
    for key in ("metrics", "validation_metrics", "datasets", "split_sha256", "task"):
        assert remote[key] == here[key], key
    assert remote["model"]["hyperparameters"] == here["model"]["hyperparameters"]


def test_link_prediction_reads_a_split_published_with_the_stores(local, s3, monkeypatch, tmp_path):
    """A remote cache holding ``splits/`` too (the whole local cache uploaded) serves the split: nothing is built."""
    import neuroharness.tasks.vesselgraph.link_prediction as lp
    from neuroharness.tasks import get_task

    home, _ = local
    monkeypatch.setenv("NEUROHARNESS_HOME", str(home))
    task = get_task("vesselgraph-link-prediction")
    task.clear_cache()
    here = task.data({"graph": "vgtest"})  # builds and caches the split locally if no test did yet
    prefix = f"{BUCKET}/with-splits"
    s3.put(str(home / "datasets" / "vesselgraph"), f"{prefix}/datasets/vesselgraph", recursive=True)
    s3.put(str(home / "splits"), f"{prefix}/splits", recursive=True)
    monkeypatch.setenv("NEUROHARNESS_HOME", f"s3://{prefix}")

    def boom(*a, **k):
        raise AssertionError("the split was rebuilt")

    monkeypatch.setattr(lp, "build_split", boom)
    task.clear_cache()
    remote = task.data({"graph": "vgtest"})
    for split in ("test", "val"):
        assert task.ids(remote, split).equals(task.ids(here, split))
    monkeypatch.setenv("NEUROHARNESS_HOME", PREFIX)  # no splits/ there: built in memory, which boom forbids
    task.clear_cache()
    with pytest.raises(AssertionError, match="rebuilt"):
        task.data({"graph": "vgtest"})
    task.clear_cache()


def test_fisbe_from_the_remote_cache_as_from_the_local_one(local, s3, monkeypatch, tmp_path):
    """FISBe (OME-NGFF sample groups with nested label images) read through the location: values and checksums,
    the label chunks listed over S3 (not every grid position read), and a threshold-cluster run's records."""
    from neuroharness.loaders import get_loader, open_dataset, prepare
    from neuroharness.loaders.base import tree_checksums
    from neuroharness.tasks import get_task

    home = tmp_path / "fisbe-home"
    monkeypatch.setenv("NEUROHARNESS_HOME", str(home))
    load_script("make_fisbe_fixture").write_release(tmp_path / "raw", n_per_split=1, shape=(64, 128, 128),
                                                    n_neurons=4, seed=0)
    prepare("fisbe", source=tmp_path / "raw")
    loader, task = get_loader("fisbe"), get_task("fisbe-instance-segmentation")
    here = open_dataset("fisbe").load()
    sha, parts = loader.content_sha256(), loader.part_checksums()
    task.clear_cache()
    data_here = task.data()
    record_here = _run("fisbe-instance-segmentation", "threshold-cluster", {}, tmp_path / "local")
    prefix = f"{BUCKET}/fisbe"
    s3.put(str(home / "datasets"), f"{prefix}/datasets", recursive=True)
    monkeypatch.setenv("NEUROHARNESS_HOME", f"s3://{prefix}")
    assert not loader.store_location().is_local
    remote = open_dataset("fisbe")
    _assert_same(remote, here, "fisbe")
    assert (loader.content_sha256(), loader.part_checksums()) == (sha, parts)
    assert tree_checksums(remote) == (sha, parts)
    task.clear_cache()
    data = task.data()
    assert not data.location.is_local and str(data.location) == f"s3://{prefix}/{_rel('fisbe')}"
    sample = data.samples("test")[0]
    group = data._root[sample]["labels"]
    image = group[sorted(group.group_keys())[0]]["0"]
    stored = data._stored_chunks(sample, image)
    assert stored == data_here._stored_chunks(sample, image) and 0 < len(stored) < image.nchunks
    np.testing.assert_array_equal(data.gt(sample), data_here.gt(sample))
    np.testing.assert_array_equal(data.raw(sample), data_here.raw(sample))
    task.clear_cache()
    record = _run("fisbe-instance-segmentation", "threshold-cluster", {}, tmp_path / "remote")
    for key in ("metrics", "validation_metrics", "datasets", "split_sha256", "task"):
        assert record[key] == record_here[key], key


# -- nothing is written into a remote cache ----------------------------------------------------------------------------
def _listing(fs) -> list[str]:
    fs.invalidate_cache()
    return sorted(fs.find(BUCKET))


def test_prepare_with_a_remote_home_is_read_only(local, s3, monkeypatch, tmp_path, capsys):
    from neuroharness.cli import main
    from neuroharness.loaders import get_loader, prepare

    home, _ = local
    before, home_before = _listing(s3), _files(home / "datasets")
    monkeypatch.chdir(tmp_path)  # a URL mistaken for a path would be created here
    empty = f"s3://{BUCKET}/empty"
    monkeypatch.setenv("NEUROHARNESS_HOME", empty)
    url = f"{empty}/{_rel('vesselgraph')}"
    with pytest.raises(CacheError, match=rf"cannot prepare vesselgraph {_version('vesselgraph')}: NEUROHARNESS_HOME "
                                         rf"is the remote cache {empty}, which is read-only and has no store {url}\. "
                                         r"Publish into it .*aws s3 sync DIR/datasets/vesselgraph/"):
        prepare("vesselgraph", source=tmp_path)
    assert main(["datasets", "prepare", "nszed", "--source", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"error: cannot prepare nszed {_version('nszed')}" in err and "read-only" in err
    monkeypatch.setenv("NEUROHARNESS_HOME", PREFIX)  # the stores are there: --force would rebuild one
    with pytest.raises(CacheError, match=rf"cannot rebuild \(--force\) vesselgraph .* {PREFIX}, which is read-only"):
        prepare("vesselgraph", force=True)
    # what else writes a cache: locks, downloads, a local path for writers
    from neuroharness.loaders import cache

    for fn in (lambda: cache.lock("x").__enter__(), cache.downloads_dir, cache.home,
               lambda: get_loader("vesselgraph").store_path()):
        with pytest.raises(CacheError, match=rf"{PREFIX}"):
            fn()
    assert _listing(s3) == before
    assert _files(home / "datasets") == home_before
    assert not any(tmp_path.iterdir())


def test_missing_store_in_a_remote_home_names_its_url(local, s3, monkeypatch, tmp_path):
    from neuroharness.loaders import get_loader, open_dataset
    from neuroharness.tasks import get_task

    monkeypatch.chdir(tmp_path)
    empty = f"s3://{BUCKET}/empty"
    monkeypatch.setenv("NEUROHARNESS_HOME", empty)
    before = _listing(s3)
    url = f"{empty}/{_rel('nszed')}"
    for fn in (lambda: open_dataset("nszed"), lambda: get_loader("nszed").content_sha256(),
               lambda: get_task("eeg-schizophrenia").data()):
        with pytest.raises(CacheError, match=rf"cannot open nszed .*read-only and has no store {url}\."):
            fn()
    with pytest.raises(CacheError, match=rf"{empty}/{_rel('vesselgraph')}"):
        get_task("vesselgraph-link-prediction").data({"graph": "vgtest"})
    assert _listing(s3) == before and not any(tmp_path.iterdir())


# -- https (read-only, no listing) -------------------------------------------------------------------------------------
def test_https_store_through_consolidated_metadata(local, http_server, monkeypatch):
    """A plain HTTP server that serves files and cannot list folders: the consolidated metadata is enough."""
    from neuroharness.loaders import get_loader, open_dataset

    home, _ = local
    for name in ("vesselgraph", "celegans-activity"):
        for rel, data in _files(home / _rel(name)).items():
            http_server.add(f"/cache/{_rel(name)}/{rel}", data)
    for name in ("vesselgraph", "celegans-activity"):
        here = _local_open(home, name)
        _assert_same(open_dataset(name, store=http_server.url(f"/cache/{_rel(name)}")), here, name)
        monkeypatch.setenv("NEUROHARNESS_HOME", http_server.url("/cache"))
        _assert_same(open_dataset(name), here, name)
        monkeypatch.setenv("NEUROHARNESS_HOME", str(home))
        want = get_loader(name).content_sha256()
        monkeypatch.setenv("NEUROHARNESS_HOME", http_server.url("/cache") + "/")
        assert get_loader(name).content_sha256() == want
    assert {r.method for r in http_server.requests} <= {"GET", "HEAD"}
    # a server that cannot be reached is not mistaken for a missing store
    with pytest.raises(NeuroharnessError, match=r"http://127\.0\.0\.1:9/x\.zarr: cannot read \(ClientConnectorError"):
        open_dataset("celegans-activity", store="http://127.0.0.1:9/x.zarr")
    with pytest.raises(DataFormatError, match=rf"no celegans-activity store at {http_server.base}/nothing\.zarr"):
        open_dataset("celegans-activity", store=http_server.url("/nothing.zarr"))


# -- hf:// (the Hub's file system, against a local stand-in for the Hub) ------------------------------------------------
def test_hf_store_and_hf_home(local, monkeypatch, tmp_path):
    """A store published at ``<version>.zarr`` of a dataset repository (the ``datasets publish`` layout) opens with
    ``store="hf://datasets/ORG/NAME@REV/<version>.zarr"``; a repository in the cache layout is a remote cache."""
    hub_server = pytest.importorskip("hub_server")
    from huggingface_hub import HfApi

    from neuroharness.loaders import get_loader, open_dataset, prepare

    home, _ = local
    server = hub_server.HubServer()
    try:
        monkeypatch.setenv("HF_ENDPOINT", server.base)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        api = HfApi(endpoint=server.base)
        for repo, path in (("org/vesselgraph", f"{_version('vesselgraph')}.zarr"), ("org/cache", _rel("vesselgraph"))):
            api.create_repo(repo, repo_type="dataset")
            api.upload_folder(folder_path=str(home / _rel("vesselgraph")), path_in_repo=path, repo_id=repo,
                              repo_type="dataset")
        commit = server.head("org/vesselgraph")
        here = _local_open(home, "vesselgraph")
        monkeypatch.setenv("NEUROHARNESS_HOME", str(tmp_path / "unused"))
        url = f"hf://datasets/org/vesselgraph@{commit}/{_version('vesselgraph')}.zarr"
        _assert_same(open_dataset("vesselgraph", store=url), here, "vesselgraph")
        monkeypatch.setenv("NEUROHARNESS_HOME", str(home))
        want = get_loader("vesselgraph").content_sha256(), get_loader("vesselgraph").part_checksums()
        monkeypatch.setenv("NEUROHARNESS_HOME", "hf://datasets/org/cache")
        _assert_same(open_dataset("vesselgraph"), here, "vesselgraph")
        assert (get_loader("vesselgraph").content_sha256(), get_loader("vesselgraph").part_checksums()) == want
        with pytest.raises(CacheError, match=r"cannot prepare nszed .*hf://datasets/org/cache/datasets/nszed/.*"
                                             r"`neuroharness datasets publish`"):
            prepare("nszed")
        assert sorted(server.files("org/cache")) == sorted(
            [".gitattributes"] + [f"{_rel('vesselgraph')}/{k}" for k in _files(home / _rel("vesselgraph"))])
    finally:
        server.close()
    assert not (tmp_path / "unused").exists()
