"""Submission files: reading npz/parquet/zarr safely, and scoring them on the real task."""
from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pandas as pd
import pytest
from helpers import patch_zip

from neuroharness.errors import SubmissionError
from neuroharness.tasks.submission import Column, TableSpec, check_table, read_table, write_table

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
    with pytest.raises(SubmissionError, match=r"array 'responding' has dtype object \(Python objects, which numpy "
                       r"stores as a pickle\); pickles are never loaded: store text as fixed-width unicode") as exc:
        task.evaluate(path)
    assert str(exc.value).startswith(f"{path}: ")
    assert "allow_pickle" not in str(exc.value)  # numpy's advice is not passed on
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


# -- headers first: nothing is loaded before names, shapes, rows and sizes pass (issue 13) ---------------------
NEURON_NAMES = ("ADAL", "ADAR", "AIBL", "AIBR", "AVAL", "AVAR")
PAIR_SPEC = TableSpec(
    ids=(Column("responding", "str", "neuron names", known=NEURON_NAMES, range_text="one of the 6 neuron names"),
         Column("stimulated", "str", "neuron names", known=NEURON_NAMES, range_text="one of the 6 neuron names")),
    values=(Column("score", "float"), Column("amplitude", "float")),
    items="pairs", id_format="pair (stimulated {stimulated} -> responding {responding})")
PAIR_TEMPLATE = pd.DataFrame({"responding": ["ADAL", "ADAR", "AIBL", "AVAL"], "stimulated": ["AVAR", "AVAR", "ADAL", "AIBR"]})
LIMIT_ENV = "NEUROHARNESS_MAX_SUBMISSION_BYTES"


def _pairs(n_extra: int = 0) -> dict[str, np.ndarray]:
    """A correct submission for :data:`PAIR_TEMPLATE` as 1-D arrays."""
    return {"responding": PAIR_TEMPLATE["responding"].to_numpy(dtype=str),
            "stimulated": PAIR_TEMPLATE["stimulated"].to_numpy(dtype=str),
            "score": np.array([0.1, 0.2, 0.3, 0.4]), "amplitude": np.zeros(4)}


