"""Submission files: reading npz/parquet/zarr safely, and scoring them on the real task."""
from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pandas as pd
import pytest

from neuroharness.errors import SubmissionError
from neuroharness.tasks.submission import read_table, write_table

TASK = "celegans-structure-function"
N_TEST = 6385

needs_celegans = pytest.mark.skipif(
    importlib.util.find_spec("cect") is None or importlib.util.find_spec("wormneuroatlas") is None,
    reason="needs the cect and wormneuroatlas wheels installed (pip install --no-deps cect==0.3.5 wormneuroatlas==0.0.7.3)",
)


@pytest.fixture(scope="module")
def task():
    from neuroharness.tasks import get_task

    return get_task(TASK)


@pytest.fixture(scope="module")
def perfect(task) -> pd.DataFrame:
    """A submission that ranks every significant test pair first and knows every amplitude."""
    test = task.data().splits["test"]
    return task.submission_template("test").assign(score=test.significant.astype(float), amplitude=test.amplitude)


def _write_zarr(df: pd.DataFrame, path) -> None:
    import xarray as xr

    ds = xr.Dataset({c: ("pair", df[c].to_numpy(dtype=object if c in ("responding", "stimulated") else None)) for c in df.columns})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr v3 warns that consolidated metadata is not in the spec
        ds.to_zarr(path, mode="w")


def _write_npz(df: pd.DataFrame, path) -> None:
    np.savez(path, **{c: df[c].to_numpy(dtype=str if c in ("responding", "stimulated") else float) for c in df.columns})


# -- the template and a perfect submission ----------------------------------
@needs_celegans
def test_template_has_every_test_pair_once(task):
    tpl = task.submission_template("test")
    assert len(tpl) == N_TEST
    assert list(tpl.columns) == ["responding", "stimulated"]
    assert not tpl.duplicated().any()
    assert (tpl["responding"] != tpl["stimulated"]).all()  # no self-pairs
    val = task.submission_template("val")
    # the split is by stimulated neuron: test and val share no stimulated neuron
    assert set(tpl["stimulated"]).isdisjoint(val["stimulated"])


