"""Failures of the command line and the loaders are clear errors, and leave nothing behind.

Each case is one a user met (issue 13): no network, a cache that cannot be
written, a damaged wheel, a damaged download cache, output paths that cannot
be written, a ``--source`` that does not exist. Each must end in one
``error:``/``usage error:`` line (exit 2) that names the path or URL and says
what to do, with no traceback and nothing written.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from helpers import closed_port_url, load_script
from neuroharness.cli import main
from neuroharness.errors import CacheError, DataFormatError, DownloadError
from neuroharness.loaders import fetch, get_loader, open_dataset, prepare

try:
    import cect  # noqa: F401

    HAVE_CECT = True
except ImportError:
    HAVE_CECT = False


@pytest.fixture
def home(tmp_path, monkeypatch):
    root = tmp_path / "home"
    monkeypatch.setenv("NEUROHARNESS_HOME", str(root))
    for var in ("NEUROHARNESS_VESSELGRAPH_TABLE", "NEUROHARNESS_VESSELGRAPH_MIRROR", "NEUROHARNESS_FISBE_URL",
                "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    return root


def cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def leftovers(root: Path) -> list[str]:
    """Temporary files and folders under ``root`` (what an interrupted or failed write could leave)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".tmp-" in p.name or p.name.endswith(".part"))


# -- no network ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset, env, script", [
    ("celegans-activity", "HF_ENDPOINT", "make_celegans_activity_fixture.py"),
    ("fisbe", "NEUROHARNESS_FISBE_URL", "make_fisbe_fixture.py"),
])
def test_offline_prepare_is_one_error_with_the_url_and_how_to_work_offline(home, capsys, monkeypatch, dataset, env,
                                                                         script):
    url = closed_port_url()
    monkeypatch.setenv(env, url)
    rc, out, err = cli(capsys, "datasets", "prepare", dataset)
    assert rc == 2 and out == ""
    assert err.startswith(f"error: {dataset}: could not ") and url in err
    assert "Traceback" not in err and ("ConnectError" in err or "Connection refused" in err)
    assert "To work offline: pass --source" in err and f"scripts/{script}" in err
    assert not (home / "datasets").exists() and leftovers(home) == []


def test_offline_vesselgraph_names_the_mirror_url_and_the_generator(home, capsys):
    url = closed_port_url()
    rc, _, err = cli(capsys, "datasets", "prepare", "vesselgraph", "--source", url + "/mirror")
    assert rc == 2 and "Traceback" not in err
    assert f"{url}/mirror/BALBc_no1.zip" in err and "Connection refused" in err
    assert "(3 times)" in err  # retries are reported once, with a count
    assert "$NEUROHARNESS_VESSELGRAPH_MIRROR" in err and "scripts/make_vesselgraph_fixture.py" in err
    assert not (home / "datasets").exists()


