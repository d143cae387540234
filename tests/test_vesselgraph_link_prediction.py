"""Task vesselgraph-link-prediction: split, heuristics by hand, submissions and every baseline end to end.

A synthetic graph (scripts/make_vesselgraph_fixture.py, 2,500 nodes) is written as loose CSVs and
prepared once for the module into its own NEUROHARNESS_HOME.
"""
from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from helpers import load_script, prepare_vesselgraph
from neuroharness.tasks import get_task
from neuroharness.tasks.base import split_digest
from neuroharness.tasks.vesselgraph.link_baselines import NeighbourhoodHeuristic
from neuroharness.tasks.vesselgraph.link_prediction import (
    REFERENCE_ROWS,
    SPLIT_SEED,
    LinkData,
    build_split,
    load_split,
    split_cache_path,
    write_predictions,
)

from neuroharness.cli import main
from neuroharness.errors import NeuroharnessError, SubmissionError

TASK = "vesselgraph-link-prediction"
N_NODES = 2500


# -- pieces without a store -----------------------------------------------------------------------
def test_card():
    task = get_task(TASK)
    card = task.card
    assert card.implementation == "neuroharness.tasks.vesselgraph.link_prediction:VesselGraphLinkPrediction"
    assert all(m.factory.startswith("neuroharness.tasks.vesselgraph.link_baselines:") for m in card.models)
    assert (card.name, card.version, card.main_metric) == (TASK, "1.0", "roc_auc")
    assert card.higher_is_better and card.options["graph"].default == "BALBc_no1"
    assert [(d.name, d.version) for d in card.datasets] == [("vesselgraph", "1.0")]
    assert {m.name for m in card.metrics} == {"roc_auc", "roc_auc_random_negatives"}
    assert card.chance["roc_auc"].startswith("0.5")
    assert "123" in card.split and "floor(0.1 E)" in card.split
    assert set(task.models) == {"common-neighbours", "adamic-adar", "resource-allocation", "mlp-coordinates",
                                "graphsage"}
    refs = " ".join(card.references)
    assert "NOT produced here" in refs and "ogbl-vessel" in refs and "BALBc_no1" in refs
    for s in ("SEAL (no x-feat) 80.73±0.01", "GraphSAGE 49.89±6.78", "GAV 98.38", "arXiv:2303.14501"):
        assert s in refs
    assert len(REFERENCE_ROWS) == 10 and all(0 < r["roc_auc"] < 100 for r in REFERENCE_ROWS)


