"""Raw layout of the homogenized C. elegans activity parquet, and a streaming reader.

Source: Simeon et al. 2024 (arXiv 2411.12091), HuggingFace dataset
``qsimeon/celegans_neural_data``: one file, ``worm_data_short.parquet``, at the
root of the repository (viewer subset ``worm_data_short``, split ``train``,
42,798 rows). Third-party readers fetch exactly that path with
``hf_hub_download("qsimeon/celegans_neural_data", "worm_data_short.parquet")``
and report 669.5 MB, a single row group, 42,798 rows of which 9,919 are
unlabeled, and 919 (source_dataset, worm) units.

Writer. The file is ``pandas.DataFrame.from_dict(d).to_parquet(index=False,
engine="pyarrow")`` of a dict filled row by row in the loop
``for dataset in EXPERIMENT_DATASETS: for worm in dataset: for neuron, slot in
worm["neuron_to_slot"].items()``. Sources, all in github repositories by
qsimeon:

* worm-graph ``data/WrangleWormDatasets.ipynb`` @05ac293 ("Last updated: 6 July
  2024", writes ``worm_data_short.parquet``; 25 columns, then named
  ``is_named_neuron`` / ``is_unknown_neuron``);
* worm-data-preprocess ``neural_to_parquet.py`` @5ed96a2 (2025-01-31), lines
  64-65 (skip a neuron whose ``calcium_data`` is all zeros), 86-110 (the 25
  columns, in order), 141 (``to_parquet``);
* worm-data-preprocess ``extra/neural_to_parquet.py`` @953f66a (HEAD,
  2025-06-02), lines 50-66 and 166-204: a slimmer 15-column variant (adds
  ``normalization_method``, drops ``is_unlabeled_neuron``, the smooth/residual
  traces and the dt columns).

Which schema is live: the HF viewer lists the 25 "wide" columns, in exactly
the order of the wide writer, with ``slot`` int32, ``original_median_dt``
float32 (0.2-0.64), ``max_timesteps`` int32 (693-8.78k), ``worm`` 577 classes
and ``neuron`` 358 classes, so the live file is the wide one. The reader
accepts both: :data:`REQUIRED_COLUMNS` is the intersection of the two
schemas, everything else is in :data:`OPTIONAL_COLUMNS`.

Columns of the wide (live) file, in order, with their arrow types (numpy
float32 arrays in an object column become ``list<float>``; ``np.intc``
becomes int32; strings ``string``)::

    source_dataset string, raw_data_file string, worm string, neuron string,
    slot int32, is_labeled_neuron bool, is_unlabeled_neuron bool,
    original_calcium_data, calcium_data, original_smooth_calcium_data,
    smooth_calcium_data, original_residual_calcium, residual_calcium,
    original_smooth_residual_calcium, smooth_residual_calcium  (list<float>),
    smooth_method string, interpolate_method string,
    original_time_in_seconds, time_in_seconds, original_dt, dt (list<float>),
    original_median_dt float, median_dt float,
    original_max_timesteps int32, max_timesteps int32

Row semantics (worm-data-preprocess ``preprocess/preprocessors/``
``_base_preprocessors.py`` ``preprocess_traces`` lines 978-1154 and
``_helpers.py`` ``CalciumDataReshaper`` lines 441-795, HEAD):

* One row per (worm, recorded neuron); rows are grouped by source dataset,
  then worm (``worm0``, ``worm1``, ... restarting in every source, so the key
  is ``(source_dataset, worm)``), then neuron. Within a worm, labeled neurons
  come first in slot order (``_fill_labeled_neurons_data`` walks
  ``NEURON_LABELS``), then unlabeled ones in set order with random free slots
  (``np.random.choice``, line 725). The order of the sources is
  not relied on (the viewer's first row is a Lin2023 one).
* ``neuron`` of a labeled row is one of the 300 ``NEURON_LABELS`` (302 minus
  CANL/CANR, plain lexicographic order; ``slot`` is its index there), zeros
  already stripped (``create_neuron_idx``, lines 760-801). An unlabeled row has
  ``is_labeled_neuron`` False, ``is_unlabeled_neuron`` True and a numeric
  string name (its column index in the source recording).
* ``calcium_data`` = StandardScaler z-score of the resampled smoothed trace;
  ``smooth_calcium_data`` = the resampled smoothed trace, not normalized.
  Smoothing is causal on the native grid, then linear resampling to 0.333 s;
  ``time_in_seconds`` is ``0.333 * arange(max_timesteps)`` (both the
  ``interpolate_data`` and ``aggregate_data`` branches), ``dt`` its
  ``np.diff(prepend=0)`` (so ``dt[0] == 0``), ``original_*`` the same on the
  source's native grid. Recordings under 600 native samples are skipped
  (line 1027), and so is any neuron whose ``calcium_data`` is all zeros.
* Every trace and time vector passed through ``torch.half`` in the reshaper
  (``self.dtype = torch.half``, line 500; times in ``_tensor_time_data``,
  lines 629-658) before the
  float32 cast of the writer. Values are therefore exactly float16 numbers,
  and ``time_in_seconds`` is float16-rounded: from 512 s on, consecutive
  0.333 s steps can round to the same value, so the stored time is
  non-decreasing, not strictly increasing, for long recordings.

What :func:`iter_worms` returns: ``time`` is the regular grid
``arange(T) * dt`` whenever the stored times lie within float16 rounding of
such a grid, with ``dt`` the shortest decimal consistent with every stored
time (0.333 for the collection); otherwise the stored times, which must then
be strictly increasing, with ``dt`` their median step.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from neuroharness.errors import DataFormatError
from neuroharness.loaders.celegans import canonical_name

HF_REPO = "qsimeon/celegans_neural_data"
HF_FILES: tuple[str, ...] = ("worm_data_short.parquet",)

# The live file's columns, in order (wide writer, neural_to_parquet.py @5ed96a2 lines 86-110).
WIDE_COLUMNS: tuple[str, ...] = (
    "source_dataset", "raw_data_file", "worm", "neuron", "slot",
    "is_labeled_neuron", "is_unlabeled_neuron",
    "original_calcium_data", "calcium_data",
    "original_smooth_calcium_data", "smooth_calcium_data",
    "original_residual_calcium", "residual_calcium",
    "original_smooth_residual_calcium", "smooth_residual_calcium",
    "smooth_method", "interpolate_method",
    "original_time_in_seconds", "time_in_seconds", "original_dt", "dt",
    "original_median_dt", "median_dt", "original_max_timesteps", "max_timesteps",
)
# The HEAD writer's columns, in order (extra/neural_to_parquet.py @953f66a lines 166-204).
SLIM_COLUMNS: tuple[str, ...] = (
    "source_dataset", "raw_data_file", "worm", "neuron", "slot", "is_labeled_neuron",
    "smooth_method", "interpolate_method", "normalization_method",
    "original_calcium_data", "calcium_data", "original_time_in_seconds", "time_in_seconds",
    "original_max_timesteps", "max_timesteps",
)
REQUIRED_COLUMNS: tuple[str, ...] = tuple(c for c in WIDE_COLUMNS if c in SLIM_COLUMNS)
OPTIONAL_COLUMNS: tuple[str, ...] = tuple(
    c for c in WIDE_COLUMNS + SLIM_COLUMNS if c not in REQUIRED_COLUMNS
)
LIST_COLUMNS: tuple[str, ...] = tuple(
    c for c in WIDE_COLUMNS if c.endswith(("_data", "_calcium", "time_in_seconds")) or c in ("dt", "original_dt")
)
RESAMPLE_DT = 0.333  # seconds; preprocess/config.py "resample_dt"

_KEY_COLUMNS = ("source_dataset", "worm", "raw_data_file", "neuron")
_BATCH_ROWS = 64


@dataclass(frozen=True)
class WormRecord:
    source_dataset: str
    worm: str  # as in the file, e.g. "worm0" (unique only within a source)
    raw_data_file: str
    time: np.ndarray  # (T,) float64 seconds, resampled grid, starts at 0
    dt: float  # median step of ``time``, seconds
    neurons: tuple[str, ...]  # labeled neurons, canonical names, canonical order
    calcium: np.ndarray  # (T, n_labeled) float32, normalized (calcium_data)
    smooth: np.ndarray | None  # (T, n_labeled) float32 smooth_calcium_data, or None
    n_unlabeled: int  # unlabeled rows skipped


def iter_worms(paths: Sequence[Path], canonical: Sequence[str], batch_rows: int = _BATCH_ROWS) -> Iterator[WormRecord]:
    """Yield one :class:`WormRecord` per (source_dataset, worm), in file order.

    Reads ``paths`` one after the other with ``ParquetFile.iter_batches`` over
    the needed columns only (never the ``original_*`` ones); at most one
    batch of ``batch_rows`` rows and one worm's labeled traces are held at a
    time. Raises
    :class:`DataFormatError` naming file, worm, neuron and field on any
    departure from the layout in this module's docstring.
    """
    index = {name: i for i, name in enumerate(canonical)}
    seen: set[tuple[str, str]] = set()
    for path in paths:
        yield from _iter_file(Path(path), index, seen, batch_rows)


# --------------------------------------------------------------------------- schema


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_float_list(t: pa.DataType) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_floating(t.value_type)


def _check_schema(path: Path, schema: pa.Schema) -> list[str]:
    names = schema.names
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise DataFormatError(
            f"{path}: missing column(s) {missing}; expected columns {list(REQUIRED_COLUMNS)} "
            f"(optional: {list(OPTIONAL_COLUMNS)}); found {names}"
        )
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataFormatError(f"{path}: duplicated column(s) {dup}; found {names}")
    expected = {
        "source_dataset": ("string", _is_string),
        "worm": ("string", _is_string),
        "raw_data_file": ("string", _is_string),
        "neuron": ("string", _is_string),
        "is_labeled_neuron": ("bool", pa.types.is_boolean),
        "is_unlabeled_neuron": ("bool", pa.types.is_boolean),
        "max_timesteps": ("integer", pa.types.is_integer),
        "calcium_data": ("list<float>", _is_float_list),
        "smooth_calcium_data": ("list<float>", _is_float_list),
        "time_in_seconds": ("list<float>", _is_float_list),
    }
    for col, (want, ok) in expected.items():
        if col in names and not ok(schema.field(col).type):
            raise DataFormatError(
                f"{path}: column {col!r} has type {schema.field(col).type}, expected {want}"
            )
    cols = ["source_dataset", "worm", "raw_data_file", "neuron", "is_labeled_neuron",
            "max_timesteps", "time_in_seconds", "calcium_data"]
    for opt in ("is_unlabeled_neuron", "smooth_calcium_data"):
        if opt in names:
            cols.append(opt)
    return cols


def _split_lists(arr: pa.Array) -> tuple[list[np.ndarray | None], np.ndarray]:
    """Per-row numpy views of a list<float> array (None for a null list)."""
    lengths = arr.value_lengths()
    valid = np.asarray(lengths.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    lens = np.asarray(lengths.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    flat = arr.flatten().to_numpy(zero_copy_only=False)
    bounds = np.concatenate([[0], np.cumsum(lens)])
    rows = [flat[bounds[i]:bounds[i + 1]] if valid[i] else None for i in range(len(arr))]
    return rows, lens


# --------------------------------------------------------------------------- reading


class _Worm:
    __slots__ = ("key", "raw_data_file", "T", "time", "dt", "stored_time", "labeled", "names", "n_unlabeled", "first_row")

    def __init__(self, key, raw_data_file, T, time, dt, stored_time, first_row):
        self.key, self.raw_data_file, self.T = key, raw_data_file, T
        self.time, self.dt, self.stored_time, self.first_row = time, dt, stored_time, first_row
        self.labeled: list[tuple[int, str, np.ndarray, np.ndarray | None]] = []
        self.names: dict[str, str] = {}  # canonical -> name as written
        self.n_unlabeled = 0


def _iter_file(path: Path, index: dict[str, int], seen: set, batch_rows: int) -> Iterator[WormRecord]:
    try:
        # Streamed column chunks: without pre_buffer a whole row group (the published file
        # is one ~670 MB row group) is never held in memory at once.
        pf = pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)
        schema = pf.schema_arrow
    except Exception as exc:  # noqa: BLE001 -- any reader failure is a format error here
        raise DataFormatError(f"{path}: cannot read as parquet ({type(exc).__name__}: {exc})") from None
    cols = _check_schema(path, schema)
    has_smooth = "smooth_calcium_data" in cols
    has_unlab = "is_unlabeled_neuron" in cols
    cur: _Worm | None = None
    row0 = 0
    for batch in _batches(path, pf, cols, batch_rows):
        n = batch.num_rows
        get = {c: batch.column(c) for c in cols}
        keys = {c: get[c].to_pylist() for c in _KEY_COLUMNS}
        labeled = get["is_labeled_neuron"].to_pylist()
        unlabeled = get["is_unlabeled_neuron"].to_pylist() if has_unlab else None
        max_ts = get["max_timesteps"].to_pylist()
        time_rows, _ = _split_lists(get["time_in_seconds"])
        cal_rows, _ = _split_lists(get["calcium_data"])
        sm_rows = _split_lists(get["smooth_calcium_data"])[0] if has_smooth else None
        for i in range(n):
            r = row0 + i
            src, worm, raw, neuron = (keys[c][i] for c in _KEY_COLUMNS)
            for field, val in (("source_dataset", src), ("worm", worm), ("raw_data_file", raw), ("neuron", neuron)):
                if val is None:
                    raise DataFormatError(f"{path}: row {r}: {field} is null")
            key = (src, worm)
            where = f"{path}: worm {src}/{worm}"
            if cur is None or key != cur.key:
                if cur is not None:
                    yield _finish(path, cur, has_smooth)
                if key in seen:
                    raise DataFormatError(
                        f"{where}, field worm: rows of worm {src}/{worm} are not contiguous "
                        f"(it reappears at row {r} after rows of other worms)"
                    )
                seen.add(key)
                T = max_ts[i]
                if T is None or T < 2:
                    raise DataFormatError(f"{where}, neuron {neuron}, field max_timesteps: {T!r}, expected >= 2")
                time, dt = _check_time(f"{where}, neuron {neuron}", time_rows[i], T)
                cur = _Worm(key, raw, T, time, dt, time_rows[i], r)
            at = f"{where}, neuron {neuron}"
            if raw != cur.raw_data_file:
                raise DataFormatError(
                    f"{at}, field raw_data_file: {raw!r} differs from {cur.raw_data_file!r} of the worm's first row"
                )
            if max_ts[i] != cur.T:
                raise DataFormatError(
                    f"{at}, field max_timesteps: {max_ts[i]!r} differs from {cur.T} of the worm's first row"
                )
            lab = labeled[i]
            if lab is None:
                raise DataFormatError(f"{at}, field is_labeled_neuron: null")
            if has_unlab and unlabeled[i] is not (not lab):
                raise DataFormatError(
                    f"{at}, field is_unlabeled_neuron: {unlabeled[i]!r} with is_labeled_neuron={lab!r}; "
                    "expected exactly one of them True"
                )
            if not lab:
                cur.n_unlabeled += 1
                continue
            name = canonical_name(neuron)
            if name not in index:
                raise DataFormatError(
                    f"{where}, neuron {neuron!r}, field neuron: not one of the {len(index)} canonical "
                    "C. elegans neuron names (labeled rows must name a canonical neuron)"
                )
            if name in cur.names:
                raise DataFormatError(
                    f"{where}, neuron {name}, field neuron: labeled twice (duplicated labeled neuron; "
                    f"written {cur.names[name]!r} and {neuron!r})"
                )
            t = time_rows[i]
            if t is None or len(t) != cur.T:
                raise DataFormatError(
                    f"{at}, field time_in_seconds: length {_len(t)}, expected max_timesteps = {cur.T}"
                )
            if not np.array_equal(t, cur.stored_time):
                raise DataFormatError(
                    f"{at}, field time_in_seconds: differs from the worm's first row (row {cur.first_row})"
                )
            cal = _check_trace(at, "calcium_data", cal_rows[i], cur.T)
            sm = _check_trace(at, "smooth_calcium_data", sm_rows[i], cur.T) if has_smooth else None
            cur.names[name] = neuron
            cur.labeled.append((index[name], name, cal, sm))
        row0 += n
    if cur is not None:
        yield _finish(path, cur, has_smooth)


def _batches(path: Path, pf: pq.ParquetFile, cols: list[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """``pf.iter_batches`` with decoding failures as :class:`DataFormatError`.

    The footer can be intact while a page is not (a damaged download, a truncated
    copy): pyarrow then fails only when that page is decoded, mid-stream.
    """
    batches = pf.iter_batches(batch_size=batch_rows, columns=cols)
    row0 = 0
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError, MemoryError, ValueError) as exc:
            raise DataFormatError(
                f"{path}: cannot decode the parquet pages of columns {cols} from row {row0} on "
                f"({type(exc).__name__}: {exc}); the file is damaged: download or copy it again"
            ) from None
        # parquet readers do not check UTF-8: a damaged string page would fail later, in to_pylist
        for name, column in zip(batch.schema.names, batch.columns):
            if _is_string(column.type):
                try:
                    column.validate(full=True)
                except pa.ArrowInvalid as exc:
                    raise DataFormatError(
                        f"{path}: column {name!r}, rows {row0}..{row0 + batch.num_rows - 1}: not valid UTF-8 text "
                        f"({exc}); expected strings; the file is damaged: download or copy it again"
                    ) from None
        row0 += batch.num_rows
        yield batch


def _len(a) -> str:
    return "null" if a is None else str(len(a))


def _check_trace(at: str, field: str, a: np.ndarray | None, T: int) -> np.ndarray:
    if a is None or len(a) != T:
        raise DataFormatError(f"{at}, field {field}: length {_len(a)}, expected max_timesteps = {T}")
    bad = ~np.isfinite(a)
    if bad.any():
        j = int(np.argmax(bad))
        raise DataFormatError(
            f"{at}, field {field}: {int(bad.sum())} non-finite value(s), the first ({a[j]}) at time index {j}"
        )
    return np.asarray(a, dtype=np.float32)


def _check_time(at: str, t: np.ndarray | None, T: int) -> tuple[np.ndarray, float]:
    """Validate a worm's stored time vector; return (time, dt) as :class:`WormRecord` holds them."""
    if t is None or len(t) != T:
        raise DataFormatError(f"{at}, field time_in_seconds: length {_len(t)}, expected max_timesteps = {T}")
    t64 = np.asarray(t, dtype=np.float64)
    bad = ~np.isfinite(t64)
    if bad.any():
        j = int(np.argmax(bad))
        raise DataFormatError(
            f"{at}, field time_in_seconds: {int(bad.sum())} non-finite value(s), the first ({t64[j]}) at time index {j}"
        )
    if t64[0] != 0.0:
        raise DataFormatError(f"{at}, field time_in_seconds: starts at {t64[0]!r}, expected 0")
    step = np.diff(t64)
    if (step < 0).any() or t64[-1] <= 0:
        j = int(np.argmax(step < 0)) if (step < 0).any() else T - 1
        raise DataFormatError(
            f"{at}, field time_in_seconds: not increasing at time index {j + 1} "
            f"({t64[j]!r} -> {t64[min(j + 1, T - 1)]!r})"
        )
    # The stored times are float16 roundings of k * dt: every k bounds dt to an interval of
    # half a float16 ulp (plus float32 slack) around t_k / k. If the intervals meet, the grid is
    # regular; take the shortest decimal in their intersection (0.333 for the collection).
    k = np.arange(1, T, dtype=np.float64)
    with np.errstate(over="ignore"):
        half = np.spacing(t64[1:].astype(np.float16)).astype(np.float64) / 2 + 1e-6 * (1.0 + t64[1:])
    lo, hi = float(np.max((t64[1:] - half) / k)), float(np.min((t64[1:] + half) / k))
    if lo <= hi:
        mid = 0.5 * (lo + hi)
        dt = next((c for c in (round(mid, d) for d in range(1, 10)) if lo <= c <= hi), mid)
        return np.arange(T, dtype=np.float64) * dt, float(dt)
    if (step <= 0).any():
        j = int(np.argmax(step <= 0))
        raise DataFormatError(
            f"{at}, field time_in_seconds: not increasing at time index {j + 1} "
            f"({t64[j]!r} -> {t64[j + 1]!r}) and not a regular grid within float16 rounding"
        )
    return t64, float(np.median(step))


def _finish(path: Path, w: _Worm, has_smooth: bool) -> WormRecord:
    src, worm = w.key
    if not w.labeled:
        raise DataFormatError(
            f"{path}: worm {src}/{worm}, field is_labeled_neuron: the worm has no labeled neuron "
            f"({w.n_unlabeled} unlabeled rows)"
        )
    w.labeled.sort(key=lambda x: x[0])
    calcium = np.stack([x[2] for x in w.labeled], axis=1)
    smooth = np.stack([x[3] for x in w.labeled], axis=1) if has_smooth else None
    return WormRecord(
        source_dataset=src,
        worm=worm,
        raw_data_file=w.raw_data_file,
        time=w.time,
        dt=w.dt,
        neurons=tuple(x[1] for x in w.labeled),
        calcium=calcium,
        smooth=smooth,
        n_unlabeled=w.n_unlabeled,
    )
