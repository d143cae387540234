"""Write a synthetic consensus connectome CSV in the exact layout of the real one.

The real files are ``consensus_connectome_{full,trimmed}_{withfunc,nofunc}.csv``
of the HuggingFace dataset ``qsimeon/celegans_connectome_data``, written by
``extra/consensus_connectome.py`` of github ``qsimeon/worm-data-preprocess``.
This script mirrors that writer: one summary row per ordered pair of the 300
neurons (302 minus CANL/CANR, plain lexicographic order, self-pairs included),
the same columns, ``str()`` of a position tuple and of a sorted source list,
NaN (an empty field) for absent weights, ``DataFrame.to_csv(index=False)``,
and the same full/trimmed and withfunc/nofunc rules.

The weights are random, not biological: about 3% of ordered pairs get a
chemical weight (mean of 1-9 annotations' small integer counts), about 2% of
unordered pairs a symmetric gap weight (mean of the distinct per-annotation
values, which pass through float32 as in the source), about 1% of ordered
pairs a signed functional weight. A few fixed pairs (:data:`ANCHOR_CHEM`,
:data:`ANCHOR_GAP`, :data:`ANCHOR_FUNC`) get the same values for every seed,
so tests can check them by hand; they are planted when both neurons are in
the neuron set. Positions and types come from ``loaders/celegans/neurons.tsv``.

Usage: ``python scripts/make_celegans_consensus_fixture.py --out DIR
[--variant full_nofunc|...|all] [--seed 0] [--n-neurons N]``.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import pandas as pd

NEURONS_TSV = Path(__file__).resolve().parents[1] / "loaders" / "celegans" / "neurons.tsv"

COLUMNS = (
    "from_neuron", "to_neuron", "from_pos", "to_pos", "from_type", "to_type",
    "mean_gap_weight", "mean_chem_weight", "uncertainty", "functional_weight", "data_sources",
)
VARIANTS = ("full_withfunc", "full_nofunc", "trimmed_withfunc", "trimmed_nofunc")
# Data source names are the .pt file stems the real script globs (graph_tensors_<name>.pt).
STRUCTURAL = (
    "chklovskii", "cook2019", "openworm", "white1986_jse", "white1986_jsh",
    "white1986_n2u", "white1986_whole", "witvliet2020_7", "witvliet2020_8",
)
FUNCTIONAL = "funconn"
LAMBDA = 0.9  # uncertainty = LAMBDA * std(chem) + (1 - LAMBDA) * std(gap), as in the source
# The source master sheet says "inter" where the canonical table says "interneuron".
TYPE_NAMES = {"interneuron": "inter"}
EXCLUDED = ("CANL", "CANR")  # end organs per Cook 2019; not in the collection's 300

CHEM_DENSITY, GAP_DENSITY, FUNC_DENSITY = 0.03, 0.02, 0.01

# Fixed test values: {pair: {annotation: value}}; not real measurements.
ANCHOR_CHEM = {
    ("ASHL", "AVAL"): {"cook2019": 7.0, "white1986_whole": 5.0, "witvliet2020_7": 6.0},  # mean 6.0
    ("AVBL", "AVBR"): {"cook2019": 1.0, "witvliet2020_7": 2.0},  # mean 1.5
}
ANCHOR_GAP = {
    # 3.0 twice: the source averages *distinct* values, so the mean is 2.5, not 8/3.
    ("AVAL", "AVAR"): {"cook2019": 3.0, "white1986_whole": 3.0, "witvliet2020_8": 2.0},
    ("AVBL", "AVBR"): {"cook2019": 4.0},  # with the chemical anchor: uncertainty 0.9*0.5 + 0.1*0 = 0.45
}
ANCHOR_FUNC = {("AWCL", "AIYL"): 0.25}  # functional only: kept by trimmed_withfunc, dropped by trimmed_nofunc


def read_neuron_table(path: Path = NEURONS_TSV) -> dict[str, tuple[tuple[float, float, float], str]]:
    """Canonical table -> {name: ((x, y, z), source-style type)}, without CANL/CANR."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return {
        r["name"]: ((float(r["x"]), float(r["y"]), float(r["z"])), TYPE_NAMES.get(r["type"], r["type"]))
        for r in rows
        if r["name"] not in EXCLUDED
    }


def pick_neurons(n: int, seed: int = 0) -> list[str]:
    """A seeded random subset of ``n`` of the 300 names, sorted."""
    names = sorted(read_neuron_table())
    if not 1 <= n <= len(names):
        raise ValueError(f"--n-neurons {n}: expected 1..{len(names)}")
    rng = np.random.default_rng([seed, 1])  # own stream: the subset must not shift the weights' draws
    return sorted(rng.choice(names, size=n, replace=False).tolist())


def _f32(x: float) -> float:
    """Round through float32 like the source's ``edge_attr`` tensors (``torch.float``)."""
    return float(np.float32(x))