# training graph: 0-1, 0-2, 1-2, 1-3, 2-3, 3-4; node 5 has no training edge
# degrees 0:2 1:3 2:3 3:3 4:1 5:0
TRAIN = np.array([[0, 1], [0, 2], [1, 2], [1, 3], [2, 3], [3, 4]])
PAIRS = np.array([[0, 3], [1, 2], [0, 4], [2, 4], [4, 5], [1, 4]])
L2, L3 = math.log(2), math.log(3)
EXPECTED = {  # common neighbours: (0,3) {1,2}; (1,2) {0,3}; (0,4) none; (2,4) {3}; (4,5) none; (1,4) {3}
    "common-neighbours": [2, 2, 0, 1, 0, 1],
    "adamic-adar": [2 / L3, 1 / L2 + 1 / L3, 0, 1 / L3, 0, 1 / L3],
    "resource-allocation": [2 / 3, 1 / 2 + 1 / 3, 0, 1 / 3, 0, 1 / 3],
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_heuristics_by_hand(kind):
    data = LinkData(6, np.zeros((6, 3)), TRAIN, np.empty((0, 2), np.int64), TRAIN[:1], TRAIN[:1])
    model = NeighbourhoodHeuristic(kind, batch_size=4).fit(data, seed=0)  # batches of 4: the last is partial
    np.testing.assert_allclose(model.score(data, PAIRS), EXPECTED[kind], rtol=1e-12)
    np.testing.assert_allclose(model.score(data, PAIRS[:, ::-1]), EXPECTED[kind], rtol=1e-12)  # symmetric


def test_build_split_on_a_small_graph():
    """12 nodes on the x axis 1 apart (node 5 isolated), 10 edges between consecutive kept nodes."""
    pos = np.column_stack([np.arange(12.0), np.zeros(12), np.zeros(12)])
    kept = [i for i in range(12) if i != 5]
    edges = np.array(list(itertools.pairwise(kept)))
    # with the true distances (nine 1s, one 2: mean 1.1, sample std sqrt(0.1)) delta = 1.73: the only pairs
    # within it are 1 apart, and those are all edges
    dist = pos[edges[:, 1], 0] - pos[edges[:, 0], 0]
    with pytest.raises(NeuroharnessError, match="only 0 distinct non-edge pairs exist, 10 negatives requested"):
        build_split(edges, pos, dist, n_workers=1)
    # a distance column of 10s: delta = 10, every pair but (0, 11) is within it (44 non-edges)
    s = build_split(edges, pos, np.full(10, 10.0), n_workers=1)
    assert s.delta == 10.0
    assert s.node_id.tolist() == kept and s.num_nodes == 11 and s.n_csv_nodes == 12
    assert {k: len(v) for k, v in s.pos_pairs.items()} == {"train": 8, "val": 1, "test": 1}
    assert {k: len(v) for k, v in s.neg_pairs.items()} == {"train": 8, "val": 1, "test": 1}
    all_pos = s.node_id[np.concatenate(list(s.pos_pairs.values()))]
    assert sorted(map(tuple, all_pos.tolist())) == sorted(map(tuple, edges.tolist()))
    neg = s.node_id[np.concatenate(list(s.neg_pairs.values()))]
    assert not set(map(tuple, neg.tolist())) & set(map(tuple, edges.tolist()))
    assert (neg[:, 0] < neg[:, 1]).all() and (neg[:, 1] - neg[:, 0] <= 10).all() and 5 not in neg
    rnd = s.node_id[np.concatenate(list(s.random_pairs.values()))]
    assert len(rnd) == 2 and 5 not in rnd and not set(map(tuple, rnd.tolist())) & set(map(tuple, edges.tolist()))
    again = build_split(edges, pos, np.full(10, 10.0), n_workers=2)
    assert all(np.array_equal(again.neg_pairs[k], s.neg_pairs[k]) for k in s.neg_pairs)


# -- a prepared synthetic graph -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """(graph name, nodes, edges as written, home): the synthetic graph, prepared into a fresh home."""
    from neuroharness.loaders import get_loader
    from neuroharness.loaders.vesselgraph import graph_index, open_vesselgraph

    gen = load_script("make_vesselgraph_fixture")
    root = tmp_path_factory.mktemp("vg_link")
    nodes, edges, _ = gen.synthetic_graph(N_NODES, seed=0)
    gen.write_graph(root / "src", "vglink", nodes, edges)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROHARNESS_HOME", str(root / "home"))
        get_loader("vesselgraph").prepare(source=root / "src")
        (name,) = graph_index(open_vesselgraph())["graph"]
        yield name, nodes, edges, root / "home"


@pytest.fixture(scope="module")
def task():
    return get_task(TASK)


def _opts(name: str) -> dict:
    return {"graph": name}


def _csv_pairs(split, part: dict, name: str) -> np.ndarray:
    return split.node_id[part[name]]


def test_split_matches_the_csv(graph, task):
    name, nodes, edges, _ = graph
    s = task.data(_opts(name))
    e = len(edges)
    n_val = n_test = math.floor(0.1 * e)
    sizes = {k: len(v) for k, v in s.pos_pairs.items()}
    assert sizes == {"train": e - n_val - n_test, "val": n_val, "test": n_test}
    assert {k: len(v) for k, v in s.neg_pairs.items()} == sizes  # 1:1
    assert {k: len(v) for k, v in s.random_pairs.items()} == {"val": n_val, "test": n_test}
    # positives: every CSV edge exactly once, by CSV id
    csv_edges = edges[["node1id", "node2id"]].to_numpy()
    got = np.concatenate([_csv_pairs(s, s.pos_pairs, k) for k in ("train", "val", "test")])
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, csv_edges.tolist()))
    # isolated nodes dropped: node_id = the CSV ids that have an edge
    assert s.node_id.tolist() == sorted(set(csv_edges.ravel().tolist()))
    # delta from the CSV distance column: mean + 2 sample std
    d = edges["distance"].to_numpy()
    assert s.delta == pytest.approx(d.mean() + 2 * d.std(ddof=1), rel=1e-12)
    # negatives: never an edge (either direction), inside the delta cube, u < v, no repeats across splits
    n = len(nodes)
    edge_keys = set((csv_edges.min(1) * n + csv_edges.max(1)).tolist())
    pos = nodes[["pos_x", "pos_y", "pos_z"]].to_numpy()
    spatial = np.concatenate([_csv_pairs(s, s.neg_pairs, k) for k in ("train", "val", "test")])
    assert (spatial[:, 0] < spatial[:, 1]).all()
    assert (np.abs(pos[spatial[:, 0]] - pos[spatial[:, 1]]) <= s.delta).all()
    keys = spatial[:, 0] * n + spatial[:, 1]
    assert len(set(keys.tolist())) == len(keys) and not edge_keys & set(keys.tolist())
    rnd = np.concatenate([_csv_pairs(s, s.random_pairs, k) for k in ("val", "test")])
    rkeys = set((rnd[:, 0] * n + rnd[:, 1]).tolist())
    assert len(rkeys) == len(rnd) and not rkeys & edge_keys and not rkeys & set(keys.tolist())
    # random negatives are mostly far apart, spatial ones never: the secondary split is the easy one
    assert (np.abs(pos[rnd[:, 0]] - pos[rnd[:, 1]]).max(1) > s.delta).mean() > 0.9
    # the training graph holds no validation or test positive
    data = s.model_view()
    train_keys = set((data.train_edge_index()[0] * s.num_nodes + data.train_edge_index()[1]).tolist())
    for k in ("val", "test"):
        p = s.pos_pairs[k]
        assert not train_keys & set((p[:, 0] * s.num_nodes + p[:, 1]).tolist())
        assert not train_keys & set((p[:, 1] * s.num_nodes + p[:, 0]).tolist())
    assert data.train_edge_index().shape == (2, 2 * sizes["train"])


