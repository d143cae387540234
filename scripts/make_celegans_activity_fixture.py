"""Write synthetic worms in the raw parquet layout of ``qsimeon/celegans_neural_data``.

Layout (see ``loaders/celegans/activity_parquet.py`` for the sources): one file,
``worm_data_short.parquet``, at the root of the HF dataset repository; one row
per (worm, recorded neuron) holding whole traces as ``list<float>``; rows
grouped by source dataset, then worm (``worm0``... restarting per source), then
neuron: labeled neurons first in slot order (slot = index in the 300
``NEURON_LABELS``, i.e. the 302 canonical names minus CANL/CANR), then
unlabeled ones with numeric-string names in random free slots. The default
(``wide=True``) is the live 25-column schema; ``wide=False`` writes the
15-column schema of the current ``extra/neural_to_parquet.py``.

What the worms look like (the counts and per-source mean labeled/recorded
neurons are the published ones; lengths and native sampling intervals are
invented within the published ranges, 693-8,780 resampled and 661-5,850
native samples, native dt 0.2-0.64 s):

* a native grid ``arange(T_orig) * native_dt`` and a raw trace per neuron: 3-5
  shared latent oscillators (slow sinusoids with random-walk phase and
  amplitude) mixed by random weights, plus a neuron offset and white noise;
* the pipeline of ``preprocess_traces``: residual = ``np.gradient``; causal
  moving average (the source's window of ``j-7 .. j``) on the native grid;
  linear resampling onto ``arange(0, t_max, 0.333)``; ``calcium_data`` = per
  neuron z-score (StandardScaler, ddof 0) of the resampled smooth trace,
  ``smooth_calcium_data`` the resampled smooth trace itself;
* every trace and time vector rounded through float16 and stored as float32,
  as ``CalciumDataReshaper`` (torch.half) and the writer do, so
  ``time_in_seconds`` repeats values beyond 512 s. NaN-free, no all-zero row.

Every worm has its own generator seeded by (seed, source index, worm index),
so worm ``k`` of a source is the same whatever ``n_worms`` is.
:func:`planted_worms` yields exactly what :func:`write_activity_fixture` writes.

    python scripts/make_celegans_activity_fixture.py --out DIR [--scale small|full] [--worms N] [--seed S] [--slim]
"""
from __future__ import annotations

import argparse
import csv
import math
import time as _time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DT = 0.333  # preprocess/config.py "resample_dt"
FILE = "worm_data_short.parquet"  # the one file of the HF repository, at its root
MIN_NATIVE = 600  # preprocess_traces skips recordings under 600 native samples

# source: (worms, mean labeled, mean recorded [worm-data-preprocess README],
#          native dt in s, resampled length range, raw_data_file templates [invented])
SOURCES: dict[str, tuple] = {
    "Kato2015": (12, 42, 127, 0.345, (2160, 3245), ("WT_Stim.mat", "WT_NoStim.mat")),
    "Nichols2017": (44, 34, 108, 0.345, (3000, 3300), ("n2_let.mat", "n2_prelet.mat", "npr1_let.mat", "npr1_prelet.mat")),
    "Skora2018": (12, 46, 129, 0.345, (3000, 3300), ("WT_fasted.mat", "WT_starved.mat")),
    "Kaplan2020": (19, 36, 114, 0.64, (4000, 5600), ("Neuron2019_Data_MNhisCl_RIShisCl.mat", "Neuron2019_Data_RIShisCl.mat", "Neuron2019_Data_SMDhisCl_RIShisCl.mat")),
    "Nejatbakhsh2020": (21, 173, 175, 0.25, (700, 1100), ("sub-{w}/sub-{w}_ses-1_ophys.nwb",)),
    "Yemini2021": (49, 110, 110, 0.25, (693, 1000), ("Head_Activity_OH15500.mat", "Head_Activity_OH16230.mat", "Tail_Activity_OH16230.mat")),
    "Uzel2022": (6, 50, 138, 0.326, (3600, 3800), ("Uzel_WT.mat",)),
    "Dag2023": (7, 100, 143, 0.6, (2800, 2900), ("2023-01-{d:02d}-{w:02d}-data.h5",)),
    "Leifer2023": (103, 63, 67, 0.5, (1800, 8780), ("2021{m:02d}{d:02d}/gcamp.txt",)),
    "Lin2023": (577, 8, 8, 0.3, (693, 1100), ("run{r}_prfrd_data {w}.mat", "run{r}_bufbuf_data {w}.mat")),
    "Flavell2023": (40, 88, 136, 0.6, (2700, 2900), ("2022-06-{d:02d}-{w:02d}.h5",)),
    "Venkatachalam2024": (22, 187, 187, 0.2, (1600, 1900), ("{m:02d}{d:02d}2023_worm{w}.zip",)),
}
TOTAL_WORMS = sum(v[0] for v in SOURCES.values())  # 912

