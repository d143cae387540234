"""Input checks shared by the metric functions."""
from __future__ import annotations

import numpy as np


def as_1d(name: str, values, *, dtype=float) -> np.ndarray:
    """``values`` as a finite 1-D array; ``ValueError`` naming ``name`` otherwise."""
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {a.shape}")
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected numbers, got dtype {a.dtype}")
    a = a.astype(dtype)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: {int((~np.isfinite(a)).sum())} value(s) are NaN or infinite")
    return a


def same_length(**arrays) -> int:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"arrays differ in length: {lengths}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError(f"arrays are empty: {lengths}")
    return n