def test_split_is_cached_and_fixed(graph, task):
    from neuroharness.loaders import get_loader

    name, _, _, home = graph
    s = task.data(_opts(name))
    checksum = task.dataset_parts(_opts(name))["vesselgraph"][name]
    assert checksum == get_loader("vesselgraph").part_checksums()[name] == s.checksum  # the graph's own checksum
    from neuroharness.tasks.base import parts_digest

    assert task.dataset_checksums(_opts(name)) == {"vesselgraph": parts_digest({name: checksum})}
    assert task.dataset_parts(_opts(name)) == {"vesselgraph": {name: checksum}}
    path = split_cache_path(name, checksum)
    assert path.exists() and path.is_relative_to(home) and checksum in path.name and "v1.0" in path.name
    cached = load_split(path)
    for attr in ("pos_pairs", "neg_pairs", "random_pairs"):
        for k, v in getattr(s, attr).items():
            assert np.array_equal(getattr(cached, attr)[k], v)
    assert not list(path.parent.glob(".*tmp*"))  # written atomically, nothing left over
    # rebuilding from the store gives the same split (fixed seed, independent of the worker count)
    from neuroharness.loaders.vesselgraph import open_graph

    ds = open_graph(name)
    again = build_split(ds["edge_index"].values, ds["pos"].values, ds["distance"].values, seed=SPLIT_SEED,
                        n_workers=1)
    assert all(np.array_equal(again.neg_pairs[k], s.neg_pairs[k]) for k in s.neg_pairs)
    other = build_split(ds["edge_index"].values, ds["pos"].values, ds["distance"].values, seed=SPLIT_SEED + 1)
    assert not np.array_equal(other.pos_pairs["test"], s.pos_pairs["test"])