def _savez(path, compressed=False, **arrays):
    with open(path, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(f, **arrays)
    return path


@pytest.fixture
def loads(monkeypatch):
    """Counts the arrays numpy decompresses and reads (npy data, not headers)."""
    calls = []
    real = np.lib.format.read_array
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def _refused(path, match, spec=PAIR_SPEC, template=PAIR_TEMPLATE):
    with pytest.raises(SubmissionError, match=match) as e:
        check_table(path, spec, template, "test")
    assert str(e.value).startswith(f"{path}: "), str(e.value)
    return str(e.value)


def test_valid_files_score_in_every_format(tmp_path):
    import zarr

    want = [0.1, 0.2, 0.3, 0.4]
    npz = _savez(tmp_path / "p.npz", **_pairs())
    pq_path = tmp_path / "p.parquet"
    pd.DataFrame(_pairs()).to_parquet(pq_path, index=False)
    plain = tmp_path / "plain.zarr"  # written with zarr itself: no xarray dimension names needed
    g = zarr.open_group(str(plain), mode="w", zarr_format=3)
    for k, v in _pairs().items():
        g.create_array(k, data=v)
    for path in (npz, pq_path, plain):
        assert check_table(path, PAIR_SPEC, PAIR_TEMPLATE, "test")["score"].tolist() == want, path


def test_wrong_names_are_refused_from_the_headers_of_a_compressed_bomb(tmp_path, loads):
    """The issue's case: a small .npz holding one big array under a name the task does not use."""
    path = _savez(tmp_path / "bomb.npz", compressed=True, predictions=np.zeros(4_000_000))  # 32 MB of zeros
    assert path.stat().st_size < 100_000
    _refused(path, r"missing column\(s\) \['responding', 'stimulated', 'score', 'amplitude'\]; found \['predictions'\]")
    assert loads == []


@pytest.mark.parametrize("case", ["two_d", "rows", "ragged", "object"])
def test_shapes_rows_and_object_arrays_are_refused_from_the_headers(tmp_path, loads, case):
    arrays = _pairs()
    if case == "two_d":
        arrays["amplitude"] = np.zeros((4, 1_000_000))
        match = r"arrays must be 1-D, got shapes \{'amplitude': \(4, 1000000\)\}"
    elif case == "rows":
        arrays = {k: np.concatenate([v, v[:1]]) for k, v in arrays.items()}
        match = r"array 'responding' has 5 rows, more than the 4 rows of the template .*nothing was loaded"
    elif case == "ragged":
        arrays["score"] = arrays["score"][:3]
        match = r"arrays differ in length: \{'responding': 4, 'stimulated': 4, 'score': 3, 'amplitude': 4\}"
    else:
        arrays["notes"] = np.array([{"a": 1}] * 4, dtype=object)
        match = r"array 'notes' has dtype object \(Python objects, which numpy stores as a pickle\); pickles are never loaded"
    msg = _refused(_savez(tmp_path / "p.npz", compressed=True, **arrays), match)
    assert "allow_pickle" not in msg
    assert loads == []


def test_columns_the_task_does_not_read_are_never_loaded(tmp_path, loads):
    arrays = {**_pairs(), "notes": np.zeros(4), "label": np.arange(4)}
    path = _savez(tmp_path / "p.npz", **arrays)
    table = read_table(path, 4, PAIR_SPEC.columns)
    assert list(table.columns) == PAIR_SPEC.columns and len(loads) == 4
    pq_path = tmp_path / "p.parquet"
    pd.DataFrame({**arrays, "notes": ["x" * 1000] * 4}).to_parquet(pq_path, index=False)
    assert list(read_table(pq_path, 4, PAIR_SPEC.columns).columns) == PAIR_SPEC.columns


def test_zip_directory_declaring_more_than_the_limit(tmp_path, monkeypatch, loads):
    path = _savez(tmp_path / "p.npz", compressed=True, **{**_pairs(), "pad": np.zeros(100_000)})
    monkeypatch.setenv(LIMIT_ENV, "200000")
    _refused(path, rf"its members uncompress to 8\d\d,\d+ bytes, over the submission size limit of 200,000 bytes.*{LIMIT_ENV}")
    assert loads == []


def _npy(shape, descr="<f8", data=b"") -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue() + data


def test_npy_headers_declaring_huge_or_impossible_shapes(tmp_path, loads):
    import zipfile

    path = _savez(tmp_path / "p.npz", **_pairs())
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("pad.npy", _npy((2**40,), data=b"\0" * 64))  # 8 TiB declared, 64 bytes stored
    _refused(path, r"its arrays hold 8,796,093,022,\d+ bytes, over the submission size limit")
    for header, why in [(_npy((-5,)), "negative dimension"), (b"\x93NUMPY\x09\x00\x10\x00{'descr': '<f8'} \n", "version 9.0"),
                        (b"\x93NUMP", "")]:
        bad = _savez(tmp_path / "bad.npz", **_pairs())
        with zipfile.ZipFile(bad, "a") as zf:
            zf.writestr("pad.npy", header)
        _refused(bad, rf"member 'pad\.npy' is not a valid \.npy array \(.*{why}")
    assert loads == []


@pytest.mark.parametrize("name", ["../evil.npy", "/abs.npy", "C:evil.npy", "a/../../evil.npy", "..\\evil.npy"])
def test_member_paths_escaping_the_archive(tmp_path, name):
    import zipfile

    path = _savez(tmp_path / "p.npz", **_pairs())
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(name, _npy((4,), data=b"\0" * 32))
    msg = _refused(path, r"is a path outside the archive's folder: the member path escapes the archive")
    assert "GroupNotFoundError" not in msg and repr(name) in msg
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]


def test_encrypted_members_and_unknown_compression_are_refused(tmp_path):
    """Both raised RuntimeError / NotImplementedError from zipfile through every reader before."""
    enc = _savez(tmp_path / "enc.npz", **_pairs())
    patch_zip(enc, 8, "<H", 0x1, local=6)
    _refused(enc, r"member 'responding\.npy' is encrypted; write the archive without a password")
    meth = _savez(tmp_path / "meth.npz", **_pairs())
    patch_zip(meth, 10, "<H", 99, local=8)
    _refused(meth, r"member 'responding\.npy' uses zip compression method 99, which cannot be read")


def test_a_name_stored_twice_in_the_archive(tmp_path):
    import zipfile

    path = _savez(tmp_path / "p.npz", **_pairs())
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "a") as zf:
        zf.writestr("score.npy", _npy((4,), data=b"\0" * 32))
    _refused(path, r"'score' appears more than once in the archive \(a column stored twice\)")


