"""Dataset ``vesselgraph``: CSVs -> store (exact values), source layouts, graph selection, bad input,
downloads against a local HTTP server, to_pyg."""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import zarr

from neuroharness.cli import main
from neuroharness.errors import ChecksumError, DataFormatError, DownloadError, NeuroharnessError
from neuroharness.loaders import get_loader
from neuroharness.loaders.vesselgraph import graph_index, graph_table, open_graph, to_pyg
from neuroharness.loaders.vesselgraph import csv as vcsv
from neuroharness.loaders.vesselgraph import download, table

# -- a 5-node graph whose every value is known ----------------------------------------------
# edges 0-1, 0-2, 1-4, 2-4; node 3 is isolated. Line numbers below are file lines (header = 1).
NODES = """id;pos_x;pos_y;pos_z;degree;isAtSampleBorder
0;10.0;20.0;30.0;2;0
1;11.5;20.0;30.0;2;1
2;12.0;21.25;30.0;2;0
3;13.0;22.0;31.0;0;0
4;14.0;23.0;32.5;2;0
"""
EDGE_HEADER = ("id;node1id;node2id;length;distance;curveness;volume;avgCrossSection;minRadiusAvg;minRadiusStd;"
               "avgRadiusAvg;avgRadiusStd;maxRadiusAvg;maxRadiusStd;roundnessAvg;roundnessStd;node1_degree;"
               "node2_degree;num_voxels;hasNodeAtSampleBorder")
EDGE_ROWS = [  # num_voxels "4.0" and flag "1.0": pandas writes upcast ints so
    "0;0;1;1.8;1.5;1.2;18.0;10.0;1.5;0.1;1.8;0.2;2.0;0.3;0.75;0.05;2;2;2;1",
    "1;0;2;3.0;2.5;1.2;120.0;40.0;3.0;0.2;3.5;0.3;4.0;0.4;0.75;0.05;2;2;3;0",
    "2;1;4;4.0;3.9;1.0256;700.0;175.0;7.0;0.5;7.5;0.6;8.0;0.7;0.875;0.02;2;2;4.0;1.0",
    "3;2;4;5.0;2.5;2.0;3000.0;600.0;14.0;1.0;14.5;1.1;15.0;1.2;0.9333;0.01;2;2;5;0",
]
EDGES = EDGE_HEADER + "\n" + "\n".join(EDGE_ROWS) + "\n"
ATLAS = """Region_Acronym_CA1;Region_Acronym_bgr;Region_Acronym_fiber tracts
1;0;0
0;1;0
0;0;1
0;1;0
1;0;0
"""
FILE_ID = "1_b_3_0"  # synthetic_graph_1's file id in the graph table


