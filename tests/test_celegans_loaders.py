"""C. elegans loaders on the real files that the cect and wormneuroatlas wheels ship.

Expected values were read off the raw files by hand (row numbers in comments
are pandas rows of the published sheet, header excluded).
"""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from neuroharness.errors import ChecksumError, DataFormatError, NeuroharnessError
from neuroharness.loaders import get_loader, open_dataset, prepare
from neuroharness.loaders.celegans import canonical_name, neuron_names, neurons
from neuroharness.loaders.celegans import connectome as conn
from neuroharness.loaders.celegans.funatlas import WORMNEUROATLAS, read_funatlas
from helpers import load_script

HAVE_CECT = importlib.util.find_spec("cect") is not None
HAVE_WNA = importlib.util.find_spec("wormneuroatlas") is not None
needs_cect = pytest.mark.skipif(not HAVE_CECT, reason="needs the cect wheel installed (pip install --no-deps cect==0.3.5)")
needs_wna = pytest.mark.skipif(not HAVE_WNA, reason="needs the wormneuroatlas wheel installed (pip install --no-deps wormneuroatlas==0.0.7.3)")


def _pkg_data(pkg: str) -> Path:
    return Path(importlib.util.find_spec(pkg).submodule_search_locations[0]) / "data"


# -- canonical neurons ---------------------------------------------------------
def test_neuron_table_is_the_302_hermaphrodite_neurons():
    names = neuron_names()
    assert len(names) == 302 and len(set(names)) == 302
    assert names == sorted(names)  # plain lexicographic: AS1, AS10, AS11, AS2, ...
    assert names[:3] == ["ADAL", "ADAR", "ADEL"] and names[-1] == "VD9"
    assert names.index("AS10") == names.index("AS1") + 1
    t = neurons()
    assert {"CANL", "CANR", "AWCL", "AWCR"} <= set(names)
    assert t["class"].nunique() == 118  # White et al. 1986: 118 neuron classes
    assert t.loc["VA12", "class"] == "VA" and t.loc["RMDDL", "class"] == "RMD" and t.loc["IL1VR", "class"] == "IL1"
    assert t["type"].value_counts().to_dict() == {"motor": 116, "sensory": 83, "interneuron": 81, "pharyngeal": 20, "unknown": 2}
    assert t.loc[["CANL", "CANR"], "type"].tolist() == ["unknown", "unknown"]
    assert np.isfinite(t[["x", "y", "z"]].to_numpy()).all()


@pytest.mark.parametrize("raw,expected", [("VA01", "VA1"), ("DD06", "DD6"), (" AVAL ", "AVAL"), ("VA10", "VA10"), ("I1L", "I1L"), ("M1", "M1"), ("BWM-VR01", "BWM-VR01")])
def test_canonical_name(raw, expected):
    assert canonical_name(raw) == expected


# -- connectome on real data ----------------------------------------------------
@pytest.fixture(scope="module")
def connectome():
    if not HAVE_CECT:
        pytest.skip("needs the cect wheel installed (pip install --no-deps cect==0.3.5)")
    return open_dataset("celegans-connectome").load()


@needs_cect
def test_connectome_layout(connectome):
    ds = connectome
    assert dict(ds.sizes) == {"annotation": 14, "pre": 302, "post": 302, "neuron": 302, "space": 3}
    assert list(ds.annotation.values) == [
        "white_1986_whole", "white_1986_n2u", "white_1986_jsh", "varshney_2011", "cook_2019",
        *[f"witvliet_2020_{i}" for i in range(1, 9)], "openworm",
    ]
    assert list(ds.stage.sel(annotation=[f"witvliet_2020_{i}" for i in (1, 5, 6, 7)]).values) == ["L1", "L2", "L3", "adult"]
    for v in ("chemical", "gap_junction", "position"):
        assert {"units", "long_name"} <= set(ds[v].attrs)
    assert ds.chemical.dtype == np.float32


