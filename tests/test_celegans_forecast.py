"""Forecast task: split rules, scoring by hand, baselines on a fixture-scale store."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

import neuroharness as nh
from neuroharness.loaders import prepare
from neuroharness.tasks.celegans_forecast import (
    CONTEXT, EVAL_STRIDE, _Accumulator, build_splits, eval_windows, worm_splits,
)
from neuroharness.tasks.windows import RaggedActivity, Segment, WindowDataset
from helpers import load_script


def test_worm_split_is_stratified_by_source_and_fixed():
    ids = np.array([f"A/worm{i}" for i in range(10)] + [f"B/worm{i}" for i in range(3)] + ["C/worm0"])
    src = np.array([i.split("/")[0] for i in ids])
    which = worm_splits(ids, src)
    a = [which[i] for i in range(10)]
    assert a.count("test") == 2 and a.count("val") == 1 and a.count("train") == 7
    b = [which[i] for i in range(10, 13)]
    assert sorted(b) == ["test", "train", "val"]
    assert which[13] == "train"  # a source with one worm keeps it for training
    order = sorted(range(10), key=lambda i: hashlib.sha256(ids[i].encode()).hexdigest())
    assert [which[i] for i in order[:2]] == ["test", "test"]


def test_accumulator_by_hand():
    acc = _Accumulator()
    ctx = np.zeros((1, 3, 2), dtype=np.float32)
    ctx[0, -1] = [1.0, 5.0]
    tgt = np.zeros((1, 10, 2), dtype=np.float32)
    tgt[0, :, 0] = 2.0  # neuron 0 goes from 1 to 2: naive error 1 at every step
    pred = np.full((1, 10, 2), 1.5, dtype=np.float32)  # error 0.25 at every step
    mask = np.array([True, False])  # neuron 1 is not labeled: never scored
    acc.add("S", pred, ctx, tgt, mask)
    m = acc.metrics("worms")
    assert m["worms/mse_h1"] == pytest.approx(0.25) and m["worms/naive_mse_h1"] == pytest.approx(1.0)
    assert m["worms/skill_h1"] == pytest.approx(0.75) and m["worms/skill_h10"] == pytest.approx(0.75)
    assert m["worms/skill_h1/S"] == pytest.approx(0.75)


def _fixture_module():
    return load_script("make_celegans_activity_fixture")


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    raw = tmp_path_factory.mktemp("forecast_raw")
    _fixture_module().write_activity_fixture(raw, n_worms=14, seed=1, max_len=1400)
    return prepare("celegans-activity", source=raw, force=True)


@pytest.fixture(scope="module")
def store(store_path):
    return RaggedActivity(store_path)


def test_windows_match_the_store(store):
    seg = Segment(0, 0, int(store.length[0]))
    ds = WindowDataset(store, [seg], context=20, horizon=5, batch_size=8, windows_per_step=0.01, seed=4)
    ctx, tgt, mask = next(iter(ds))
    assert ctx.shape == (8, 20, 302) and tgt.shape == (8, 5, 302) and mask.shape == (8, 302)
    trace = np.nan_to_num(store.worm(0))
    # find each window in the worm: the context must be a contiguous slice followed by the target
    for c, t in zip(ctx, tgt):
        s = int(np.flatnonzero((trace[:-24, :] == c[0]).all(1))[0])
        np.testing.assert_array_equal(trace[s : s + 20], c)
        np.testing.assert_array_equal(trace[s + 20 : s + 25], t)
    np.testing.assert_array_equal(mask[0], store.labeled[0])


def test_window_order_is_seeded_and_worker_independent(store):
    import torch

    segs = [Segment(w, 0, int(store.length[w])) for w in range(len(store))]
    ds = WindowDataset(store, segs, context=30, horizon=1, batch_size=16, windows_per_step=0.01, seed=7)
    digest = lambda c: hashlib.sha1(np.ascontiguousarray(np.asarray(c)).tobytes()).hexdigest()  # noqa: E731
    one = [digest(c) for c, _, _ in ds]
    assert one == [digest(c) for c, _, _ in ds]  # same seed, same epoch
    ds.set_epoch(1)
    assert one != [digest(c) for c, _, _ in ds]
    ds.set_epoch(0)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    assert sorted(digest(c) for c, _, _ in loader) == sorted(one)  # same windows, whatever the workers


def test_splits_cover_every_worm(store):
    splits = build_splits(store)
    worms = splits["worms"]
    ids = [s.worm for part in (worms.train, worms.val, worms.test) for s in part]
    assert sorted(ids) == list(range(len(store)))
    t = splits["time"]
    for tr, va, te in zip(t.train, t.val, t.test):
        assert tr.hi <= va.hi == te.lo and te.hi == store.length[te.worm]


def test_eval_windows_stride(store):
    seg = Segment(0, 0, int(store.length[0]))
    (_, ctx, tgt, _), = list(eval_windows(store, [seg]))
    assert len(ctx) == len(range(0, seg.hi - CONTEXT - 10 + 1, EVAL_STRIDE))
    assert ctx.shape[1:] == (CONTEXT, 302) and tgt.shape[1:] == (10, 302)


def test_naive_has_zero_skill_and_baselines_are_deterministic(store_path):
    task = nh.get_task("celegans-forecast")
    r = task.run_model("naive", 0)["metrics"]
    assert r["worms/skill_h1"] == 0 and r["time/skill_h10"] == 0 and r["main_score"] == 0
    assert r["worms/mse_h1"] == r["worms/naive_mse_h1"] > 0
    assert any(k.startswith("worms/skill_h1/") for k in r)  # per-source breakdown
    small = {"linear-ar": dict(n_windows=3000, iterations=20), "connectome-linear": dict(n_windows=3000, iterations=20), "lstm": dict(steps=20, hidden=16)}
    for name, kw in small.items():
        spec = task.models[name]
        task.models[name] = type(spec)(spec.name, spec.factory, spec.description, kw)
        try:
            a, b = task.run_model(name, 1), task.run_model(name, 1)
            assert a["metrics"] == b["metrics"], name
            assert a["n_parameters"] > 0
            assert np.isfinite(list(a["metrics"].values())).all()
        finally:
            task.models[name] = spec


def test_connectome_linear_reads_only_partners(store_path):
    from neuroharness.tasks.celegans_forecast import ConnectomeLinearModel

    task = nh.get_task("celegans-forecast")
    store, splits, connectome = task.load()
    m = ConnectomeLinearModel(lags=1, n_windows=2000, iterations=10).fit(store, splits["time"], 0, connectome)
    allowed = m._structure.T  # [input j, output i]
    assert (m._W[~allowed] == 0).all()
    assert m.n_parameters == int((m._W != 0).sum()) + 302
    cook = connectome.sel(annotation="cook_2019")
    i, j = 0, 5
    assert allowed[j, i] == bool(cook.chemical.values[j, i] > 0 or cook.gap_junction.values[i, j] > 0)