def write_toy(folder: Path, file_id: str = FILE_ID, nodes: str = NODES, edges: str = EDGES, atlas: str | None = ATLAS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{file_id}_nodes_processed.csv").write_text(nodes)
    (folder / f"{file_id}_edges_processed.csv").write_text(edges)
    if atlas is not None:
        (folder / f"{file_id}_atlas_processed.csv").write_text(atlas)
    return folder


def toy_zip(name: str, file_id: str, **kw) -> bytes:
    """A release zip ``<name>/<file_id>/<file_id>_*_processed.csv`` of the toy graph."""
    texts = {"nodes": kw.get("nodes", NODES), "edges": kw.get("edges", EDGES), "atlas": kw.get("atlas", ATLAS)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for kind, text in texts.items():
            if text is not None:
                zf.writestr(f"{name}/{file_id}/{file_id}_{kind}_processed.csv", text)
    return buf.getvalue()


@pytest.fixture
def home(tmp_path, monkeypatch):
    root = tmp_path / "home"
    monkeypatch.setenv("NEUROHARNESS_HOME", str(root))
    monkeypatch.delenv(table.ENV_TABLE, raising=False)
    monkeypatch.delenv(download.ENV_MIRROR, raising=False)
    return root


def leftovers(home: Path) -> list[str]:
    d = home / "datasets" / "vesselgraph"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def store_attrs() -> dict:
    return dict(zarr.open_group(str(get_loader("vesselgraph").store_path()), mode="r").attrs)


# -- CSV -> store, exact values ---------------------------------------------------------------
def test_store_layout_and_exact_values(tmp_path, home, capsys):
    src = tmp_path / "rel"
    write_toy(src / "synthetic_graph_1" / FILE_ID)  # the release layout
    get_loader("vesselgraph").prepare(src)
    ds = open_graph("synthetic_graph_1")
    assert dict(ds.sizes) == {"node": 5, "edge": 4, "axis": 3, "endpoint": 2, "region": 3}
    assert "graph" not in ds.coords  # the root index is not inherited
    assert ds.axis.values.tolist() == ["x", "y", "z"] and ds.endpoint.values.tolist() == ["node1id", "node2id"]
    assert ds.pos.dtype == np.float64 and ds.pos.dims == ("node", "axis")
    np.testing.assert_array_equal(ds.pos.values[[1, 2, 4]], [[11.5, 20.0, 30.0], [12.0, 21.25, 30.0], [14.0, 23.0, 32.5]])
    assert ds.degree.dtype == np.int32 and ds.degree.values.tolist() == [2, 2, 2, 0, 2]
    assert ds.isAtSampleBorder.dtype == bool and ds.isAtSampleBorder.values.tolist() == [False, True, False, False, False]
    assert ds.edge_index.dtype == np.int64 and ds.edge_index.dims == ("edge", "endpoint")
    assert ds.edge_index.values.tolist() == [[0, 1], [0, 2], [1, 4], [2, 4]]
    assert ds.length.values.tolist() == [1.8, 3.0, 4.0, 5.0]
    assert ds.curveness.values.tolist() == [1.2, 1.2, 1.0256, 2.0]
    assert ds.minRadiusAvg.values.tolist() == [1.5, 3.0, 7.0, 14.0]
    assert ds.roundnessAvg.values[3] == 0.9333 and ds.avgCrossSection.values[2] == 175.0
    assert ds.num_voxels.dtype == np.int32 and ds.num_voxels.values.tolist() == [2, 3, 4, 5]  # "4.0" -> 4
    assert ds.hasNodeAtSampleBorder.dtype == bool and ds.hasNodeAtSampleBorder.values.tolist() == [True, False, True, False]
    # every edge column round-trips exactly, parsed independently of the loader
    rows = [r.split(";") for r in EDGE_ROWS]
    for j, name in enumerate(EDGE_HEADER.split(";")[3:], 3):
        np.testing.assert_array_equal(ds[name].values, np.array([float(r[j]) for r in rows]).astype(ds[name].dtype), err_msg=name)
    # atlas: a coordinate (node, region), one-hot
    assert "atlas_region" in ds.coords and ds.region.values.tolist() == ["CA1", "bgr", "fiber tracts"]
    assert ds.atlas_region.values.astype(int).tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]]
    for v in list(ds.data_vars) + ["atlas_region"]:
        assert ds[v].attrs["units"] and ds[v].attrs["long_name"], v
    assert ds.pos.attrs["units"] == "voxel" and "uncertain" in ds.pos.attrs["comment"]
    assert ds.volume.attrs["units"] == "voxel^3" and ds.curveness.attrs["units"] == "1"
    assert {k: ds.attrs[k] for k in ("graph", "file_id", "kind", "n_nodes", "n_edges", "n_isolated", "has_atlas", "n_regions")} == {
        "graph": "synthetic_graph_1", "file_id": FILE_ID, "kind": "synthetic", "n_nodes": 5, "n_edges": 4,
        "n_isolated": 1, "has_atlas": True, "n_regions": 3}
    assert ds.attrs["nonfinite_edge_values"] == {}
    # chunks and compression as written
    path = get_loader("vesselgraph").store_path()
    meta = json.loads((path / "synthetic_graph_1" / "edge_index" / ".zarray").read_text())
    assert meta["chunks"] == [4, 2] and meta["compressor"]["cname"] == "zstd" and meta["fill_value"] is None
    # root: index and provenance
    tree = get_loader("vesselgraph").open()
    assert graph_index(tree).to_dict("records") == [{"graph": "synthetic_graph_1", "file_id": FILE_ID, "kind": "synthetic",
                                                    "n_nodes": 5, "n_edges": 4, "has_atlas": True}]
    attrs = store_attrs()
    assert attrs["dataset"] == "vesselgraph" and attrs["dataset_version"] == "1.0" and attrs["only"] is None
    assert attrs["license"] == "CC BY-NC 4.0 (data); code MIT" and "arXiv:2108.13233" in attrs["citation"]
    raw = json.loads(attrs["raw_sha256"])
    assert sorted(raw) == [f"synthetic_graph_1/{FILE_ID}_{k}_processed.csv" for k in ("atlas", "edges", "nodes")]
    assert raw[f"synthetic_graph_1/{FILE_ID}_nodes_processed.csv"] == hashlib.sha256(NODES.encode()).hexdigest()
    assert (path / ".zmetadata").exists()

    assert main(["datasets", "info", "vesselgraph"]) == 0
    out = capsys.readouterr().out
    assert "synthetic_graph_1  synthetic           5           4         1       1.600  yes (3 regions)" in out
    assert "license:     CC BY-NC 4.0 (data); code MIT" in out and "selection: default" in out


def test_to_pyg_exact(tmp_path, home):
    write_toy(tmp_path / "src")
    get_loader("vesselgraph").prepare(tmp_path / "src")
    d = to_pyg("synthetic_graph_1", edge_attrs=["length", "num_voxels"], node_attrs=("pos", "degree"))
    # node 3 (isolated) removed: rows 0, 1, 2, 4 -> 0, 1, 2, 3
    assert d.num_nodes == 4 and d.node_id.tolist() == [0, 1, 2, 4]
    assert str(d.edge_index.dtype) == "torch.int64"
    assert d.edge_index.tolist() == [[0, 0, 1, 2, 1, 2, 3, 3], [1, 2, 3, 3, 0, 0, 1, 2]]  # k + 4 is k reversed
    assert str(d.edge_attr.dtype) == "torch.float32"
    np.testing.assert_array_equal(d.edge_attr.numpy(), np.array([[1.8, 2], [3, 3], [4, 4], [5, 5]] * 2, dtype=np.float32))
    assert str(d.pos.dtype) == "torch.float32" and d.pos[3].tolist() == [14.0, 23.0, 32.5]
    assert d.x.shape == (4, 4) and d.x[1].tolist() == [11.5, 20.0, 30.0, 2.0]
    # directed, isolated nodes kept, no x
    d = to_pyg(open_graph("synthetic_graph_1"), undirected=False, remove_isolated=False, node_attrs=())
    assert d.num_nodes == 5 and d.node_id.tolist() == [0, 1, 2, 3, 4] and "x" not in d and "edge_attr" not in d
    assert d.edge_index.tolist() == [[0, 0, 1, 2], [1, 2, 4, 4]]
    # atlas one-hot as node features
    assert to_pyg("synthetic_graph_1", node_attrs=["atlas_region"]).x.tolist()[3] == [1.0, 0.0, 0.0]
    with pytest.raises(NeuroharnessError, match=r"no edge variable 'radius'; valid: avgCrossSection, .*edge_index"):
        to_pyg("synthetic_graph_1", edge_attrs=["radius"])