_L = pa.list_(pa.float32())
WIDE_SCHEMA = pa.schema([
    ("source_dataset", pa.string()), ("raw_data_file", pa.string()), ("worm", pa.string()), ("neuron", pa.string()),
    ("slot", pa.int32()), ("is_labeled_neuron", pa.bool_()), ("is_unlabeled_neuron", pa.bool_()),
    ("original_calcium_data", _L), ("calcium_data", _L),
    ("original_smooth_calcium_data", _L), ("smooth_calcium_data", _L),
    ("original_residual_calcium", _L), ("residual_calcium", _L),
    ("original_smooth_residual_calcium", _L), ("smooth_residual_calcium", _L),
    ("smooth_method", pa.string()), ("interpolate_method", pa.string()),
    ("original_time_in_seconds", _L), ("time_in_seconds", _L), ("original_dt", _L), ("dt", _L),
    ("original_median_dt", pa.float32()), ("median_dt", pa.float32()),
    ("original_max_timesteps", pa.int32()), ("max_timesteps", pa.int32()),
])
SLIM_SCHEMA = pa.schema([
    ("source_dataset", pa.string()), ("raw_data_file", pa.string()), ("worm", pa.string()), ("neuron", pa.string()),
    ("slot", pa.int32()), ("is_labeled_neuron", pa.bool_()), ("smooth_method", pa.string()),
    ("interpolate_method", pa.string()), ("normalization_method", pa.string()),
    ("original_calcium_data", _L), ("calcium_data", _L), ("original_time_in_seconds", _L), ("time_in_seconds", _L),
    ("original_max_timesteps", pa.int32()), ("max_timesteps", pa.int32()),
])


def neuron_table() -> list[str]:
    """The collection's 300 slot names: the canonical 302 minus CANL/CANR, lexicographic."""
    path = Path(__file__).resolve().parents[1] / "loaders" / "celegans" / "neurons.tsv"
    with open(path) as fh:
        names = [row["name"] for row in csv.DictReader(fh, delimiter="\t")]
    names = sorted(n for n in names if n not in ("CANL", "CANR"))
    assert len(names) == 300
    return names


def worm_counts(n_worms: int, sources: Sequence[str] | None = None) -> dict[str, int]:
    """Worms per source: the published counts at n_worms >= their total, else proportional
    (largest remainder) with at least one worm per source while n_worms allows."""
    names = list(SOURCES) if sources is None else list(sources)
    unknown = [s for s in names if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}; valid: {list(SOURCES)}")
    full = {s: SOURCES[s][0] for s in names}
    total = sum(full.values())
    if n_worms >= total:
        return full
    if n_worms < len(names):  # fewest worms first dropped: keep the n_worms largest sources
        keep = sorted(names, key=lambda s: -full[s])[:n_worms]
        return {s: 1 for s in names if s in keep}
    counts = {s: 1 for s in names}
    rest = n_worms - len(names)
    share = {s: rest * full[s] / total for s in names}
    for s in names:
        counts[s] += math.floor(share[s])
    left = n_worms - sum(counts.values())
    for s in sorted(names, key=lambda s: -(share[s] - math.floor(share[s])))[:left]:
        counts[s] += 1
    return counts


