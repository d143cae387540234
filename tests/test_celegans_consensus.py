"""Consensus connectome CSV (HF qsimeon/celegans_connectome_data): fixture generator and reader."""
from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest

from neuroharness.errors import DataFormatError
from neuroharness.loaders.celegans.consensus import (
    CONSENSUS_COLUMNS,
    CONSENSUS_COLUMNS_NOFUNC,
    CONSENSUS_FILES,
    VARIANTS,
    read_consensus_csv,
)
from helpers import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_celegans_consensus_fixture.py"


def _load_script():
    return load_script("make_celegans_consensus_fixture")


gen = _load_script()
ANCHOR_NAMES = sorted({n for d in (gen.ANCHOR_CHEM, gen.ANCHOR_GAP, gen.ANCHOR_FUNC) for p in d for n in p})
# A small neuron set keeps the files small (n^2 rows); it holds every anchor pair.
SUBSET = sorted(set(ANCHOR_NAMES) | set(gen.pick_neurons(30, seed=3)))
SEED = 7


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def _write_rows(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


@pytest.fixture(scope="module")
def full_nofunc(tmp_path_factory) -> Path:
    return gen.write_consensus_fixture(tmp_path_factory.mktemp("cc"), "full_nofunc", seed=SEED, neurons=SUBSET)


def test_names_and_columns_agree_with_generator():
    assert CONSENSUS_FILES == {v: f"consensus_connectome_{v}.csv" for v in VARIANTS}
    assert CONSENSUS_COLUMNS == gen.COLUMNS
    assert CONSENSUS_COLUMNS_NOFUNC == tuple(c for c in gen.COLUMNS if c != "functional_weight")
    assert tuple(VARIANTS) == tuple(gen.VARIANTS)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_has_source_name_and_header(tmp_path, variant):
    path = gen.write_consensus_fixture(tmp_path, variant, seed=SEED, neurons=SUBSET)
    assert path.name == CONSENSUS_FILES[variant]
    header = _rows(path)[0]
    assert tuple(header) == (CONSENSUS_COLUMNS if variant.endswith("withfunc") else CONSENSUS_COLUMNS_NOFUNC)


def test_full_file_is_all_ordered_pairs_in_label_order(full_nofunc):
    rows = _rows(full_nofunc)[1:]
    assert [(r[0], r[1]) for r in rows] == [(a, b) for a in SUBSET for b in SUBSET]


def test_raw_serialization_matches_source(tmp_path):
    path = gen.write_consensus_fixture(tmp_path, "full_withfunc", seed=SEED, neurons=SUBSET)
    lines = path.read_text().splitlines()
    ashl_aval = next(line for line in lines if line.startswith("ASHL,AVAL,"))
    # str(tuple) positions and str(list) sources, quoted; NaN -> empty field; float repr.
    assert ashl_aval.startswith('ASHL,AVAL,"(0.0553, -2.6563, 0.4098)","(0.0565, -2.7042, 0.4278)",sensory,inter,')
    assert ashl_aval.endswith(",,6.0,,,\"['cook2019', 'white1986_whole', 'witvliet2020_7']\"")
    avbl_avbr = next(line for line in lines if line.startswith("AVBL,AVBR,"))
    assert avbl_avbr.endswith(",4.0,1.5,0.45,,\"['cook2019', 'witvliet2020_7']\"")
    assert next(line for line in lines if line.startswith("AWCL,AIYL,")).endswith(",,,,0.25,['funconn']")
    assert "CANL" not in path.read_text()


def test_roundtrip_planted_values(full_nofunc):
    edges, covered = read_consensus_csv(full_nofunc)
    assert list(edges.columns) == ["pre", "post", "type", "weight"]
    assert edges["weight"].dtype == "float64" and (edges["weight"] > 0).all()
    assert covered == set(SUBSET)
    w = {(r.pre, r.post, r.type): r.weight for r in edges.itertuples()}
    assert w["ASHL", "AVAL", "chemical"] == 6.0
    assert w["AVBL", "AVBR", "chemical"] == 1.5
    assert w["AVAL", "AVAR", "electrical"] == w["AVAR", "AVAL", "electrical"] == 2.5  # mean of distinct {3, 2}
    assert w["AVBL", "AVBR", "electrical"] == w["AVBR", "AVBL", "electrical"] == 4.0
    for pair in [("AVAL", "ASHL"), ("AVAL", "AVAR"), ("AWCL", "AIYL")]:
        assert (*pair, "chemical") not in w  # anchors are exactly what was planted
    assert ("AWCL", "AIYL", "electrical") not in w  # functional weights are not read


def test_roundtrip_counts_and_symmetry(full_nofunc):
    edges, _ = read_consensus_csv(full_nofunc)
    summary = gen.build_summary(SEED, SUBSET)
    chem = edges[edges["type"] == "chemical"]
    gap = edges[edges["type"] == "electrical"]
    assert len(chem) == int(summary["mean_chem_weight"].notna().sum())
    assert len(gap) == int(summary["mean_gap_weight"].notna().sum())
    assert len(chem) + len(gap) == len(edges)
    planted = {(r.from_neuron, r.to_neuron): r.mean_chem_weight for r in summary.itertuples() if not math.isnan(r.mean_chem_weight)}
    assert {(r.pre, r.post): r.weight for r in chem.itertuples()} == planted
    gap_w = {(r.pre, r.post): r.weight for r in gap.itertuples()}
    assert all(gap_w.get((b, a)) == v for (a, b), v in gap_w.items())
    assert not any(a == b for a, b in gap_w)


def test_trimmed_variants_keep_the_same_edges(tmp_path):
    full, _ = read_consensus_csv(gen.write_consensus_fixture(tmp_path, "full_withfunc", seed=SEED, neurons=SUBSET))
    keys = lambda e: sorted(zip(e["pre"], e["post"], e["type"], e["weight"]))
    for variant in ("trimmed_withfunc", "trimmed_nofunc"):
        path = gen.write_consensus_fixture(tmp_path, variant, seed=SEED, neurons=SUBSET)
        edges, covered = read_consensus_csv(path)
        assert keys(edges) == keys(full)
        assert covered <= set(SUBSET)
        pairs = {(r[0], r[1]) for r in _rows(path)[1:]}
        # a functional-only pair survives trimming only where the functional column is kept
        assert (("AWCL", "AIYL") in pairs) == (variant == "trimmed_withfunc")


def test_default_is_300_neurons_sparse_and_deterministic(tmp_path):
    a = gen.write_consensus_fixture(tmp_path / "a", seed=0)
    b = gen.write_consensus_fixture(tmp_path / "b", seed=0)
    c = gen.write_consensus_fixture(tmp_path / "c", seed=1)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    edges, covered = read_consensus_csv(a)
    assert len(covered) == 300 and not covered & {"CANL", "CANR"}
    assert sum(1 for _ in open(a)) == 1 + 300 * 300
    density = (edges["type"] == "chemical").sum() / (300 * 299)
    assert 0.02 < density < 0.04


def test_script_runs_standalone(tmp_path):
    src = SCRIPT.read_text()
    assert "import neuroharness" not in src and "from neuroharness" not in src
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--variant", "all", "--seed", "3", "--n-neurons", "12"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )
    assert len(out.stdout.split()) == 4
    for variant in VARIANTS:
        edges, covered = read_consensus_csv(tmp_path / CONSENSUS_FILES[variant])
        assert covered <= set(gen.pick_neurons(12, seed=3))
    assert sum(1 for _ in open(tmp_path / CONSENSUS_FILES["full_nofunc"])) == 1 + 12 * 12


# -- bad input: message names the file, the column and the 1-based line -------


def _broken(full_nofunc: Path, tmp_path: Path, edit) -> Path:
    rows = _rows(full_nofunc)
    edit(rows)
    path = tmp_path / full_nofunc.name
    _write_rows(path, rows)
    return path


def _set(line: int, column: str, value: str):
    def edit(rows):
        rows[line - 1][list(CONSENSUS_COLUMNS_NOFUNC).index(column)] = value
    return edit


def _rename(old: str, new: str):
    def edit(rows):
        rows[0][rows[0].index(old)] = new
    return edit


def _swap(c1: str, c2: str):
    def edit(rows):
        i, j = rows[0].index(c1), rows[0].index(c2)
        for r in rows:
            r[i], r[j] = r[j], r[i]
    return edit


def _drop(column: str):
    def edit(rows):
        i = rows[0].index(column)
        for r in rows:
            del r[i]
    return edit


BAD = {
    "renamed column": (_rename("mean_chem_weight", "chem_weight"), 1, "mean_chem_weight"),
    "swapped columns": (_swap("mean_gap_weight", "mean_chem_weight"), 1, "mean_gap_weight"),
    "missing column": (_drop("to_neuron"), 1, "to_neuron"),
    "nan weight": (_set(5, "mean_chem_weight", "nan"), 5, "mean_chem_weight"),
    "NaN gap weight": (_set(9, "mean_gap_weight", "NaN"), 9, "mean_gap_weight"),
    "text weight": (_set(12, "mean_chem_weight", "three"), 12, "mean_chem_weight"),
    "infinite weight": (_set(3, "mean_gap_weight", "inf"), 3, "mean_gap_weight"),
    "negative weight": (_set(7, "mean_chem_weight", "-2.0"), 7, "mean_chem_weight"),
    "empty name": (_set(4, "to_neuron", ""), 4, "to_neuron"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_names_file_column_line(full_nofunc, tmp_path, case):
    edit, line, column = BAD[case]
    path = _broken(full_nofunc, tmp_path, edit)
    with pytest.raises(DataFormatError) as err:
        read_consensus_csv(path)
    msg = str(err.value)
    assert path.name in msg and column in msg and f"line {line}" in msg, msg


def test_bad_rows_and_files(full_nofunc, tmp_path):
    def short_row(rows):
        rows[6] = rows[6][:-1]

    with pytest.raises(DataFormatError, match=r"line 7: found 9 fields, expected 10"):
        read_consensus_csv(_broken(full_nofunc, tmp_path, short_row))

    def duplicate(rows):
        rows.append(list(rows[3]))

    with pytest.raises(DataFormatError, match=r"repeats line 4"):
        read_consensus_csv(_broken(full_nofunc, tmp_path, duplicate))
    empty = tmp_path / "consensus_connectome_full_nofunc_empty.csv"
    empty.write_text("")
    with pytest.raises(DataFormatError, match="empty file"):
        read_consensus_csv(empty)
    with pytest.raises(DataFormatError, match="not a readable"):
        read_consensus_csv(tmp_path / "absent.csv")
