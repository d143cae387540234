"""Task vesselgraph-vessel-classification: labels, split, submissions and baselines end to end.

A synthetic graph (scripts/make_vesselgraph_fixture.py, 2,500 nodes) is written as loose CSVs and
prepared once for the module into its own NEUROHARNESS_HOME.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from helpers import load_script, prepare_vesselgraph
from neuroharness.metrics.classification import balanced_accuracy
from neuroharness.tasks import get_task
from neuroharness.tasks.base import split_digest
from neuroharness.tasks.vesselgraph.classification_baselines import class_weights, standardize
from neuroharness.tasks.vesselgraph.vessel_classification import (
    radius_class,
    split_vessels,
    write_predictions,
)

from neuroharness.cli import main
from neuroharness.errors import NeuroharnessError, SubmissionError

TASK = "vesselgraph-vessel-classification"
N_NODES = 2500


# -- pieces without a store ----------------------------------------------------------------------
def test_radius_class_boundaries():
    r = [0.0, 5.0, 5.0001, 13.33, 13.3301, 40.0, np.nan, np.inf]
    assert radius_class(r).tolist() == [0, 0, 1, 1, 2, 2, -1, -1]


def test_split_sizes_and_determinism():
    for n, sizes in ((10, (8, 1, 1)), (25, (20, 2, 3)), (1001, (800, 100, 101))):
        ids = np.arange(100, 100 + n)
        s = split_vessels(ids)
        assert (len(s["train"]), len(s["val"]), len(s["test"])) == sizes
        assert np.array_equal(np.sort(np.concatenate(list(s.values()))), ids)
        assert all(np.all(np.diff(v) > 0) for v in s.values())  # sorted, disjoint within
    a, b = split_vessels(np.arange(50)), split_vessels(np.arange(50))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(split_vessels(np.arange(50), seed=13)["test"], a["test"])


def test_class_weights_and_standardize():
    np.testing.assert_allclose(class_weights(np.array([0, 0, 0, 1])), [4 / 3, 4.0, 0.0])
    x = np.array([[1.0, 2.0], [3.0, np.inf], [5.0, np.nan], [100.0, 4.0]])
    z = standardize(x, train=np.array([0, 1, 2]))
    # column 0: train values 1, 3, 5 -> mean 3, std sqrt(8/3)
    np.testing.assert_allclose(z[:, 0], (x[:, 0] - 3) / np.sqrt(8 / 3), rtol=1e-6)
    # column 1: the only finite training value is 2 (std 0 -> 1): +inf -> 2, NaN -> 2, 4 -> 2
    np.testing.assert_allclose(z[:, 1], [0.0, 0.0, 0.0, 2.0])
    assert z.dtype == np.float32


def test_card():
    task = get_task(TASK)
    card = task.card
    assert (card.name, card.version, card.main_metric) == (TASK, "1.0", "balanced_accuracy")
    assert card.implementation == "neuroharness.tasks.vesselgraph.vessel_classification:VesselGraphVesselClassification"
    assert all(m.factory.startswith("neuroharness.tasks.vesselgraph.classification_baselines:") for m in card.models)
    assert card.higher_is_better
    assert card.options["graph"].default == "BALBc_no1"
    assert [(d.name, d.version) for d in card.datasets] == [("vesselgraph", "1.0")]
    assert card.chance["balanced_accuracy"].startswith("1/3")
    assert "not retrieved" in " ".join(card.references)
    assert "seed" in card.split and "12" in card.split
    assert set(task.models) == {"majority", "mlp", "graphsage"}
    assert {"balanced_accuracy", "accuracy", "recall/0", "recall/1", "recall/2"} == {m.name for m in card.metrics}


# -- a prepared synthetic graph ------------------------------------------------------------------
@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """(graph name, edges DataFrame as written): the synthetic graph, prepared into a fresh home."""
    from neuroharness.loaders import get_loader
    from neuroharness.loaders.vesselgraph import graph_index, open_vesselgraph

    gen = load_script("make_vesselgraph_fixture")
    root = tmp_path_factory.mktemp("vg_classify")
    nodes, edges, _ = gen.synthetic_graph(N_NODES, seed=0)
    gen.write_graph(root / "src", "vgtest", nodes, edges)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROHARNESS_HOME", str(root / "home"))
        get_loader("vesselgraph").prepare(source=root / "src")
        (name,) = graph_index(open_vesselgraph())["graph"]
        yield name, edges


@pytest.fixture(scope="module")
def task():
    return get_task(TASK)


def _opts(name: str) -> dict:
    return {"graph": name}


def _hand_labels(edges: pd.DataFrame) -> np.ndarray:
    r = edges["minRadiusAvg"].to_numpy()
    return np.select([r <= 5, r <= 13.33], [0, 1], 2)


def test_template_sizes_and_labels_match_the_csv(graph, task):
    name, edges = graph
    n = len(edges)
    assert np.isfinite(edges["minRadiusAvg"]).all()
    sizes = {}
    for split in ("val", "test"):
        tmpl = task.submission_template(split, options=_opts(name))
        assert list(tmpl.columns) == ["vessel"] and tmpl["vessel"].dtype == np.int64
        sizes[split] = len(tmpl)
    assert sizes == {"val": n // 10, "test": n - int(0.8 * n) - n // 10}
    data = task.data(_opts(name))
    assert len(data.split["train"]) == int(0.8 * n)
    # labels are minRadiusAvg bucketed by hand, row k = CSV id k
    assert edges["id"].tolist() == list(range(n))
    hand = _hand_labels(edges)
    assert np.array_equal(data.label, hand)
    assert (hand == 2).sum() > 0 and (hand == 1).sum() > 0 and (hand == 0).sum() > (hand == 1).sum()
    # the line graph of G: sum over nodes of d(d-1) directed edges
    deg = np.bincount(edges[["node1id", "node2id"]].to_numpy().ravel())
    csr = data.line_graph_csr()
    assert csr.num_nodes == n and csr.num_edges == int((deg * (deg - 1)).sum())


def test_perfect_and_constant_submissions(graph, task, tmp_path):
    name, edges = graph
    ids = task.submission_template(options=_opts(name))["vessel"].to_numpy()
    truth = _hand_labels(edges)[ids]
    assert set(truth) == {0, 1, 2}  # all three classes in the synthetic test split
    for suffix in (".parquet", ".npz"):
        path = write_predictions(tmp_path / f"perfect{suffix}", ids[::-1], truth[::-1])  # order does not matter
        m = task.evaluate(path, options=_opts(name))
        assert m["balanced_accuracy"] == m["accuracy"] == m["main_score"] == 1.0
        assert [m[f"recall/{c}"] for c in range(3)] == [1.0, 1.0, 1.0]
        assert [m[f"count/{c}"] for c in range(3)] == [int((truth == c).sum()) for c in range(3)]
    for c in range(3):
        m = task.evaluate(pd.DataFrame({"vessel": ids, "label": np.full(len(ids), c)}), options=_opts(name))
        assert m["balanced_accuracy"] == pytest.approx(1 / 3)
        assert m["accuracy"] == pytest.approx((truth == c).mean())
    # one wrong label in class 2 (n2 vessels): recall/2 = (n2 - 1) / n2
    pred = truth.copy()
    k = np.flatnonzero(truth == 2)[0]
    pred[k] = 0
    m = task.evaluate(pd.DataFrame({"vessel": ids, "label": pred}), options=_opts(name))
    n2 = int((truth == 2).sum())
    assert m["recall/2"] == pytest.approx((n2 - 1) / n2)
    assert m["balanced_accuracy"] == pytest.approx((2 + (n2 - 1) / n2) / 3)
    assert m["accuracy"] == pytest.approx(1 - 1 / len(ids))


@pytest.mark.parametrize("case, match", [
    ("no_label", r"missing column\(s\) \['label'\]"),
    ("string_ids", "column 'vessel' has dtype"),
    ("nan_label", r"column 'label' has 1 NaN/inf value\(s\), first at row 3"),
    ("float_label", "expected an integer dtype"),
    ("label_3", r"row 0 \(vessel \d+\), column 'label': value 3 out of range; expected 0, 1 or 2"),
    ("negative", r"row 5 \(vessel \d+\), column 'label': value -1 out of range"),
    ("out_of_range", r"row 0, column 'vessel': value \d+ out of range; graph .* has vessel ids 0\.\.\d+"),
    ("duplicate", r"\d+ rows found, more than the \d+ rows expected"),  # refused before reading
    ("missing", r"1 of \d+ test vessels of graph .* missing, e.g. vessel \d+"),
    ("train_vessel", r"\d+ rows found, more than the \d+ rows expected"),
    ("bool_label", "column 'label' has dtype bool"),
])
def test_bad_submissions(graph, task, tmp_path, case, match):
    name, _ = graph
    ids = task.submission_template(options=_opts(name))["vessel"].to_numpy()
    df = pd.DataFrame({"vessel": ids, "label": np.zeros(len(ids), dtype=np.int64)})
    if case == "no_label":
        df = df[["vessel"]]
    elif case == "string_ids":
        df["vessel"] = df["vessel"].astype(str)
    elif case == "nan_label":
        df["label"] = df["label"].astype(float)
        df.loc[3, "label"] = np.nan
    elif case == "float_label":
        df["label"] = df["label"].astype(float)
    elif case == "label_3":
        df.loc[0, "label"] = 3
    elif case == "negative":
        df.loc[5, "label"] = -1
    elif case == "out_of_range":
        df.loc[0, "vessel"] = task.data(_opts(name)).n_vessels
    elif case == "duplicate":
        df = pd.concat([df, df.iloc[[2]]], ignore_index=True)
    elif case == "missing":
        df = df.iloc[1:]
    elif case == "train_vessel":
        train = task.data(_opts(name)).split["train"]
        df = pd.concat([df, pd.DataFrame({"vessel": [train[0]], "label": [0]})], ignore_index=True)
    elif case == "bool_label":
        df["label"] = df["label"].astype(bool)
    path = tmp_path / "bad.parquet"
    df.to_parquet(path)
    with pytest.raises(SubmissionError, match=match) as err:
        task.evaluate(path, options=_opts(name))
    assert str(path) in str(err.value)


def test_pickle_and_unknown_graph_are_refused(graph, task, tmp_path):
    name, _ = graph
    p = tmp_path / "preds.pkl"
    pd.DataFrame({"vessel": [0], "label": [0]}).to_pickle(p)
    with pytest.raises(SubmissionError, match="pickle is never accepted"):
        task.evaluate(p, options=_opts(name))
    with pytest.raises(NeuroharnessError, match=f"'BALBc_no2' is not in the prepared vesselgraph store .* holds {name}"):
        task.submission_template(options=_opts("BALBc_no2"))
    with pytest.raises(SubmissionError, match="split 'train'"):
        task.submission_template("train", options=_opts(name))


def test_cli_template_and_evaluate(graph, task, tmp_path, capsys):
    name, edges = graph
    ids_path = tmp_path / "ids.parquet"
    assert main(["tasks", "template", TASK, str(ids_path), "--option", f"graph={name}"]) == 0
    ids = pd.read_parquet(ids_path)["vessel"].to_numpy()
    path = write_predictions(tmp_path / "p.npz", ids, _hand_labels(edges)[ids])
    capsys.readouterr()
    assert main(["evaluate", TASK, str(path), "--option", f"graph={name}", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["main_score"] == 1.0


# -- baselines through the runner ----------------------------------------------------------------
def test_baselines_through_the_runner(graph, task, tmp_path):
    from neuroharness.leaderboards.runner import run

    name, edges = graph
    n_test = len(task.submission_template(options=_opts(name)))
    records = {}
    for model in ("majority", "mlp", "graphsage"):
        (path,) = run(TASK, model, seeds=[0], out_dir=tmp_path, options={"graph": name})
        records[model] = json.loads(path.read_text())
    for model, rec in records.items():
        assert rec["task"]["options"] == {"graph": name}
        assert rec["datasets"][0]["name"] == "vesselgraph" and len(rec["datasets"][0]["content_sha256"]) == 64
        assert rec["datasets"][0]["parts"] == task.dataset_parts(_opts(name))["vesselgraph"]
        assert rec["split_sha256"] == task.split_sha256(_opts(name))
        m = rec["metrics"]
        assert m["main_score"] == m["balanced_accuracy"]
        assert m["n_vessels"] == n_test and sum(m[f"count/{c}"] for c in range(3)) == n_test
        assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in m.values())
        assert 0 <= m["balanced_accuracy"] <= 1 and m["chance_balanced_accuracy"] == pytest.approx(1 / 3)
        assert rec["validation_metrics"]["n_vessels"] == len(edges) // 10
    maj = records["majority"]
    assert maj["metrics"]["balanced_accuracy"] == pytest.approx(1 / 3)
    assert maj["model"]["hyperparameters"] == {} and maj["model"]["fitted"] == {"majority": 0}  # class 0 is the majority
    assert maj["metrics"]["accuracy"] == maj["metrics"]["chance_accuracy"] == pytest.approx(maj["metrics"]["count/0"] / n_test)
    assert records["mlp"]["model"]["n_parameters"] == (3 * 64 + 64) + (64 * 64 + 64) + (64 * 3 + 3)
    # SAGEConv(a, b): lin_l a*b + b (bias), lin_r a*b
    assert records["graphsage"]["model"]["n_parameters"] == (3 * 64 * 2 + 64) + (64 * 3 * 2 + 3)
    hp, fitted = records["graphsage"]["model"]["hyperparameters"], records["graphsage"]["model"]["fitted"]
    assert hp["num_neighbors"] == [10, 10] and 1 <= fitted["best_epoch"] <= hp["epochs"]


def test_graphsage_is_seeded(graph, task):
    name, _ = graph
    hp = {"epochs": 2}
    a = task.run_model("graphsage", 3, options=_opts(name), hyperparameters=hp)
    b = task.run_model("graphsage", 3, options=_opts(name), hyperparameters=hp)
    assert a.metrics == b.metrics and a.validation_metrics == b.validation_metrics
    # the split never depends on the model seed
    c = task.run_model("majority", 7, options=_opts(name))
    assert a.metrics["n_vessels"] == c.metrics["n_vessels"] and a.split_sha256 == c.split_sha256



def test_split_sha256_digests_the_test_vessels(graph, task):
    from dataclasses import replace

    name, _ = graph
    data = task.data(_opts(name))
    digest = task.split_sha256(_opts(name))
    assert len(digest) == 64 and digest == task.split_sha256(_opts(name))  # stable across calls
    assert digest == split_digest(task.submission_template(options=_opts(name)))
    assert task.split_sha256(_opts(name), "val") != digest
    other = replace(data, split=split_vessels(np.flatnonzero(data.label >= 0), seed=13))  # another split
    assert split_digest(task.ids(other, "test")) != digest


def test_records_compare_the_graph_read(graph, task, tmp_path, monkeypatch):
    """A store holding graph A and a store holding A and B give the same record entry for A."""
    from neuroharness.leaderboards.runner import run
    from neuroharness.loaders import get_loader

    name, edges = graph
    gen = load_script("make_vesselgraph_fixture")
    (one,) = run(TASK, "majority", seeds=[0], out_dir=tmp_path / "one", options=_opts(name))
    store_one = get_loader("vesselgraph").content_sha256()
    nodes, again, _ = gen.synthetic_graph(N_NODES, seed=0)
    assert again.equals(edges)
    n2, e2, _ = gen.synthetic_graph(300, seed=1)  # the same graph next to another one
    prepare_vesselgraph({name: (nodes, edges), "vgother": (n2, e2)}, tmp_path / "src", tmp_path / "home2", monkeypatch)
    assert get_loader("vesselgraph").content_sha256() != store_one  # the whole store differs ...
    task.clear_cache()  # ... so read graph A from the new store instead of memory
    (two,) = run(TASK, "majority", seeds=[0], out_dir=tmp_path / "two", options=_opts(name))
    r1, r2 = (json.loads(p.read_text()) for p in (one, two))
    assert r1["datasets"] == r2["datasets"]  # ... but what the task read does not
    assert r1["datasets"][0]["parts"] == {name: get_loader("vesselgraph").part_checksums()[name]}
    assert r1["split_sha256"] == r2["split_sha256"] and r1["metrics"] == r2["metrics"]
    task.clear_cache()


def test_a_graph_too_small_for_the_split_fails_clearly(task, tmp_path, monkeypatch):
    # 6 vessels: floor(0.1 * 6) = 0 validation vessels
    nodes, edges, _ = load_script("make_vesselgraph_fixture").synthetic_graph(6, seed=0)
    prepare_vesselgraph({"vgtiny": (nodes, edges)}, tmp_path / "src", tmp_path / "home", monkeypatch)
    with pytest.raises(NeuroharnessError, match=f"graph vgtiny: {len(edges)} vessels with a finite minRadiusAvg "
                                                "give an empty train, validation or test split"):
        task.data(_opts("vgtiny"))

# -- the baselines can learn (in-memory data, no store) ------------------------------------------
@pytest.fixture(scope="module")
def learnable():
    """A random vessel-like graph whose labels are buckets of (a) a vessel's own first feature and
    (b) the mean first feature of its line-graph neighbours (its own being uninformative)."""
    from neuroharness.tasks.graph.line_graph import line_graph
    from neuroharness.tasks.vesselgraph.vessel_classification import VesselData

    rng = np.random.default_rng(0)
    n = 1500
    stubs = np.repeat(np.arange(n), rng.choice([3, 1, 4], size=n, p=[0.8, 0.1, 0.1]))
    rng.shuffle(stubs)
    stubs = stubs[: len(stubs) // 2 * 2].reshape(-1, 2)
    u, v = stubs.min(1), stubs.max(1)
    key = np.unique(u[u != v] * n + v[u != v])
    ei = np.stack([key // n, key % n])
    e = ei.shape[1]
    f = rng.normal(size=e)
    lg = line_graph(ei, n)
    nbr_mean = np.bincount(lg[1], weights=f[lg[0]], minlength=e) / np.maximum(np.bincount(lg[1], minlength=e), 1)

    def buckets(x):
        lo, hi = np.quantile(x, [0.5, 0.85])
        return (x > lo).astype(np.int64) + (x > hi)

    feat = np.column_stack([f, rng.uniform(1, 2, e), rng.uniform(1, 2, e)])
    split = split_vessels(np.arange(e))
    return {kind: VesselData("t", "-", feat, buckets(x), split, ei.T.copy(), n)
            for kind, x in (("own", f), ("neighbours", nbr_mean))}


def _test_score(data, model):
    test = data.split["test"]
    model.fit(data.without_test_labels(), 0)
    return balanced_accuracy(data.label[test], model.predict(data, test))


def test_mlp_learns_labels_of_its_inputs(learnable):
    from neuroharness.tasks.vesselgraph.classification_baselines import MLPModel

    assert _test_score(learnable["own"], MLPModel(epochs=20, batch_size=64)) > 0.85


def test_graphsage_learns_labels_of_the_neighbourhood(learnable):
    from neuroharness.tasks.vesselgraph.classification_baselines import GraphSAGEModel, MLPModel

    data = learnable["neighbours"]
    sage = _test_score(data, GraphSAGEModel(epochs=20, batch_size=64, num_layers=1, num_neighbors=(10,)))
    mlp = _test_score(data, MLPModel(epochs=20, batch_size=64))
    assert sage > 0.8 and mlp < 0.45  # only the line graph carries the signal