# -- source layouts and graph names -------------------------------------------------------------
def test_source_layouts_give_the_same_store(tmp_path, home):
    loader = get_loader("vesselgraph")
    forms = {}
    write_toy(tmp_path / "loose")  # <file_id>_*.csv; the table maps 1_b_3_0 to synthetic_graph_1
    forms["loose"] = tmp_path / "loose"
    write_toy(tmp_path / "sub" / FILE_ID)  # <file_id>/ subfolders
    forms["sub"] = tmp_path / "sub"
    (tmp_path / "zips").mkdir()
    (tmp_path / "zips" / "synthetic_graph_1.zip").write_bytes(toy_zip("synthetic_graph_1", FILE_ID))
    forms["zip dir"] = tmp_path / "zips"
    forms["one zip"] = tmp_path / "zips" / "synthetic_graph_1.zip"
    checksums = {}
    for form, src in forms.items():
        loader.prepare(src, force=True)
        assert graph_index(loader.open())["graph"].tolist() == ["synthetic_graph_1"], form
        checksums[form] = store_attrs()["content_sha256"]
    assert len(set(checksums.values())) == 1, checksums
    assert store_attrs()["source"] == f"local copy {forms['one zip']}"
    assert list(json.loads(store_attrs()["raw_sha256"])) == ["synthetic_graph_1/synthetic_graph_1.zip"]


def test_graph_names_and_order(tmp_path, home):
    src = tmp_path / "src"
    write_toy(src / "my_graph" / "xyz", file_id="xyz")  # not in the table: named by its release folder, kind other
    write_toy(src / "BALBc_no1" / "some_prefix", file_id="some_prefix")  # a table name wins over the file id
    write_toy(src / "synthetic_graph_3", file_id="3_b_3_0", atlas=None)  # <graph>/<file_id>_*.csv
    get_loader("vesselgraph").prepare(src)
    idx = graph_index(get_loader("vesselgraph").open())
    assert idx[["graph", "file_id", "kind", "has_atlas"]].values.tolist() == [
        ["BALBc_no1", "some_prefix", "vessap", True], ["synthetic_graph_3", "3_b_3_0", "synthetic", False],
        ["my_graph", "xyz", "other", True]]
    assert "region" not in open_graph("synthetic_graph_3").dims


def test_same_graph_twice_is_an_error(tmp_path, home):
    write_toy(tmp_path / "src" / "a" / FILE_ID)
    (tmp_path / "src" / "synthetic_graph_1.zip").write_bytes(toy_zip("synthetic_graph_1", FILE_ID))
    with pytest.raises(DataFormatError, match=r"graph synthetic_graph_1: found twice, at .*a/1_b_3_0/1_b_3_0_\*_processed.csv "
                                              r"and .*synthetic_graph_1\.zip:"):
        get_loader("vesselgraph").prepare(tmp_path / "src")
    assert leftovers(home) == []


def test_zip_traversal_and_lone_nodes_file_rejected(tmp_path, home):
    bad = tmp_path / "evil.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../../outside/g_nodes_processed.csv", NODES)
    with pytest.raises(DataFormatError, match=r"evil\.zip: unsafe member name '\.\./\.\./outside/g_nodes_processed\.csv'"):
        get_loader("vesselgraph").prepare(bad)
    write_toy(tmp_path / "src", atlas=None)
    (tmp_path / "src" / f"{FILE_ID}_edges_processed.csv").unlink()
    with pytest.raises(DataFormatError, match=r"1_b_3_0_nodes_processed\.csv has no 1_b_3_0_edges_processed\.csv beside it"):
        get_loader("vesselgraph").prepare(tmp_path / "src")
    assert leftovers(home) == []


def test_missing_source(tmp_path, home):
    with pytest.raises(DataFormatError, match=r"--source .*nope: no such file or directory; expected a local copy of vesselgraph: "):
        get_loader("vesselgraph").prepare(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match=r"VesselGraph source .*empty: no graphs found"):
        get_loader("vesselgraph").prepare(tmp_path / "empty")
    (tmp_path / "x.csv").write_text("a")
    with pytest.raises(DataFormatError, match=r"is a file but not a zip archive"):
        get_loader("vesselgraph").prepare(tmp_path / "x.csv")


