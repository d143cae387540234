"""Bad input, through the command line: each gets exit status 2, an ``error:`` line naming the file and
the field, and nothing is written (no record, no metrics file, no temporary files).

Submissions are scored on ``celegans-structure-function`` (needs the cect and wormneuroatlas wheels);
the checks of the size limit and of archive member names on FISBe's reader need no data.
"""
from __future__ import annotations

import importlib.util
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from neuroharness.cli import main
from neuroharness.errors import SubmissionError
from neuroharness.tasks import get_task

TASK = "celegans-structure-function"
LIMIT_ENV = "NEUROHARNESS_MAX_SUBMISSION_BYTES"

needs_celegans = pytest.mark.skipif(
    importlib.util.find_spec("cect") is None or importlib.util.find_spec("wormneuroatlas") is None,
    reason="needs the cect and wormneuroatlas wheels installed (pip install --no-deps cect==0.3.5 wormneuroatlas==0.0.7.3)",
)


class RaisingModel:
    """A plugin factory that raises (run as ``--model test_bad_input:RaisingModel``)."""

    def __init__(self, **kwargs):
        raise RuntimeError("this factory always fails")


class _Unpickled:
    """Creates ``path`` if it is ever unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def task():
    return get_task(TASK)


def _arrays(task, split="test") -> dict[str, np.ndarray]:
    """A well-formed submission for ``split``: the template's ids, a score and an amplitude per pair."""
    tpl = task.submission_template(split)
    n = len(tpl)
    return {"responding": tpl["responding"].to_numpy(dtype=str), "stimulated": tpl["stimulated"].to_numpy(dtype=str),
            "score": np.linspace(0, 1, n), "amplitude": np.zeros(n)}