@pytest.mark.parametrize("suffix", [".npz", ".parquet", ".npy", ".csv", ".zarr", ".pkl"])
def test_a_pickle_is_never_loaded_whatever_its_suffix(tmp_path, suffix):
    import os
    import pickle

    sentinel = tmp_path / "unpickled"

    class Boom:
        def __reduce__(self):
            return (os.mkdir, (str(sentinel),))

    path = tmp_path / f"preds{suffix}"
    path.write_bytes(pickle.dumps({"score": Boom()}))
    msg = _refused(path, r"the file is a Python pickle.*pickle is never accepted: pickles are never loaded, whatever "
                         r"the file is called")
    assert "allow_pickle" not in msg
    assert not sentinel.exists()


def test_parquet_names_rows_and_declared_size_from_the_footer(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    reads = []
    real = pq.ParquetFile.read
    monkeypatch.setattr(pq.ParquetFile, "read", lambda self, *a, **k: reads.append(k.get("columns")) or real(self, *a, **k))
    base = pd.DataFrame(_pairs())
    wrong = tmp_path / "wrong.parquet"
    base.rename(columns={"amplitude": "amplitudes"}).to_parquet(wrong, index=False)
    _refused(wrong, r"missing column\(s\) \['amplitude'\]; found \['responding', 'stimulated', 'score', 'amplitudes'\]")
    dup = tmp_path / "dup.parquet"
    pq.write_table(pa.table([pa.array(base[c]) for c in base.columns] + [pa.array(base["score"])],
                            names=[*base.columns, "score"]), dup)
    _refused(dup, r"column\(s\) \['score'\] appear more than once")
    more = tmp_path / "more.parquet"
    pd.concat([base] * 3, ignore_index=True).to_parquet(more, index=False)
    _refused(more, r"12 rows found, more than the 4 rows expected")
    assert reads == []
    long = tmp_path / "long.parquet"  # one long name, dictionary-encoded: small on disk, large once decoded
    pq.write_table(pa.table({**{c: pa.array(base[c]) for c in base.columns},
                             "responding": pa.array(["A" * 200_000] * 4).dictionary_encode()}), long)
    monkeypatch.setenv(LIMIT_ENV, "500000")
    _refused(long, r"4 rows of columns .* decode to up to [\d,]+ bytes, over the submission size limit of 500,000")
    assert reads == []


# -- ids: unknown names with their row, before anything is matched ---------------------------------------------
def test_unknown_names_are_reported_with_their_row_before_missing_pairs():
    table = pd.DataFrame({**_pairs()})
    table.loc[2, "responding"] = "NOTANEURON"
    with pytest.raises(SubmissionError, match=r"^predictions: row 2, column 'responding': 'NOTANEURON' is unknown "
                       r"\(1 row\(s\) with unknown names\); expected one of the 6 neuron names \(ADAL, ADAR, AIBL, "
                       r"AIBR, AVAL, \.\.\.\)"):
        check_table(table, PAIR_SPEC, PAIR_TEMPLATE, "test")
    # a known name in a pair of no scored row is still "not a test pair", with that row
    table.loc[2, "responding"] = "AVAR"
    with pytest.raises(SubmissionError, match=r"1 row\(s\) are not test pairs, e\.g\. pair \(stimulated ADAL -> "
                       r"responding AVAR\); expected exactly the 4 pairs of the template \(first such row: 2\)"):
        check_table(table, PAIR_SPEC, PAIR_TEMPLATE, "test")
    # unknown before missing: a dropped row and a misspelt name report the name
    with pytest.raises(SubmissionError, match=r"row 0, column 'stimulated': 'avar' is unknown"):
        check_table(pd.DataFrame(_pairs()).assign(stimulated=["avar", "AVAR", "ADAL", "AIBR"]).iloc[:3],
                    PAIR_SPEC, PAIR_TEMPLATE, "test")


@pytest.mark.parametrize("mutate, match", [
    (lambda t: t.assign(score=t["score"].astype(complex)), r"column 'score' has dtype complex128, expected numbers"),
    (lambda t: t.assign(score=pd.to_timedelta(t["score"], unit="s")), r"column 'score' has dtype timedelta64"),
    (lambda t: t.assign(responding=pd.Series([b"ADAL", "ADAR", "AIBL", "AVAL"], dtype=object)),
     r"column 'responding' row 0 holds b'ADAL' \(bytes\), expected strings"),
    (lambda t: t.assign(responding=pd.Series([3, "ADAR", "AIBL", "AVAL"], dtype=object)),
     r"column 'responding' row 0 holds 3 \(int\), expected strings"),
])
def test_values_of_the_wrong_kind_name_column_and_row(mutate, match):
    with pytest.raises(SubmissionError, match=match):
        check_table(mutate(pd.DataFrame(_pairs())), PAIR_SPEC, PAIR_TEMPLATE, "test")


def test_categorical_names_are_names():
    table = pd.DataFrame(_pairs()).astype({"responding": "category"})
    assert check_table(table, PAIR_SPEC, PAIR_TEMPLATE, "test")["score"].tolist() == [0.1, 0.2, 0.3, 0.4]


def test_uint64_ids_above_int64_do_not_wrap_around():
    spec = TableSpec(ids=(Column("vessel", "int", "edge ids", 0, 9, "graph g has vessel ids 0..9"),),
                     values=(Column("label", "int", "classes", 0, 2),), items="vessels", id_format="vessel {vessel}")
    table = pd.DataFrame({"vessel": np.array([1, 2, 2**63 + 5], np.uint64), "label": [0, 1, 2]})
    with pytest.raises(SubmissionError, match=r"row 2, column 'vessel': value 9223372036854775813 out of range; "
                       r"graph g has vessel ids 0\.\.9"):
        check_table(table, spec, pd.DataFrame({"vessel": [1, 2, 3]}), "test")


def test_text_that_is_not_unicode_is_a_submission_error(tmp_path):
    """Found by fuzzing: flipped bits in a Zarr v3 string chunk raised pyarrow's ArrowException from pandas."""
    import pyarrow as pa

    table = pd.DataFrame(_pairs())
    table["responding"] = pd.array(pa.array([b"\xff\xfe", b"ADAR", b"AIBL", b"AVAL"], pa.binary()).cast(
        pa.string(), safe=False), dtype=pd.ArrowDtype(pa.string()))
    with pytest.raises(SubmissionError, match=r"^predictions: column 'responding' .*"):
        check_table(table, PAIR_SPEC, PAIR_TEMPLATE, "test")


# -- Zarr folders ---------------------------------------------------------------------------------------------
def _zarr(path, fmt=2):
    import zarr

    g = zarr.open_group(str(path), mode="w", zarr_format=fmt)
    for k, v in _pairs().items():
        g.create_array(k, data=v)
    return path


def test_zarr_folder_with_a_link_pointing_outside(tmp_path):
    path = _zarr(tmp_path / "p.zarr")
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 32)
    chunk = next(p for p in (path / "score").iterdir() if not p.name.startswith("."))
    chunk.unlink()
    chunk.symlink_to(secret)
    _refused(path, rf"'score/{chunk.name}' is a symbolic link; links could point outside the submission and are refused")