def test_offline_run_that_needs_a_dataset_reports_the_download_error(home, capsys, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    rc, out, err = cli(capsys, "run", "celegans-forecast", "--model", "naive", "--out", str(home.parent / "res"))
    assert rc == 2 and out == ""
    assert err.startswith("error: celegans-activity: could not download ") and "To work offline" in err
    assert not (home.parent / "res").exists() or not any((home.parent / "res").iterdir())


# -- a damaged download cache ---------------------------------------------------------------------------
def test_a_damaged_cached_download_is_fetched_again(tmp_path, http_server):
    data = b"0123456789" * 1000
    url = http_server.add("/f.bin", data)
    sha = fetch.hashlib.sha256(data).hexdigest()
    dest = tmp_path / "f.bin"
    fetch.download(url, dest, sha)
    dest.write_bytes(data[:1234])  # truncated after it was verified
    assert fetch.download(url, dest, sha).read_bytes() == data
    assert len(http_server.requests_for("/f.bin")) == 2


def test_a_damaged_cached_download_that_cannot_be_fetched_again_says_so(tmp_path):
    data = b"x" * 100
    dest = tmp_path / "f.bin"
    dest.write_bytes(data[:10])
    with pytest.raises(DownloadError) as e:
        fetch.download(closed_port_url() + "/f.bin", dest, fetch.hashlib.sha256(data).hexdigest(), retries=1)
    assert f"the cached {dest} was damaged (sha256 is " in str(e.value) and "has been removed" in str(e.value)
    assert not dest.exists() and leftovers(tmp_path) == []


# -- a cache that cannot be written -------------------------------------------------------------------
def _prepared_vesselgraph(home: Path, tmp_path: Path) -> Path:
    gen = load_script("make_vesselgraph_fixture")
    src = tmp_path / "vg"
    gen.main([str(src), "--nodes", "80", "--seed", "1"])
    return src, prepare("vesselgraph", source=src)


def test_a_prepared_store_is_reused_from_a_cache_that_cannot_be_written(home, tmp_path, capsys):
    src, store = _prepared_vesselgraph(home, tmp_path)
    locks = home / "locks"
    for f in locks.iterdir():
        f.unlink()
    locks.rmdir()
    locks.write_text("")  # no lock can be created below it, like a read-only file system
    assert prepare("vesselgraph", source=src) == store  # nothing to do: no lock taken
    assert len(open_dataset("vesselgraph").children) >= 1
    rc, _, err = cli(capsys, "datasets", "prepare", "vesselgraph", "--source", str(src))
    assert rc == 0, err
    rc, _, err = cli(capsys, "datasets", "prepare", "vesselgraph", "--source", str(src), "--force")
    assert rc == 2 and "Traceback" not in err
    assert err.startswith(f"error: the cache {home} cannot be written ({locks}") and "set NEUROHARNESS_HOME" in err
    assert store.is_dir() and leftovers(home) == []


def test_a_cache_root_that_cannot_be_created_is_one_error(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("NEUROHARNESS_HOME", str(blocker / "home"))
    with pytest.raises(CacheError, match=r"the cache .*/file/home cannot be written .*set NEUROHARNESS_HOME"):
        get_loader("vesselgraph").prepare(source=tmp_path)


# -- --source ---------------------------------------------------------------------------------------------
def test_a_missing_source_is_named_before_anything_else(home, tmp_path, capsys):
    _, store = _prepared_vesselgraph(home, tmp_path)
    for extra in ([], ["--force"]):  # with a store already there, and when rebuilding
        rc, _, err = cli(capsys, "datasets", "prepare", "vesselgraph", "--source", "/nonexistent", *extra)
        assert rc == 2
        assert err.startswith("error: --source /nonexistent: no such file or directory; expected a local copy of "
                              "vesselgraph: pass --source with a local copy")
        assert "force" not in err
    assert store.is_dir()


def _wheel_from_installed(dest: Path) -> Path:
    """A wheel holding the installed cect data files at their wheel paths (the pinned bytes)."""
    from neuroharness.loaders.celegans.connectome import CECT

    root = CECT._installed_dir()
    if root is None:
        pytest.skip("needs cect 0.3.5 installed (pip install --no-deps cect==0.3.5)")
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for member in CECT.files:
            zf.write(root / member, member)
    return dest


def _damage_member(wheel: Path, member: str, out: Path) -> Path:
    """Flip bytes in the middle of ``member``'s compressed data (the zip directory stays valid)."""
    with zipfile.ZipFile(wheel) as zf:
        info = zf.getinfo(member)
    data = bytearray(wheel.read_bytes())
    with wheel.open("rb") as fh:  # the local header's own name/extra lengths give the data offset
        fh.seek(info.header_offset + 26)
        n, m = int.from_bytes(fh.read(2), "little"), int.from_bytes(fh.read(2), "little")
    start = info.header_offset + 30 + n + m + info.compress_size // 2
    for i in range(start, start + 16):
        data[i] ^= 0xFF
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(data))
    return out


@pytest.mark.skipif(not HAVE_CECT, reason="needs cect 0.3.5 installed (pip install --no-deps cect==0.3.5)")
def test_a_damaged_wheel_is_refused_and_the_raw_cache_does_not_hide_it(home, tmp_path, capsys):
    good = _wheel_from_installed(tmp_path / "cect-0.3.5-py3-none-any.whl")
    member = "cect/data/NeuronConnect.xls"
    bad = _damage_member(good, member, tmp_path / "bad" / good.name)
    # with no raw cache, and again with the members already extracted from the good wheel
    for step in ("cold", "warm"):
        rc, _, err = cli(capsys, "datasets", "prepare", "celegans-connectome", "--source", str(bad), "--force")
        assert rc == 2 and "Traceback" not in err, err
        assert f"error: {bad}: member {member!r} cannot be read (" in err and "the wheel is damaged" in err
        assert leftovers(home) == [] and not (home / "datasets" / "celegans-connectome").exists()
        if step == "cold":
            rc, _, err = cli(capsys, "datasets", "prepare", "celegans-connectome", "--source", str(good))
            assert rc == 0, err
            assert open_dataset("celegans-connectome").attrs["source"] == f"local wheel {good}"
            import shutil

            shutil.rmtree(home / "datasets")


@pytest.mark.skipif(not HAVE_CECT, reason="needs cect 0.3.5 installed (pip install --no-deps cect==0.3.5)")
def test_stale_temporary_files_of_a_killed_extraction_are_removed(home, tmp_path):
    good = _wheel_from_installed(tmp_path / "cect-0.3.5-py3-none-any.whl")
    raw = home / "raw" / "cect-0.3.5" / "cect" / "data"
    raw.mkdir(parents=True)
    stale = raw / ".NeuronConnect.xls.tmp-0123abcd"
    stale.write_bytes(b"half")
    prepare("celegans-connectome", source=good)
    assert not stale.exists() and leftovers(home) == []


def test_a_damaged_wheel_directory_is_a_data_format_error(home, tmp_path):
    from neuroharness.loaders.celegans.connectome import CECT

    broken = tmp_path / "x.whl"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataFormatError, match=r"x\.whl: not a readable wheel \(zip\) file: .*expected PyPI cect==0\.3\.5"):
        CECT.materialize(broken)


