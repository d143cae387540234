"""Downloads (sha256, resume, mirrors), PyPI wheel sources and atomic prepare,
against a real HTTP server on 127.0.0.1 (fixture ``http_server`` in conftest)."""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import zipfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from helpers import closed_port_url

from neuroharness.errors import ChecksumError, DataFormatError, DownloadError
from neuroharness.loaders import cache, fetch, io, pypi
from neuroharness.loaders.base import DatasetLoader
from neuroharness.loaders.card import DatasetCard

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # ~1 MiB, not a multiple of the chunk size


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def part_of(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


# -- fetch.download -----------------------------------------------------------
def test_download_verifies_and_is_not_repeated(http_server, tmp_path):
    url = http_server.add("/data.bin", PAYLOAD)
    dest = tmp_path / "dl" / "data.bin"
    assert fetch.download(url, dest, sha(PAYLOAD)) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not part_of(dest).exists()
    assert len(http_server.requests_for("/data.bin")) == 1
    assert http_server.requests_for("/data.bin")[0].range is None

    assert fetch.download(url, dest, sha(PAYLOAD)) == dest
    assert len(http_server.requests_for("/data.bin")) == 1  # re-verified locally, not fetched
    assert dest.read_bytes() == PAYLOAD


def test_download_wrong_sha256(http_server, tmp_path):
    url = http_server.add("/data.bin", PAYLOAD)
    dest = tmp_path / "data.bin"
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as ei:
        fetch.download(url, dest, wrong)
    msg = str(ei.value)
    assert str(dest) in msg and url in msg and sha(PAYLOAD) in msg and wrong in msg
    assert not dest.exists()
    assert not part_of(dest).exists()
    assert list(tmp_path.iterdir()) == []


def test_download_corrupt_partial_restarts_from_zero(http_server, tmp_path):
    url = http_server.add("/data.bin", PAYLOAD)
    dest = tmp_path / "data.bin"
    part_of(dest).write_bytes(b"\xff" * 1000)  # wrong bytes that a resume would keep
    fetch.download(url, dest, sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert [r.range for r in http_server.requests_for("/data.bin")] == ["bytes=1000-", None]


def test_download_checksum_mismatch_tries_next_mirror(http_server, tmp_path):
    bad = http_server.add("/bad/data.bin", PAYLOAD[::-1])
    good = http_server.add("/good/data.bin", PAYLOAD)
    dest = tmp_path / "data.bin"
    fetch.download([bad, good], dest, sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert len(http_server.requests_for("/bad/data.bin")) == 1


def test_download_resumes_with_range(http_server, tmp_path):
    url = http_server.add("/data.bin", PAYLOAD)
    dest = tmp_path / "data.bin"
    half = len(PAYLOAD) // 2
    part_of(dest).write_bytes(PAYLOAD[:half])
    fetch.download(url, dest, sha(PAYLOAD))
    reqs = http_server.requests_for("/data.bin")
    assert len(reqs) == 1
    assert reqs[0].range == f"bytes={half}-"
    assert reqs[0].status == 206 and reqs[0].sent == len(PAYLOAD) - half
    assert dest.read_bytes() == PAYLOAD
    assert not part_of(dest).exists()


def test_download_server_ignoring_range_restarts(http_server, tmp_path):
    url = http_server.add("/data.bin", PAYLOAD, ranges=False)
    dest = tmp_path / "data.bin"
    part_of(dest).write_bytes(b"stale bytes of some older file" * 100)
    fetch.download(url, dest, sha(PAYLOAD))
    reqs = http_server.requests_for("/data.bin")
    assert len(reqs) == 1 and reqs[0].range is not None and reqs[0].status == 200
    assert dest.read_bytes() == PAYLOAD
    assert not part_of(dest).exists()


def test_download_mirrors(http_server, tmp_path):
    good = http_server.add("/good.bin", PAYLOAD)
    missing = http_server.url("/missing.bin")
    dest = tmp_path / "data.bin"
    fetch.download([missing, good], dest, sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert len(http_server.requests_for("/missing.bin")) == 1  # a 404 is not retried
    assert len(http_server.requests_for("/good.bin")) == 1


def test_download_all_mirrors_fail(http_server, tmp_path):
    http_server.add("/broken.bin", PAYLOAD)
    http_server.fail("/broken.bin", 500, 500)
    urls = [http_server.url("/missing.bin"), http_server.url("/broken.bin"), closed_port_url() + "/nothing.bin"]
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError) as ei:
        fetch.download(urls, dest, sha(PAYLOAD), retries=2)
    msg = str(ei.value)
    assert "data.bin" in msg
    for u in urls:
        assert u in msg
    assert "HTTP 404" in msg and "HTTP 500" in msg
    assert len(http_server.requests_for("/broken.bin")) == 2  # a 5xx is retried
    assert not dest.exists()


def test_download_retries_server_error_then_succeeds(http_server, tmp_path):
    url = http_server.add("/data.bin", PAYLOAD)
    http_server.fail("/data.bin", 503)
    dest = tmp_path / "data.bin"
    fetch.download(url, dest, sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert [r.status for r in http_server.requests_for("/data.bin")] == [503, 200]


def test_download_416_on_too_long_part_restarts(http_server, tmp_path):
    url = http_server.add("/data.bin", PAYLOAD)
    dest = tmp_path / "data.bin"
    part_of(dest).write_bytes(PAYLOAD + b"garbage past the end")
    fetch.download(url, dest, sha(PAYLOAD))
    reqs = http_server.requests_for("/data.bin")
    assert [r.status for r in reqs] == [416, 200]
    assert reqs[0].range == f"bytes={len(PAYLOAD) + 20}-"
    assert reqs[1].range is None
    assert dest.read_bytes() == PAYLOAD
    assert not part_of(dest).exists()


def test_download_dropped_connection_resumes(http_server, tmp_path):
    """The server closes the connection mid-body: the next attempt resumes with Range."""
    url = http_server.add("/data.bin", PAYLOAD)
    cut = len(PAYLOAD) // 3
    http_server.truncate("/data.bin", cut)
    dest = tmp_path / "data.bin"
    fetch.download(url, dest, sha(PAYLOAD))
    reqs = http_server.requests_for("/data.bin")
    assert len(reqs) == 2
    assert reqs[0].sent == cut
    assert reqs[1].range == f"bytes={cut}-" and reqs[1].status == 206
    assert dest.read_bytes() == PAYLOAD


def test_download_dropped_connection_without_pin_is_not_accepted(http_server, tmp_path):
    """Without a sha256 pin a truncated body must still not become ``dest``."""
    url = http_server.add("/data.bin", PAYLOAD)
    http_server.truncate("/data.bin", 100, 100, 100)
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError):
        fetch.download(url, dest, None, retries=1)
    assert not dest.exists()
    assert part_of(dest).read_bytes() == PAYLOAD[:100]  # kept for resuming


# -- pypi.WheelSource ---------------------------------------------------------
MEMBERS = {
    "pkg/data/a.csv": b"neuron,value\nAVAL,1.0\nAVAR,2.0\n",
    "pkg/data/sub/b.bin": bytes(range(256)) * 16,
}


def make_wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("pkg/__init__.py", "")
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr("pkg-1.0.dist-info/METADATA", "Name: pkg\nVersion: 1.0\n")
    return path


@pytest.fixture
def wheel_source(tmp_path, http_server, home, monkeypatch):
    wheel = make_wheel(tmp_path / "pkg-1.0-py3-none-any.whl", MEMBERS)
    data = wheel.read_bytes()
    url = http_server.add("/packages/pkg-1.0-py3-none-any.whl", data)
    monkeypatch.setattr(pypi.WheelSource, "_installed_dir", lambda self: None)
    src = pypi.WheelSource(
        package="pkg",
        version="1.0",
        urls=(url,),
        sha256=sha(data),
        files={m: sha(d) for m, d in MEMBERS.items()},
    )
    return src, wheel, url


def test_wheel_source_download_and_extract(wheel_source, http_server, home):
    src, _, url = wheel_source
    paths, origin = src.materialize()
    assert origin == url
    assert set(paths) == set(MEMBERS)
    for m, p in paths.items():
        assert p.read_bytes() == MEMBERS[m]
        assert p.is_relative_to(home)
    assert (home / "downloads" / "pkg-1.0-py3-none-any.whl").exists()
    assert len(http_server.requests_for("/packages/pkg-1.0-py3-none-any.whl")) == 1

    paths2, _ = src.materialize()  # cached wheel, cached extraction
    assert paths2 == paths
    assert len(http_server.requests_for("/packages/pkg-1.0-py3-none-any.whl")) == 1
    one, _ = src.materialize(members=["pkg/data/a.csv"])
    assert list(one) == ["pkg/data/a.csv"]


def test_wheel_source_member_pin_mismatch(wheel_source):
    src, _, _ = wheel_source
    bad = dataclasses.replace(src, files={**src.files, "pkg/data/a.csv": "f" * 64})
    with pytest.raises(ChecksumError) as ei:
        bad.materialize()
    msg = str(ei.value)
    assert "pkg/data/a.csv" in msg and "f" * 64 in msg and sha(MEMBERS["pkg/data/a.csv"]) in msg


def test_wheel_source_wrong_wheel_sha(wheel_source, home):
    src, _, _ = wheel_source
    bad = dataclasses.replace(src, sha256="e" * 64)
    with pytest.raises(ChecksumError, match="pkg-1.0-py3-none-any.whl"):
        bad.materialize()
    assert not any((home / "downloads").iterdir())


def test_wheel_source_local_wheel(wheel_source, http_server):
    src, wheel, _ = wheel_source
    paths, origin = src.materialize(source=wheel)
    assert str(wheel) in origin
    assert {m: p.read_bytes() for m, p in paths.items()} == MEMBERS
    assert http_server.requests == []


def test_wheel_source_local_dir(wheel_source, http_server, tmp_path):
    src, wheel, _ = wheel_source
    root = tmp_path / "unpacked"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(root)
    for d in (root, root / "pkg"):  # site-packages layout and the package folder itself
        paths, origin = src.materialize(source=d)
        assert str(d) in origin
        assert {m: p.read_bytes() for m, p in paths.items()} == MEMBERS
        assert all(p.is_relative_to(d) for p in paths.values())
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.csv").write_bytes(MEMBERS["pkg/data/a.csv"])
    paths, _ = src.materialize(source=flat, members=["pkg/data/a.csv"])
    assert paths["pkg/data/a.csv"] == flat / "a.csv"
    assert http_server.requests == []

    (root / "pkg" / "data" / "a.csv").write_bytes(b"edited\n")  # a local copy is verified too
    with pytest.raises(ChecksumError, match="pkg/data/a.csv"):
        src.materialize(source=root)


def test_wheel_source_missing_member(wheel_source, tmp_path):
    src, wheel, _ = wheel_source
    extra = dataclasses.replace(src, files={**src.files, "pkg/data/missing.csv": "a" * 64})
    with pytest.raises(DataFormatError, match="pkg/data/missing.csv"):
        extra.materialize()
    with pytest.raises(DataFormatError, match="pkg/data/missing.csv"):
        extra.materialize(source=wheel)
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(unpacked)
    with pytest.raises(DataFormatError, match="pkg/data/missing.csv"):
        extra.materialize(source=unpacked)
    with pytest.raises(DataFormatError, match="does not exist"):
        src.materialize(source=tmp_path / "nope.whl")
    (tmp_path / "notazip.whl").write_bytes(b"not a zip")
    with pytest.raises(DataFormatError, match="notazip.whl"):
        src.materialize(source=tmp_path / "notazip.whl")


# -- the real funatlas loader through the download route ----------------------
def _installed_funatlas() -> Path | None:
    spec = importlib.util.find_spec("wormneuroatlas")  # locates without importing (its import uses the network)
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "data" / "funatlas.h5"
    return p if p.is_file() else None


def test_funatlas_prepare_via_local_download(http_server, home, tmp_path, monkeypatch):
    h5 = _installed_funatlas()
    if h5 is None:
        pytest.skip("wormneuroatlas (with data/funatlas.h5) is not installed; it supplies the real atlas file")
    from neuroharness.loaders.celegans import funatlas

    member = "wormneuroatlas/data/funatlas.h5"
    wheel = tmp_path / "wormneuroatlas-0.0.7.3-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as zf:
        zf.write(h5, member)
    url = http_server.add("/pypi/" + wheel.name, wheel.read_bytes())
    wheel_path = "/pypi/" + wheel.name
    monkeypatch.setattr(funatlas, "WORMNEUROATLAS", dataclasses.replace(funatlas.WORMNEUROATLAS, urls=(url,), sha256=fetch.sha256_file(wheel)))
    monkeypatch.setattr(pypi.WheelSource, "_installed_dir", lambda self: None)

    from neuroharness.loaders import open_dataset, prepare

    store = prepare("celegans-funatlas")
    assert store == cache.store_path("celegans-funatlas", "1.0") and store.is_relative_to(home)
    assert store.is_dir()
    assert len(http_server.requests_for(wheel_path)) == 1
    ds = open_dataset("celegans-funatlas")
    try:
        assert ds.attrs["source"] == url
        wt = ds.sel(strain="wt")
        assert int((wt.q < 0.05).sum()) == 1310
        assert int(np.isfinite(wt.dFF).sum()) == 24074
        assert bool(np.isnan(ds.dFF.sel(responding="CANL")).all())
        assert int(ds.occ1.sel(responding="CANL").sum()) == 0
    finally:
        ds.close()

    assert prepare("celegans-funatlas") == store  # existing store reused
    assert len(http_server.requests_for(wheel_path)) == 1
    # a forced rebuild re-verifies the cached wheel instead of downloading it again
    assert prepare("celegans-funatlas", force=True) == store
    assert len(http_server.requests_for(wheel_path)) == 1


# -- interrupted prepare leaves no store ---------------------------------------
class TinyLoader(DatasetLoader):
    """A self-contained loader (not registered) exercising the base-class write path."""

    card = DatasetCard(name="test-tiny", version="1.0", title="tiny test dataset", description="five numbers",
                       license="CC0", citation="none", loader="tests:TinyLoader",
                       offline="a local file")

    def __init__(self, raw: Path):
        self.raw = raw

    def fetch(self, source, only=None):
        return {"raw.txt": self.raw}, f"local file {self.raw}"

    def build(self, files):
        vals = np.array([float(x) for x in files["raw.txt"].read_text().split()])
        ds = xr.Dataset({"x": (("i",), vals, {"units": "1", "long_name": "value"})}, coords={"i": np.arange(len(vals))})
        return ds.chunk({"i": 2})


def _tmp_siblings(store: Path) -> list[Path]:
    return sorted(store.parent.glob(f".{store.name}.tmp-*")) if store.parent.exists() else []


@pytest.mark.parametrize("where", ["build", "to_zarr"])
def test_interrupted_prepare_leaves_no_store(where, home, tmp_path, monkeypatch):
    raw = tmp_path / "raw.txt"
    raw.write_text("1 2 3 4 5")
    loader = TinyLoader(raw)
    store = loader.store_path()

    with monkeypatch.context() as m:
        if where == "build":
            def interrupted_build(self, files):
                raise KeyboardInterrupt

            m.setattr(TinyLoader, "build", interrupted_build)
        else:
            real_to_zarr = xr.Dataset.to_zarr

            def partial_to_zarr(self, path, *args, **kwargs):
                real_to_zarr(self, path, *args, **kwargs)  # the temp store is written ...
                assert Path(path).exists() and Path(path) != store
                raise KeyboardInterrupt  # ... and the run dies before it is moved into place

            m.setattr(xr.Dataset, "to_zarr", partial_to_zarr)
        with pytest.raises(KeyboardInterrupt):
            loader.prepare()
        assert not store.exists()
        assert _tmp_siblings(store) == []

    # a hard kill leaves a temp sibling behind; the next run removes it
    stale = io.temp_sibling(store)
    (stale / "junk").mkdir(parents=True)
    assert loader.prepare() == store
    assert _tmp_siblings(store) == []
    with xr.open_zarr(store, consolidated=True) as ds:
        assert ds.x.values.tolist() == [1, 2, 3, 4, 5]
        assert ds.attrs["dataset"] == "test-tiny"
        assert ds.attrs["source"] == f"local file {raw}"


def test_wheel_source_from_mirror_url(wheel_source, http_server, home, monkeypatch):
    src, wheel, _ = wheel_source
    monkeypatch.setattr(pypi.WheelSource, "_installed_dir", lambda self: None)
    url = http_server.add("/mirror/" + wheel.name, wheel.read_bytes())
    paths, origin = src.materialize(source=url)
    assert origin == url and all(p.is_file() for p in paths.values())
    assert len(http_server.requests_for("/mirror/" + wheel.name)) == 1
    bad = http_server.add("/other/" + wheel.name, wheel.read_bytes() + b"x")
    (cache.downloads_dir() / src.wheel_name).unlink()
    with pytest.raises(ChecksumError, match=wheel.name):
        src.materialize(source=bad)