def _evaluate_refused(tmp_path: Path, capsys, path: Path, *needles: str) -> str:
    """`evaluate --out --json-out` exits 2 with `error: PATH: ...` holding every needle, and writes nothing."""
    out, json_out = tmp_path / "records", tmp_path / "metrics" / "m.json"
    before = _tree(tmp_path)
    assert main(["evaluate", TASK, str(path), "--model-name", "mine", "--out", str(out), "--json-out", str(json_out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: "), err
    for needle in needles:
        assert needle in err, err
    assert _tree(tmp_path) == before  # no record, no metrics file, no temporary file
    return err


# -- submissions -------------------------------------------------------------------------------------------
@needs_celegans
def test_submission_for_another_split(task, tmp_path, capsys):
    path = tmp_path / "val_as_test.npz"
    np.savez(path, **_arrays(task, "val"))
    _evaluate_refused(tmp_path, capsys, path, "are not test pairs", "pair (stimulated ")


@needs_celegans
def test_missing_ids(task, tmp_path, capsys):
    path = tmp_path / "missing.npz"
    np.savez(path, **{k: v[10:] for k, v in _arrays(task).items()})
    n = len(task.submission_template())
    _evaluate_refused(tmp_path, capsys, path, f"10 of {n} test pairs", "missing", "pair (stimulated ")


@needs_celegans
def test_extra_ids(task, tmp_path, capsys):
    path = tmp_path / "extra.npz"
    arrays = _arrays(task)
    np.savez(path, **{k: np.concatenate([v, v[:1]]) for k, v in arrays.items()})
    n = len(arrays["score"])
    _evaluate_refused(tmp_path, capsys, path, "array 'responding'", f"{n + 1} rows, more than the {n} rows of the template")


@needs_celegans
def test_extra_ids_parquet_refused_from_its_metadata(task, tmp_path, capsys):
    import pandas as pd

    path = tmp_path / "extra.parquet"
    arrays = _arrays(task)
    pd.DataFrame({k: np.concatenate([v, v[:3]]) for k, v in arrays.items()}).to_parquet(path, index=False)
    n = len(arrays["score"])
    _evaluate_refused(tmp_path, capsys, path, f"{n + 3} rows found, more than the {n} rows expected")


@needs_celegans
def test_nan(task, tmp_path, capsys):
    path = tmp_path / "nan.npz"
    arrays = _arrays(task)
    arrays["score"][7] = np.nan
    np.savez(path, **arrays)
    _evaluate_refused(tmp_path, capsys, path, "column 'score'", "NaN/inf", "first at row 7")


@needs_celegans
def test_wrong_dtype(task, tmp_path, capsys):
    path = tmp_path / "dtype.npz"
    arrays = _arrays(task)
    arrays["amplitude"] = arrays["amplitude"].astype(str)
    np.savez(path, **arrays)
    _evaluate_refused(tmp_path, capsys, path, "column 'amplitude' has dtype", "expected numbers")


@needs_celegans
def test_over_the_size_limit(task, tmp_path, capsys, monkeypatch):
    path = tmp_path / "big.npz"
    np.savez(path, **_arrays(task))  # uncompressed: ~ 4 x 6385 values
    monkeypatch.setenv(LIMIT_ENV, "4096")
    _evaluate_refused(tmp_path, capsys, path, "over the submission size limit of 4,096 bytes", LIMIT_ENV)


@needs_celegans
def test_compressed_npz_over_the_limit_is_refused_from_its_headers(task, tmp_path, capsys, monkeypatch):
    """A small file that would uncompress to more than the limit is refused without decompressing it."""
    path = tmp_path / "bomb.npz"
    arrays = _arrays(task)
    arrays["pad"] = np.zeros(4_000_000)  # 32 MB of zeros, a few kB compressed
    np.savez_compressed(path, **arrays)
    assert path.stat().st_size < 2_000_000
    monkeypatch.setenv(LIMIT_ENV, str(8_000_000))
    _evaluate_refused(tmp_path, capsys, path, "members uncompress to", "over the submission size limit", LIMIT_ENV)


@needs_celegans
def test_zarr_folder_over_the_limit(task, tmp_path, capsys, monkeypatch):
    path = tmp_path / "p.zarr"
    (path / "score").mkdir(parents=True)
    (path / "score" / "0").write_bytes(b"\0" * 5000)
    monkeypatch.setenv(LIMIT_ENV, "4096")
    _evaluate_refused(tmp_path, capsys, path, "its files hold 5,000 bytes", LIMIT_ENV)


def test_size_limit_env_must_be_a_positive_number(monkeypatch, tmp_path):
    from neuroharness.tasks.submission import MAX_SUBMISSION_BYTES, max_submission_bytes

    assert MAX_SUBMISSION_BYTES == 8 * 1024**3
    monkeypatch.delenv(LIMIT_ENV, raising=False)
    assert max_submission_bytes() == MAX_SUBMISSION_BYTES
    monkeypatch.setenv(LIMIT_ENV, "12345")
    assert max_submission_bytes() == 12345
    for bad in ("-1", "0", "8GB"):
        monkeypatch.setenv(LIMIT_ENV, bad)
        with pytest.raises(SubmissionError, match=f"{LIMIT_ENV}={bad!r}: expected a positive number of bytes"):
            max_submission_bytes()


@needs_celegans
def test_npz_member_escaping_its_folder(task, tmp_path, capsys):
    path = tmp_path / "escape.npz"
    np.savez(path, **_arrays(task))
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("../x.npy", b"")
    _evaluate_refused(tmp_path, capsys, path, "member '../x.npy' is a path outside the archive's folder")
    assert not (tmp_path.parent / "x.npy").exists()


@needs_celegans
def test_pickle_disguised_as_npz(task, tmp_path, capsys):
    path = tmp_path / "pickle.npz"
    sentinel = tmp_path / "unpickled"
    path.write_bytes(pickle.dumps({"score": _Unpickled(sentinel)}))
    _evaluate_refused(tmp_path, capsys, path, "not an .npz (zip) archive", "pickle is never accepted")
    assert not sentinel.exists()


# -- records -----------------------------------------------------------------------------------------------
@needs_celegans
def test_record_with_a_forged_metric(task, tmp_path, capsys):
    out = tmp_path / "records"
    preds = tmp_path / "p.npz"
    np.savez(preds, **_arrays(task))
    assert main(["evaluate", TASK, str(preds), "--model-name", "mine", "--out", str(out)]) == 0
    capsys.readouterr()
    [path] = out.glob("*.json")
    record = json.loads(path.read_text())
    record["metrics"]["roc_auc"] = record["metrics"]["main_score"] = 0.99
    path.write_text(json.dumps(record))
    site = tmp_path / "site"
    before = _tree(tmp_path)
    assert main(["leaderboard", TASK, "--results", str(out), "--only-results"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: record_digest ") and "does not match the record's content" in err, err
    assert _tree(tmp_path) == before and not site.exists()


# -- plugins -----------------------------------------------------------------------------------------------
@needs_celegans
def test_plugin_factory_that_raises(tmp_path, capsys):
    out = tmp_path / "records"
    before = _tree(tmp_path)
    assert main(["run", TASK, "--model", "test_bad_input:RaisingModel", "--seeds", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "test_bad_input:RaisingModel" in err and "this factory always fails" in err, err
    assert _tree(tmp_path) == before


# -- FISBe's reader (no data needed) -------------------------------------------------------------------------
def test_fisbe_prediction_file_size_limit_and_member_names(tmp_path, monkeypatch):
    from neuroharness.tasks.fisbe.instance_segmentation import PredictionFile

    path = tmp_path / "p.npz"
    np.savez_compressed(path, sample_a=np.zeros((8, 64, 64), dtype=np.uint16))  # 64 kB uncompressed
    with PredictionFile(path) as pf:
        assert pf.names == ["sample_a"]
    monkeypatch.setenv(LIMIT_ENV, "10000")
    with pytest.raises(SubmissionError, match=rf"^{path}: its (members uncompress to|arrays hold) 65,\d{{3}} bytes, over "
                                              rf"the submission size limit of 10,000 bytes.*{LIMIT_ENV}"):
        PredictionFile(path)
    monkeypatch.setenv(LIMIT_ENV, "100")
    with pytest.raises(SubmissionError, match=rf"^{path}: the file has \d+ bytes, over the submission size limit"):
        PredictionFile(path)
    monkeypatch.delenv(LIMIT_ENV)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("../evil.npy", b"")
    with pytest.raises(SubmissionError, match=rf"^{path}: member '../evil.npy' is a path outside the archive's folder"):
        PredictionFile(path)
    folder = tmp_path / "p.zarr"
    folder.mkdir()
    (folder / "zarr.json").write_bytes(b" " * 300)
    monkeypatch.setenv(LIMIT_ENV, "100")
    with pytest.raises(SubmissionError, match=rf"^{folder}: its files hold 300 bytes, over the submission size limit"):
        PredictionFile(folder)
