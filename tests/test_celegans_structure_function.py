"""The structure-function task on the real atlas and connectome."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import neuroharness as nh
from neuroharness.errors import UnknownNameError
from neuroharness.tasks.celegans.structure_function import split_of
from neuroharness.tasks.celegans.structure_function_baselines import MultiHopModel

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("cect") is None or importlib.util.find_spec("wormneuroatlas") is None,
    reason="needs the cect and wormneuroatlas wheels installed (pip install --no-deps cect==0.3.5 wormneuroatlas==0.0.7.3)",
)


@pytest.fixture(scope="module")
def task():
    return nh.get_task("celegans-structure-function")


@pytest.fixture(scope="module")
def data(task):
    d = task.data()
    return d.inputs, d.splits


def test_split_sizes(data):
    _, splits = data
    sizes = {k: (len(v), int(v.significant.sum())) for k, v in splits.items()}
    # 24074 measured wt pairs minus 173 self-pairs; 1310 - 159 significant self-pairs = 1150
    assert sum(n for n, _ in sizes.values()) == 23901
    assert sum(p for _, p in sizes.values()) == 1150
    assert sizes == {"train": (15784, 771), "val": (1732, 55), "test": (6385, 324)}


def test_split_separates_stimulated_neurons_and_classes(data):
    inputs, splits = data
    classes = inputs.connectome.neuron_class.values.astype(str)
    stim = {k: set(v.stimulated.tolist()) for k, v in splits.items()}
    assert not stim["train"] & stim["test"] and not stim["train"] & stim["val"] and not stim["val"] & stim["test"]
    cls = {k: {classes[j] for j in v} for k, v in stim.items()}
    assert not cls["train"] & cls["test"]
    assert all(split_of(c) == "test" for c in cls["test"])
    for p in splits.values():
        assert (p.responding != p.stimulated).all()
        assert np.isfinite(p.amplitude).all()


def test_split_rule_is_fixed():
    # sha256("AVA") etc. mod 10; changing these changes the task version
    assert [split_of(c) for c in ("AVA", "ASH", "RIM", "AWC")] == [split_of(c) for c in ("AVA", "ASH", "RIM", "AWC")]
    import hashlib

    for c in ("AVA", "ASH", "RIM", "AWC", "VA"):
        b = int(hashlib.sha256(c.encode()).hexdigest(), 16) % 10
        assert split_of(c) == ("test" if b < 2 else "val" if b == 2 else "train")


def test_direct_model_scores_are_connectome_weights(task, data):
    inputs, splits = data
    model = task.get_model("connectome-direct").build().fit(inputs, splits["train"], splits["val"], 0)
    test = splits["test"]
    score = model.predict(inputs, test.without_targets())["score"]
    cook = inputs.connectome.sel(annotation="cook_2019")
    names = np.asarray(inputs.neurons)
    for k in range(0, len(test), 997):
        i, j = test.responding[k], test.stimulated[k]
        expected = float(cook.chemical.sel(pre=names[j], post=names[i]) + cook.gap_junction.sel(pre=names[j], post=names[i]))
        assert score[k] == pytest.approx(expected)


def test_multihop_one_hop_is_the_normalized_adjacency(data):
    inputs, _ = data
    m = MultiHopModel()
    S = m._series(inputs, 1, 1.0)
    chem, gap = inputs.weights()
    A = np.log1p(chem + gap)
    assert np.max(np.abs(np.linalg.eigvals(S))) == pytest.approx(1.0)
    np.testing.assert_allclose(S * np.max(np.abs(np.linalg.eigvals(A))), A, rtol=1e-10)


@pytest.mark.parametrize("model", ["chance", "connectome-direct", "connectome-multihop", "gnn-link"])
def test_same_seed_same_metrics(task, model):
    a = task.run_model(model, seed=1)
    b = task.run_model(model, seed=1)
    assert a.metrics == b.metrics and a.validation_metrics == b.validation_metrics
    assert a.metrics["n_pairs"] == 6385 and a.metrics["main_score"] == a.metrics["roc_auc"]
    assert a.split_sha256 == b.split_sha256


def test_baselines_beat_chance_in_order(task):
    auc = {m: task.run_model(m, seed=0).metrics["roc_auc"] for m in ["chance", "connectome-direct", "connectome-multihop"]}
    assert abs(auc["chance"] - 0.5) < 0.03
    assert auc["connectome-direct"] > 0.55 and auc["connectome-multihop"] > auc["connectome-direct"]


def test_unknown_model_lists_valid(task):
    with pytest.raises(UnknownNameError, match="valid models: chance, connectome-direct, connectome-multihop, gnn-link"):
        task.get_model("transformer")


def test_fitted_facts_are_kept_apart_from_hyperparameters(task):
    r = task.run_model("connectome-multihop", seed=0)
    assert r.hyperparameters == {"annotation": "cook_2019", "hops": [1, 2, 3, 4], "alphas": [0.25, 0.5, 0.75, 1.0]}
    assert set(r.fitted) == {"K", "alpha"} and r.fitted["K"] in (1, 2, 3, 4)
    assert r.n_parameters == 4


def test_hyperparameter_overrides_reach_the_model(task):
    r = task.run_model("connectome-multihop", seed=0, hyperparameters={"hops": [2], "alphas": [0.5]})
    assert r.hyperparameters["hops"] == [2] and r.fitted == {"K": 2, "alpha": 0.5}


def test_split_sha256_digests_the_scored_pairs_in_order(task):
    from neuroharness.tasks.base import split_digest

    ids = task.submission_template("test")
    assert task.split_sha256() == split_digest(ids) == task.run_model("chance", seed=0).split_sha256
    assert split_digest(ids.iloc[::-1]) != split_digest(ids)  # order matters
    assert split_digest(ids.iloc[1:]) != split_digest(ids)
    assert task.split_sha256(split="val") != task.split_sha256()