def test_zarr_pickle_codec_is_refused_from_the_metadata(tmp_path):
    import json

    path = _zarr(tmp_path / "p.zarr")
    meta = json.loads((path / "score" / ".zarray").read_text())
    meta["filters"] = [{"id": "pickle", "protocol": 5}]
    (path / "score" / ".zarray").write_text(json.dumps(meta))
    _refused(path, r"Zarr metadata 'score/\.zarray' asks for the pickle codec; pickles are never loaded")


def test_zarr_chunks_and_shapes_declaring_huge_sizes(tmp_path):
    import json

    for key, value in (("shape", [2**40]), ("chunks", [2**40])):
        path = _zarr(tmp_path / f"{key}.zarr")
        meta = json.loads((path / "amplitude" / ".zarray").read_text())
        meta[key] = value
        (path / "amplitude" / ".zarray").write_text(json.dumps(meta))
        _refused(path, r"its arrays hold 8,796,093,02\d,\d{3} bytes, over the submission size limit")


def test_zarr_without_a_group_at_its_root(tmp_path):
    path = tmp_path / "p.zarr"
    _zarr(path / "inner.zarr")
    _refused(path, r"no Zarr group at the folder's root")
    file_path = tmp_path / "f.zarr"
    file_path.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    _refused(file_path, r"a \.zarr submission is a folder \(a Zarr store\), not a file; the file looks like a zip archive")


@needs_celegans
@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_unknown_neuron_is_named_with_its_row(task, perfect, tmp_path, suffix):
    """Issue 13: an unknown neuron was reported as a pair not of the split (or, with an extra row, as a row count)."""
    df = perfect.copy()
    df.loc[17, "responding"] = "AVAX"
    path = tmp_path / f"unknown{suffix}"
    if suffix == ".npz":
        _savez(path, **{c: df[c].to_numpy(dtype=str) if c in ("responding", "stimulated") else df[c].to_numpy()
                        for c in df.columns})
    else:
        df.to_parquet(path, index=False)
    with pytest.raises(SubmissionError, match=rf"^{path}: row 17, column 'responding': 'AVAX' is unknown \(1 row\(s\) "
                       r"with unknown names\); expected one of the 302 canonical neuron names of the store \(ADAL, "):
        task.evaluate(path)