@needs_cect
@pytest.mark.parametrize("annotation,pre,post,kind,value", [
    ("witvliet_2020_7", "ADAL", "AIAL", "chemical", 2),     # row 0 of 'witvliet_2020_7 adult.xlsx'
    ("witvliet_2020_7", "AVAL", "AVAR", "gap_junction", 1),  # row 607, listed once
    ("witvliet_2020_7", "AVAR", "AVAL", "gap_junction", 1),  # ... stored in both directions
    ("witvliet_2020_7", "RIMR", "AVAL", "gap_junction", 4),  # row 609
    ("varshney_2011", "AVBL", "AVAL", "chemical", 7),        # R 6 + Rp 1 on AVAL's side = S/Sp on AVBL's
    ("varshney_2011", "ADAL", "AVDR", "gap_junction", 2),    # EJ row 1636
    ("cook_2019", "AVAL", "AVBL", "chemical", 2),
    ("cook_2019", "AVAL", "VA8", "chemical", 7),             # column 'VA08' in the sheet
    ("cook_2019", "AVAL", "AVAR", "gap_junction", 18),
    ("openworm", "AVAL", "PVCL", "chemical", 10),            # Send row 598
    ("openworm", "AVAL", "PVCL", "gap_junction", 2),
    ("white_1986_jsh", "AVAL", "AVAR", "gap_junction", 2),
])
def test_connectome_known_values(connectome, annotation, pre, post, kind, value):
    assert float(connectome[kind].sel(annotation=annotation, pre=pre, post=post)) == value


@needs_cect
def test_connectome_coverage_and_counts(connectome):
    ds = connectome
    covered = dict(zip(ds.annotation.values, ds.covered_neurons.values.tolist()))
    assert covered["cook_2019"] == 302 and covered["white_1986_whole"] == 300
    assert covered["varshney_2011"] == 280 and covered["witvliet_2020_7"] == 181 and covered["openworm"] == 299
    w7 = ds.sel(annotation="witvliet_2020_7")
    assert int((w7.chemical > 0).sum()) == 1944 and int((w7.gap_junction > 0).sum()) == 528
    # nerve-ring EM volumes do not reach the ventral cord: NaN, not 0
    assert np.isnan(w7.chemical.sel(pre="VA12")).all() and np.isnan(w7.chemical.sel(pre="CANL")).all()
    assert float(w7.chemical.sel(pre="AVAL", post="AVAL")) == 0  # covered, no contact
    cook = ds.sel(annotation="cook_2019")
    assert not np.isnan(cook.chemical).any()
    assert float(ds.dropped_non_neuronal_chemical.sel(annotation="cook_2019")) > 0  # neuromuscular synapses


@needs_cect
def test_gap_junctions_are_symmetric(connectome):
    g = connectome.gap_junction.values
    np.testing.assert_array_equal(g, np.swapaxes(g, 1, 2))
    assert not np.array_equal(connectome.chemical.values, np.swapaxes(connectome.chemical.values, 1, 2))


@needs_cect
def test_connectome_provenance(connectome):
    attrs = connectome.attrs
    assert attrs["dataset"] == "celegans-connectome" and attrs["dataset_version"] == "1.0"
    raw = json.loads(attrs["raw_sha256"])
    assert len(raw) == 14
    assert raw["witvliet_2020_7 adult.xlsx"] == conn.CECT.files["cect/data/witvliet_2020_7 adult.xlsx"]
    assert "cect" in attrs["source"] and "Witvliet" in attrs["citation"]
    assert len(attrs["content_sha256"]) == 64


@needs_cect
def test_prepare_is_idempotent_and_force_rebuilds():
    loader = get_loader("celegans-connectome")
    path = prepare("celegans-connectome")
    checksum = open_dataset("celegans-connectome").attrs["content_sha256"]
    mtime = path.stat().st_mtime_ns
    assert prepare("celegans-connectome") == path and path.stat().st_mtime_ns == mtime
    loader.prepare(force=True)
    assert open_dataset("celegans-connectome").attrs["content_sha256"] == checksum  # deterministic build
    assert not list(path.parent.glob(".*tmp-*"))


@needs_cect
def test_prepare_refuses_other_source_without_force(tmp_path):
    prepare("celegans-connectome")
    with pytest.raises(NeuroharnessError, match="--force"):
        prepare("celegans-connectome", source=tmp_path)


# -- bad input -------------------------------------------------------------------
def test_tsv_with_space_separated_header(tmp_path):
    f = tmp_path / "white_1986_n2u.csv"
    f.write_text("pre post type synapses\r\nADAL\tADFL\telectrical\t1\r\n")
    with pytest.raises(DataFormatError, match=r"white_1986_n2u\.csv.*not tab-separated"):
        conn.read_tsv_edges(f)


def test_tsv_bad_type_and_weight_name_line_and_column(tmp_path):
    f = tmp_path / "white_1986_jsh.csv"
    f.write_text("pre\tpost\ttype\tsynapses\nADAL\tADFL\telectrical\t2\nADAL\tAIBR\tchemcal\t1\n")
    with pytest.raises(DataFormatError, match=r"white_1986_jsh\.csv: line 3, column 'type': found 'chemcal'"):
        conn.read_tsv_edges(f)
    f.write_text("pre\tpost\ttype\tsynapses\nADAL\tADFL\telectrical\tNaN\n")
    with pytest.raises(DataFormatError, match=r"line 2, column 'synapses'"):
        conn.read_tsv_edges(f)
    f.write_text("post\tpre\ttype\tsynapses\nADAL\tADFL\telectrical\t2\n")
    with pytest.raises(DataFormatError, match=r"expected \['pre', 'post', 'type', 'synapses'\]"):
        conn.read_tsv_edges(f)


