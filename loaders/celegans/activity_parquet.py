"""Raw layout of the homogenized activity parquet (``qsimeon/celegans_neural_data``).

One row per (worm, neuron) with that neuron's whole trace as a list
(Simeon et al. 2024; written by ``extra/neural_to_parquet.py`` of
github qsimeon/worm-data-preprocess). Rows are written dataset by dataset,
worm by worm, neuron by neuron, so a worm's rows are contiguous. Worm ids
(``worm0``, ``worm1``, ...) restart in every source dataset.

Columns read here (:data:`REQUIRED_COLUMNS`; the viewer's wider schema has
more, e.g. residuals, and both are accepted):

- ``source_dataset``, ``worm``, ``neuron`` (str), ``is_labeled_neuron`` (bool):
  unlabeled neurons carry numeric-string names and are skipped;
- ``time_in_seconds`` (list of float): the resampled grid, dt = 0.333 s;
- ``max_timesteps`` (int): the trace length on that grid;
- ``calcium_data`` (list of float): normalize(resample(smooth(raw)));
- optional ``smooth_calcium_data``: resample(smooth(raw)), not normalized;
  optional ``raw_data_file``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from neuroharness.errors import DataFormatError

from . import canonical_name

HF_REPO = "qsimeon/celegans_neural_data"
HF_FILES = ("worm_data_short.parquet",)
REQUIRED_COLUMNS = ("source_dataset", "worm", "neuron", "is_labeled_neuron", "time_in_seconds", "max_timesteps", "calcium_data")
OPTIONAL_COLUMNS = ("raw_data_file", "smooth_calcium_data")


@dataclass(frozen=True)
class WormRecord:
    """One worm's labeled traces on the resampled grid."""

    source_dataset: str
    worm: str
    raw_data_file: str
    time: np.ndarray  # (T,) float64 s
    dt: float
    neurons: tuple[str, ...]
    calcium: np.ndarray  # (T, n) float32
    smooth: np.ndarray | None  # (T, n) float32
    n_unlabeled: int


def _columns(path: Path) -> list[str]:
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as e:
        raise DataFormatError(f"{path}: not a readable parquet file ({e})") from None
    names = list(schema.names)
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise DataFormatError(f"{path}: missing column(s) {missing}; found {names}, expected at least {list(REQUIRED_COLUMNS)}")
    return [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in names]


def _finish(path: Path, key: tuple[str, str], rows: list[dict], canonical: dict[str, int], has_smooth: bool) -> WormRecord:
    source, worm = key
    wid = f"{source}/{worm}"
    labeled = [r for r in rows if r["is_labeled_neuron"]]
    if not labeled:
        raise DataFormatError(f"{path}: worm {wid} has no labeled neuron (field is_labeled_neuron)")
    T = int(labeled[0]["max_timesteps"])
    time = np.asarray(labeled[0]["time_in_seconds"], dtype=np.float64)
    if len(time) != T:
        raise DataFormatError(f"{path}: worm {wid}, neuron {labeled[0]['neuron']}, field time_in_seconds: length {len(time)}, expected max_timesteps = {T}")
    if not np.isfinite(time).all() or (np.diff(time) <= 0).any():
        raise DataFormatError(f"{path}: worm {wid}, field time_in_seconds: expected finite, strictly increasing seconds")
    names, traces, smooths = [], [], []
    for r in labeled:
        name = canonical_name(r["neuron"])
        if name not in canonical:
            raise DataFormatError(f"{path}: worm {wid}, neuron {r['neuron']!r}, field neuron: not one of the 302 canonical C. elegans neuron names")
        if name in names:
            raise DataFormatError(f"{path}: worm {wid}, neuron {name}, field neuron: labeled twice")
        for field in ("calcium_data", "smooth_calcium_data") if has_smooth else ("calcium_data",):
            a = np.asarray(r[field], dtype=np.float64)
            if len(a) != T:
                raise DataFormatError(f"{path}: worm {wid}, neuron {name}, field {field}: length {len(a)}, expected max_timesteps = {T}")
            if not np.isfinite(a).all():
                raise DataFormatError(f"{path}: worm {wid}, neuron {name}, field {field}: {int((~np.isfinite(a)).sum())} non-finite value(s)")
            (traces if field == "calcium_data" else smooths).append(a.astype(np.float32))
        names.append(name)
    order = np.argsort([canonical[n] for n in names])
    stack = lambda xs: np.stack([xs[i] for i in order], axis=1)  # noqa: E731
    return WormRecord(
        source_dataset=source, worm=worm, raw_data_file=str(labeled[0].get("raw_data_file") or ""),
        time=time - time[0], dt=float(np.median(np.diff(time))) if T > 1 else float("nan"),
        neurons=tuple(names[i] for i in order), calcium=stack(traces), smooth=stack(smooths) if has_smooth else None,
        n_unlabeled=len(rows) - len(labeled),
    )


def iter_worms(paths: Sequence[Path], canonical: Sequence[str], batch_rows: int = 256) -> Iterator[WormRecord]:
    """Yield one :class:`WormRecord` per worm, reading ``batch_rows`` rows at a time."""
    index = {n: i for i, n in enumerate(canonical)}
    done: set[tuple[str, str]] = set()
    for path in map(Path, paths):
        cols = _columns(path)
        has_smooth = "smooth_calcium_data" in cols
        key, rows = None, []
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=cols):
            for r in batch.to_pylist():
                k = (str(r["source_dataset"]), str(r["worm"]))
                if k != key:
                    if key is not None:
                        yield _finish(path, key, rows, index, has_smooth)
                        done.add(key)
                    if k in done:
                        raise DataFormatError(f"{path}: rows of worm {k[0]}/{k[1]} are not contiguous (field worm); expected all rows of a worm together")
                    key, rows = k, []
                rows.append(r)
        if key is not None:
            yield _finish(path, key, rows, index, has_smooth)
            done.add(key)
