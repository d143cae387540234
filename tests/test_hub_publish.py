"""Stores and result records on the Hugging Face Hub, against a local server speaking the Hub's protocol.

``tests/hub_server.py`` implements the endpoints huggingface_hub 2.4 calls (repo create, preupload, NDJSON
commit, revision info, tree listing, resolve); ``HF_ENDPOINT`` points the client at it. Stores: a
VesselGraph fixture (a tree store, two graphs) and, where the cect wheel is installed, the real
celegans-connectome store.
"""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from neuroharness.cli import main
from neuroharness.errors import ChecksumError, DataFormatError, NeuroharnessError, UsageError
from neuroharness.loaders import get_loader, hub, open_dataset, prepare
from neuroharness.loaders.base import content_checksum, root_attrs, tree_checksums
from hub_server import HubServer
from helpers import load_script

HAVE_CECT = importlib.util.find_spec("cect") is not None
TOKEN = "hf_local_test_token"
VG = "vesselgraph"
GRAPHS = {"synthetic_graph_1": 300, "synthetic_graph_2": 200}


# -- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture
def server(monkeypatch, tmp_path):
    """The local Hub, requiring a token for writes; huggingface_hub's own config in a temp folder."""
    s = HubServer(token=TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", s.base)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def source_home(tmp_path_factory):
    """A cache holding the prepared stores that the tests publish (prepared once per module)."""
    home = tmp_path_factory.mktemp("source_home")
    src = tmp_path_factory.mktemp("vg_release")
    load_script("make_vesselgraph_fixture").write_release(src, GRAPHS, seed=3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROHARNESS_HOME", str(home))
        prepare(VG, source=src)
        if HAVE_CECT:
            prepare("celegans-connectome")
    return {"home": home, "vg_source": src}


@pytest.fixture
def at_source(source_home, monkeypatch):
    monkeypatch.setenv("NEUROHARNESS_HOME", str(source_home["home"]))
    return source_home["home"]


def _store(home: Path, name: str = VG) -> Path:
    return home / "datasets" / name / "1.0.zarr"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _empty_home(monkeypatch, tmp_path) -> Path:
    home = tmp_path / "fresh_home"
    monkeypatch.setenv("NEUROHARNESS_HOME", str(home))
    return home


def _leftovers(home: Path, name: str = VG) -> list[str]:
    folder = home / "datasets" / name
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name) if folder.is_dir() else []


def _tree_equal(a: xr.DataTree, b: xr.DataTree) -> None:
    assert sorted(n.path for n in a.subtree) == sorted(n.path for n in b.subtree)
    for node in a.subtree:
        xr.testing.assert_equal(node.to_dataset(inherit=False), b[node.path].to_dataset(inherit=False))


# -- publish, then prepare --from-hub into an empty cache -------------------------------------------------
def test_publish_then_prepare_from_hub_gives_the_same_store(server, at_source, tmp_path, monkeypatch):
    original = _store(at_source)
    before = root_attrs(original)
    published = hub.publish_store(VG, "my-org/vesselgraph")
    # one commit on main beyond the repository's initial one, holding the store byte for byte and the card
    history = server.history("my-org/vesselgraph")
    assert [c.sha for c in history[:1]] == [published.commit] and len(history) == 2
    remote = server.files("my-org/vesselgraph")
    store_files = {f"1.0.zarr/{k}": v for k, v in _files(original).items()}
    assert {k: v for k, v in remote.items() if k.startswith("1.0.zarr/")} == store_files
    assert set(remote) == set(store_files) | {"README.md", ".gitattributes"}
    assert published.n_files == len(store_files) + 1

    home = _empty_home(monkeypatch, tmp_path)
    path = hub.prepare_from_hub(VG, "my-org/vesselgraph")
    assert path == _store(home) and _leftovers(home) == []
    attrs = root_attrs(path)
    assert attrs["content_sha256"] == before["content_sha256"] and attrs["parts_sha256"] == before["parts_sha256"]
    assert attrs["source"] == f"huggingface datasets/my-org/vesselgraph@{published.commit}"
    assert attrs["source_argument"] == "hf://datasets/my-org/vesselgraph@main"
    assert attrs["upstream_source"] == before["source"]
    # the content checksum recomputed from the installed data, and the values read through open_dataset
    tree = xr.open_datatree(path, engine="zarr", consolidated=True, chunks=None)
    content, parts = tree_checksums(tree)
    assert content == before["content_sha256"] and parts == json.loads(before["parts_sha256"])
    got = open_dataset(VG)
    monkeypatch.setenv("NEUROHARNESS_HOME", str(at_source))
    _tree_equal(got, open_dataset(VG))
    # tasks see the same dataset: the part checksums they record are the original ones
    monkeypatch.setenv("NEUROHARNESS_HOME", str(home))
    assert get_loader(VG).part_checksums() == json.loads(before["parts_sha256"])
    # regular uploads only (no LFS or Xet transfer, although hf_xet is installed) and no endpoint left out
    assert server.unknown == []
    assert {(m, re.sub(r"/my-org/vesselgraph/|[0-9a-f]{40}|main|1\.0\.zarr/.*|README\.md", "~", p))
            for m, p in server.requests if p != "/api/agent-harnesses"} == {
        ("POST", "/api/repos/create"), ("GET", "/api/datasets~revision/~"), ("POST", "/api/validate-yaml"),
        ("POST", "/api/datasets~preupload/~"), ("POST", "/api/datasets~commit/~"), ("GET", "/api/datasets~tree/~"),
        ("HEAD", "/datasets~resolve/~/~"), ("GET", "/datasets~resolve/~/~")}


@pytest.mark.skipif(not HAVE_CECT, reason="needs the cect wheel installed (pip install --no-deps cect==0.3.5)")
def test_real_connectome_store_round_trips(server, at_source, tmp_path, monkeypatch):
    name = "celegans-connectome"
    before = root_attrs(_store(at_source, name))
    original = open_dataset(name).load()
    published = hub.publish_store(name, "my-org/celegans-connectome")
    card = server.files("my-org/celegans-connectome")["README.md"].decode()
    assert f"content_sha256: {before['content_sha256']}" in card
    assert "| `chemical` | data | annotation, pre, post | 14 x 302 x 302 | float32 | 1 | chemical synapse weight" in card
    home = _empty_home(monkeypatch, tmp_path)
    path = hub.prepare_from_hub(name, f"my-org/celegans-connectome@{published.commit}")
    assert path == _store(home, name)
    got = open_dataset(name)
    assert content_checksum(got) == before["content_sha256"] == root_attrs(path)["content_sha256"]
    xr.testing.assert_equal(got.load(), original)
    np.testing.assert_array_equal(got["chemical"].values, original["chemical"].values)


def test_the_revision_is_resolved_once_and_pinned(server, at_source, tmp_path, monkeypatch):
    first = hub.publish_store(VG, "my-org/vg")
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(endpoint=server.base)
    # main moves on after the publish: a pin to the first commit still installs exactly that commit
    moved = api.create_commit("my-org/vg", [CommitOperationAdd("NOTES.md", b"later\n")], repo_type="dataset",
                              commit_message="later")
    assert server.head("my-org/vg") == moved.oid != first.commit
    _empty_home(monkeypatch, tmp_path)
    server.requests.clear()
    server.page_size = 10  # tree listings in several pages, as the Hub pages long ones
    path = hub.prepare_from_hub(VG, f"hf://datasets/my-org/vg@{first.commit}")
    assert sum("/tree/" in p for _, p in server.requests) > 5
    assert root_attrs(path)["source"] == f"huggingface datasets/my-org/vg@{first.commit}"
    resolved = [p for m, p in server.requests if "/resolve/" in p]
    assert resolved and all(f"/resolve/{first.commit}/" in p for p in resolved)
    # a branch name is resolved to its commit before any file is read: every download names the commit
    _empty_home(monkeypatch, tmp_path / "b")
    server.requests.clear()
    path = hub.prepare_from_hub(VG, "my-org/vg@main")
    assert root_attrs(path)["source"] == f"huggingface datasets/my-org/vg@{moved.oid}"
    assert [p for m, p in server.requests if "/revision/" in p] == ["/api/datasets/my-org/vg/revision/main"]
    assert all(f"/resolve/{moved.oid}/" in p for m, p in server.requests if "/resolve/" in p)


def test_publish_to_a_branch_leaves_main_alone(server, at_source, tmp_path, monkeypatch):
    published = hub.publish_store(VG, "my-org/vg", revision="v1.0")
    assert published.branch == "v1.0" and server.head("my-org/vg", "v1.0") == published.commit
    assert set(server.files("my-org/vg", "main")) == {".gitattributes"}
    assert "--from-hub my-org/vg@v1.0" in server.files("my-org/vg", "v1.0")["README.md"].decode()
    _empty_home(monkeypatch, tmp_path)
    with pytest.raises(DataFormatError, match=r"datasets/my-org/vg@[0-9a-f]{40}: no README.md"):
        hub.prepare_from_hub(VG, "my-org/vg")
    assert hub.prepare_from_hub(VG, "my-org/vg@v1.0").exists()


# -- what is refused ---------------------------------------------------------------------------------------
def _modified_copy(store: Path, tmp_path: Path, restamp: bool) -> dict[str, bytes]:
    """Files of a copy of ``store`` with one node position changed (validly encoded); with ``restamp``, the
    copy's root attributes also carry the checksums of the changed content (an attacker who re-stamped them)."""
    copy = tmp_path / "tampered.zarr"
    shutil.copytree(store, copy)
    arr = zarr.open_group(str(copy / "synthetic_graph_1"), mode="r+", zarr_format=2)["pos"]
    arr[0, 0] = arr[0, 0] + 1.0
    if restamp:
        content, parts = tree_checksums(xr.open_datatree(copy, engine="zarr", consolidated=False, chunks=None))
        zarr.open_group(str(copy), mode="r+", zarr_format=2).attrs.update(
            content_sha256=content, parts_sha256=json.dumps(parts, sort_keys=True))
        zarr.consolidate_metadata(str(copy), zarr_format=2)
    old = _files(store)
    return {k: v for k, v in _files(copy).items() if old.get(k) != v}


@pytest.mark.parametrize("restamp", [False, True], ids=["data-changed", "data-and-attributes-changed"])
def test_a_tampered_file_on_the_server_is_refused(server, at_source, tmp_path, monkeypatch, restamp):
    original = root_attrs(_store(at_source))
    hub.publish_store(VG, "my-org/vg")
    changed = _modified_copy(_store(at_source), tmp_path, restamp)
    assert any(k.startswith("synthetic_graph_1/pos/") for k in changed)
    for rel, data in changed.items():
        server.tamper("my-org/vg", f"1.0.zarr/{rel}", data)
    home = _empty_home(monkeypatch, tmp_path)
    if restamp:
        match = (r"1\.0\.zarr: content_sha256 in the store's attributes is '[0-9a-f]{64}', but the published card "
                 rf"says '{original['content_sha256']}'; the repository was changed after publishing")
    else:
        match = (r"datasets/my-org/vg@[0-9a-f]{40}/1\.0\.zarr: sha256 of the content is [0-9a-f]{64} \(differing "
                 rf"parts: synthetic_graph_1\), but the published card says {original['content_sha256']}; a file was "
                 r"changed after publishing or damaged in transit\. Nothing was installed")
    with pytest.raises(ChecksumError, match=match):
        hub.prepare_from_hub(VG, "my-org/vg")
    assert not _store(home).exists() and _leftovers(home) == []


def test_an_undecodable_chunk_is_refused(server, at_source, tmp_path, monkeypatch):
    hub.publish_store(VG, "my-org/vg")
    chunk = next(k for k in server.files("my-org/vg") if re.fullmatch(r"1\.0\.zarr/synthetic_graph_2/pos/0\.0", k))
    server.tamper("my-org/vg", chunk, b"not a compressed chunk")
    home = _empty_home(monkeypatch, tmp_path)
    with pytest.raises(DataFormatError, match=r"1\.0\.zarr: the store cannot be read \(.*\); a file was changed"):
        hub.prepare_from_hub(VG, "my-org/vg")
    assert not _store(home).exists() and _leftovers(home) == []


def test_a_repository_of_another_dataset_or_version_is_refused(server, at_source, tmp_path, monkeypatch):
    hub.publish_store(VG, "my-org/vg")
    _empty_home(monkeypatch, tmp_path)
    with pytest.raises(DataFormatError, match=r"@[0-9a-f]{40} holds dataset 'vesselgraph' \(its README.md says so\), "
                                              r"not fisbe"):
        hub.prepare_from_hub("fisbe", "my-org/vg")
    # the same store published under another version's folder: this harness reads 1.0 only
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    files = server.files("my-org/vg")
    card = files["README.md"].decode().replace("version: '1.0'", "version: '2.0'").replace("1.0.zarr", "2.0.zarr")
    ops = [CommitOperationDelete("1.0.zarr/", is_folder=True), CommitOperationAdd("README.md", card.encode())]
    ops += [CommitOperationAdd(k.replace("1.0.zarr/", "2.0.zarr/", 1), v) for k, v in files.items()
            if k.startswith("1.0.zarr/")]
    HfApi(endpoint=server.base).create_commit("my-org/vg", ops, repo_type="dataset", commit_message="2.0")
    with pytest.raises(DataFormatError, match=r"has no store 1\.0\.zarr \(stores there: 2\.0\.zarr\); this neuroharness "
                                              r"reads vesselgraph version 1\.0"):
        hub.prepare_from_hub(VG, "my-org/vg")


@pytest.mark.parametrize("name,words", [
    ("nsd-algonauts2023", r"dataset nsd-algonauts2023 is not published: its licence forbids redistribution \(NSD "
                          r"Terms and Conditions \(no redistribution\)\): the NSD Terms and Conditions do not allow"),
    ("nszed", r"dataset nszed is not published: whether its licence allows redistribution is unverified \(the "
              r"licence of NSzED is not yet verified; licence: unknown \(not yet verified; .*\)\)\. You must check "
              r"the terms yourself"),
    ("repod-schizophrenia", r"dataset repod-schizophrenia is not published: whether its licence allows redistribution "
                            r"is unverified \(the licence of the RepOD record doi:10\.18150/repod\.0107441 is not yet "
                            r"verified; licence: unknown .*\)\. You must check the terms yourself"),
])
def test_datasets_that_may_not_be_redistributed_are_refused_before_anything_is_sent(server, name, words, tmp_path,
                                                                                     monkeypatch):
    _empty_home(monkeypatch, tmp_path)
    with pytest.raises(hub.RedistributionError, match=words):
        hub.publish_store(name, "my-org/x")
    assert server.requests == []


def test_publish_refuses_an_unprepared_or_damaged_store(server, at_source, tmp_path, monkeypatch):
    home = _empty_home(monkeypatch, tmp_path)
    with pytest.raises(NeuroharnessError, match=r"dataset vesselgraph is not prepared \(.*1\.0\.zarr is missing\); "
                                                 r"run `neuroharness datasets prepare vesselgraph` first"):
        hub.publish_store(VG, "my-org/vg")
    shutil.copytree(_store(at_source), _store(home))
    changed = _modified_copy(_store(home), tmp_path, restamp=False)
    for rel, data in changed.items():
        (_store(home) / rel).write_bytes(data)
    with pytest.raises(ChecksumError, match=r"1\.0\.zarr: sha256 of the content is [0-9a-f]{64} \(differing parts: "
                                            r"synthetic_graph_1\), but the store's content_sha256 attribute says "
                                            r"[0-9a-f]{64}; the cached store is damaged: rebuild it"):
        hub.publish_store(VG, "my-org/vg")
    assert server.requests == [] and server.repos == {}


def test_a_repository_of_another_dataset_is_not_overwritten(server, at_source):
    hub.publish_store(VG, "my-org/data")
    other = server.files("my-org/data")["README.md"].decode().replace("dataset: vesselgraph", "dataset: fisbe")
    from huggingface_hub import CommitOperationAdd, HfApi

    HfApi(endpoint=server.base).create_commit("my-org/data", [CommitOperationAdd("README.md", other.encode())],
                                              repo_type="dataset", commit_message="other")
    head = server.head("my-org/data")
    with pytest.raises(NeuroharnessError, match=r"datasets/my-org/data holds dataset fisbe \(its README.md says so\), "
                                                r"not vesselgraph; nothing was uploaded"):
        hub.publish_store(VG, "my-org/data")
    assert server.head("my-org/data") == head


def test_republishing_replaces_the_store_in_one_commit(server, source_home, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("NEUROHARNESS_HOME", str(home))
    prepare(VG, source=source_home["vg_source"])
    hub.publish_store(VG, "my-org/vg")
    prepare(VG, source=source_home["vg_source"], only=["synthetic_graph_1"], force=True)
    second = hub.publish_store(VG, "my-org/vg")
    assert len(server.history("my-org/vg")) == 3  # initial, first publish, second publish
    remote = server.files("my-org/vg")
    assert not any("synthetic_graph_2" in k for k in remote)  # deleted in the same commit
    assert {k[len("1.0.zarr/"):]: v for k, v in remote.items() if k.startswith("1.0.zarr/")} == _files(_store(home))
    assert "- Only these graph: synthetic_graph_1" in remote["README.md"].decode()
    _empty_home(monkeypatch, tmp_path / "b")
    path = hub.prepare_from_hub(VG, f"my-org/vg@{second.commit}")
    assert sorted(xr.open_datatree(path, engine="zarr").children) == ["synthetic_graph_1"]


def test_reuse_and_force_follow_the_rules_of_local_prepare(server, at_source, tmp_path, monkeypatch):
    first = hub.publish_store(VG, "my-org/vg")
    home = _empty_home(monkeypatch, tmp_path)
    path = hub.prepare_from_hub(VG, "my-org/vg")
    server.requests.clear()
    assert hub.prepare_from_hub(VG, "my-org/vg") == path and server.requests == []  # reused, nothing asked
    with pytest.raises(NeuroharnessError, match=r"1\.0\.zarr was built from hf://datasets/my-org/vg@main, not "
                                                r"hf://datasets/my-org/vg@v2; pass force=True \(--force\)"):
        hub.prepare_from_hub(VG, "my-org/vg@v2")
    assert hub.prepare_from_hub(VG, f"my-org/vg@{first.commit}", force=True) == path
    assert root_attrs(path)["source_argument"] == f"hf://datasets/my-org/vg@{first.commit}"
    # a store prepared locally is not replaced by a download without --force, nor the reverse
    with pytest.raises(NeuroharnessError, match="was built from hf://datasets/my-org/vg@[0-9a-f]{40}, not /"):
        prepare(VG, source="/")
    assert _leftovers(home) == []


def test_publishing_needs_a_token_with_write_access(server, at_source, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(NeuroharnessError, match=r"publishing vesselgraph: datasets/my-org/vg on http://127\.0\.0\.1:\d+ "
                                                r"answered 401: .*; set HF_TOKEN to a token with write access"):
        hub.publish_store(VG, "my-org/vg")
    assert server.repos == {}


def test_private_repositories(server, at_source):
    hub.publish_store(VG, "my-org/private-vg", private=True)
    assert server.repo("my-org/private-vg").private
    hub.publish_store(VG, "my-org/public-vg")
    head = server.head("my-org/public-vg")
    with pytest.raises(NeuroharnessError, match=r"--private: datasets/my-org/public-vg already exists and is public; "
                                                r"nothing was uploaded"):
        hub.publish_store(VG, "my-org/public-vg", private=True)
    assert server.head("my-org/public-vg") == head


def test_a_missing_repository_or_revision_is_a_download_error(server, at_source, tmp_path, monkeypatch):
    from neuroharness.errors import DownloadError

    hub.publish_store(VG, "my-org/vg")
    _empty_home(monkeypatch, tmp_path)
    with pytest.raises(DownloadError, match=r"repository datasets/my-org/nothing on .* not found"):
        hub.prepare_from_hub(VG, "my-org/nothing")
    with pytest.raises(DownloadError, match=r"revision not found in datasets/my-org/vg"):
        hub.prepare_from_hub(VG, "my-org/vg@no-such-branch")
    gone = HubServer()
    gone.close()
    monkeypatch.setenv("HF_ENDPOINT", gone.base)
    with pytest.raises(DownloadError, match=rf"vesselgraph from datasets/my-org/vg@main: could not reach "
                                            rf"datasets/my-org/vg on {re.escape(gone.base)}: ConnectError"):
        hub.prepare_from_hub(VG, "my-org/vg")


# -- the dataset card -----------------------------------------------------------------------------------
def test_the_card_front_matter_and_schema(server, at_source):
    hub.publish_store(VG, "my-org/vg")
    text = server.files("my-org/vg")["README.md"].decode()
    meta = hub.card_metadata(text, "README.md")
    attrs = root_attrs(_store(at_source))
    assert meta["license"] == "cc-by-nc-4.0" and meta["pretty_name"].startswith("VesselGraph: whole-brain")
    assert meta["tags"] == ["neuroscience", "neuroharness", "zarr", VG]
    assert meta["neuroharness"] == {"dataset": VG, "version": "1.0", "store": "1.0.zarr",
                                    "content_sha256": attrs["content_sha256"],
                                    "parts_sha256": json.loads(attrs["parts_sha256"]),
                                    "harness_version": attrs["harness_version"]}
    assert "neuroharness datasets prepare vesselgraph --from-hub my-org/vg@<commit>" in text
    assert 'tree = xr.open_datatree("hf://datasets/my-org/vg/1.0.zarr", engine="zarr", chunks={})' in text
    assert "- Licence: CC BY-NC 4.0 (data); code MIT" in text and "Paetzold JC" in text
    assert "| `/synthetic_graph_2` | edge=" in text and "### Groups (2)" in text
    assert "| `pos` | data | node, axis | 300 x 3 | float64 | voxel | node position | 2 |" in text
    assert f"| `synthetic_graph_1` | `{json.loads(attrs['parts_sha256'])['synthetic_graph_1']}` |" in text
    assert hub.hub_license("CC BY 4.0") == "cc-by-4.0" and hub.hub_license("NSD Terms and Conditions") == "other"


def test_the_cards_xarray_snippet_opens_the_published_store(server, at_source, monkeypatch):
    """The snippet of the card, run as written (huggingface_hub's hf:// filesystem on the local Hub)."""
    import huggingface_hub.constants
    from huggingface_hub import HfFileSystem

    hub.publish_store(VG, "my-org/vg")
    text = server.files("my-org/vg")["README.md"].decode()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    # huggingface_hub reads HF_ENDPOINT once, at import (maybe during an earlier test): point it here
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", server.base)
    monkeypatch.setattr(huggingface_hub.constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        server.base + "/{repo_id}/resolve/{revision}/{filename}")
    HfFileSystem.clear_instance_cache()
    scope: dict = {}
    exec(code, scope)
    HfFileSystem.clear_instance_cache()
    _tree_equal(scope["tree"], open_dataset(VG))


def test_parse_repo():
    assert hub.parse_repo("my-org/vg") == ("my-org/vg", None, "")
    assert hub.parse_repo("my-org/vg@refs/pr/1", "--from-hub") == ("my-org/vg", "refs/pr/1", "")
    assert hub.parse_repo("hf://datasets/my-org/vg@v1") == ("my-org/vg", "v1", "")
    assert hub.parse_repo("hf://datasets/a/b@refs%2Fpr%2F2/task-x", path=True) == ("a/b", "refs/pr/2", "task-x")
    for bad, words in [("vg", "expected ORG/NAME"), ("hf://models/a/b", "a dataset repository"),
                       ("a/b/c", "expected ORG/NAME"), ("a/b@", "expected ORG/NAME"),
                       ("a/b--c", "--"), ("hf://datasets/a/b/../c", "expected hf://datasets/ORG/NAME")]:
        with pytest.raises(UsageError, match=re.escape(words)):
            hub.parse_repo(bad, "--from-hub")
    with pytest.raises(UsageError, match=r"--repo a/b@main: expected ORG/NAME, e\.g\."):
        hub.parse_repo("a/b@main", "--repo", revision=False)
    with pytest.raises(UsageError, match=r"path '\.\.' has a '\.\.' component"):
        hub.parse_repo("hf://datasets/a/b/..", "--results", path=True)


# -- the command line -----------------------------------------------------------------------------------
def test_cli_publish_and_prepare_from_hub(server, at_source, tmp_path, monkeypatch, capsys):
    assert main(["datasets", "publish", VG, "--repo", "my-org/vg", "--revision", "release"]) == 0
    out = capsys.readouterr().out
    commit = server.head("my-org/vg", "release")
    assert f"commit {commit}" in out
    assert f"neuroharness datasets prepare vesselgraph --from-hub my-org/vg@{commit}" in out
    home = _empty_home(monkeypatch, tmp_path)
    assert main(["datasets", "prepare", VG, "--from-hub", f"my-org/vg@{commit}"]) == 0
    assert capsys.readouterr().out.strip() == str(_store(home))
    assert main(["datasets", "prepare", VG, "--from-hub", "my-org/vg@release", "--force"]) == 0
    assert root_attrs(_store(home))["source"] == f"huggingface datasets/my-org/vg@{commit}"


@pytest.mark.parametrize("argv,words", [
    (["datasets", "prepare", VG, "--from-hub", "a/b", "--source", "x"], "--source applies to building"),
    (["datasets", "prepare", VG, "--from-hub", "a/b", "--only", "g"], "--only applies to building"),
    (["datasets", "prepare", VG, "fisbe", "--from-hub", "a/b"], "--from-hub applies to one dataset"),
    (["datasets", "prepare", VG, "--from-hub", "nope"], "--from-hub nope: expected ORG/NAME"),
    (["datasets", "publish", VG, "--repo", "a/b@main"], "--repo a/b@main: expected ORG/NAME"),
    (["datasets", "publish", "nope", "--repo", "a/b"], "unknown dataset 'nope'"),
    (["leaderboard", "publish", "--repo", "a/b", "--results", "."], "give the TASK"),
    (["leaderboard", "publish", "celegans-structure-function", "--results", "."], "give --repo ORG/NAME"),
    (["leaderboard", "celegans-structure-function", "--repo", "a/b"], "--repo applies to `leaderboard publish"),
    (["leaderboard", "celegans-structure-function", "--results", "hf://models/a/b"], "a dataset repository"),
])
def test_cli_usage_errors(server, argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage error: ") and words in err
    assert server.requests == []


def test_cli_refuses_nsd_naming_its_licence(server, capsys):
    assert main(["datasets", "publish", "nsd-algonauts2023", "--repo", "my-org/nsd"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: dataset nsd-algonauts2023 is not published: its licence forbids redistribution")
    assert "NSD Terms and Conditions" in err and server.requests == []


# -- result records -------------------------------------------------------------------------------------
@pytest.fixture
def records(tmp_path):
    from neuroharness.leaderboards.records import write_record
    from test_leaderboard import SEEDS, make_record

    out = tmp_path / "results"
    for model, vals in SEEDS.items():
        for seed, (roc, ap) in enumerate(vals):
            write_record(make_record(model, seed, roc, ap, n_parameters=len(model)), out)
    return out


def test_leaderboard_from_the_hub_prints_the_same_table(server, records, capsys, monkeypatch, tmp_path):
    task = "celegans-structure-function"
    monkeypatch.setenv("NEUROHARNESS_HOME", str(tmp_path / "home"))
    assert main(["leaderboard", "publish", task, "--repo", "my-org/results", "--results", str(records)]) == 0
    out = capsys.readouterr().out
    commit = server.head("my-org/results")
    assert f"neuroharness leaderboard {task} --results hf://datasets/my-org/results@{commit}" in out
    remote = server.files("my-org/results")
    assert {k for k in remote if k.endswith(".json")} == {f"{task}/{p.name}" for p in records.glob("*.json")}
    assert all(remote[f"{task}/{p.name}"] == p.read_bytes() for p in records.glob("*.json"))
    # (--only-results: these synthetic records are not comparable with the task's official ones)
    for fmt in ("md", "csv", "json"):
        assert main(["leaderboard", task, "--results", str(records), "--only-results", "--format", fmt]) == 0
        local = capsys.readouterr().out
        assert "spiky" in local
        for url in ("hf://datasets/my-org/results", f"hf://datasets/my-org/results@{commit}",
                    f"hf://datasets/my-org/results@main/{task}"):
            assert main(["leaderboard", task, "--results", url, "--only-results", "--format", fmt]) == 0
            assert capsys.readouterr().out == local
    # the site takes hf:// too, and shows what the local folder gives
    for where, site in ((str(records), "site_local"), ("hf://datasets/my-org/results", "site_hub")):
        assert main(["leaderboard", task, "--results", where, "--only-results", "--html", str(tmp_path / site)]) == 0
    pages = sorted(p.relative_to(tmp_path / "site_local") for p in (tmp_path / "site_local").rglob("*.html"))
    assert pages and pages == sorted(p.relative_to(tmp_path / "site_hub") for p in (tmp_path / "site_hub").rglob("*.html"))


def test_results_are_validated_before_upload_and_read_at_the_pinned_commit(server, records, tmp_path, monkeypatch):
    from neuroharness.leaderboards import hub as lhub
    from neuroharness.leaderboards.records import read_records

    task = "celegans-structure-function"
    monkeypatch.setenv("NEUROHARNESS_HOME", str(tmp_path / "home"))
    bad = tmp_path / "bad"
    shutil.copytree(records, bad)
    victim = sorted(bad.glob("*.json"))[0]
    rec = json.loads(victim.read_text())
    rec["wall_time_s"] = 0.01  # edited after it was written
    victim.write_text(json.dumps(rec))
    with pytest.raises(DataFormatError, match=rf"{re.escape(str(victim))}: record_digest .* does not match"):
        lhub.publish_results(task, "my-org/results", bad)
    assert server.repos == {}
    with pytest.raises(DataFormatError, match=rf"no records of task vesselgraph-link-prediction \(found 9 record\(s\) "
                                              rf"of {task}\)"):
        lhub.publish_results("vesselgraph-link-prediction", "my-org/results", records)
    first = lhub.publish_results(task, "my-org/results", records)
    # more records later: a fetch pinned to the first commit still reads the first nine
    from neuroharness.leaderboards.records import write_record
    from test_leaderboard import make_record

    more = tmp_path / "more"
    write_record(make_record("late", 0, 0.51), more)
    second = lhub.publish_results(task, "my-org/results", more)
    assert second.commit != first.commit and second.n_files == 1
    pinned = lhub.fetch_results(f"hf://datasets/my-org/results@{first.commit}", task)
    latest = lhub.fetch_results("hf://datasets/my-org/results", task)
    assert len(read_records(pinned)) == 9 and len(read_records(latest)) == 10
    with pytest.raises(DataFormatError, match=r"no records \(\*\.json\) under nothing/"):
        lhub.fetch_results("hf://datasets/my-org/results/nothing", task)