def test_corrupt_spreadsheet_names_file(tmp_path):
    f = tmp_path / "witvliet_2020_7 adult.xlsx"
    f.write_bytes(b"not a spreadsheet")
    with pytest.raises(DataFormatError, match="witvliet_2020_7 adult.xlsx"):
        conn.read_witvliet_xlsx(f)


def test_dense_matrices_rules():
    import pandas as pd

    names = ["A", "B", "C", "D"]
    edges = pd.DataFrame({
        "pre": ["A", "A", "B", "A", "B", "A"],
        "post": ["B", "B", "A", "C", "A", "M1"],
        "type": ["chemical", "chemical", "electrical", "electrical", "chemical", "chemical"],
        "weight": [1.0, 2.0, 4.0, 3.0, 5.0, 9.0],
    })
    chem, gap, stats = conn.dense_matrices(edges, {"A", "B", "C", "M1"}, names)
    assert chem[0, 1] == 3 and chem[1, 0] == 5  # duplicates add up, direction kept
    assert gap[0, 1] == gap[1, 0] == 4 and gap[0, 2] == gap[2, 0] == 3  # listed once -> both directions
    assert np.isnan(chem[3]).all() and np.isnan(gap[:, 3]).all()  # D not covered
    assert chem[2, 0] == 0
    assert stats["dropped_non_neuronal_chemical"] == 9 and stats["covered_neurons"] == 3
    # both directions listed with different values -> mean, and counted
    edges2 = pd.DataFrame({"pre": ["A", "B"], "post": ["B", "A"], "type": ["electrical"] * 2, "weight": [2.0, 4.0]})
    _, gap2, stats2 = conn.dense_matrices(edges2, {"A", "B"}, names)
    assert gap2[0, 1] == gap2[1, 0] == 3 and stats2["asymmetric_gap_pairs"] == 1


@needs_cect
def test_modified_source_file_fails_checksum_and_writes_nothing(tmp_path):
    src = tmp_path / "cect_copy"
    shutil.copytree(_pkg_data("cect"), src, ignore=shutil.ignore_patterns("NeuroML", "*.mat", "*neuropeptide*"))
    with open(src / "white_1986_jsh.csv", "a") as fh:
        fh.write("ADAL\tAVAL\tchemical\t1\n")
    loader = get_loader("celegans-connectome")
    with pytest.raises(ChecksumError, match=r"white_1986_jsh\.csv: sha256 is [0-9a-f]{64}, expected afe7a37a"):
        loader.prepare(source=src, force=True)
    assert loader.store_path().exists()  # the earlier store is untouched, nothing half-written
    assert not list(loader.store_path().parent.glob(".*tmp-*"))


def test_missing_source_file_names_it(tmp_path):
    with pytest.raises(DataFormatError, match="NeuronConnect.xls"):
        conn.CECT.materialize(tmp_path)


# -- funatlas ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def funatlas():
    if not HAVE_WNA:
        pytest.skip("needs the wormneuroatlas wheel installed (pip install --no-deps wormneuroatlas==0.0.7.3)")
    return open_dataset("celegans-funatlas").load()


@needs_wna
def test_funatlas_counts(funatlas):
    ds = funatlas
    assert dict(ds.sizes) == {"strain": 2, "responding": 302, "stimulated": 302}
    wt, unc = ds.sel(strain="wt"), ds.sel(strain="unc31")
    assert int((wt.q < 0.05).sum()) == 1310 and int(np.isfinite(wt.dFF).sum()) == 24074
    assert int((unc.q < 0.05).sum()) == 430 and int(np.isfinite(unc.dFF).sum()) == 9228
    assert int(wt.occ1.max()) == 59
    for n in ("CANL", "CANR"):
        assert np.isnan(wt.dFF.sel(responding=n)).all() and int(wt.occ1.sel(stimulated=n).sum()) == 0
    assert np.isfinite(wt.dFF.sel(responding="AWCL")).any() and np.isfinite(wt.dFF.sel(stimulated="AWCR")).any()


