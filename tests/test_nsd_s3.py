"""Source B read from ``s3://``: a local S3 server (moto, on 127.0.0.1) serves the synthetic NSD bucket.

The bucket is public-read like ``s3://natural-scenes-dataset`` and holds no RSC label (the real one does not:
it ships with the devkit), so the reader is used as a user would: anonymous s3fs pointed at the server by
``$NEUROHARNESS_S3_ENDPOINT`` (or ``storage_options``), the RSC label from a local devkit folder. The store
built through ``s3://`` must have the content checksum of the one built from the same files on disk.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from helpers import load_script

from neuroharness.errors import DataFormatError

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

fx = load_script("make_nsd_bucket_fixture")
BUCKET, DAMAGED = "natural-scenes-fixture", "natural-scenes-damaged"
MISSING = f"{fx.BETAS.format(subject='subj01')}/rh.betas_session33.mgh"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The fixture on disk: ``local`` (RSC label where the devkit says to copy it) and ``devkit`` (the RSC label)."""
    local = tmp_path_factory.mktemp("nsd_s3") / "local"
    fx.write_bucket(local, ("subj01",))
    devkit = local.parent / "devkit"
    devkit.mkdir()
    for hemi in fx.HEMIS:
        shutil.copy(local / fx.LABELS / f"{hemi}.nsdgeneralRSC.mgz", devkit)
    return local, devkit


@pytest.fixture(scope="module")
def endpoint(files):
    """A moto S3 server on 127.0.0.1 with two public-read buckets: the fixture without RSC labels, and the
    same missing one session file."""
    local, _ = files
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="fixture",
                              aws_secret_access_key="fixture")
        for name in (BUCKET, DAMAGED):
            client.create_bucket(Bucket=name, ACL="public-read")
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            key = path.relative_to(local).as_posix()
            if "nsdgeneralRSC" in key:
                continue
            client.upload_file(str(path), BUCKET, key)
            if key != MISSING:
                client.upload_file(str(path), DAMAGED, key)
        yield url
    finally:
        server.stop()


@pytest.fixture
def s3_env(endpoint, monkeypatch, tmp_path):
    monkeypatch.setenv("NEUROHARNESS_S3_ENDPOINT", endpoint)
    monkeypatch.delenv("NEUROHARNESS_NSD_RSC", raising=False)
    monkeypatch.setenv("NEUROHARNESS_HOME", str(tmp_path / "home"))
    return endpoint


def _store_checksum(arrays, path: Path) -> str:
    from neuroharness.loaders.base import content_checksum
    from neuroharness.loaders.nsd.store import write_subject

    write_subject(zarr.open_group(str(path), mode="w", zarr_format=2), arrays)
    return content_checksum(xr.open_zarr(path, group=arrays.subject, consolidated=False, chunks=None))


def test_store_from_s3_equals_local_build(files, s3_env, tmp_path):
    from neuroharness.loaders.nsd.bucket import subject_from_nsd

    local, devkit = files
    remote = subject_from_nsd(f"s3://{BUCKET}", "subj01", rsc_label=devkit, workdir=tmp_path / "work")
    here = subject_from_nsd(local, "subj01", workdir=tmp_path / "work")
    for hemi in fx.HEMIS:
        np.testing.assert_array_equal(remote.fmri[hemi], here.fmri[hemi])
    assert _store_checksum(remote, tmp_path / "s3.zarr") == _store_checksum(here, tmp_path / "local.zarr")
    assert remote.image._offsets is not None  # the images came as direct byte ranges, not through h5py
    assert not any((tmp_path / "work").rglob("*"))


def test_storage_options_and_rsc_label_url(files, endpoint, monkeypatch, tmp_path):
    """Without the environment variable: ``storage_options`` reach s3fs, and the RSC folder may be a URL too."""
    from neuroharness.loaders.nsd.bucket import subject_from_nsd

    monkeypatch.delenv("NEUROHARNESS_S3_ENDPOINT", raising=False)
    local, devkit = files
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="fixture",
                          aws_secret_access_key="fixture")
    for hemi in fx.HEMIS:
        client.upload_file(str(devkit / f"{hemi}.nsdgeneralRSC.mgz"), BUCKET, f"devkit/{hemi}.nsdgeneralRSC.mgz")
    options = {"anon": True, "client_kwargs": {"endpoint_url": endpoint}}
    a = subject_from_nsd(f"s3://{BUCKET}", "subj01", rsc_label=f"s3://{BUCKET}/devkit", storage_options=options,
                         workdir=tmp_path)
    b = subject_from_nsd(local, "subj01", workdir=tmp_path)
    np.testing.assert_array_equal(a.fmri["rh"], b.fmri["rh"])
    np.testing.assert_array_equal(a.image(5), b.image(5))


def test_rsc_label_missing_from_the_bucket(s3_env, tmp_path):
    from neuroharness.loaders.nsd.bucket import subject_from_nsd

    with pytest.raises(DataFormatError) as e:
        subject_from_nsd(f"s3://{BUCKET}", "subj01", workdir=tmp_path / "work")
    msg = str(e.value)
    assert msg.startswith("subj01: ") and f"s3://{BUCKET}/{fx.LABELS}/lh.nsdgeneralRSC.mgz" in msg
    assert "Algonauts 2023 devkit" in msg and "NEUROHARNESS_NSD_RSC" in msg
    assert not (tmp_path / "work").exists()


def test_missing_session_file_on_s3(files, s3_env, tmp_path):
    from neuroharness.loaders.nsd.bucket import subject_from_nsd

    with pytest.raises(DataFormatError) as e:
        subject_from_nsd(f"s3://{DAMAGED}", "subj01", rsc_label=files[1], workdir=tmp_path / "work")
    assert str(e.value).startswith("subj01: ") and f"s3://{DAMAGED}/{MISSING}" in str(e.value)
    assert not (tmp_path / "work").exists()


def test_prepare_from_s3_equals_prepare_from_folder(files, s3_env, monkeypatch, tmp_path):
    """``prepare nsd-algonauts2023 --source s3://...`` (RSC label through ``$NEUROHARNESS_NSD_RSC``) gives the
    store that ``--source DIR`` gives: same content checksum."""
    from neuroharness.loaders import get_loader
    from neuroharness.loaders.base import root_attrs

    local, devkit = files
    loader = get_loader("nsd-algonauts2023")
    monkeypatch.setenv("NEUROHARNESS_HOME", str(tmp_path / "home_local"))
    from_folder = root_attrs(loader.prepare(source=local))
    monkeypatch.setenv("NEUROHARNESS_HOME", str(tmp_path / "home_s3"))
    monkeypatch.setenv("NEUROHARNESS_NSD_RSC", str(devkit))
    from_s3 = root_attrs(loader.prepare(source=f"s3://{BUCKET}"))
    assert from_s3["content_sha256"] == from_folder["content_sha256"]
    assert from_s3["source_argument"] == f"s3://{BUCKET}"
