"""Write synthetic worms in the raw parquet layout of ``qsimeon/celegans_neural_data``.

The columns, their order and the row order follow the slim schema that
``extra/neural_to_parquet.py`` (github qsimeon/worm-data-preprocess) writes:
one row per (worm, neuron), rows grouped by source dataset, then worm, then
neuron; labeled neurons first in slot order, then unlabeled ones with
numeric-string names. ``--wide`` adds ``smooth_calcium_data`` as in the
viewer's wider schema.

Worms are realistic in shape, not in biology: the 12 source datasets with
their published worm counts (scaled down with ``--worms``), 600 to 8,780
samples at dt = 0.333 s, 8 to 190 labeled neurons, traces driven by a few
shared slow oscillators plus noise, causally smoothed, z-scored per neuron,
rounded to float16 precision as in the published files, NaN-free.

    python scripts/make_celegans_activity_fixture.py --out DIR [--worms 912] [--seed 0] [--wide]
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DT = 0.333
FILE = "worm_data_short.parquet"
# source dataset: (worms, mean labeled, mean recorded, native dt in s), after the worm-data-preprocess README
SOURCES = {
    "Kato2015": (12, 42, 127, 0.34), "Nichols2017": (44, 34, 108, 0.34), "Skora2018": (12, 46, 129, 0.33),
    "Kaplan2020": (19, 36, 114, 0.33), "Nejatbakhsh2020": (21, 173, 175, 0.25), "Yemini2021": (49, 110, 110, 0.26),
    "Uzel2022": (6, 50, 138, 0.6), "Dag2023": (7, 100, 143, 0.6), "Leifer2023": (103, 63, 67, 0.6),
    "Lin2023": (577, 8, 8, 0.2), "Flavell2023": (40, 88, 136, 0.6), "Venkatachalam2024": (22, 187, 187, 0.64),
}
SCHEMA = pa.schema([
    ("source_dataset", pa.string()), ("raw_data_file", pa.string()), ("worm", pa.string()), ("neuron", pa.string()),
    ("slot", pa.int32()), ("is_labeled_neuron", pa.bool_()), ("smooth_method", pa.string()),
    ("interpolate_method", pa.string()), ("normalization_method", pa.string()),
    ("original_calcium_data", pa.list_(pa.float32())), ("calcium_data", pa.list_(pa.float32())),
    ("original_time_in_seconds", pa.list_(pa.float32())), ("time_in_seconds", pa.list_(pa.float32())),
    ("original_max_timesteps", pa.int32()), ("max_timesteps", pa.int32()),
])
SMOOTH_FIELD = pa.field("smooth_calcium_data", pa.list_(pa.float32()))


def neuron_table() -> list[str]:
    path = Path(__file__).resolve().parents[1] / "loaders" / "celegans" / "neurons.tsv"
    with open(path) as fh:
        names = [row["name"] for row in csv.DictReader(fh, delimiter="\t")]
    return [n for n in names if n not in ("CANL", "CANR")]  # the collection's 300 slots


def worm_counts(n_worms: int) -> dict[str, int]:
    total = sum(v[0] for v in SOURCES.values())
    if n_worms >= total:
        return {s: v[0] for s, v in SOURCES.items()}
    counts = {s: max(1, round(v[0] * n_worms / total)) for s, v in SOURCES.items()}
    return counts


def _causal_mean(x: np.ndarray, w: int = 15) -> np.ndarray:
    c = np.cumsum(x, axis=0)
    out = c.copy()
    out[w:] = c[w:] - c[:-w]
    return out / np.minimum(np.arange(1, len(x) + 1), w)[:, None]


def synth_worm(rng: np.random.Generator, labeled_mean: int, recorded_mean: int, length: int, names: list[str]):
    """(labeled names, normalized (T, n), smoothed (T, n), n_unlabeled) for one worm."""
    n_lab = int(np.clip(rng.normal(labeled_mean, max(2, labeled_mean * 0.15)), 8, 190))
    n_unl = int(max(0, rng.normal(recorded_mean - labeled_mean, 3)))
    slots = np.sort(rng.choice(len(names), size=n_lab, replace=False))
    t = np.arange(length) * DT
    k = 4
    freqs = rng.uniform(0.005, 0.05, size=k)  # Hz: slow brain-wide dynamics
    phases = rng.uniform(0, 2 * np.pi, size=k)
    latents = np.sin(2 * np.pi * freqs[None] * t[:, None] + phases[None])
    mixing = rng.normal(size=(k, n_lab + n_unl))
    raw = 1.0 + 0.3 * latents @ mixing + 0.15 * rng.normal(size=(length, n_lab + n_unl))
    smooth = _causal_mean(raw)
    z = (smooth - smooth.mean(0)) / smooth.std(0)
    f16 = lambda a: a.astype(np.float16).astype(np.float32)  # noqa: E731
    return [names[s] for s in slots], slots, f16(z), f16(smooth), n_unl


def write_activity_fixture(out_dir, n_worms: int = 24, seed: int = 0, wide: bool = False, min_len: int = 600, max_len: int = 8780) -> list[Path]:
    """Write ``FILE`` under ``out_dir``; return the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = neuron_table()
    schema = SCHEMA.append(SMOOTH_FIELD) if wide else SCHEMA
    path = out_dir / FILE
    tmp = path.with_name(path.name + ".tmp")
    rng = np.random.default_rng(seed)
    with pq.ParquetWriter(tmp, schema) as writer:
        for source, count in worm_counts(n_worms).items():
            _, lab_mean, rec_mean, native_dt = SOURCES[source]
            for w in range(count):
                length = int(rng.integers(min_len, max_len + 1)) if source != "Lin2023" else int(rng.integers(min_len, 1200))
                labels, slots, z, smooth, n_unl = synth_worm(rng, lab_mean, rec_mean, length, names)
                time = (np.arange(length) * DT).astype(np.float32)
                n_orig = int(length * DT / native_dt)
                orig_time = (np.arange(n_orig) * native_dt).astype(np.float32)
                free = [s for s in range(len(names)) if s not in set(slots.tolist())]
                unl_slots = rng.choice(free, size=n_unl, replace=False) if n_unl else []
                rows = {f.name: [] for f in schema}
                for j in range(len(labels) + n_unl):
                    lab = j < len(labels)
                    trace = z[:, j] if lab else np.zeros(length, dtype=np.float32)
                    rows["source_dataset"].append(source)
                    rows["raw_data_file"].append(f"{source}/raw_{w}.mat")
                    rows["worm"].append(f"worm{w}")
                    rows["neuron"].append(labels[j] if lab else str(j))
                    rows["slot"].append(int(slots[j] if lab else unl_slots[j - len(labels)]))
                    rows["is_labeled_neuron"].append(lab)
                    rows["smooth_method"].append("moving")
                    rows["interpolate_method"].append("linear")
                    rows["normalization_method"].append("standard")
                    rows["original_calcium_data"].append(np.interp(orig_time, time, trace).astype(np.float32))
                    rows["calcium_data"].append(trace)
                    rows["original_time_in_seconds"].append(orig_time)
                    rows["time_in_seconds"].append(time)
                    rows["original_max_timesteps"].append(n_orig)
                    rows["max_timesteps"].append(length)
                    if wide:
                        rows["smooth_calcium_data"].append(smooth[:, j] if lab else np.zeros(length, dtype=np.float32))
                writer.write_table(pa.Table.from_pydict(rows, schema=schema))
    tmp.replace(path)
    return [path]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--worms", type=int, default=24, help="912 = the published collection size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--wide", action="store_true", help="add smooth_calcium_data (the viewer's wider schema)")
    args = ap.parse_args()
    for p in write_activity_fixture(args.out, args.worms, args.seed, args.wide):
        print(p, f"{p.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