@needs_wna
def test_funatlas_indexing_matches_raw_file(funatlas):
    raw = _pkg_data("wormneuroatlas") / "funatlas.h5"
    with h5py.File(raw) as f:
        ids = [x.decode() for x in f["neuron_ids"][:]]
        dff, q = f["wt/dFF"][:], f["wt/q"][:]
    # a significant pair where the transpose differs, to pin [responding, stimulated]
    i, j = next((i, j) for i, j in zip(*np.nonzero(q < 1e-6)) if i != j and not np.isclose(dff[i, j], dff[j, i]))
    name = {"AWCOF": "AWCL", "AWCON": "AWCR"}
    r, s = name.get(ids[i], ids[i]), name.get(ids[j], ids[j])
    assert float(funatlas.dFF.sel(strain="wt", responding=r, stimulated=s)) == pytest.approx(dff[i, j], rel=1e-6)
    assert float(funatlas.q.sel(strain="wt", responding=r, stimulated=s)) == q[i, j]


def test_funatlas_bad_h5(tmp_path):
    f = tmp_path / "funatlas.h5"
    with h5py.File(f, "w") as h:
        h["neuron_ids"] = np.array([b"ADAL", b"ADAR"])
        h["wt/dFF"] = np.zeros((2, 2))
    with pytest.raises(DataFormatError, match=r"funatlas\.h5: missing dataset 'unc31/dFF'"):
        read_funatlas(f)
    with h5py.File(f, "w") as h:
        h["neuron_ids"] = np.array([b"ADAL", b"XYZ1"])
    with pytest.raises(DataFormatError, match=r"XYZ1"):
        read_funatlas(f)
    f.write_bytes(b"garbage")
    with pytest.raises(DataFormatError, match="not a readable HDF5"):
        read_funatlas(f)


def test_funatlas_pins():
    assert WORMNEUROATLAS.files["wormneuroatlas/data/funatlas.h5"].startswith("53a99055")


# -- HuggingFace consensus CSV through prepare --source --------------------------------
def _fixture_module():
    return load_script("make_celegans_consensus_fixture")


def test_prepare_from_consensus_csv(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROHARNESS_HOME", str(tmp_path / "home"))
    src = tmp_path / "hf"
    fx = _fixture_module()
    fx.write_consensus_fixture(src, variant="full_nofunc", seed=0)
    path = prepare("celegans-connectome", source=src)
    ds = open_dataset("celegans-connectome").load()
    assert list(ds.annotation.values) == ["consensus_connectome_full_nofunc"]
    assert ds.attrs["source_argument"] == str(src) and "consensus" in ds.attrs["source"]
    a = ds.sel(annotation="consensus_connectome_full_nofunc")
    assert float(a.chemical.sel(pre="ASHL", post="AVAL")) == 6.0  # planted by the fixture generator
    assert float(a.gap_junction.sel(pre="AVAL", post="AVAR")) == float(a.gap_junction.sel(pre="AVAR", post="AVAL")) == 2.5
    assert int(ds.covered_neurons.values[0]) == 300  # the collection drops CANL/CANR
    assert np.isnan(a.chemical.sel(pre="CANL")).all()
    assert path.name == "1.0.zarr"
    # an unknown neuron name in the file is an error and leaves the store as it was
    csv = src / "consensus_connectome_full_nofunc.csv"
    csv.write_text(csv.read_text().replace("ASHL,", "ASHX,", 1))
    with pytest.raises(DataFormatError, match=r"consensus_connectome_full_nofunc\.csv.*ASHX"):
        prepare("celegans-connectome", source=src, force=True)
    assert open_dataset("celegans-connectome").attrs["content_sha256"] == ds.attrs["content_sha256"]


@needs_wna
def test_concurrent_prepare_builds_once(tmp_path):
    """Two processes preparing the same store: the lock lets one build, the other reuses it."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NEUROHARNESS_HOME": str(tmp_path), "NEUROHARNESS_QUIET": "0"}
    env.pop("CI", None)  # status lines say which process built the store
    code = "import neuroharness as nh; p = nh.prepare_dataset('celegans-funatlas'); print(p)"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0][0] == outs[1][0]
    built = [err.count("homogenizing") for _, err in outs]
    assert sorted(built) == [0, 1]
    store = Path(outs[0][0].strip())
    assert store.exists() and not list(store.parent.glob(".*tmp-*"))


@needs_cect
@needs_wna
def test_fresh_stores_match_the_official_records():
    """A fresh prepare gives the content checksums the official leaderboard was made on,
    so a user's records can be ranked with the official ones."""
    from neuroharness.leaderboards import official_dir

    record = json.loads(next(official_dir("celegans-structure-function").glob("*.json")).read_text())
    for d in record["datasets"]:
        assert open_dataset(d["name"]).attrs["content_sha256"] == d["content_sha256"], d["name"]