# -- graph selection (--only) -----------------------------------------------------------------------
def test_only_selection(tmp_path, home, capsys):
    src = tmp_path / "src"
    write_toy(src / "synthetic_graph_1" / FILE_ID)
    write_toy(src / "synthetic_graph_2" / "2_b_3_0", file_id="2_b_3_0", atlas=None)
    loader = get_loader("vesselgraph")
    loader.prepare(src, only=["synthetic_graph_2"])
    assert graph_index(loader.open())["graph"].tolist() == ["synthetic_graph_2"]
    assert store_attrs()["only"] == ["synthetic_graph_2"]
    assert loader.prepare(src, only="synthetic_graph_2") == loader.store_path()  # same selection: reused
    with pytest.raises(NeuroharnessError, match=r"was built with only=\['synthetic_graph_2'\], not only=\['synthetic_graph_1'\]; "
                                                r"pass force=True \(--force\)"):
        loader.prepare(src, only=["synthetic_graph_1"])
    with pytest.raises(NeuroharnessError, match=r"built with only=\['synthetic_graph_2'\], not the default selection"):
        loader.prepare(src)  # the source's default selection is every graph it holds
    assert loader.prepare() == loader.store_path()  # no source, no selection: whatever is prepared
    with pytest.raises(NeuroharnessError) as ei:
        open_graph("synthetic_graph_1")
    msg = str(ei.value)
    assert "graph 'synthetic_graph_1' is not in the prepared vesselgraph store" in msg and "which holds synthetic_graph_2." in msg
    assert f"neuroharness datasets prepare vesselgraph --only synthetic_graph_1 synthetic_graph_2 --force --source DIR " \
           f"(a folder holding them all; this store was built from {src})" in msg
    with pytest.raises(DataFormatError, match=r"no graph BALBc_no1; it holds synthetic_graph_1, synthetic_graph_2"):
        loader.prepare(src, only=["BALBc_no1"], force=True)
    assert leftovers(home) == ["1.0.zarr"]  # the failed rebuild left the old store alone

    # CLI: order and repeats do not matter; the store records the sorted selection
    assert main(["datasets", "prepare", "vesselgraph", "--source", str(src), "--only", "synthetic_graph_2",
                 "synthetic_graph_1", "synthetic_graph_2", "--force"]) == 0
    assert store_attrs()["only"] == ["synthetic_graph_1", "synthetic_graph_2"]
    assert graph_index(loader.open())["graph"].tolist() == ["synthetic_graph_1", "synthetic_graph_2"]
    capsys.readouterr()
    assert main(["datasets", "prepare", "fisbe", "--only", "x"]) == 2
    assert "dataset fisbe cannot be prepared in parts; only=['x'] (--only)" in capsys.readouterr().err
    assert main(["datasets", "prepare", "fisbe", "vesselgraph", "--only", "x"]) == 2
    assert "--only applies to one dataset" in capsys.readouterr().err


def test_only_on_a_loader_without_parts_fails_before_fetching(home, monkeypatch):
    loader = get_loader("fisbe")
    monkeypatch.setattr(type(loader), "fetch", lambda *a, **k: pytest.fail("fetch called"))
    with pytest.raises(NeuroharnessError, match=r"dataset fisbe cannot be prepared in parts"):
        loader.prepare(only=["a"])
    with pytest.raises(NeuroharnessError, match=r"only=\[\] selects no graph"):
        get_loader("vesselgraph").prepare(only=[])


# -- bad input ----------------------------------------------------------------------------------
def _edges(*rows: str, header: str = EDGE_HEADER) -> str:
    return header + "\n" + "\n".join(rows) + "\n"


def _replace_row(i: int, row: str) -> list[str]:
    rows = list(EDGE_ROWS)
    rows[i] = row
    return rows