def _random_weights(names: list[str], seed: int):
    rng = np.random.default_rng(seed)
    n = len(names)
    chem: dict[tuple[str, str], dict[str, float]] = {}
    gap: dict[tuple[str, str], dict[str, float]] = {}  # key (a, b) with a < b
    func: dict[tuple[str, str], float] = {}
    off_diag = ~np.eye(n, dtype=bool)
    for i, j in zip(*np.nonzero((rng.random((n, n)) < CHEM_DENSITY) & off_diag)):
        k = int(rng.integers(1, len(STRUCTURAL) + 1))
        sources = rng.choice(STRUCTURAL, size=k, replace=False)
        counts = rng.geometric(0.35, size=k)  # synapse counts: mostly 1-3, a tail of larger ones
        chem[names[i], names[j]] = {str(s): _f32(c) for s, c in zip(sources, counts)}
    for i, j in zip(*np.nonzero(np.triu(rng.random((n, n)) < GAP_DENSITY, k=1))):
        k = int(rng.integers(1, len(STRUCTURAL) + 1))
        sources = rng.choice(STRUCTURAL, size=k, replace=False)
        # Each annotation's symmetrized value is the mean of its one or two listings.
        values = [_f32(rng.integers(1, 9, size=rng.integers(1, 3)).mean()) for _ in range(k)]
        gap[names[i], names[j]] = {str(s): v for s, v in zip(sources, values)}
    for i, j in zip(*np.nonzero((rng.random((n, n)) < FUNC_DENSITY) & off_diag)):
        value = 0.0
        while value == 0.0:  # the source keeps nonzero values only
            value = _f32(rng.normal(0.0, 0.4))
        func[names[i], names[j]] = value
    return chem, gap, func


def build_summary(seed: int = 0, neurons=None) -> pd.DataFrame:
    """The all-pairs summary table (the source's ``analyze_all_connectomes`` output).

    ``neurons``: names to use (default: all 300); sorted here like the
    source's ``NEURON_LABELS``.
    """
    table = read_neuron_table()
    names = sorted(table) if neurons is None else sorted(set(neurons))
    unknown = [x for x in names if x not in table]
    if unknown or not names:
        raise ValueError(f"neurons {unknown[:5]}: expected names among the 300 of {NEURONS_TSV.name} (CANL/CANR excluded)")
    chem, gap, func = _random_weights(names, seed)
    present = set(names)
    anchors = [p for d in (ANCHOR_CHEM, ANCHOR_GAP, ANCHOR_FUNC) for p in d if set(p) <= present]
    for a, b in anchors:  # clear every channel of an anchor pair so its values are exactly the planted ones
        for key in ((a, b), (b, a)):
            chem.pop(key, None)
            func.pop(key, None)
        gap.pop(tuple(sorted((a, b))), None)
    chem.update({p: dict(v) for p, v in ANCHOR_CHEM.items() if set(p) <= present})
    gap.update({tuple(sorted(p)): dict(v) for p, v in ANCHOR_GAP.items() if set(p) <= present})
    func.update({p: v for p, v in ANCHOR_FUNC.items() if set(p) <= present})

    rows = []
    for a in names:
        for b in names:
            g = gap.get((a, b) if a < b else (b, a), {})
            unique_gap = list(set(g.values()))
            c = chem.get((a, b), {})
            chem_vals = list(c.values())
            f = func.get((a, b), np.nan)
            sources = set(g) | set(c) | ({FUNCTIONAL} if (a, b) in func else set())
            std_gap = np.std(unique_gap) if unique_gap else np.nan
            std_chem = np.std(chem_vals) if chem_vals else np.nan
            rows.append({
                "from_neuron": a,
                "to_neuron": b,
                "from_pos": table[a][0],
                "to_pos": table[b][0],
                "from_type": table[a][1],
                "to_type": table[b][1],
                "mean_gap_weight": np.mean(unique_gap) if unique_gap else np.nan,
                "mean_chem_weight": np.mean(chem_vals) if chem_vals else np.nan,
                "uncertainty": LAMBDA * std_chem + (1 - LAMBDA) * std_gap,
                "functional_weight": f,
                "data_sources": sorted(sources),
            })
    return pd.DataFrame(rows, columns=list(COLUMNS))


def variant_frame(summary: pd.DataFrame, variant: str) -> pd.DataFrame:
    """Apply the source's row (full/trimmed) and column (withfunc/nofunc) rules."""
    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    rows, func = variant.split("_")
    out = summary.copy()
    if func == "nofunc":
        out = out.drop(columns=["functional_weight"])
    if rows == "trimmed":
        empty = out["mean_gap_weight"].isnull() & out["mean_chem_weight"].isnull()
        if func == "withfunc":
            empty &= out["functional_weight"].isnull()
        out = out[~empty]
    return out


def write_consensus_fixture(out_dir, variant: str = "full_nofunc", seed: int = 0, neurons=None) -> Path:
    """Write ``consensus_connectome_<variant>.csv`` into ``out_dir``; return its path."""
    frame = variant_frame(build_summary(seed, neurons), variant)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"consensus_connectome_{variant}.csv"
    frame.to_csv(path, index=False)  # the source's exact call: no index, NaN -> empty field
    return path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="output directory")
    ap.add_argument("--variant", default="full_nofunc", choices=(*VARIANTS, "all"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-neurons", type=int, default=None, help="seeded random subset of the 300 neurons")
    args = ap.parse_args(argv)
    neurons = None if args.n_neurons is None else pick_neurons(args.n_neurons, args.seed)
    summary = build_summary(args.seed, neurons)
    args.out.mkdir(parents=True, exist_ok=True)
    for variant in VARIANTS if args.variant == "all" else (args.variant,):
        path = args.out / f"consensus_connectome_{variant}.csv"
        variant_frame(summary, variant).to_csv(path, index=False)
        print(path)


if __name__ == "__main__":
    main()