class PlantedWorm:
    """One synthetic worm as written (all float arrays already float16-rounded).

    Fields: source_dataset, worm, raw_data_file; labeled (names in slot order)
    and labeled_slots; unlabeled (numeric-string names in row order) and
    unlabeled_slots; time / original_time and dt / original_dt (float32, as
    stored); traces (column name -> (T or T_orig, n_rows) float32, rows =
    labeled then unlabeled); median_dt, original_median_dt.
    (A plain class: the module is loaded by path in tests, where dataclasses
    cannot resolve their module.)
    """

    FIELDS = ("source_dataset", "worm", "raw_data_file", "labeled", "labeled_slots", "unlabeled",
              "unlabeled_slots", "time", "original_time", "dt", "original_dt", "traces", "median_dt",
              "original_median_dt")
    __slots__ = FIELDS

    def __init__(self, **kw):
        for f in self.FIELDS:
            setattr(self, f, kw.pop(f))
        if kw:
            raise TypeError(f"unexpected fields {sorted(kw)}")

    @property
    def T(self) -> int:
        return len(self.time)

    @property
    def calcium(self) -> np.ndarray:
        return self.traces["calcium_data"][:, : len(self.labeled)]

    @property
    def smooth(self) -> np.ndarray:
        return self.traces["smooth_calcium_data"][:, : len(self.labeled)]


def _f16(a: np.ndarray) -> np.ndarray:
    return np.asarray(a).astype(np.float16).astype(np.float32)


def _causal_ma(x: np.ndarray, window: int = 15) -> np.ndarray:
    """moving_average_smooth of _helpers.py: mean of x[max(j - window//2, 0) : j + 1]."""
    h = window // 2
    c = np.cumsum(np.vstack([np.zeros((1, x.shape[1])), x]), axis=0)
    j = np.arange(len(x))
    lo = np.maximum(j - h, 0)
    return (c[j + 1] - c[lo]) / (j + 1 - lo)[:, None]


def _length_range(lo: int, hi: int, native_dt: float, min_len: int, max_len: int) -> tuple[int, int]:
    floor_native = math.ceil(MIN_NATIVE * native_dt / DT) + 1  # keep >= 600 native samples if possible
    lo2 = max(lo, min_len, min(floor_native, max_len))
    hi2 = min(hi, max_len)
    if hi2 < lo2:  # the source's range lies outside [min_len, max_len]: use the top of what is allowed
        lo2, hi2 = max(min_len, min(floor_native, max_len), int(0.8 * max_len)), max_len
        lo2 = min(lo2, hi2)
    return lo2, hi2