def test_template_perfect_and_reversed_submissions(graph, task, tmp_path):
    name, *_ = graph
    s = task.data(_opts(name))
    tmpl = task.submission_template(options=_opts(name))
    n_test = len(s.pos_pairs["test"])
    assert list(tmpl.columns) == ["node1", "node2"] and len(tmpl) == 3 * n_test
    assert (tmpl.dtypes == np.int64).all() and (tmpl["node1"] < tmpl["node2"]).all()
    assert tmpl.equals(tmpl.sort_values(["node1", "node2"], ignore_index=True))  # order hides the labels
    truth = set(map(tuple, _csv_pairs(s, s.pos_pairs, "test").tolist()))
    is_pos = np.array([p in truth for p in zip(tmpl["node1"], tmpl["node2"])])
    for suffix in (".parquet", ".npz"):
        path = write_predictions(tmp_path / f"perfect{suffix}", tmpl["node2"], tmpl["node1"], is_pos * 1.0)
        m = task.evaluate(path, options=_opts(name))  # pairs given as (node2, node1): either order is accepted
        assert m["roc_auc"] == m["roc_auc_random_negatives"] == m["main_score"] == 1.0
        assert (m["n_positives"], m["n_spatial_negatives"], m["n_random_negatives"]) == (n_test,) * 3
    rev = pd.DataFrame({"node1": tmpl["node1"], "node2": tmpl["node2"], "score": -is_pos.astype(float)})
    m = task.evaluate(rev.iloc[::-1], options=_opts(name))  # row order does not matter
    assert m["roc_auc"] == m["roc_auc_random_negatives"] == 0.0
    const = rev.assign(score=0.25)
    assert task.evaluate(const, options=_opts(name))["roc_auc"] == 0.5
    val = task.submission_template("val", options=_opts(name))
    assert len(val) == 3 * len(s.pos_pairs["val"])
    assert not set(zip(val["node1"], val["node2"])) & set(zip(tmpl["node1"], tmpl["node2"]))


def test_submission_errors(graph, task, tmp_path):
    name, nodes, *_ = graph
    tmpl = task.submission_template(options=_opts(name))
    good = tmpl.assign(score=np.linspace(0, 1, len(tmpl)))
    n = len(nodes)
    cases = [
        (good.drop(columns="score"), r"missing column\(s\) \['score'\]"),
        (good.assign(score=np.r_[np.nan, good["score"].to_numpy()[1:]]), "1 NaN/inf value.*first at row 0"),
        (good.assign(score=np.r_[good["score"].to_numpy()[:-1], np.inf]), "NaN/inf"),
        (good.assign(node1=good["node1"].astype(float)), "column 'node1' has dtype float64, expected an integer dtype"),
        (good.assign(node1=pd.array([None, *good["node1"][1:]], dtype="Int64")), "1 missing value.*first at row 0"),
        (good.assign(score=good["score"].astype(str)), "column 'score' has dtype"),
        (pd.concat([good, good.iloc[[3]]]), "appears more than once"),
        (pd.concat([good, good.iloc[[3]].rename(columns={"node1": "node2", "node2": "node1"})]),
         "appears more than once"),
        (good.iloc[1:], (f"1 of {len(tmpl)} test pairs of graph {name} missing, e.g. "
                         rf"pair \({tmpl['node1'][0]}, {tmpl['node2'][0]}\)")),
        (pd.concat([good, pd.DataFrame({"node1": [n - 2], "node2": [n - 1], "score": [0.0]})]), None),
        (good.assign(node2=np.r_[n, good["node2"].to_numpy()[1:]]),
         f"row 0, column 'node2': value {n} out of range; graph {name} has CSV node ids 0..{n - 1}"),
        (good.assign(node2=good["node1"]), "pairs node .* with itself"),
    ]
    for table, match in cases:
        if match is None:  # an extra pair: unless it happens to be a template pair, it is rejected
            key = set(zip(tmpl["node1"], tmpl["node2"]))
            if (n - 2, n - 1) in key:
                continue
            match = r"1 row\(s\) are not test pairs"
        with pytest.raises(SubmissionError, match=match):
            task.evaluate(table, options=_opts(name))
    with pytest.raises(SubmissionError, match="split 'train'"):
        task.evaluate(good, "train", options=_opts(name))
    pickled = tmp_path / "preds.pkl"
    good.to_pickle(pickled)
    with pytest.raises(SubmissionError, match="unsupported format"):
        task.evaluate(pickled, options=_opts(name))


