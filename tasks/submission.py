"""Reading prediction files: npz, parquet or Zarr, never pickle.

A submission is a table: one row per scored item, with id columns and
prediction columns named by the task card. Files are untrusted: nothing is
unpickled, and every column is checked for presence, dtype and finiteness.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from neuroharness.errors import SubmissionError

FORMATS = (".npz", ".parquet", ".zarr")


def read_table(path: str | Path) -> pd.DataFrame:
    """Load a predictions file into a DataFrame (columns as stored)."""
    path = Path(path)
    if not path.exists():
        raise SubmissionError(f"{path}: file not found")
    suffix = path.suffix.lower()
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
    except Exception as e:
        raise SubmissionError(f"{path}: unreadable {suffix} predictions ({type(e).__name__}: {e})") from None
    raise SubmissionError(f"{path}: unsupported format {suffix!r}; use one of {', '.join(FORMATS)} (pickle is never accepted)")


def check_columns(table: pd.DataFrame, source: str, ids: dict[str, str], values: tuple[str, ...]) -> pd.DataFrame:
    """Check that ``table`` has string id columns ``ids`` and finite numeric ``values``.

    ``ids`` maps column name to a description used in messages. Returns the
    table restricted to those columns, with ids as ``str`` and values as float64.
    """
    missing = [c for c in (*ids, *values) if c not in table.columns]
    if missing:
        raise SubmissionError(f"{source}: missing column(s) {missing}; found {list(table.columns)}, expected {[*ids, *values]}")
    out = pd.DataFrame(index=table.index)
    for c in ids:
        col = table[c]
        if not (pd.api.types.is_string_dtype(col) or col.dtype == object):
            raise SubmissionError(f"{source}: column {c!r} has dtype {col.dtype}, expected strings ({ids[c]})")
        out[c] = col.astype(str)
    for c in values:
        col = table[c]
        if not pd.api.types.is_numeric_dtype(col):
            raise SubmissionError(f"{source}: column {c!r} has dtype {col.dtype}, expected numbers")
        a = col.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(a)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SubmissionError(f"{source}: column {c!r} has {int(bad.sum())} NaN/inf value(s), first at row {i}")
        out[c] = a
    return out.reset_index(drop=True)


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as .parquet or .npz (1-D arrays, no object dtype), atomically."""
    import os

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if path.suffix == ".parquet":
        table.to_parquet(tmp, index=False)
    elif path.suffix == ".npz":
        arrays = {c: (table[c].to_numpy(dtype=str) if not pd.api.types.is_numeric_dtype(table[c]) else table[c].to_numpy()) for c in table.columns}
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    else:
        raise SubmissionError(f"{path}: unsupported format {path.suffix!r}; use .parquet or .npz")
    os.replace(tmp, path)
    return path