def _make_worm(source: str, si: int, wi: int, seed: int, names300: list[str], min_len: int, max_len: int) -> PlantedWorm:
    n_src, lab_mean, rec_mean, native_dt, (lo, hi), files = SOURCES[source]
    rng = np.random.default_rng([seed, si, wi])
    lo, hi = _length_range(lo, hi, native_dt, min_len, max_len)
    T_target = int(rng.integers(lo, hi + 1))
    ndt = native_dt * float(rng.uniform(0.98, 1.02))
    # native grid long enough that arange(0, t_max, DT) has T_target points
    T_orig = max(2, math.floor((T_target - 1) * DT / ndt) + 2)
    t_orig64 = np.arange(T_orig) * ndt
    t64 = np.arange(0.0, t_orig64[-1], DT)

    n_lab = int(np.clip(round(rng.normal(lab_mean, max(1.5, 0.12 * lab_mean))), 8, 190))
    n_unl = int(np.clip(round(rng.normal(rec_mean - lab_mean, max(1.0, 0.12 * (rec_mean - lab_mean)))), 0, 300 - n_lab))
    if rec_mean == lab_mean:
        n_unl = int(rng.random() < 0.1)  # fully labeled sources: an odd unlabeled row now and then
    n = n_lab + n_unl
    lab_slots = np.sort(rng.choice(300, size=n_lab, replace=False))
    free = np.setdiff1d(np.arange(300), lab_slots)
    unl_slots = rng.choice(free, size=n_unl, replace=False)
    # recording-local indices: unlabeled rows are named by their column in the source file
    rec_index = rng.permutation(n)
    unl_names = tuple(str(int(i)) for i in rec_index[n_lab:])

    # shared latent dynamics on the native grid
    K = int(rng.integers(3, 6))
    freq = rng.uniform(0.004, 0.06, size=K)  # Hz
    phase = rng.uniform(0, 2 * np.pi, size=K) + np.cumsum(rng.normal(0, 0.03, size=(T_orig, K)), axis=0)
    amp = 1.0 + 0.3 * np.cumsum(rng.normal(0, 0.02, size=(T_orig, K)), axis=0)
    latents = amp * np.sin(2 * np.pi * freq * t_orig64[:, None] + phase)
    mix = rng.normal(0, 1.0, size=(K, n))
    raw = (rng.uniform(0.5, 2.0, size=n) + 0.4 * latents @ mix / np.sqrt(K)
           + rng.uniform(0.05, 0.3, size=n) * rng.normal(size=(T_orig, n)))
    resid = np.gradient(raw, t_orig64, axis=0)
    sm, sm_resid = _causal_ma(raw), _causal_ma(resid)

    # linear resampling onto the 0.333 s grid
    j = np.clip(np.searchsorted(t_orig64, t64, side="right") - 1, 0, T_orig - 2)
    w = ((t64 - t_orig64[j]) / (t_orig64[j + 1] - t_orig64[j]))[:, None]
    rs = lambda a: a[j] * (1 - w) + a[j + 1] * w  # noqa: E731
    r_resid, r_sm, r_sm_resid = rs(resid), rs(sm), rs(sm_resid)
    mu, sd = r_sm.mean(0), r_sm.std(0)
    z = (r_sm - mu) / np.where(sd > 0, sd, 1.0)

    traces = {
        "original_calcium_data": _f16(raw), "calcium_data": _f16(z),
        "original_smooth_calcium_data": _f16(sm), "smooth_calcium_data": _f16(r_sm),
        "original_residual_calcium": _f16(resid), "residual_calcium": _f16(r_resid),
        "original_smooth_residual_calcium": _f16(sm_resid), "smooth_residual_calcium": _f16(r_sm_resid),
    }
    tmpl = files[wi % len(files)]
    raw_file = f"opensource_data/{source}/" + tmpl.format(w=wi, d=1 + wi % 28, m=1 + wi % 12, r=300 + wi % 40)
    return PlantedWorm(
        source_dataset=source, worm=f"worm{wi}", raw_data_file=raw_file,
        labeled=tuple(names300[s] for s in lab_slots), labeled_slots=lab_slots.astype(np.int32),
        unlabeled=unl_names, unlabeled_slots=unl_slots.astype(np.int32),
        time=_f16(t64), original_time=_f16(t_orig64), traces=traces,
        dt=_f16(np.diff(t64, prepend=0.0)), original_dt=_f16(np.diff(t_orig64, prepend=0.0)),
        median_dt=float(np.float32(np.median(np.diff(t64)))),
        original_median_dt=float(np.float32(np.median(np.diff(t_orig64)))),
    )


def planted_worms(n_worms: int = 24, seed: int = 0, sources: Sequence[str] | None = None,
                  min_len: int = 600, max_len: int = 8780) -> Iterator[PlantedWorm]:
    """The worms :func:`write_activity_fixture` writes, in file order."""
    names300 = neuron_table()
    order = list(SOURCES)
    for source, count in worm_counts(n_worms, sources).items():
        si = order.index(source)
        for wi in range(count):
            yield _make_worm(source, si, wi, seed, names300, min_len, max_len)


def _list_array(mat: np.ndarray) -> pa.Array:
    """(T, n) -> list<float> array of n rows (column j = row j)."""
    T, n = mat.shape
    values = pa.array(np.ascontiguousarray(mat.T, dtype=np.float32).ravel())
    return pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * T), values)


