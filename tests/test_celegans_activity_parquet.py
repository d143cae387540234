"""Raw layout of HF qsimeon/celegans_neural_data: fixture generator and the streaming reader."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from neuroharness.errors import DataFormatError
from neuroharness.loaders.celegans import activity_parquet as ap
from neuroharness.loaders.celegans import neuron_names
from helpers import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_celegans_activity_fixture.py"


def _load_script():
    return load_script("make_celegans_activity_fixture")


gen = _load_script()
NAMES = neuron_names()
SMALL = dict(n_worms=24, seed=5, max_len=1200)
TINY = dict(n_worms=3, seed=2, sources=("Kato2015", "Lin2023", "Uzel2022"), max_len=900)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    (path,) = gen.write_activity_fixture(tmp_path_factory.mktemp("small"), **SMALL)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    (path,) = gen.write_activity_fixture(tmp_path_factory.mktemp("tiny"), **TINY)
    return path


# --------------------------------------------------------------------------- layout


def test_counts_are_the_published_ones():
    full = gen.worm_counts(912)
    assert sum(full.values()) == 912 == gen.TOTAL_WORMS
    assert full["Lin2023"] == 577 and full["Leifer2023"] == 103 and full["Uzel2022"] == 6
    # 24 worms: one per source, the other 12 by largest remainder of 12 * count / 912
    assert gen.worm_counts(24) == {
        "Kato2015": 1, "Nichols2017": 2, "Skora2018": 1, "Kaplan2020": 1, "Nejatbakhsh2020": 1, "Yemini2021": 2,
        "Uzel2022": 1, "Dag2023": 1, "Leifer2023": 2, "Lin2023": 9, "Flavell2023": 2, "Venkatachalam2024": 1,
    }


def test_fixture_has_the_live_layout(small):
    assert small.name == ap.HF_FILES[0] == "worm_data_short.parquet"
    pf = pq.ParquetFile(small)
    schema = pf.schema_arrow
    assert tuple(schema.names) == ap.WIDE_COLUMNS and len(ap.WIDE_COLUMNS) == 25
    assert set(ap.REQUIRED_COLUMNS) <= set(ap.SLIM_COLUMNS) and set(ap.REQUIRED_COLUMNS) <= set(ap.WIDE_COLUMNS)
    assert set(ap.REQUIRED_COLUMNS) | set(ap.OPTIONAL_COLUMNS) == set(ap.WIDE_COLUMNS) | set(ap.SLIM_COLUMNS)
    assert schema.field("slot").type == pa.int32() and schema.field("max_timesteps").type == pa.int32()
    assert schema.field("median_dt").type == pa.float32()
    assert schema.field("is_labeled_neuron").type == pa.bool_()
    for c in ap.LIST_COLUMNS:
        assert pa.types.is_list(schema.field(c).type) and schema.field(c).type.value_type == pa.float32(), c
    assert pf.metadata.num_row_groups == 1  # as the published file
    t = pq.read_table(small, columns=["source_dataset", "worm", "neuron", "slot", "is_labeled_neuron",
                                      "is_unlabeled_neuron", "max_timesteps", "calcium_data", "time_in_seconds"])
    d = t.to_pydict()
    lab = np.array(d["is_labeled_neuron"])
    assert (lab != np.array(d["is_unlabeled_neuron"])).all()
    assert all(n.isdigit() for n, l in zip(d["neuron"], lab) if not l) and (~lab).sum() > 0
    assert all(NAMES.index(n) >= 0 for n, l in zip(d["neuron"], lab) if l)
    # rows grouped by source then worm; within a worm labeled rows first, in slot order
    keys = list(zip(d["source_dataset"], d["worm"]))
    firsts = [k for i, k in enumerate(keys) if i == 0 or k != keys[i - 1]]
    assert len(firsts) == len(set(firsts)) == 24
    for k in firsts:
        idx = [i for i, kk in enumerate(keys) if kk == k]
        labs = [i for i in idx if lab[i]]
        assert labs == idx[: len(labs)]
        slots = [d["slot"][i] for i in labs]
        assert slots == sorted(slots)
        assert len(set(d["slot"][i] for i in idx)) == len(idx)
    # values are float16 numbers; stored time is float16-rounded 0.333 * k
    cal = t.column("calcium_data").combine_chunks().flatten().to_numpy()
    assert np.array_equal(cal, cal.astype(np.float16).astype(np.float32))
    tm = np.asarray(d["time_in_seconds"][0], dtype=np.float64)
    np.testing.assert_array_equal(tm, (np.arange(len(tm)) * 0.333).astype(np.float16).astype(np.float32))


def test_round_trip_matches_the_planted_worms(small):
    planted = list(gen.planted_worms(**SMALL))
    recs = list(ap.iter_worms([small], NAMES))
    assert [(r.source_dataset, r.worm) for r in recs] == [(p.source_dataset, p.worm) for p in planted]
    per_source = {}
    for r in recs:
        per_source[r.source_dataset] = per_source.get(r.source_dataset, 0) + 1
    assert per_source == gen.worm_counts(24)
    for r, p in zip(recs, planted):
        order = np.argsort([NAMES.index(n) for n in p.labeled])
        assert r.neurons == tuple(p.labeled[i] for i in order)
        assert list(r.neurons) == sorted(r.neurons, key=NAMES.index)
        assert r.raw_data_file == p.raw_data_file and r.raw_data_file.startswith(f"opensource_data/{p.source_dataset}/")
        T = p.T
        assert 600 <= T <= 1200 and r.calcium.shape == r.smooth.shape == (T, len(p.labeled))
        assert r.calcium.dtype == r.smooth.dtype == np.float32 and r.time.dtype == np.float64
        np.testing.assert_array_equal(r.calcium, p.calcium[:, order])
        np.testing.assert_array_equal(r.smooth, p.smooth[:, order])
        assert r.dt == 0.333
        np.testing.assert_array_equal(r.time, np.arange(T) * 0.333)
        assert r.n_unlabeled == len(p.unlabeled)
        assert 8 <= len(r.neurons) <= 190
        # calcium_data is the per-neuron z-score of smooth_calcium_data (up to float16 rounding)
        z = (r.smooth - r.smooth.mean(0)) / r.smooth.std(0)
        assert np.abs(z - r.calcium).max() < 0.05
    lin = [r for r in recs if r.source_dataset == "Lin2023"]
    assert len(lin) == 9 and all(6 <= len(r.neurons) + r.n_unlabeled <= 12 for r in lin)
    kato = next(r for r in recs if r.source_dataset == "Kato2015")
    assert kato.n_unlabeled > 50  # Kato2015: ~42 labeled of ~127 recorded


def test_reader_streams_in_small_batches(small):
    a = list(ap.iter_worms([small], NAMES, batch_rows=7))
    b = list(ap.iter_worms([small], NAMES))
    assert [(r.worm, r.neurons) for r in a] == [(r.worm, r.neurons) for r in b]
    assert all(np.array_equal(x.calcium, y.calcium) for x, y in zip(a, b))


def test_float16_time_ties_are_a_regular_grid(tmp_path):
    # Beyond 512 s float16 steps are 0.5 s, so stored times repeat; the reader rebuilds 0.333 * k.
    (path,) = gen.write_activity_fixture(tmp_path, n_worms=1, sources=["Lin2023"], min_len=1700, max_len=1700)
    stored = np.asarray(pq.read_table(path, columns=["time_in_seconds"]).column(0)[0].as_py())
    assert (np.diff(stored) == 0).any()
    (rec,) = ap.iter_worms([path], NAMES)
    assert rec.dt == 0.333 and len(rec.time) == len(stored)
    np.testing.assert_array_equal(rec.time, np.arange(len(stored)) * 0.333)


def test_slim_schema_is_read_without_smooth(tmp_path):
    (path,) = gen.write_activity_fixture(tmp_path, wide=False, **TINY)
    assert tuple(pq.read_schema(path).names) == ap.SLIM_COLUMNS
    recs = list(ap.iter_worms([path], NAMES))
    planted = list(gen.planted_worms(**TINY))
    assert len(recs) == 3 and all(r.smooth is None for r in recs)
    for r, p in zip(recs, planted):
        order = np.argsort([NAMES.index(n) for n in p.labeled])
        np.testing.assert_array_equal(r.calcium, p.calcium[:, order])
        assert r.n_unlabeled == len(p.unlabeled)


def test_generator_is_deterministic_and_prefix_stable():
    a = next(gen.planted_worms(n_worms=3, seed=9, sources=["Kato2015"], max_len=800))
    b = next(gen.planted_worms(n_worms=1, seed=9, sources=["Kato2015"], max_len=800))
    c = next(gen.planted_worms(n_worms=1, seed=10, sources=["Kato2015"], max_len=800))
    assert a.labeled == b.labeled and np.array_equal(a.calcium, b.calcium)
    assert not (a.labeled == c.labeled and a.T == c.T and np.array_equal(a.calcium, c.calcium))
    assert all(np.isfinite(v).all() for v in a.traces.values())


def test_cli_writes_the_file(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path), "--worms", "1", "--seed", "3", "--slim"],
                         capture_output=True, text=True, check=True).stdout
    assert "worm_data_short.parquet" in out and (tmp_path / "worm_data_short.parquet").is_file()


# --------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def tiny_table(tiny):
    return pq.read_table(tiny)


def _write(tmp_path, table) -> Path:
    path = tmp_path / "worm_data_short.parquet"
    pq.write_table(table, path)
    return path


def _rows(table, source, labeled=True):
    d = table.select(["source_dataset", "worm", "neuron", "is_labeled_neuron"]).to_pydict()
    return [i for i in range(table.num_rows) if d["source_dataset"][i] == source and d["is_labeled_neuron"][i] == labeled]


def _neuron(table, row):
    return table.column("neuron")[row].as_py()


def _edit(table, col, rows, fn):
    """Apply fn (list -> list) to column ``col`` at ``rows``."""
    values = table.column(col).to_pylist()
    for r in rows:
        values[r] = fn(values[r])
    i = table.schema.get_field_index(col)
    return table.set_column(i, table.schema.field(col), pa.array(values, type=table.schema.field(col).type))


def _raises(path, *parts):
    with pytest.raises(DataFormatError) as e:
        list(ap.iter_worms([path], NAMES))
    msg = str(e.value)
    for p in (path.name, *parts):
        assert p in msg, (p, msg)
    return msg


def test_missing_column(tmp_path, tiny_table):
    _raises(_write(tmp_path, tiny_table.drop_columns(["calcium_data"])), "missing column", "'calcium_data'", "found")


def test_misnamed_column(tmp_path, tiny_table):
    names = ["calcium" if n == "calcium_data" else n for n in tiny_table.column_names]
    msg = _raises(_write(tmp_path, tiny_table.rename_columns(names)), "missing column", "calcium_data")
    assert "'calcium'" in msg  # found list names the misnamed column


def test_wrong_column_type(tmp_path, tiny_table):
    t = tiny_table.set_column(tiny_table.schema.get_field_index("max_timesteps"), "max_timesteps",
                              tiny_table.column("max_timesteps").cast(pa.string()))
    _raises(_write(tmp_path, t), "'max_timesteps'", "expected integer")


def test_trace_length_differs_from_max_timesteps(tmp_path, tiny_table):
    r = _rows(tiny_table, "Kato2015")[3]
    t = _edit(tiny_table, "calcium_data", [r], lambda v: v[:-1])
    _raises(_write(tmp_path, t), "Kato2015/worm0", _neuron(t, r), "field calcium_data", "expected max_timesteps")


def test_time_length_differs(tmp_path, tiny_table):
    r = _rows(tiny_table, "Uzel2022")[2]
    t = _edit(tiny_table, "time_in_seconds", [r], lambda v: v + [v[-1] + 0.333])
    _raises(_write(tmp_path, t), "Uzel2022/worm0", _neuron(t, r), "field time_in_seconds", "expected max_timesteps")


def test_non_finite_calcium(tmp_path, tiny_table):
    r = _rows(tiny_table, "Lin2023")[4]
    t = _edit(tiny_table, "calcium_data", [r], lambda v: v[:10] + [float("nan")] + v[11:])
    _raises(_write(tmp_path, t), "Lin2023/worm0", _neuron(t, r), "field calcium_data", "1 non-finite value", "index 10")


def test_non_finite_smooth(tmp_path, tiny_table):
    r = _rows(tiny_table, "Kato2015")[0]
    t = _edit(tiny_table, "smooth_calcium_data", [r], lambda v: [float("inf")] + v[1:])
    _raises(_write(tmp_path, t), "Kato2015/worm0", _neuron(t, r), "field smooth_calcium_data", "non-finite")


def test_non_finite_time(tmp_path, tiny_table):
    rows = _rows(tiny_table, "Uzel2022") + _rows(tiny_table, "Uzel2022", labeled=False)
    t = _edit(tiny_table, "time_in_seconds", rows, lambda v: v[:5] + [float("nan")] + v[6:])
    _raises(_write(tmp_path, t), "Uzel2022/worm0", "field time_in_seconds", "non-finite")


def test_time_not_increasing(tmp_path, tiny_table):
    rows = _rows(tiny_table, "Kato2015") + _rows(tiny_table, "Kato2015", labeled=False)
    t = _edit(tiny_table, "time_in_seconds", rows, lambda v: v[:20] + [v[21], v[20]] + v[22:])
    msg = _raises(_write(tmp_path, t), "Kato2015/worm0", "field time_in_seconds", "not increasing")
    assert "index 21" in msg


def test_time_differs_between_rows(tmp_path, tiny_table):
    r = _rows(tiny_table, "Kato2015")[5]
    t = _edit(tiny_table, "time_in_seconds", [r], lambda v: [x * 1.01 for x in v])
    _raises(_write(tmp_path, t), "Kato2015/worm0", _neuron(t, r), "field time_in_seconds", "differs")


def test_duplicated_labeled_neuron(tmp_path, tiny_table):
    r0, r1 = _rows(tiny_table, "Lin2023")[:2]
    dup = _neuron(tiny_table, r0)
    t = _edit(tiny_table, "neuron", [r1], lambda v: dup)
    _raises(_write(tmp_path, t), "Lin2023/worm0", f"neuron {dup}", "field neuron", "labeled twice")


def test_labeled_name_not_canonical(tmp_path, tiny_table):
    r = _rows(tiny_table, "Kato2015")[1]
    t = _edit(tiny_table, "neuron", [r], lambda v: "XYZ9")
    _raises(_write(tmp_path, t), "Kato2015/worm0", "'XYZ9'", "field neuron", "canonical")


def test_zero_padded_name_is_canonicalized(tmp_path, tiny_table):
    r = _rows(tiny_table, "Kato2015")[0]
    present = {_neuron(tiny_table, i) for i in _rows(tiny_table, "Kato2015")}
    target = next(n for n in NAMES if re.fullmatch(r"[A-Z]+\d", n) and n not in present and n not in ("CANL", "CANR"))
    padded = re.sub(r"(\d)$", r"0\1", target)
    t = _edit(tiny_table, "neuron", [r], lambda v: padded)
    recs = {r.source_dataset: r for r in ap.iter_worms([_write(tmp_path, t)], NAMES)}
    assert target in recs["Kato2015"].neurons and padded not in recs["Kato2015"].neurons


def test_worm_without_labeled_neuron(tmp_path, tiny_table):
    rows = _rows(tiny_table, "Lin2023")
    t = _edit(tiny_table, "is_labeled_neuron", rows, lambda v: False)
    t = _edit(t, "is_unlabeled_neuron", rows, lambda v: True)
    _raises(_write(tmp_path, t), "Lin2023/worm0", "field is_labeled_neuron", "no labeled neuron")


def test_inconsistent_unlabeled_flag(tmp_path, tiny_table):
    r = _rows(tiny_table, "Uzel2022")[0]
    t = _edit(tiny_table, "is_unlabeled_neuron", [r], lambda v: True)
    _raises(_write(tmp_path, t), "Uzel2022/worm0", _neuron(t, r), "field is_unlabeled_neuron")


def test_raw_data_file_changes_within_worm(tmp_path, tiny_table):
    r = _rows(tiny_table, "Kato2015")[2]
    t = _edit(tiny_table, "raw_data_file", [r], lambda v: v + ".other")
    _raises(_write(tmp_path, t), "Kato2015/worm0", _neuron(t, r), "field raw_data_file")


def test_worm_rows_not_contiguous(tmp_path, tiny_table):
    kato = _rows(tiny_table, "Kato2015")
    order = [i for i in range(tiny_table.num_rows) if i != kato[-1]] + [kato[-1]]
    _raises(_write(tmp_path, tiny_table.take(order)), "Kato2015/worm0", "not contiguous")


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "worm_data_short.parquet"
    path.write_text("source_dataset,worm\n")
    _raises(path, "cannot read as parquet")