@needs_celegans
@pytest.mark.parametrize("suffix", [".npz", ".parquet", ".zarr"])
def test_perfect_submission_scores_one(task, perfect, tmp_path, suffix):
    path = tmp_path / f"perfect{suffix}"
    {".npz": _write_npz, ".parquet": lambda df, p: df.to_parquet(p, index=False), ".zarr": _write_zarr}[suffix](
        perfect.sample(frac=1.0, random_state=0), path  # row order must not matter
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # xarray's non-consolidated-metadata fallback
        result = task.evaluate(path)
    assert result["roc_auc"] == 1.0
    assert result["average_precision"] == 1.0
    assert result["spearman"] == pytest.approx(1.0)
    assert result["main_score"] == result["roc_auc"]
    assert result["n_pairs"] == N_TEST
    assert result["n_significant"] == int(perfect["score"].sum())
    assert result["chance_average_precision"] == pytest.approx(perfect["score"].mean())


@needs_celegans
def test_reversed_scores_give_zero_auc(task, perfect):
    result = task.evaluate(perfect.assign(score=-perfect["score"], amplitude=-perfect["amplitude"]))
    assert result["roc_auc"] == 0.0
    assert result["spearman"] == pytest.approx(-1.0)
    assert result["average_precision"] == pytest.approx(result["chance_average_precision"], abs=0.01)


# -- bad submissions ---------------------------------------------------------
def _case_missing_column(df):
    return df.drop(columns="amplitude"), r"missing column\(s\) \['amplitude'\]"


def _case_nan_score(df):
    df = df.copy()
    df.loc[7, "score"] = np.nan
    return df, r"column 'score' has 1 NaN/inf value\(s\), first at row 7"


def _case_inf_amplitude(df):
    df = df.copy()
    df.loc[3, "amplitude"] = np.inf
    df.loc[9, "amplitude"] = -np.inf
    return df, r"column 'amplitude' has 2 NaN/inf value\(s\), first at row 3"


def _case_duplicated_pair(df):
    r = df.iloc[5]
    return pd.concat([df, df.iloc[[5]]], ignore_index=True), rf"pair \(stimulated {r.stimulated} -> responding {r.responding}\) appears more than once"


def _case_missing_pair(df):
    r = df.iloc[11]
    return df.drop(index=11), rf"1 of {N_TEST} test pairs missing, e.g. pair \(stimulated {r.stimulated} -> responding {r.responding}\)"


def _case_extra_pair(df):
    extra = pd.DataFrame({"responding": ["NOTANEURON"], "stimulated": ["AVAL"], "score": [0.5], "amplitude": [0.0]})
    return pd.concat([df, extra], ignore_index=True), r"1 row\(s\) are not test pairs, e.g. pair \(stimulated AVAL -> responding NOTANEURON\)"


def _case_numeric_ids(df):
    return df.assign(responding=np.arange(len(df))), r"column 'responding' has dtype int64, expected strings"


def _case_string_scores(df):
    return df.assign(score=df["score"].astype(str)), r"column 'score' has dtype .*, expected numbers"


BAD = [_case_missing_column, _case_nan_score, _case_inf_amplitude, _case_duplicated_pair, _case_missing_pair,
       _case_extra_pair, _case_numeric_ids, _case_string_scores]


@needs_celegans
@pytest.mark.parametrize("case", BAD, ids=lambda f: f.__name__.removeprefix("_case_"))
@pytest.mark.parametrize("suffix", [".parquet", ".npz"])
def test_bad_submission_file_names_file_and_problem(task, perfect, tmp_path, case, suffix):
    df, match = case(perfect)
    path = tmp_path / f"bad{suffix}"
    if suffix == ".npz":
        np.savez(path, **{c: (df[c].to_numpy(dtype=str) if df[c].dtype == object or pd.api.types.is_string_dtype(df[c])
                              else df[c].to_numpy()) for c in df.columns})
    else:
        df.to_parquet(path, index=False)
    if case in (_case_duplicated_pair, _case_extra_pair):  # one row more than the template: refused before reading
        n = len(perfect)
        match = rf"{n + 1} rows, more than the {n} rows|{n + 1} rows found, more than the {n} rows expected"
    with pytest.raises(SubmissionError, match=match) as exc:
        task.evaluate(path)
    assert str(exc.value).startswith(f"{path}: ")


@needs_celegans
def test_bad_dataframe_is_named_predictions(task, perfect):
    df, match = _case_nan_score(perfect)
    with pytest.raises(SubmissionError, match="^predictions: " + match):
        task.evaluate(df)


@needs_celegans
def test_object_array_npz_is_refused_without_unpickling(task, perfect, tmp_path):
    sentinel = tmp_path / "unpickled"

    class Evil:
        def __reduce__(self):
            return (open, (str(sentinel), "w"))

    path = tmp_path / "objects.npz"
    arrays = {c: perfect[c].to_numpy() for c in ("score", "amplitude")}
    arrays["responding"] = perfect["responding"].to_numpy(dtype=object)
    arrays["stimulated"] = np.array([Evil()] * len(perfect), dtype=object)
    np.savez(path, **arrays)  # allow_pickle defaults to True on write: object arrays are pickled
    with pytest.raises(SubmissionError, match=r"Object arrays cannot be loaded when allow_pickle=False") as exc:
        task.evaluate(path)
    assert str(exc.value).startswith(f"{path}: unreadable .npz")
    assert not sentinel.exists()


@needs_celegans
def test_bad_split(task, perfect):
    with pytest.raises(SubmissionError, match="split 'train': expected 'test' or 'val'"):
        task.evaluate(perfect, split="train")


def test_pickle_file_is_unsupported(tmp_path):
    path = tmp_path / "preds.pkl"
    pd.DataFrame({"a": [1.0]}).to_pickle(path)
    with pytest.raises(SubmissionError, match=r"unsupported format '\.pkl'.*pickle is never accepted") as exc:
        read_table(path)
    assert str(exc.value).startswith(str(path))


def test_nonexistent_path(tmp_path):
    path = tmp_path / "missing.parquet"
    with pytest.raises(SubmissionError, match=f"^{path}: file not found$"):
        read_table(path)


def test_npz_must_be_1d_and_equal_length(tmp_path):
    p2d = tmp_path / "two_d.npz"
    np.savez(p2d, score=np.zeros((2, 2)))
    with pytest.raises(SubmissionError, match=r"two_d\.npz: arrays must be 1-D, got shapes \{'score': \(2, 2\)\}"):
        read_table(p2d)
    plen = tmp_path / "ragged.npz"
    np.savez(plen, score=np.zeros(3), amplitude=np.zeros(4))
    with pytest.raises(SubmissionError, match=r"ragged\.npz: arrays differ in length"):
        read_table(plen)


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "junk.parquet"
    path.write_bytes(b"not a parquet file")
    with pytest.raises(SubmissionError, match=r"junk\.parquet: unreadable \.parquet predictions"):
        read_table(path)


# -- write_table -------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_write_table_round_trip(tmp_path, suffix):
    df = pd.DataFrame({
        "responding": pd.array(["AVAL", "AVAR", "ASHL"], dtype="string"),
        "stimulated": ["AIBL", "AIBR", "RIML"],
        "score": [0.25, -1.5, 3.0],
        "amplitude": [0.1, 0.0, -0.2],
    })
    path = write_table(df, tmp_path / f"t{suffix}")
    assert path == tmp_path / f"t{suffix}"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # atomic: no temp file left
    back = read_table(path)
    assert list(back.columns) == list(df.columns)
    assert back["responding"].astype(str).tolist() == ["AVAL", "AVAR", "ASHL"]
    assert back["stimulated"].astype(str).tolist() == ["AIBL", "AIBR", "RIML"]
    np.testing.assert_array_equal(back["score"].to_numpy(), [0.25, -1.5, 3.0])
    np.testing.assert_array_equal(back["amplitude"].to_numpy(), [0.1, 0.0, -0.2])
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:  # no object arrays were written
            assert z["responding"].dtype.kind == "U"


def test_write_table_unsupported_suffix(tmp_path):
    with pytest.raises(SubmissionError, match=r"unsupported format '\.csv'"):
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.csv")
    assert list(tmp_path.iterdir()) == []


@needs_celegans
def test_template_round_trips_through_write_table(task, tmp_path):
    tpl = task.submission_template("test")
    for suffix in (".npz", ".parquet"):
        back = read_table(write_table(tpl, tmp_path / f"template{suffix}"))
        assert back.astype(str).equals(tpl.astype(str))