BAD = {
    "nodes header order": (dict(nodes=NODES.replace("id;pos_x;pos_y", "id;pos_y;pos_x", 1)),
                           r"nodes_processed\.csv line 1, column 2: found 'pos_y', expected 'pos_x'"),
    "missing column": (dict(edges=_edges(*[";".join(r.split(";")[:5] + r.split(";")[6:]) for r in EDGE_ROWS],
                                         header=EDGE_HEADER.replace(";curveness", ""))),
                       r"edges_processed\.csv line 1: missing column\(s\) curveness"),
    "comma-separated": (dict(nodes=NODES.replace(";", ",")),
                        r"nodes_processed\.csv line 1: missing column\(s\) id, pos_x, .*the header looks ','-separated"),
    "extra column": (dict(nodes=NODES.replace("isAtSampleBorder\n", "isAtSampleBorder;extra\n")),
                     r"nodes_processed\.csv line 1: 7 columns, expected 6: extra column\(s\) extra"),
    "non-numeric": (dict(edges=_edges(*_replace_row(1, EDGE_ROWS[1].replace(";3.0;2.5;", ";abc;2.5;")))),
                    r"edges_processed\.csv line 3, column length: found 'abc', expected a number"),
    "node id not row index": (dict(nodes=NODES.replace("\n2;12.0", "\n5;12.0")),
                              r"nodes_processed\.csv line 4, column id: found 5, expected 2 \(node ids equal the row index"),
    "edge id not row index": (dict(edges=_edges(*_replace_row(2, "7" + EDGE_ROWS[2][1:]))),
                              r"edges_processed\.csv line 4, column id: found 7, expected 2"),
    "endpoint out of range": (dict(edges=_edges(*_replace_row(2, EDGE_ROWS[2].replace("2;1;4;", "2;1;5;", 1)))),
                              r"edges_processed\.csv line 4, column node2id: node id 5 out of range, expected 0\.\.4"),
    "negative endpoint": (dict(edges=_edges(*_replace_row(0, EDGE_ROWS[0].replace("0;0;1;", "0;-1;1;", 1)))),
                          r"line 2, column node1id: node id -1 out of range"),
    "self-loop": (dict(edges=_edges(*_replace_row(1, EDGE_ROWS[1].replace("1;0;2;", "1;2;2;", 1)))),
                  r"edges_processed\.csv line 3, columns node1id/node2id: self-loop 2-2, expected two different nodes"),
    "node1id > node2id": (dict(edges=_edges(*_replace_row(3, EDGE_ROWS[3].replace("3;2;4;", "3;4;2;", 1)))),
                          r"line 5, columns node1id/node2id: node1id 4 >= node2id 2, expected node1id < node2id"),
    "duplicate edge": (dict(edges=_edges(*EDGE_ROWS, "4" + EDGE_ROWS[0][1:])),
                       r"edges_processed\.csv line 6, columns node1id/node2id: duplicate edge \(0, 1\), first on line 2"),
    "NaN coordinate": (dict(nodes=NODES.replace("13.0;22.0;31.0", "13.0;22.0;nan")),
                       r"nodes_processed\.csv line 5, column pos_z: found nan, expected a finite coordinate"),
    "inf coordinate": (dict(nodes=NODES.replace("11.5;20.0", "inf;20.0")),
                       r"line 3, column pos_x: found inf, expected a finite coordinate"),
    "empty value": (dict(edges=_edges(*_replace_row(1, EDGE_ROWS[1].replace(";2.5;", ";;", 1)))),
                    r"edges_processed\.csv line 3, column distance: empty value, expected a number"),
    "blank line": (dict(nodes=NODES.replace("\n3;", "\n\n3;")),
                   r"nodes_processed\.csv line 5, column id: empty value"),
    "short row": (dict(edges=_edges(*_replace_row(2, EDGE_ROWS[2].rsplit(";", 1)[0]))),
                  r"edges_processed\.csv line 4: 19 ';'-separated fields, expected 20"),
    "flag not 0/1": (dict(nodes=NODES.replace("2;1\n", "2;2\n")),
                     r"nodes_processed\.csv line 3, column isAtSampleBorder: found '2', expected 0 or 1"),
    "fractional count": (dict(edges=_edges(*_replace_row(3, EDGE_ROWS[3].replace(";5;0", ";5.5;0")))),
                         r"edges_processed\.csv line 5, column num_voxels: found 5\.5, expected a whole number >= 0"),
    "atlas rows": (dict(atlas=ATLAS.rsplit("1;0;0\n", 1)[0]),
                   r"atlas_processed\.csv: 4 data rows, expected 5 \(one per node"),
    "atlas header": (dict(atlas=ATLAS.replace("Region_Acronym_bgr", "Region_bgr")),
                     r"atlas_processed\.csv line 1, column 2: found 'Region_bgr', expected Region_Acronym_<acronym>"),
    "atlas value": (dict(atlas=ATLAS.replace("0;0;1\n", "0;0;x\n")),
                    r"atlas_processed\.csv line 4, column Region_Acronym_fiber tracts: found 'x', expected 0 or 1"),
    "no nodes": (dict(nodes=NODES.splitlines()[0] + "\n"), r"nodes_processed\.csv: no node rows after the header"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_names_file_line_column_and_writes_nothing(tmp_path, home, case):
    kw, pattern = BAD[case]
    src = tmp_path / "src"
    write_toy(src / "synthetic_graph_2" / "2_b_3_0", file_id="2_b_3_0")  # a good graph, written first
    write_toy(src / "synthetic_graph_3" / "3_b_3_0", file_id="3_b_3_0", **kw)
    with pytest.raises(DataFormatError, match=pattern):
        get_loader("vesselgraph").prepare(src)
    assert leftovers(home) == []


def test_bad_input_inside_a_zip_names_the_member(tmp_path, home):
    bad = toy_zip("synthetic_graph_1", FILE_ID, edges=_edges(*_replace_row(1, EDGE_ROWS[1].replace("1;0;2;", "1;2;2;", 1))))
    (tmp_path / "synthetic_graph_1.zip").write_bytes(bad)
    with pytest.raises(DataFormatError, match=r"synthetic_graph_1\.zip:synthetic_graph_1/1_b_3_0/1_b_3_0_edges_processed\.csv "
                                              r"line 3, columns node1id/node2id: self-loop 2-2"):
        get_loader("vesselgraph").prepare(tmp_path / "synthetic_graph_1.zip")
    assert leftovers(home) == []


def test_unsorted_edges_and_atlas_id_column(tmp_path, home):
    """Edge rows in any order are kept in file order; an atlas with a leading id column is accepted."""
    rows = [EDGE_ROWS[2], EDGE_ROWS[0], EDGE_ROWS[3], EDGE_ROWS[1]]
    rows = [f"{i};" + r.split(";", 1)[1] for i, r in enumerate(rows)]
    atlas = "id;" + ATLAS.splitlines()[0] + "\n" + "".join(f"{i};{ln}\n" for i, ln in enumerate(ATLAS.splitlines()[1:]))
    write_toy(tmp_path / "src", edges=_edges(*rows), atlas=atlas)
    get_loader("vesselgraph").prepare(tmp_path / "src")
    ds = open_graph("synthetic_graph_1")
    assert ds.edge_index.values.tolist() == [[1, 4], [0, 1], [2, 4], [0, 2]]
    assert ds.length.values.tolist() == [4.0, 1.8, 5.0, 3.0]
    assert ds.region.values.tolist() == ["CA1", "bgr", "fiber tracts"] and ds.atlas_region.values[2].tolist() == [False, False, True]


def test_duplicate_check_unsorted(tmp_path):
    ref = vcsv.FileRef(tmp_path / "e.csv")
    n1, n2 = np.array([3, 0, 1, 0, 3]), np.array([4, 1, 2, 1, 4])
    with pytest.raises(DataFormatError, match=r"line 5, columns node1id/node2id: duplicate edge \(0, 1\), first on line 3"):
        vcsv.check_edge_index(n1, n2, 5, ref)
    vcsv.check_edge_index(np.array([3, 0, 1]), np.array([4, 1, 2]), 5, ref)  # unsorted but unique: fine


# -- downloads from a local HTTP server ------------------------------------------------------------
def user_table(path: Path, rows: list[dict]) -> Path:
    lines = ["\t".join(table.COLUMNS)]
    for r in rows:
        full = {"kind": "vessap", "file_id": "", "file_id_evidence": "test", "sha256": "", "size": "", "note": "", **r}
        lines.append("\t".join(str(full[c]) for c in table.COLUMNS))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def served(http_server, home, tmp_path, monkeypatch):
    """BALBc_no1.zip and synthetic_graph_1.zip (toy graphs) at /lrz/ with a user table pinning their sha256 and size."""
    archives = {"BALBc_no1": toy_zip("BALBc-no1", "BALBc-no1_iso3um_stitched_segmentation_bulge_size_3.0"),  # folder != name
                "synthetic_graph_1": toy_zip("synthetic_graph_1", FILE_ID, atlas=None)}
    rows = []
    for g, data in archives.items():
        http_server.add(f"/lrz/{g}.zip", data)
        rows.append({"graph": g, "archive": f"{g}.zip", "urls": http_server.url(f"/lrz/{g}.zip"),
                     "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                     "kind": "synthetic" if g.startswith("synthetic") else "vessap"})
    monkeypatch.setenv(table.ENV_TABLE, str(user_table(tmp_path / "table.tsv", rows)))
    return archives


def downloads(home: Path) -> list[str]:
    d = home / "downloads" / "vesselgraph"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_download_default_graph_equals_local(served, http_server, home, tmp_path):
    loader = get_loader("vesselgraph")
    path = loader.prepare()  # no source, no selection: BALBc_no1 only
    attrs = store_attrs()
    assert graph_index(loader.open())["graph"].tolist() == ["BALBc_no1"]
    assert attrs["source"] == f"VesselGraph preprocessed release: BALBc_no1.zip from {http_server.url('/lrz/BALBc_no1.zip')}"
    assert json.loads(attrs["raw_sha256"]) == {"BALBc_no1/BALBc_no1.zip": hashlib.sha256(served["BALBc_no1"]).hexdigest()}
    assert http_server.requests_for("/lrz/synthetic_graph_1.zip") == []
    downloaded = attrs["content_sha256"]
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "BALBc_no1.zip").write_bytes(served["BALBc_no1"])
    loader.prepare(tmp_path / "local", force=True)
    assert store_attrs()["content_sha256"] == downloaded
    assert path == loader.store_path()


def test_open_graph_prepares_only_that_graph(served, http_server, home):
    ds = open_graph("synthetic_graph_1")
    assert ds.sizes["node"] == 5 and ds.attrs["kind"] == "synthetic" and ds.attrs["has_atlas"] is False
    assert store_attrs()["only"] == ["synthetic_graph_1"] and http_server.requests_for("/lrz/BALBc_no1.zip") == []


def test_download_resumes_after_truncation(served, http_server, home):
    cut = 700
    http_server.truncate("/lrz/BALBc_no1.zip", cut)
    files, _ = get_loader("vesselgraph").fetch(None, only=["BALBc_no1"])
    assert files["BALBc_no1/BALBc_no1.zip"].read_bytes() == served["BALBc_no1"]
    assert [r.range for r in http_server.requests_for("/lrz/BALBc_no1.zip")] == [None, f"bytes={cut}-"]
    http_server.clear()
    get_loader("vesselgraph").fetch(None, only=["BALBc_no1"])  # re-verified, not fetched again
    assert http_server.requests_for("/lrz/BALBc_no1.zip") == []
    assert downloads(home) == ["BALBc_no1.zip"]


def test_download_checksum_mismatch_leaves_nothing(http_server, home, tmp_path, monkeypatch):
    data = toy_zip("BALBc_no1", "x")
    http_server.add("/lrz/BALBc_no1.zip", data)
    monkeypatch.setenv(table.ENV_TABLE, str(user_table(tmp_path / "t.tsv", [
        {"graph": "BALBc_no1", "archive": "BALBc_no1.zip", "urls": http_server.url("/lrz/BALBc_no1.zip"), "sha256": "0" * 64}])))
    with pytest.raises(ChecksumError, match=r"graph BALBc_no1: could not download BALBc_no1\.zip: .*BALBc_no1\.zip: sha256 of the "
                                            r"download from http://127\.0\.0\.1:\d+/lrz/BALBc_no1\.zip is [0-9a-f]{64}, expected 0{64}"):
        get_loader("vesselgraph").prepare()
    assert downloads(home) == [] and leftovers(home) == []


def test_download_mirror_first_and_unpinned_checksum_reported(http_server, home, tmp_path, monkeypatch, capsys):
    data = toy_zip("synthetic_graph_1", FILE_ID)
    http_server.add("/mirror/synthetic_graph_1.zip", data)
    monkeypatch.setenv(download.ENV_MIRROR, http_server.url("/mirror/"))
    monkeypatch.setenv("NEUROHARNESS_QUIET", "0")
    monkeypatch.delenv("CI", raising=False)  # status lines are silenced in CI; this test reads one
    # the package table's LRZ URL comes after the mirror and must not be contacted
    assert download.candidate_urls(graph_table()["synthetic_graph_1"])[1].startswith("https://syncandshare.lrz.de/dl/")
    get_loader("vesselgraph").prepare(only=["synthetic_graph_1"])
    assert len(http_server.requests_for("/mirror/synthetic_graph_1.zip")) == 1
    attrs = store_attrs()
    assert attrs["source"].endswith(f"synthetic_graph_1.zip from {http_server.url('/mirror/synthetic_graph_1.zip')}")
    assert json.loads(attrs["raw_sha256"])["synthetic_graph_1/synthetic_graph_1.zip"] == hashlib.sha256(data).hexdigest()
    err = capsys.readouterr().err
    assert "synthetic_graph_1.zip: no published sha256 to check; the sha256 computed from the download is recorded" in err


def test_download_url_source_fallbacks_and_bad_payloads(http_server, home, tmp_path, monkeypatch):
    data = toy_zip("synthetic_graph_1", FILE_ID)
    http_server.add("/m/synthetic_graph_1.zip", data)
    # --source URL: that base only
    files, origin = get_loader("vesselgraph").fetch(http_server.url("/m"), only=["synthetic_graph_1"])
    assert origin.endswith(f"from {http_server.url('/m/synthetic_graph_1.zip')}")
    # table URLs in order: a 404 first, then a web page instead of a zip, then the archive
    http_server.add("/page/BALBc_no1.zip", b"<!DOCTYPE html><html>Download link expired</html>")
    http_server.add("/ok/BALBc_no1.zip", toy_zip("BALBc_no1", "f"))
    monkeypatch.setenv(table.ENV_TABLE, str(user_table(tmp_path / "t.tsv", [{"graph": "BALBc_no1", "archive": "BALBc_no1.zip",
        "urls": " ".join(http_server.url(p) for p in ("/gone/BALBc_no1.zip", "/page/BALBc_no1.zip", "/ok/BALBc_no1.zip"))}])))
    files, origin = get_loader("vesselgraph").fetch(None)
    assert origin.endswith(f"BALBc_no1.zip from {http_server.url('/ok/BALBc_no1.zip')}")
    # all fail: the error lists every URL and how to use a mirror; nothing is kept
    (home / "downloads" / "vesselgraph" / "BALBc_no1.zip").unlink()
    monkeypatch.setenv(table.ENV_TABLE, str(user_table(tmp_path / "t.tsv", [{"graph": "BALBc_no1", "archive": "BALBc_no1.zip",
        "urls": " ".join(http_server.url(p) for p in ("/gone/BALBc_no1.zip", "/page/BALBc_no1.zip"))}])))
    with pytest.raises(DownloadError, match=r"could not download BALBc_no1\.zip: .*/gone/BALBc_no1\.zip: HTTP 404.*"
                                            r"/page/BALBc_no1\.zip served b'<!DOCTYPE html>.*not a zip archive"
                                            r".*NEUROHARNESS_VESSELGRAPH_MIRROR"):
        get_loader("vesselgraph").fetch(None)
    assert downloads(home) == ["synthetic_graph_1.zip"]
    with pytest.raises(NeuroharnessError, match=r"unknown VesselGraph graph\(s\) nope; the graph table names BALBc_no1, BALBc_no2"):
        get_loader("vesselgraph").fetch(None, only=["nope"])


# -- the graph table ------------------------------------------------------------------------------
def test_graph_table(home, tmp_path, monkeypatch):
    t = graph_table()
    assert list(t) == ["BALBc_no1", "BALBc_no2", "BALBc_no3", "C57BL_6_no1", "C57BL_6_no2", "C57BL_6_no3", "CD1-E_no1",
                       "CD1-E_no2", "CD1-E_no3", "C57BL_6-K18", "C57BL_6-K19", "C57BL_6-K20", "link_vessap_roi1",
                       "link_vessap_roi3", "node_vessap_roi1", "node_vessap_roi3"] + [f"synthetic_graph_{i}" for i in range(1, 6)]
    kinds = [t[g].kind for g in ("BALBc_no1", "C57BL_6-K19", "node_vessap_roi3", "synthetic_graph_5")]
    assert kinds == ["vessap", "kleinfeld", "roi", "synthetic"]
    for g, e in t.items():
        assert e.archive == f"{g}.zip" and len(e.urls) == 1 and e.urls[0].startswith("https://syncandshare.lrz.de/dl/")
        assert e.urls[0].endswith(f"/{g}.zip") and e.sha256 is None and e.size is None  # nothing published to pin
    assert t["BALBc_no1"].file_id == "BALBc-no1_iso3um_stitched_segmentation_bulge_size_3.0"
    assert t["synthetic_graph_3"].file_id == "3_b_3_0" and t["synthetic_graph_3"].file_id_evidence.startswith("attested")
    assert t["C57BL_6-K18"].file_id == "" and t["C57BL_6-K18"].file_id_evidence == "unknown"
    # a user table replaces rows and adds graphs; a malformed one is reported by line and column
    monkeypatch.setenv(table.ENV_TABLE, str(user_table(tmp_path / "t.tsv", [
        {"graph": "BALBc_no1", "archive": "b1.zip", "urls": "http://x/b1.zip", "sha256": "A" * 64, "size": 12},
        {"graph": "new_graph", "kind": "other", "archive": "n.zip", "urls": "http://x/n.zip"}])))
    t = graph_table()
    assert t["BALBc_no1"].sha256 == "a" * 64 and t["BALBc_no1"].size == 12 and list(t)[-1] == "new_graph"
    user_table(tmp_path / "t.tsv", [{"graph": "g", "archive": "g.zip", "urls": "", "sha256": "xyz"}])
    with pytest.raises(DataFormatError, match=r"t\.tsv line 2, column sha256: found 'xyz', expected 64 hex digits or empty"):
        graph_table()


def test_downloaded_archive_is_the_graph_it_was_fetched_for(http_server, home, tmp_path, monkeypatch):
    """A user table may name any archive: its one graph is the table graph, whatever its folders are called."""
    http_server.add("/x/brain.zip", toy_zip("folder", "prefix"))
    monkeypatch.setenv(table.ENV_TABLE, str(user_table(tmp_path / "t.tsv", [
        {"graph": "C57BL_6_no2", "archive": "brain.zip", "urls": http_server.url("/x/brain.zip")}])))
    get_loader("vesselgraph").prepare(only=["C57BL_6_no2"])
    assert graph_index(get_loader("vesselgraph").open())[["graph", "file_id"]].values.tolist() == [["C57BL_6_no2", "prefix"]]


# -- a generated graph (scripts/make_vesselgraph_fixture.py) -------------------------------------------
GENERATOR = Path(__file__).resolve().parents[1] / "scripts" / "make_vesselgraph_fixture.py"
needs_generator = pytest.mark.skipif(not GENERATOR.exists(), reason=f"{GENERATOR.name} is not there")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A 3,000-node synthetic graph with atlas, as frames and as CSVs (graph id synthetic_graph_4)."""
    from helpers import load_script

    gen = load_script("make_vesselgraph_fixture")
    nodes, edges, atlas = gen.synthetic_graph(3000, seed=3, atlas=True)
    root = tmp_path_factory.mktemp("vg_generated")
    gen.write_graph(root, "synthetic_graph_4", nodes, edges, atlas)
    return gen, root, nodes, edges, atlas


@needs_generator
def test_generated_graph_round_trip(generated, home):
    _, root, nodes, edges, atlas = generated
    get_loader("vesselgraph").prepare(root)
    ds = open_graph("synthetic_graph_4")
    assert ds.sizes["node"] == len(nodes) == 3000 and ds.sizes["edge"] == len(edges)
    np.testing.assert_array_equal(ds.pos.values, nodes[["pos_x", "pos_y", "pos_z"]].to_numpy(np.float64))
    np.testing.assert_array_equal(ds.degree.values, nodes["degree"].to_numpy())
    np.testing.assert_array_equal(ds.isAtSampleBorder.values, nodes["isAtSampleBorder"].to_numpy() == 1)
    np.testing.assert_array_equal(ds.edge_index.values, edges[["node1id", "node2id"]].to_numpy())
    for col in vcsv.EDGE_FEATURES:
        expected = edges[col.name].to_numpy()
        np.testing.assert_array_equal(ds[col.name].values, expected == 1 if col.kind == "flag" else expected, err_msg=col.name)
    assert ds.region.values.tolist() == [c[len(vcsv.ATLAS_PREFIX):] for c in atlas.columns]
    np.testing.assert_array_equal(ds.atlas_region.values, atlas.to_numpy() == 1)
    used = np.zeros(len(nodes), bool)
    used[edges[["node1id", "node2id"]].to_numpy().ravel()] = True
    assert ds.attrs["n_isolated"] == int((~used).sum())
    d = to_pyg(ds, edge_attrs=["length"])
    assert d.num_nodes == int(used.sum()) and tuple(d.edge_index.shape) == (2, 2 * len(edges))
    # degrees from the undirected edge_index equal the CSV's degree column of the kept nodes
    np.testing.assert_array_equal(np.bincount(d.edge_index[0].numpy(), minlength=d.num_nodes),
                                  nodes["degree"].to_numpy()[d.node_id.numpy()])


@needs_generator
def test_generated_release_tree_and_zips_agree(generated, home, tmp_path):
    gen = generated[0]
    graphs = {"synthetic_graph_1": 1200, "synthetic_graph_2": 800}
    gen.write_release(tmp_path / "tree", graphs=graphs, seed=0)
    gen.write_release(tmp_path / "zipped", graphs=graphs, seed=0, zip=True)
    (tmp_path / "zips").mkdir()
    for z in (tmp_path / "zipped").rglob("*.zip"):
        z.rename(tmp_path / "zips" / z.name)
    loader = get_loader("vesselgraph")
    loader.prepare(tmp_path / "tree")
    idx = graph_index(loader.open())
    assert idx["graph"].tolist() == list(graphs) and idx["n_nodes"].tolist() == list(graphs.values())
    tree_sum = store_attrs()["content_sha256"]
    loader.prepare(tmp_path / "zips", force=True)
    assert store_attrs()["content_sha256"] == tree_sum
    loader.prepare(tmp_path / "zips", only=["synthetic_graph_2"], force=True)
    assert graph_index(loader.open())["graph"].tolist() == ["synthetic_graph_2"]