def test_unknown_graph(graph, task):
    with pytest.raises(NeuroharnessError, match="not in the prepared vesselgraph store"):
        task.data(_opts("no_such_graph"))


def test_every_baseline_through_the_cli(graph, task, tmp_path, capsys):
    name, *_ = graph
    out = tmp_path / "results"
    assert main(["run", TASK, "--model", "all", "--seeds", "0", "--out", str(out), "--option", f"graph={name}",
                 "--quiet"]) == 0
    records = {json.loads(p.read_text())["model"]["name"]: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(records) == set(task.models)
    scores = {}
    for model, rec in records.items():
        assert rec["task"]["options"] == {"graph": name}
        m, v = rec["metrics"], rec["validation_metrics"]
        assert m["main_score"] == m["roc_auc"] and 0.0 <= m["roc_auc"] <= 1.0
        assert m["n_positives"] == m["n_spatial_negatives"] == m["n_random_negatives"] == len(task.data(_opts(name)).pos_pairs["test"])
        assert v["n_positives"] == len(task.data(_opts(name)).pos_pairs["val"])
        scores[model] = (m["roc_auc"], m["roc_auc_random_negatives"])
    # heuristics: zero parameters; on spatial negatives their only signal is shared neighbours
    for h in ("common-neighbours", "adamic-adar", "resource-allocation"):
        assert records[h]["model"]["n_parameters"] == 0
    # learned models beat chance on the easy random-negative split
    for model in ("mlp-coordinates", "graphsage"):
        assert records[model]["model"]["n_parameters"] > 0
        assert scores[model][1] > 0.8, (model, scores[model])
    capsys.readouterr()
    # a written submission scored through the CLI
    tmpl = tmp_path / "ids.parquet"
    assert main(["tasks", "template", TASK, str(tmpl), "--option", f"graph={name}"]) == 0
    t = pd.read_parquet(tmpl)
    preds = write_predictions(tmp_path / "preds.npz", t["node1"], t["node2"], np.zeros(len(t)))
    capsys.readouterr()
    assert main(["evaluate", TASK, str(preds), "--option", f"graph={name}", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["roc_auc"] == 0.5


def test_models_are_seeded(graph, task):
    name, *_ = graph
    hp = {"steps": 20, "eval_every": 10}
    a = task.run_model("graphsage", 1, options=_opts(name), hyperparameters=hp)
    b = task.run_model("graphsage", 1, options=_opts(name), hyperparameters=hp)
    assert a.metrics == b.metrics and a.validation_metrics == b.validation_metrics
    c = task.run_model("mlp-coordinates", 1, options=_opts(name), hyperparameters=hp)
    d = task.run_model("mlp-coordinates", 2, options=_opts(name), hyperparameters=hp)
    assert c.metrics["roc_auc"] != d.metrics["roc_auc"]
    assert c.hyperparameters["steps"] == 20 and 10 <= c.fitted["best_step"] <= 20
    assert a.split_sha256 == c.split_sha256 == task.split_sha256(_opts(name))  # the split never depends on the seed


def test_split_sha256_digests_the_scored_pairs(graph, task):
    name, *_ = graph
    s = task.data(_opts(name))
    digest = task.split_sha256(_opts(name))
    assert len(digest) == 64 and digest == task.split_sha256(_opts(name))  # stable across calls
    assert digest == split_digest(task.submission_template(options=_opts(name)))
    assert task.split_sha256(_opts(name), "val") != digest
    # another split of the same graph (split seed + 1) digests differently
    from neuroharness.loaders.vesselgraph import open_graph

    ds = open_graph(name)
    other = build_split(ds["edge_index"].values, ds["pos"].values, ds["distance"].values, seed=SPLIT_SEED + 1,
                        graph=name, checksum=s.checksum)
    assert split_digest(task.ids(other, "test")) != digest


def test_records_compare_the_graph_read(graph, task, tmp_path, monkeypatch):
    """A store holding graph A and a store holding A and B give the same record entry and split cache for A."""
    from neuroharness.leaderboards.runner import run
    from neuroharness.loaders import get_loader

    name, nodes, edges, home = graph
    gen = load_script("make_vesselgraph_fixture")
    (one,) = run(TASK, "common-neighbours", seeds=[0], out_dir=tmp_path / "one", options=_opts(name))
    checksum = task.dataset_parts(_opts(name))["vesselgraph"][name]
    store_one = get_loader("vesselgraph").content_sha256()
    path_one = split_cache_path(name, checksum)
    cached_one = load_split(path_one)

    n2, e2, _ = gen.synthetic_graph(300, seed=1)  # the same graph next to another one
    prepare_vesselgraph({name: (nodes, edges), "vgother": (n2, e2)}, tmp_path / "src", tmp_path / "home2", monkeypatch)
    assert sorted(get_loader("vesselgraph").part_checksums()) == sorted([name, "vgother"])
    assert get_loader("vesselgraph").content_sha256() != store_one  # the whole store differs ...
    task.clear_cache()  # ... so read graph A from the new store instead of memory
    (two,) = run(TASK, "common-neighbours", seeds=[0], out_dir=tmp_path / "two", options=_opts(name))
    r1, r2 = (json.loads(p.read_text()) for p in (one, two))
    assert r1["datasets"] == r2["datasets"]  # ... but what the task read does not
    assert r1["datasets"][0]["parts"] == {name: checksum}
    assert r1["split_sha256"] == r2["split_sha256"] and r1["metrics"] == r2["metrics"]
    path = split_cache_path(name, checksum)  # the split cache of A is keyed by A alone
    assert path.is_relative_to(tmp_path / "home2") and path.name == path_one.name
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    cached_two = load_split(path)
    for attr in ("pos_pairs", "neg_pairs", "random_pairs"):
        for k, v in getattr(cached_one, attr).items():
            assert np.array_equal(getattr(cached_two, attr)[k], v)
    task.clear_cache()


def test_a_graph_too_small_for_the_split_fails_clearly(task, tmp_path, monkeypatch):
    # 6 edges: floor(0.1 * 6) = 0 validation pairs
    nodes, edges, _ = load_script("make_vesselgraph_fixture").synthetic_graph(6, seed=0)
    prepare_vesselgraph({"vgtiny": (nodes, edges)}, tmp_path / "src", tmp_path / "home", monkeypatch)
    with pytest.raises(NeuroharnessError, match=f"graph vgtiny: {len(edges)} edges give an empty training, "
                                                "validation or test split; .* needs at least 10 edges"):
        task.data(_opts("vgtiny"))
