"""The synthetic VesselGraph generator (scripts/make_vesselgraph_fixture.py): layout, invariants, determinism, CLI.

Every invariant is checked on the CSVs as written, read back with plain pandas (``sep=";"``).
"""
from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
from helpers import SCRIPTS, load_script

gen = load_script("make_vesselgraph_fixture")

NODE_HEADER = "id;pos_x;pos_y;pos_z;degree;isAtSampleBorder"
EDGE_HEADER = ("id;node1id;node2id;length;distance;curveness;volume;avgCrossSection;minRadiusAvg;minRadiusStd;"
               "avgRadiusAvg;avgRadiusStd;maxRadiusAvg;maxRadiusStd;roundnessAvg;roundnessStd;node1_degree;"
               "node2_degree;num_voxels;hasNodeAtSampleBorder")
ATLAS_HEADER = ("Region_Acronym_CB;Region_Acronym_HPF;Region_Acronym_HY;Region_Acronym_Isocortex;Region_Acronym_MB;"
                "Region_Acronym_OLF;Region_Acronym_STR;Region_Acronym_TH;Region_Acronym_fiber tracts")
N = 3000
SMALL_CLASS, LARGE_CLASS = 5.0, 13.33  # minRadiusAvg class boundaries of the vessel task


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A 3,000-node graph with atlas, written once and read back with plain pandas."""
    frames = gen.synthetic_graph(N, seed=1, atlas=True)
    paths = gen.write_graph(tmp_path_factory.mktemp("vg_fixture"), "g1", *frames)
    read = {kind: pd.read_csv(p, sep=";") for kind, p in paths.items()}
    return frames, paths, read


def test_file_names_and_headers(written):
    _, paths, read = written
    assert {k: p.name for k, p in paths.items()} == {
        "nodes": "g1_nodes_processed.csv", "edges": "g1_edges_processed.csv", "atlas": "g1_atlas_processed.csv"}
    for kind, header in (("nodes", NODE_HEADER), ("edges", EDGE_HEADER), ("atlas", ATLAS_HEADER)):
        with open(paths[kind]) as fh:
            first, second = fh.readline().rstrip("\n"), fh.readline()
        assert first == header, kind  # unquoted, exact order, no index column
        assert '"' not in second and second.count(";") == header.count(";")
        assert list(read[kind].columns) == header.split(";")


def test_frames_survive_the_round_trip_exactly(written):
    (nodes, edges, atlas), _, read = written
    # every value is written in its shortest exact form, and the frames already hold pandas' read dtypes
    pd.testing.assert_frame_equal(read["nodes"], nodes)
    pd.testing.assert_frame_equal(read["edges"], edges)
    pd.testing.assert_frame_equal(read["atlas"], atlas)
    assert dict(read["nodes"].dtypes.astype(str)) == {
        "id": "int64", "pos_x": "float64", "pos_y": "float64", "pos_z": "float64", "degree": "int64",
        "isAtSampleBorder": "int64"}
    ints = {"id", "node1id", "node2id", "node1_degree", "node2_degree", "num_voxels", "hasNodeAtSampleBorder"}
    assert {c for c, t in read["edges"].dtypes.astype(str).items() if t == "int64"} == ints
    assert (read["edges"].drop(columns=list(ints)).dtypes == np.float64).all()


def test_ids_edge_list_and_degrees(written):
    _, _, read = written
    nodes, edges = read["nodes"], read["edges"]
    assert len(nodes) == N
    np.testing.assert_array_equal(nodes["id"], np.arange(N))
    np.testing.assert_array_equal(edges["id"], np.arange(len(edges)))
    a, b = edges["node1id"].to_numpy(), edges["node2id"].to_numpy()
    assert (a < b).all() and a.min() >= 0 and b.max() < N  # no self-loops, ids in range
    assert (np.diff(a) >= 0).all()  # sorted by node1id
    assert not pd.Series(a * N + b).duplicated().any()  # each pair once
    deg = np.bincount(a, minlength=N) + np.bincount(b, minlength=N)
    np.testing.assert_array_equal(nodes["degree"], deg)
    np.testing.assert_array_equal(edges["node1_degree"], np.minimum(deg[a], deg[b]))
    np.testing.assert_array_equal(edges["node2_degree"], np.maximum(deg[a], deg[b]))
    border = nodes["isAtSampleBorder"].to_numpy()
    assert set(np.unique(border)) == {0, 1}
    np.testing.assert_array_equal(edges["hasNodeAtSampleBorder"], border[a] | border[b])


def test_edge_features_are_consistent(written):
    _, _, read = written
    nodes, e = read["nodes"], read["edges"]
    assert (e.drop(columns=["id", "node1id", "hasNodeAtSampleBorder"]) > 0).all().all()  # measurements positive
    assert (e["curveness"] >= 1).all()
    # derived columns are rounded once (6 significant digits: at most 5e-6 relative) from the written inputs
    np.testing.assert_allclose(e["curveness"], e["length"] / e["distance"], rtol=6e-6)
    np.testing.assert_allclose(e["avgCrossSection"], e["volume"] / e["length"], rtol=6e-6)
    assert (e["minRadiusAvg"] <= e["avgRadiusAvg"]).all() and (e["avgRadiusAvg"] <= e["maxRadiusAvg"]).all()
    assert ((e["roundnessAvg"] > 0) & (e["roundnessAvg"] <= 1)).all()
    np.testing.assert_allclose(e["roundnessAvg"], e["minRadiusAvg"] / e["maxRadiusAvg"], rtol=6e-6)
    np.testing.assert_allclose(e["volume"], np.pi * e["avgRadiusAvg"] ** 2 * e["length"], rtol=6e-6)
    assert (e["num_voxels"] >= 1).all() and set(np.unique(e["hasNodeAtSampleBorder"])) <= {0, 1}
    pos = nodes[["pos_x", "pos_y", "pos_z"]].to_numpy()
    euclid = np.linalg.norm(pos[e["node1id"]] - pos[e["node2id"]], axis=1)
    np.testing.assert_allclose(e["distance"], euclid, rtol=6e-6)  # 6 significant digits: <= 5e-6 off


def test_degree_profile_like_a_vessel_graph(written):
    _, _, read = written
    deg = read["nodes"]["degree"].to_numpy()
    share = np.bincount(deg, minlength=6) / N
    assert share.argmax() == 3 and share[3] > 0.6  # bifurcations dominate
    assert 0.03 < share[1] < 0.12 and share[2] < 0.12 and share[4:].sum() < 0.25
    assert 0 < share[0] < 0.005  # a few isolated nodes, as in the real files
    assert 1.45 < len(read["edges"]) / N < 1.56  # BALBc_no1: 5,345,897 / 3,538,495 = 1.511


@pytest.mark.parametrize("seed", range(4))
def test_all_three_radius_classes_occur(seed):
    _, edges, _ = gen.synthetic_graph(2000, seed=seed)
    r = edges["minRadiusAvg"].to_numpy()
    share = np.array([(r <= SMALL_CLASS).mean(), ((r > SMALL_CLASS) & (r <= LARGE_CLASS)).mean(),
                      (r > LARGE_CLASS).mean()])
    assert share[0] > 0.75 and 0.05 < share[1] < 0.25 and 0.003 < share[2] < 0.05, share
    assert (edges["minRadiusAvg"][r <= SMALL_CLASS] >= 1.4).all()  # capillaries: 2.0 * 0.72 at the least


def test_distance_is_small_next_to_the_box(written):
    _, _, read = written
    pos = read["nodes"][["pos_x", "pos_y", "pos_z"]].to_numpy()
    d = read["edges"]["distance"]
    delta = d.mean() + 2 * d.std()  # the spatial negative sampler's cube half-width
    sides = gen.box_sides(N)
    assert pos.min() >= 0 and (pos.max(0) <= sides).all()
    assert delta < 0.2 * sides.min()
    counts = [(np.abs(pos - p) <= delta).all(1).sum() - 1 for p in pos[::100]]
    assert np.mean(counts) > 10 and np.min(counts) >= 2  # several candidates around each node


def test_box_sides_keep_density_constant():
    # side = (n * 5000 / (1.25 * 1 * 0.75)) ** (1/3): 1000 nodes -> 5333333.3 ** (1/3) = 174.7161
    np.testing.assert_allclose(gen.box_sides(1000), [1.25 * 174.7161, 174.7161, 0.75 * 174.7161], rtol=1e-6)
    np.testing.assert_allclose(gen.box_sides(8000) / gen.box_sides(1000), 2.0)


def test_atlas_one_hot(written):
    (nodes, _, _), _, read = written
    atlas = read["atlas"]
    assert len(atlas) == N and "id" not in atlas.columns  # the real writer has no id column
    assert set(np.unique(atlas.to_numpy())) == {0, 1} and (atlas.sum(axis=1) == 1).all()
    # the x midline slab (|x - x_mid| < 2 % of the side) is fibre tracts; the rest goes by octant
    side = gen.box_sides(N)
    mid = np.abs(nodes["pos_x"] - side[0] / 2) < 0.02 * side[0]
    np.testing.assert_array_equal(atlas["Region_Acronym_fiber tracts"] == 1, mid)
    first = nodes[~mid].index[0]
    p = nodes.loc[first, ["pos_x", "pos_y", "pos_z"]].to_numpy() >= side / 2
    expected = ("OLF", "STR", "Isocortex", "HPF", "CB", "MB", "TH", "HY")[4 * p[0] + 2 * p[1] + p[2]]
    assert atlas.columns[atlas.loc[first].to_numpy().argmax()] == f"Region_Acronym_{expected}"


def test_node_ids_follow_a_volume_scan(written):
    (nodes, _, _), _, _ = written
    slab = np.floor(nodes["pos_z"] / gen.SCAN_CELL).to_numpy()
    assert (np.diff(slab) >= 0).all()


def test_deterministic_in_seed():
    a = gen.synthetic_graph(2000, seed=7, atlas=True)
    b = gen.synthetic_graph(2000, seed=7, atlas=True)
    for x, y in zip(a, b):
        pd.testing.assert_frame_equal(x, y)
    c = gen.synthetic_graph(2000, seed=8)
    assert not a[0][["pos_x", "pos_y", "pos_z"]].equals(c[0][["pos_x", "pos_y", "pos_z"]])
    assert len(a[1]) != len(c[1]) or not a[1][["node1id", "node2id"]].equals(c[1][["node1id", "node2id"]])
    assert a[2] is not None and c[2] is None


def test_round_sig():
    x = np.array([0.0, 1.0, 1.23456789, 123456.789, 1234567.89, 0.000123456789, 2.5, 9.999996])
    out = gen._round_sig(x)
    np.testing.assert_array_equal(out, [0.0, 1.0, 1.23457, 123457.0, 1234570.0, 0.000123457, 2.5, 10.0])
    assert [repr(float(v)) for v in out[[2, 5]]] == ["1.23457", "0.000123457"]  # the nearest float: short repr


def test_subtree_sizes():
    # forest: 0 -> 1 -> {2, 3}, 3 -> 4; root 5 alone; 6 unreached (-9999, as scipy marks it)
    pred = np.array([-9999, 0, 1, 1, 3, -9999, -9999])
    np.testing.assert_array_equal(gen._subtree_sizes(pred), [5, 4, 1, 2, 1, 1, 1])


def test_matching_respects_degree_budgets():
    rng = np.random.default_rng(0)
    pos = rng.random((500, 3)) * 80
    budget = rng.integers(1, 5, size=500)
    a, b = gen._match(pos, budget, rng)
    deg = np.bincount(a, minlength=500) + np.bincount(b, minlength=500)
    assert (deg <= budget).all() and (a < b).all()
    assert (np.diff(a * 500 + b) > 0).all()  # sorted, each pair once
    assert deg.sum() > 0.9 * budget.sum()  # most of the budget is used


def test_too_small_graph_is_refused():
    with pytest.raises(ValueError, match="n_nodes must be >= 2, got 1"):
        gen.synthetic_graph(1)


def test_write_release_tree_and_zip(tmp_path):
    graphs = {"synthetic_graph_1": 300, "my_graph": 200}
    tree = gen.write_release(tmp_path / "tree", graphs=graphs, seed=5, atlas=True)
    assert tree["synthetic_graph_1"]["graph_id"] == "1_b_3_0" and tree["my_graph"]["graph_id"] == "my_graph"
    assert tree["my_graph"]["seed"] == 6 and tree["synthetic_graph_1"]["n_nodes"] == 300
    files = sorted(p.relative_to(tmp_path / "tree").as_posix() for p in (tmp_path / "tree").rglob("*") if p.is_file())
    assert files == ["my_graph/my_graph/my_graph_atlas_processed.csv", "my_graph/my_graph/my_graph_edges_processed.csv",
                     "my_graph/my_graph/my_graph_nodes_processed.csv",
                     "synthetic_graph_1/1_b_3_0/1_b_3_0_atlas_processed.csv",
                     "synthetic_graph_1/1_b_3_0/1_b_3_0_edges_processed.csv",
                     "synthetic_graph_1/1_b_3_0/1_b_3_0_nodes_processed.csv"]
    edges = pd.read_csv(tree["synthetic_graph_1"]["files"]["edges"], sep=";")
    assert len(edges) == tree["synthetic_graph_1"]["n_edges"]
    pd.testing.assert_frame_equal(edges, gen.synthetic_graph(300, seed=5)[1])  # graph i uses seed + i

    zipped = gen.write_release(tmp_path / "zip", graphs=graphs, seed=5, zip=True, graph_ids={"my_graph": "abc"})
    assert sorted(p.name for p in (tmp_path / "zip").iterdir()) == ["my_graph.zip", "synthetic_graph_1.zip"]
    with zipfile.ZipFile(zipped["my_graph"]["zip"]) as zf:
        assert sorted(zf.namelist()) == ["my_graph/abc/abc_edges_processed.csv", "my_graph/abc/abc_nodes_processed.csv"]
        with zf.open("my_graph/abc/abc_nodes_processed.csv") as fh:
            nodes = pd.read_csv(fh, sep=";")
    assert zipped["my_graph"]["files"] is None
    pd.testing.assert_frame_equal(nodes, pd.read_csv(tree["my_graph"]["files"]["nodes"], sep=";"))


def test_cli(tmp_path):
    script = SCRIPTS / "make_vesselgraph_fixture.py"
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "a"), "--nodes", "2500", "--atlas",
                          "--graph-id", "gid", "--seed", "3"], capture_output=True, text=True, check=True).stdout
    assert "synthetic_graph_1 (gid): 2500 nodes" in out
    folder = tmp_path / "a" / "synthetic_graph_1" / "gid"
    assert sorted(p.name for p in folder.iterdir()) == [
        "gid_atlas_processed.csv", "gid_edges_processed.csv", "gid_nodes_processed.csv"]
    _, edges, _ = gen.synthetic_graph(2500, seed=3)
    pd.testing.assert_frame_equal(pd.read_csv(folder / "gid_edges_processed.csv", sep=";"), edges)
    subprocess.run([sys.executable, str(script), str(tmp_path / "b"), "--nodes", "100", "--zip", "--name",
                    "synthetic_graph_2"], capture_output=True, text=True, check=True)
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["synthetic_graph_2.zip"]
    with zipfile.ZipFile(tmp_path / "b" / "synthetic_graph_2.zip") as zf:
        assert sorted(zf.namelist()) == ["synthetic_graph_2/2_b_3_0/2_b_3_0_edges_processed.csv",
                                         "synthetic_graph_2/2_b_3_0/2_b_3_0_nodes_processed.csv"]
