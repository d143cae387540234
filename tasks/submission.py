"""The one boundary where untrusted prediction files enter: reading and checking.

A table submission is one row per scored item, with id columns and value
columns described by a :class:`TableSpec`. :func:`check_table` checks it
against the task's expected ids (the submission template) and returns the
values in template order. Checks, each an error naming the source, column
and first offending row: missing columns; dtypes (string ids, integer ids,
integer labels, float values; no bools posing as numbers); missing values;
NaN/inf; integer ranges; self-pairs and either-order duplicates for
unordered pairs; duplicates; ids that are not in the template; template ids
that are missing. Files are read without unpickling anything
(:func:`read_table`); :func:`check_names` is the same id-set check for
submissions holding one array per named item (FISBe volumes).
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neuroharness.errors import SubmissionError
from neuroharness.loaders.io import atomic_path

FORMATS = (".npz", ".parquet", ".zarr")
#: Environment variable that overrides :data:`MAX_SUBMISSION_BYTES` (a number of bytes).
MAX_BYTES_ENV = "NEUROHARNESS_MAX_SUBMISSION_BYTES"
#: Largest submission accepted, in bytes (8 GiB), checked before anything is loaded: a file's size on
#: disk, the uncompressed size of an .npz's arrays (from their npy headers), a parquet file's rows x
#: columns (from its metadata), the files of a .zarr folder. Overridden by ``$NEUROHARNESS_MAX_SUBMISSION_BYTES``.
MAX_SUBMISSION_BYTES = 8 * 1024**3


def max_submission_bytes() -> int:
    """The size limit in force: ``$NEUROHARNESS_MAX_SUBMISSION_BYTES`` if set, else :data:`MAX_SUBMISSION_BYTES`."""
    value = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not value:
        return MAX_SUBMISSION_BYTES
    try:
        limit = int(value)
    except ValueError:
        limit = -1
    if limit <= 0:
        raise SubmissionError(f"environment variable {MAX_BYTES_ENV}={value!r}: expected a positive number of bytes")
    return limit


def _too_large(path, what: str, found: int, limit: int) -> SubmissionError:
    return SubmissionError(
        f"{path}: {what} {found:,} bytes, over the submission size limit of {limit:,} bytes; nothing was loaded. "
        f"If the file is meant to be this large, raise the limit with the environment variable "
        f"{MAX_BYTES_ENV}=<bytes>")


def _member_problem(name: str) -> str | None:
    """Why a zip member name is refused (a path escaping the archive's folder), or None."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":"):
        return "is a path outside the archive's folder"
    return None


def check_zip_members(path, zf: zipfile.ZipFile, limit: int | None = None) -> list[zipfile.ZipInfo]:
    """The members of an archive, refused if a name escapes its folder (``../x.npy``, ``/x``) or if
    their uncompressed sizes (the zip's ``file_size``, nothing decompressed) add up to more than ``limit``."""
    limit = max_submission_bytes() if limit is None else limit
    infos = zf.infolist()
    for info in infos:
        why = _member_problem(info.filename)
        if why:
            raise SubmissionError(f"{path}: member {info.filename!r} {why}; expected one array per name at the top level")
    total = sum(i.file_size for i in infos)
    if total > limit:
        raise _too_large(path, "its members uncompress to", total, limit)
    return infos


def npy_header(f) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from the header of an open .npy stream, reading no data."""
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(f)
    return tuple(shape), np.dtype(dtype)


def folder_bytes(path: Path) -> int:
    """Total size of the files under a folder (links not followed)."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def check_size(path: str | Path, expected_rows: int | None = None) -> None:
    """Refuse a submission over the size limit (see :data:`MAX_SUBMISSION_BYTES`) before loading it.

    ``expected_rows``: the template's length; a table with more rows is refused
    from its metadata (parquet) or array headers (.npz), before its data is read.
    """
    path = Path(path)
    limit = max_submission_bytes()
    if path.is_dir():
        total = folder_bytes(path)
        if total > limit:
            raise _too_large(path, "its files hold", total, limit)
        return
    size = path.stat().st_size
    if size > limit:
        raise _too_large(path, "the file has", size, limit)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            with zipfile.ZipFile(path) as zf:
                infos = check_zip_members(path, zf, limit)
                total = 0
                for info in infos:
                    if info.filename.endswith("/"):
                        continue
                    with zf.open(info) as f:
                        try:
                            shape, dtype = npy_header(f)
                        except (ValueError, OSError, SyntaxError) as e:
                            raise SubmissionError(f"{path}: member {info.filename!r} is not a valid .npy array ({e})") from None
                    total += int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                    if expected_rows is not None and len(shape) == 1 and shape[0] > expected_rows:
                        raise SubmissionError(f"{path}: array {info.filename[:-4]!r} has {shape[0]} rows, more than the "
                                              f"{expected_rows} rows of the template (rows are duplicated, or not "
                                              "of this split); nothing was loaded")
        except zipfile.BadZipFile:
            raise SubmissionError(f"{path}: not an .npz (zip) archive; predictions are read with numpy without "
                                  "unpickling, and pickle is never accepted") from None
        if total > limit:
            raise _too_large(path, "its arrays hold", total, limit)
    elif suffix == ".parquet":
        try:
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(path).metadata
        except Exception as e:  # noqa: BLE001 - pyarrow raises several kinds on a malformed file
            raise SubmissionError(f"{path}: unreadable .parquet predictions ({type(e).__name__}: {e})") from None
        if expected_rows is not None and meta.num_rows > expected_rows:
            raise SubmissionError(f"{path}: {meta.num_rows} rows found, more than the {expected_rows} rows expected "
                                  "(the template's length: rows are duplicated, or not of this split); nothing was read")
        total = meta.num_rows * meta.num_columns * 8
        if total > limit:
            raise _too_large(path, f"{meta.num_rows} rows x {meta.num_columns} columns hold about", total, limit)


@dataclass(frozen=True)
class Column:
    """One column of a submission table.

    ``kind``: "str" (text ids), "int" (integer ids or labels; a float column is
    refused even when its values are whole) or "float" (finite numbers).
    ``low``/``high`` bound "int" values (inclusive); ``range_text`` says what
    the bounds mean in messages (e.g. "graph G has CSV node ids 0..N-1").
    """

    name: str
    kind: str
    description: str = ""
    low: int | None = None
    high: int | None = None
    range_text: str = ""

    def __post_init__(self):
        if self.kind not in ("str", "int", "float"):
            raise ValueError(f"column {self.name}: kind {self.kind!r}, expected 'str', 'int' or 'float'")


@dataclass(frozen=True)
class TableSpec:
    """The columns of a table submission and how its ids are matched.

    ``unordered``: the two integer id columns form an unordered pair (u, v) =
    (v, u); self-pairs are refused. ``items`` is the plural noun of a row in
    messages ("pairs", "vessels"), ``scope`` a qualifier (" of graph G"), and
    ``id_format`` formats one id row (``str.format`` on the id columns).
    """

    ids: tuple[Column, ...]
    values: tuple[Column, ...]
    unordered: bool = False
    items: str = "items"
    scope: str = ""
    id_format: str = ""

    @property
    def columns(self) -> list[str]:
        return [c.name for c in (*self.ids, *self.values)]

    def show(self, row: dict) -> str:
        if self.id_format:
            return self.id_format.format(**row)
        return "(" + ", ".join(str(row[c.name]) for c in self.ids) + ")"


def read_table(path: str | Path, expected_rows: int | None = None) -> pd.DataFrame:
    """Load a predictions file (.npz with 1-D arrays, .parquet, or .zarr along one dim) into a DataFrame.

    The size limit (:func:`check_size`) is checked first, before any data is read.
    """
    path = Path(path)
    if not path.exists():
        raise SubmissionError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix in FORMATS:
        check_size(path, expected_rows)
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            bad = {k: a.shape for k, a in arrays.items() if a.ndim != 1}
            if bad:
                raise SubmissionError(f"{path}: arrays must be 1-D, got shapes {bad}")
            lengths = {k: len(a) for k, a in arrays.items()}
            if len(set(lengths.values())) > 1:
                raise SubmissionError(f"{path}: arrays differ in length: {lengths}")
            return pd.DataFrame(arrays)
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".zarr":
            import xarray as xr

            ds = xr.open_zarr(path)
            if len(ds.dims) != 1:
                raise SubmissionError(f"{path}: expected variables along one dimension, got dims {dict(ds.sizes)}")
            return ds.to_dataframe().reset_index(drop=True)
    except SubmissionError:
        raise
    except ValueError as e:  # np.load refuses object arrays with allow_pickle=False
        raise SubmissionError(f"{path}: unreadable {suffix} predictions ({e})") from None
    except Exception as e:  # noqa: BLE001 - readers raise many kinds of errors on malformed files
        raise SubmissionError(f"{path}: unreadable {suffix} predictions ({type(e).__name__}: {e})") from None
    raise SubmissionError(f"{path}: unsupported format {suffix!r}; use one of {', '.join(FORMATS)} (pickle is never accepted)")


def source_of(predictions) -> str:
    """The name messages use for a submission: its path, or "predictions" for an in-memory table."""
    return "predictions" if isinstance(predictions, (pd.DataFrame, dict)) else str(predictions)


def as_table(predictions, expected_rows: int | None = None) -> pd.DataFrame:
    """A DataFrame as given, or read from a path with :func:`read_table`."""
    return predictions if isinstance(predictions, pd.DataFrame) else read_table(predictions, expected_rows)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _column(table: pd.DataFrame, col: Column, source: str) -> np.ndarray:
    """The checked values of one column: str ids as str objects, ints as int64, floats as float64."""
    s = table[col.name]
    what = f" ({col.description})" if col.description else ""
    if col.kind == "str":
        if not (pd.api.types.is_string_dtype(s) or s.dtype == object):
            raise SubmissionError(f"{source}: column {col.name!r} has dtype {s.dtype}, expected strings{what}")
        if s.isna().any():
            raise SubmissionError(f"{source}: column {col.name!r} has {int(s.isna().sum())} missing value(s), "
                                  f"first at row {_first(s.isna().to_numpy())}")
        return s.astype(str).to_numpy(dtype=object)
    if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
        expected = "integers" if col.kind == "int" else "numbers"
        raise SubmissionError(f"{source}: column {col.name!r} has dtype {s.dtype}, expected {expected}{what}")
    if s.isna().any() and col.kind == "int" and not pd.api.types.is_float_dtype(s):  # nullable integer columns
        raise SubmissionError(f"{source}: column {col.name!r} has {int(s.isna().sum())} missing value(s), "
                              f"first at row {_first(s.isna().to_numpy())}")
    if col.kind == "float" or pd.api.types.is_float_dtype(s):
        a = s.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(a)
        if bad.any():
            tail = f"; expected integers{what}" if col.kind == "int" else ""
            raise SubmissionError(f"{source}: column {col.name!r} has {int(bad.sum())} NaN/inf value(s), "
                                  f"first at row {_first(bad)}{tail}")
        if col.kind == "float":
            return a
        frac = a != np.round(a)
        if frac.any():
            i = _first(frac)
            raise SubmissionError(f"{source}: column {col.name!r} row {i} is {float(a[i])!r}; expected integers{what}")
        raise SubmissionError(f"{source}: column {col.name!r} has dtype {s.dtype}, expected an integer dtype{what}")
    return s.to_numpy().astype(np.int64)


def _check_range(a: np.ndarray, col: Column, source: str, describe_row) -> None:
    low = -np.inf if col.low is None else col.low
    high = np.inf if col.high is None else col.high
    bad = (a < low) | (a > high)
    if bad.any():
        i = _first(bad)
        why = f"; {col.range_text}" if col.range_text else f"; expected {col.low}..{col.high}"
        raise SubmissionError(f"{source}: row {i}{describe_row(i)}, column {col.name!r}: value {int(a[i])} out of "
                              f"range{why} ({int(bad.sum())} row(s) out of range)")


def _keys(ids: list[np.ndarray], expected: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One int64 key per row for the submission and the template; -1 where a value is not in the template."""
    key = np.zeros(len(ids[0]), dtype=np.int64)
    want = np.zeros(len(expected[0]), dtype=np.int64)
    unknown = np.zeros(len(ids[0]), dtype=bool)
    for got, exp in zip(ids, expected):
        domain = pd.Index(pd.unique(exp))
        radix = len(domain)
        codes = domain.get_indexer(got)
        unknown |= codes < 0
        key = key * radix + np.maximum(codes, 0)
        want = want * radix + domain.get_indexer(exp)
    key[unknown] = -1
    return key, want


def check_table(predictions, spec: TableSpec, expected: pd.DataFrame, split: str) -> pd.DataFrame:
    """Check a table submission against ``expected`` (the template's id columns, in scoring order).

    ``predictions``: a DataFrame or a path (see :func:`read_table`). Returns a
    DataFrame of the value columns aligned to ``expected``'s rows (floats as
    float64, ints as int64). Raises :class:`SubmissionError` naming the source,
    column and first offending row.
    """
    source = source_of(predictions)
    table = as_table(predictions, len(expected)).reset_index(drop=True)
    missing = [c for c in spec.columns if c not in table.columns]
    if missing:
        raise SubmissionError(f"{source}: missing column(s) {missing}; found {list(table.columns)}, expected {spec.columns}")
    ids = [_column(table, c, source) for c in spec.ids]
    id_row = (lambda i: f" ({spec.show({c.name: a[i] for c, a in zip(spec.ids, ids)})})") if spec.id_format else (lambda i: "")
    for c, a in zip(spec.ids, ids):
        if c.kind == "int":
            _check_range(a, c, source, lambda i: "")
    values = {}
    for c in spec.values:
        a = _column(table, c, source)
        if c.kind == "int":
            _check_range(a, c, source, id_row)
        values[c.name] = a
    exp = [expected[c.name].to_numpy() for c in spec.ids]
    if spec.unordered:
        if len(ids) != 2:
            raise ValueError("unordered ids need exactly two id columns")
        same = ids[0] == ids[1]
        if same.any():
            i = _first(same)
            raise SubmissionError(f"{source}: row {i} pairs node {ids[0][i]} with itself")
        ids = [np.minimum(ids[0], ids[1]), np.maximum(ids[0], ids[1])]
        exp = [np.minimum(exp[0], exp[1]), np.maximum(exp[0], exp[1])]
    key, want = _keys(ids, exp)
    order = np.argsort(key, kind="stable")
    sk = key[order]
    dup = np.flatnonzero((sk[1:] == sk[:-1]) & (sk[1:] >= 0))
    if dup.size:
        i = int(order[dup[0] + 1])
        either = "; a pair counts once in either order" if spec.unordered else ""
        raise SubmissionError(f"{source}: {spec.show({c.name: a[i] for c, a in zip(spec.ids, ids)})} appears more "
                              f"than once ({dup.size} repeated row(s){either})")
    pos = pd.Index(want).get_indexer(key)  # template row of each submission row; -1 = not a template id
    if (pos < 0).any():
        i = _first(pos < 0)
        raise SubmissionError(
            f"{source}: {int((pos < 0).sum())} row(s) are not {split} {spec.items}{spec.scope}, e.g. "
            f"{spec.show({c.name: a[i] for c, a in zip(spec.ids, ids)})}; expected exactly the {len(want)} "
            f"{spec.items} of the template")
    if len(pos) != len(want):
        got = np.zeros(len(want), dtype=bool)
        got[pos] = True
        j = _first(~got)
        raise SubmissionError(
            f"{source}: {len(want) - len(pos)} of {len(want)} {split} {spec.items}{spec.scope} missing, e.g. "
            f"{spec.show({c.name: expected[c.name].iloc[j] for c in spec.ids})}")
    out = {}
    for name, a in values.items():
        aligned = np.empty(len(want), dtype=a.dtype)
        aligned[pos] = a
        out[name] = aligned
    return pd.DataFrame(out)


def check_names(found: list[str], expected: list[str], source: str, split: str, items: str = "samples") -> None:
    """Check that ``found`` names each of ``expected`` exactly once (for one-array-per-item submissions)."""
    seen = set()
    for name in found:
        if name in seen:
            raise SubmissionError(f"{source}: {name!r} appears more than once")
        seen.add(name)
    unknown = [n for n in found if n not in set(expected)]
    if unknown:
        raise SubmissionError(f"{source}: {unknown[0]!r} is not one of the {split} {items} of the prepared store; "
                              f"expected one entry per {items[:-1] if items.endswith('s') else items}: {', '.join(expected)}")
    missing = [s for s in expected if s not in seen]
    if missing:
        raise SubmissionError(f"{source}: no entry for {len(missing)} of {len(expected)} {split} {items}: "
                              f"{', '.join(missing)}")


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as .parquet or .npz (1-D arrays, no object dtype), atomically."""
    path = Path(path)
    if path.suffix not in (".parquet", ".npz"):
        raise SubmissionError(f"{path}: unsupported format {path.suffix!r}; use .parquet or .npz")
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            arrays = {c: (table[c].to_numpy(dtype=str) if not pd.api.types.is_numeric_dtype(table[c])
                          else table[c].to_numpy()) for c in table.columns}
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)
    return path
