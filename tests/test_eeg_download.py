"""RepOD's files downloaded through Dataverse's API, from a real HTTP server on 127.0.0.1 serving the RepOD-layout
fixture (the way https://repod.icm.edu.pl answers: the version listing, then /api/access/datafile/<id>)."""
from __future__ import annotations

import hashlib
import json

import pytest
import zarr
from helpers import closed_port_url, load_script

from neuroharness.errors import ChecksumError, DataFormatError, DownloadError
from neuroharness.loaders import get_loader
from neuroharness.loaders.eeg import dataverse

VERSION_PATH = "/api/datasets/:persistentId/versions/:latest-published"


@pytest.fixture(scope="module")
def repod_src(tmp_path_factory):
    root = tmp_path_factory.mktemp("repod") / "release"
    load_script("make_eeg_fixture").write_repod(root, n_patients=2, n_controls=2, seconds=12)
    return root


def serve(http_server, src, *, md5=None, extra=(), restricted=()):
    """Serve ``src``'s files as Dataverse dataset REPOD_PID version 1.0 (ids from 101; a README the layout skips)."""
    entries = []
    files = sorted(p for p in src.iterdir() if p.is_file())
    blobs = [(p.name, p.read_bytes()) for p in files] + [("README.txt", b"EEG in schizophrenia\n"), *extra]
    for i, (name, data) in enumerate(blobs):
        file_id = 101 + i
        http_server.add(f"/api/access/datafile/{file_id}", data)
        digest = (md5 or {}).get(name, hashlib.md5(data).hexdigest())
        entries.append({"label": name, "restricted": name in restricted,
                        "dataFile": {"id": file_id, "filename": name, "filesize": len(data),
                                     "checksum": {"type": "MD5", "value": digest}}})
    answer = {"status": "OK", "data": {"versionNumber": 1, "versionMinorNumber": 0, "versionState": "RELEASED",
                                       "files": entries}}
    http_server.add(VERSION_PATH, json.dumps(answer).encode())
    return {name: 101 + i for i, (name, _) in enumerate(blobs)}


def test_prepare_without_source_downloads_from_dataverse_and_equals_the_local_build(http_server, repod_src, home,
                                                                                  monkeypatch):
    ids = serve(http_server, repod_src)
    monkeypatch.setenv(dataverse.ENV_URL, http_server.base)
    loader = get_loader("repod-schizophrenia")
    path = loader.prepare()
    attrs = zarr.open_group(str(path), mode="r").attrs
    assert attrs["source"].startswith(f"Dataverse {http_server.base} dataset doi:10.18150/repod.0107441 version 1.0 ")
    listing = http_server.requests_for(VERSION_PATH)
    assert len(listing) == 1
    # the README is listed but not a recording: never fetched
    assert http_server.requests_for(f"/api/access/datafile/{ids['README.txt']}") == []
    folder = home / "downloads" / "repod-schizophrenia" / "dataverse-1.0"
    assert sorted(p.name for p in folder.iterdir()) == ["h01.edf", "h02.edf", "s01.edf", "s02.edf"]
    downloaded = attrs["content_sha256"]
    local = loader.prepare(repod_src, force=True)
    assert zarr.open_group(str(local), mode="r").attrs["content_sha256"] == downloaded
    # a second download-prepare reuses the verified files: no file is fetched again
    before = len(http_server.requests)
    loader.prepare(force=True)
    assert [r.path for r in http_server.requests[before:]] == [VERSION_PATH]


def test_an_http_source_names_the_server(http_server, repod_src, home):
    serve(http_server, repod_src)
    path = get_loader("repod-schizophrenia").prepare(http_server.base)
    assert http_server.base in zarr.open_group(str(path), mode="r").attrs["source"]


def test_md5_mismatch_is_refused_and_nothing_kept(http_server, repod_src, home, monkeypatch):
    serve(http_server, repod_src, md5={"s02.edf": "0" * 32})
    monkeypatch.setenv(dataverse.ENV_URL, http_server.base)
    with pytest.raises(ChecksumError, match=r"s02\.edf: md5 of the download from .*/api/access/datafile/\d+ is "
                                            r"[0-9a-f]{32}, expected 0{32}"):
        get_loader("repod-schizophrenia").prepare()
    folder = home / "downloads" / "repod-schizophrenia" / "dataverse-1.0"
    assert not (folder / "s02.edf").exists() and not (folder / "s02.edf.part").exists()
    assert not get_loader("repod-schizophrenia").store_path().exists()


def test_server_down_says_how_to_work_offline(home, monkeypatch):
    monkeypatch.setenv(dataverse.ENV_URL, closed_port_url())
    with pytest.raises(DownloadError, match=r"could not read the Dataverse dataset doi:10\.18150/repod\.0107441 "
                                            r"http://127\.0\.0\.1:\d+/api/datasets/.*\nTo work offline: .*--source "
                                            r"DIR.*make_eeg_fixture\.py repod"):
        get_loader("repod-schizophrenia").prepare()


@pytest.mark.parametrize("answer, match", [
    ({"status": "OK"}, r"expected a Dataverse version answer"),
    ({"data": {"files": [{"label": "x"}]}}, r"files\[0\] has no 'dataFile' object"),
    ({"data": {"files": [{"dataFile": {"id": 1, "filename": "h01.edf", "filesize": 3}}]}},
     r"files\[0\] \(h01\.edf\) publishes no md5"),
    ({"data": {"files": [{"dataFile": {"id": 1, "filesize": 3, "md5": "a" * 32}}]}}, r"files\[0\]\.dataFile has no field 'filename'"),
    ({"data": {"files": [{"directoryLabel": "..", "dataFile": {"id": 1, "filename": "h01.edf", "filesize": 3,
                                                                "md5": "a" * 32}}]}}, r"files\[0\] has the unsafe path '\.\./h01\.edf'"),
    ({"data": {"files": [{"dataFile": {"id": "x", "filename": "h01.edf", "filesize": 3, "md5": "a" * 32}}]}},
     r"files\[0\] \(h01\.edf\): 'id' and 'filesize' must be integers"),
])
def test_malformed_listings_are_clear_errors(answer, match):
    with pytest.raises(DataFormatError, match=r"^http://h/v: " + match):
        dataverse.parse_version(answer, "http://h/v")


def test_restricted_files_are_skipped_and_folders_kept():
    answer = {"data": {"versionNumber": 2, "versionMinorNumber": 1, "files": [
        {"restricted": True, "dataFile": {"id": 1, "filename": "s01.edf", "filesize": 3, "md5": "a" * 32}},
        {"directoryLabel": "eeg", "dataFile": {"id": 2, "filename": "h01.edf", "filesize": 5, "md5": "B" * 32}}]}}
    label, files = dataverse.parse_version(answer, "u")
    assert label == "2.1"
    assert files == [dataverse.DataverseFile(2, "eeg/h01.edf", 5, "b" * 32)]


def test_a_listing_without_recordings_is_an_error(http_server, tmp_path, home, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    serve(http_server, empty)
    monkeypatch.setenv(dataverse.ENV_URL, http_server.base)
    with pytest.raises(DataFormatError, match=r"version 1\.0 of doi:10\.18150/repod\.0107441 lists no file the layout "
                                              r"reads \(1 listed: README\.txt\)"):
        get_loader("repod-schizophrenia").prepare()