def _repeat_list(vec: np.ndarray, n: int) -> pa.Array:
    values = pa.array(np.tile(np.asarray(vec, dtype=np.float32), n))
    return pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * len(vec)), values)


def worm_table(w: PlantedWorm, wide: bool = True) -> pa.Table:
    schema = WIDE_SCHEMA if wide else SLIM_SCHEMA
    n_lab, n = len(w.labeled), len(w.labeled) + len(w.unlabeled)
    lab = np.arange(n) < n_lab
    const = lambda v, t: pa.array([v] * n, type=t)  # noqa: E731
    cols = {
        "source_dataset": const(w.source_dataset, pa.string()),
        "raw_data_file": const(w.raw_data_file, pa.string()),
        "worm": const(w.worm, pa.string()),
        "neuron": pa.array(list(w.labeled) + list(w.unlabeled), type=pa.string()),
        "slot": pa.array(np.concatenate([w.labeled_slots, w.unlabeled_slots]).astype(np.int32)),
        "is_labeled_neuron": pa.array(lab),
        "is_unlabeled_neuron": pa.array(~lab),
        "smooth_method": const("moving", pa.string()),
        "interpolate_method": const("linear", pa.string()),
        "normalization_method": const("standard", pa.string()),
        "original_time_in_seconds": _repeat_list(w.original_time, n),
        "time_in_seconds": _repeat_list(w.time, n),
        "original_median_dt": const(w.original_median_dt, pa.float32()),
        "median_dt": const(w.median_dt, pa.float32()),
        "original_max_timesteps": const(len(w.original_time), pa.int32()),
        "max_timesteps": const(w.T, pa.int32()),
    }
    if wide:
        cols["dt"] = _repeat_list(w.dt, n)
        cols["original_dt"] = _repeat_list(w.original_dt, n)
    for name in schema.names:
        if name not in cols:
            cols[name] = _list_array(w.traces[name])
    return pa.Table.from_arrays([cols[c] for c in schema.names], schema=schema)


def write_activity_fixture(out_dir, n_worms: int = 24, seed: int = 0, sources: Sequence[str] | None = None, *,
                           wide: bool = True, min_len: int = 600, max_len: int = 8780,
                           row_group_bytes: int = 256 << 20) -> list[Path]:
    """Write ``out_dir/worm_data_short.parquet``; return ``[path]``.

    Worm by worm through a ``ParquetWriter`` (pyarrow defaults: snappy,
    dictionary encoding, as ``DataFrame.to_parquet`` uses); a row group is cut
    whenever ``row_group_bytes`` of arrow data are buffered, so a small
    fixture is a single row group like the published file.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / FILE
    tmp = path.with_name(path.name + ".tmp")
    schema = WIDE_SCHEMA if wide else SLIM_SCHEMA
    buf: list[pa.Table] = []
    size = 0
    with pq.ParquetWriter(tmp, schema) as writer:
        for w in planted_worms(n_worms, seed, sources, min_len, max_len):
            t = worm_table(w, wide)
            buf.append(t)
            size += t.nbytes
            if size >= row_group_bytes:
                writer.write_table(pa.concat_tables(buf), row_group_size=1 << 30)
                buf, size = [], 0
        if buf:
            writer.write_table(pa.concat_tables(buf), row_group_size=1 << 30)
    tmp.replace(path)
    return [path]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--scale", choices=("small", "full"), default="small",
                    help=f"small: 24 worms; full: the published {TOTAL_WORMS}")
    ap.add_argument("--worms", type=int, default=None, help="overrides --scale")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--slim", action="store_true", help="the 15-column schema of the current neural_to_parquet.py")
    args = ap.parse_args()
    n = args.worms if args.worms is not None else (TOTAL_WORMS if args.scale == "full" else 24)
    t0 = _time.perf_counter()
    for p in write_activity_fixture(args.out, n, args.seed, wide=not args.slim):
        md = pq.ParquetFile(p).metadata
        print(f"{p}  {p.stat().st_size / 2**20:.1f} MiB  {md.num_rows} rows  {md.num_row_groups} row group(s)  "
              f"{_time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