# -- output paths are checked before any work ------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["tasks", "template", "celegans-structure-function", "{f}/p.parquet"], "OUT {f}/p.parquet: {f} is a file"),
    (["run", "celegans-structure-function", "--model", "chance", "--out", "{f}"], "--out {f}: is a file"),
    (["run", "celegans-structure-function", "--model", "chance", "--out", "{f}/x"], "--out {f}/x: {f} is a file"),
    (["run", "celegans-structure-function", "--model", "chance", "--seeds", "-1"], "--seeds -1: seed -1 is negative"),
    (["evaluate", "celegans-structure-function", "{f}", "--json-out", "{f}/m.json"], "--json-out {f}/m.json: {f} is a file"),
    (["evaluate", "celegans-structure-function", "{f}", "--out", "{f}/r", "--model-name", "m"], "--out {f}/r: {f} is a file"),
    (["leaderboard", "celegans-structure-function", "--html", "{f}/site"], "--html {f}/site: {f} is a file"),
])
def test_unwritable_outputs_and_bad_arguments_fail_before_any_work(home, tmp_path, capsys, argv, message):
    f = tmp_path / "afile"
    f.write_text("x")
    rc, out, err = cli(capsys, *[a.format(f=f) for a in argv])
    assert rc == 2 and out == ""
    assert err.startswith("usage error: " + message.format(f=f)), err
    assert not home.exists() or not (home / "datasets").exists()  # nothing was prepared, trained or written
    assert f.read_text() == "x"
