"""Forecast task: split rules, scoring by hand, baselines on a fixture-scale store, small stores."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

import neuroharness as nh
from neuroharness.cli import main
from neuroharness.errors import NeuroharnessError, SubmissionError
from neuroharness.loaders import get_loader, prepare
from neuroharness.tasks.celegans import forecast
from neuroharness.tasks.celegans.forecast import (
    CONTEXT, EVAL_STRIDE, ForecastSplit, _Accumulator, build_splits, check_protocols, eval_windows, worm_splits,
)
from neuroharness.tasks.celegans.windows import RaggedActivity, Segment, WindowDataset
from helpers import load_script, patch_zip


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


# naive metrics of the 14-worm fixture below, computed with the code before the task-template refactor
NAIVE_BEFORE = {"worms/mse_h1": 0.015918676153645114, "time/mse_h10": 0.30477164838499626}


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
    run = task.run_model("naive", 0)
    r = run.metrics
    assert r["worms/skill_h1"] == 0 and r["time/skill_h10"] == 0 and r["main_score"] == 0
    assert r["worms/mse_h1"] == r["worms/naive_mse_h1"] > 0
    assert any(k.startswith("worms/skill_h1/") for k in r)  # per-source breakdown
    assert run.validation_metrics == {} and run.n_parameters == 0 and run.hyperparameters == {} and run.fitted == {}
    # the values the code before the task-template refactor gave on this fixture
    assert r["worms/mse_h1"] == pytest.approx(NAIVE_BEFORE["worms/mse_h1"], rel=1e-12)
    assert r["time/mse_h10"] == pytest.approx(NAIVE_BEFORE["time/mse_h10"], rel=1e-12)
    small = {"linear-ar": dict(n_windows=3000, iterations=20), "connectome-linear": dict(n_windows=3000, iterations=20), "lstm": dict(steps=20, hidden=16)}
    for name, kw in small.items():
        a, b = task.run_model(name, 1, hyperparameters=kw), task.run_model(name, 1, hyperparameters=kw)
        assert a.metrics == b.metrics, name
        assert a.n_parameters > 0
        assert np.isfinite(list(a.metrics.values())).all()
        assert {k: a.hyperparameters[k] for k in kw} == kw


def test_connectome_linear_reads_only_partners(store_path):
    from neuroharness.tasks.celegans.forecast_baselines import ConnectomeLinearModel

    task = nh.get_task("celegans-forecast")
    data = task.data()
    connectome = data.connectome
    m = ConnectomeLinearModel(lags=1, n_windows=2000, iterations=10).fit(
        data.store, data.splits["time"].training_view(), 0, connectome)
    allowed = m._structure.T  # [input j, output i]
    assert (m._W[~allowed] == 0).all()
    assert m.n_parameters == int((m._W != 0).sum()) + 302
    cook = connectome.sel(annotation="cook_2019")
    i, j = 0, 5
    assert allowed[j, i] == bool(cook.chemical.values[j, i] > 0 or cook.gap_junction.values[i, j] > 0)


def test_ids_are_the_scored_windows_in_order(store_path):
    task = nh.get_task("celegans-forecast")
    data = task.data()
    ids = task.ids(data, "test")
    assert list(ids.columns) == ["protocol", "worm", "start"] and ids["start"].dtype == np.int64
    expected = []
    for name in ("worms", "time"):
        for seg, ctx, _, _ in eval_windows(data.store, data.splits[name].test):
            starts = seg.lo + np.arange(0, seg.hi - seg.lo - CONTEXT - 10 + 1, EVAL_STRIDE)
            assert len(starts) == len(ctx)
            expected += [(name, str(data.store.worm_ids[seg.worm]), int(s)) for s in starts]
    assert list(ids.itertuples(index=False, name=None)) == expected
    assert set(ids.protocol) == {"worms", "time"}
    assert task.submission_template().equals(ids)
    with pytest.raises(SubmissionError, match="no scored 'val' split"):
        task.ids(data, "val")


def test_split_sha256_is_stable_and_follows_the_split(store_path, monkeypatch):
    task = nh.get_task("celegans-forecast")
    first = task.split_sha256()
    assert first == task.split_sha256() == task.run_model("naive", 0).split_sha256
    monkeypatch.setattr(forecast, "EVAL_STRIDE", EVAL_STRIDE + 1)
    assert task.split_sha256() != first


def test_fit_copies_the_model_per_protocol_on_training_views(store_path):
    task = nh.get_task("celegans-forecast")
    data = task.data()
    seen = []

    class Spy:
        n_parameters = 0

        def __init__(self):
            self.size = 3

        def fit(self, store, split, seed, connectome):
            seen.append((split, seed))
            self.n_parameters = self.size * (1 + len(seen))
            return self

    unfitted = Spy()
    fitted = task.fit(unfitted, data, 5)
    assert unfitted.n_parameters == 0  # the model passed in is left unfitted
    assert set(fitted.models) == {"worms", "time"} and fitted.models["worms"] is not fitted.models["time"]
    assert fitted.n_parameters == 9  # the largest of the two
    assert [seed for _, seed in seen] == [5, 5]
    assert all(split.test == [] and split.train for split, _ in seen)  # no test segment reaches the model


class _Store:
    """Just what check_protocols reads."""

    def __init__(self, sources, lengths):
        self.source = np.asarray(sources)
        self.length = np.asarray(lengths)

    def __len__(self):
        return len(self.source)


def test_check_protocols_names_sources_with_too_few_worms():
    store = _Store(["A", "B", "C"], [1000, 1000, 1000])
    splits = {"worms": ForecastSplit([Segment(w, 0, 1000) for w in range(3)], [], []),
              "time": ForecastSplit([Segment(w, 0, 450) for w in range(3)], [], [Segment(w, 500, 1000) for w in range(3)])}
    with pytest.raises(NeuroharnessError, match=r"protocol 'worms': no held-out test worm: a source needs at least 2 "
                       r"worms .* every source of the celegans-activity store \(3 worms in 3 sources\) has fewer: "
                       r"A \(1\), B \(1\), C \(1\); prepare a fuller store"):
        check_protocols(store, splits)


def test_check_protocols_needs_a_full_window():
    store = _Store(["A", "A"], [300, 300])
    short = {"worms": ForecastSplit([Segment(1, 0, 300)], [], [Segment(0, 0, 300)]),
             "time": ForecastSplit([Segment(w, 0, 135) for w in range(2)], [], [Segment(w, 150, 300) for w in range(2)])}
    check_protocols(store, {**short, "time": short["worms"]})  # a 300-sample test worm holds a 210-sample window
    with pytest.raises(NeuroharnessError, match=r"protocol 'time': no test window .* the second half of every worm "
                       r"has fewer than 210 samples .* worms need at least 420 samples; the longest second half has 150"):
        check_protocols(store, short)
    tiny = {"worms": ForecastSplit([Segment(1, 0, 300)], [], [Segment(0, 0, 100)]), "time": short["worms"]}
    with pytest.raises(NeuroharnessError, match=r"protocol 'worms': no test window .* every held-out test worm \(1\) "
                       r"has fewer than 210 samples \(context 200 \+ horizon 10\); the longest has 100"):
        check_protocols(store, tiny)


def test_run_on_a_store_of_one_worm_per_source_fails_clearly(tmp_path, monkeypatch, capsys):
    """One worm per source leaves no held-out test worm: the CLI says so instead of a KeyError traceback."""
    connectome = get_loader("celegans-connectome").ensure()  # in the session's cache (downloaded once)
    home = tmp_path / "home"
    (home / "datasets" / "celegans-connectome").mkdir(parents=True)
    (home / "datasets" / "celegans-connectome" / connectome.name).symlink_to(connectome)
    monkeypatch.setenv("NEUROHARNESS_HOME", str(home))
    raw = tmp_path / "raw"
    fixture = _fixture_module()
    assert set(fixture.worm_counts(12).values()) == {1}
    fixture.write_activity_fixture(raw, n_worms=12, seed=1, max_len=1400)
    prepare("celegans-activity", source=raw)
    capsys.readouterr()
    assert main(["run", "celegans-forecast", "--model", "naive", "--seeds", "0", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: task celegans-forecast, split protocol 'worms': no held-out test worm")
    assert "12 worms in 12 sources" in err and "Dag2023 (1)" in err and "Lin2023 (1)" in err
    assert "prepare a fuller store" in err and "KeyError" not in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


# -- prediction files ---------------------------------------------------------------
def _model_predictions(task, data, name, seed, hyperparameters=None):
    """The test-window predictions of a fitted card model, in template order (as score_model makes them)."""
    fitted = task.fit(task.build_model(name, hyperparameters), data, seed)
    out = []
    for protocol in forecast.SPLITS:
        for _, ctx, _, mask in eval_windows(data.store, data.splits[protocol].test):
            out.append(fitted.models[protocol].predict(ctx, mask, 10))
    return np.concatenate(out)


@pytest.fixture(scope="module")
def naive_file(store_path, tmp_path_factory):
    task = nh.get_task("celegans-forecast")
    data = task.data()
    path = tmp_path_factory.mktemp("forecast_sub") / "naive.npz"
    template = task.submission_template()
    return forecast.write_predictions(path, template, _model_predictions(task, data, "naive", 0))


def _arrays(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _save(path, **arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def test_submission_scores_identically_to_run_model(store_path, naive_file, tmp_path):
    task = nh.get_task("celegans-forecast")
    assert task.has_validation is False
    assert task.evaluate(naive_file) == task.run_model("naive", 0).metrics
    kw = dict(n_windows=3000, iterations=20)
    path = forecast.write_predictions(tmp_path / "ar.npz", task.submission_template(),
                                      _model_predictions(task, task.data(), "linear-ar", 1, kw))
    assert _arrays(path)["prediction"].dtype == np.float32
    assert task.evaluate(path) == task.run_model("linear-ar", 1, hyperparameters=kw).metrics
    with pytest.raises(SubmissionError, match="no validation split"):
        task.evaluate(path, "val")


def test_submission_rows_in_any_order_and_nan_on_unlabeled_neurons(store_path, naive_file, tmp_path):
    task = nh.get_task("celegans-forecast")
    data = task.data()
    a = _arrays(naive_file)
    want = task.evaluate(naive_file)
    perm = np.random.default_rng(0).permutation(len(a["start"]))
    shuffled = {k: v[perm] for k, v in a.items()}
    assert task.evaluate(_save(tmp_path / "shuffled.npz", **shuffled)) == want
    assert task.evaluate(dict(shuffled)) == want  # the in-memory form
    # NaN (or anything) on neurons a worm does not label is ignored
    pred = a["prediction"].copy()
    index = {w: i for i, w in enumerate(data.store.worm_ids)}
    for r, worm in enumerate(a["worm"]):
        pred[r][:, ~data.store.labeled[index[str(worm)]]] = np.nan
    assert task.evaluate(_save(tmp_path / "nan_unlabeled.npz", **{**a, "prediction": pred})) == want
    half = task.evaluate(_save(tmp_path / "f16.npz", **{**a, "prediction": a["prediction"].astype(np.float16)}))
    assert half["worms/mse_h1"] == pytest.approx(want["worms/mse_h1"], rel=1e-2)


def test_bad_submissions_name_the_file_and_field(store_path, naive_file, tmp_path):
    task = nh.get_task("celegans-forecast")
    data = task.data()
    a = _arrays(naive_file)
    n = len(a["start"])

    def refused(name, pattern, **arrays):
        path = _save(tmp_path / name, **arrays)
        with pytest.raises(SubmissionError, match=pattern) as e:
            task.evaluate(path)
        assert str(e.value).startswith(str(path) + ":"), str(e.value)

    drop = {k: v[1:] for k, v in a.items()}
    refused("missing.npz", rf"1 of {n} test windows missing, e\.g\. \(protocol={a['protocol'][0]}, "
            rf"worm={a['worm'][0]}, start={a['start'][0]}\)", **drop)
    extra = {k: np.concatenate([v, v[:1]]) for k, v in a.items()}
    extra["start"][-1] = 10**6
    refused("extra.npz", rf"the id fields have {n + 1} rows, more than the {n} test windows of the template .*"
            "nothing was loaded", **extra)  # from the headers
    other = {k: v.copy() for k, v in a.items()}
    other["start"][0] = 10**6
    refused("other.npz", rf"1 row\(s\) are not test windows, e\.g\. \(protocol={a['protocol'][0]}, "
            rf"worm={a['worm'][0]}, start=1000000\); expected exactly the {n} windows of the template "
            r"\(first such row: 0\)", **other)
    unknown = {k: v.copy() for k, v in a.items()}
    unknown["worm"] = unknown["worm"].astype("<U40")
    unknown["worm"][4] = "Nobody2099/worm9"
    unknown["worm"][7] = "Nobody2099/worm9"
    unknown["protocol"] = unknown["protocol"].astype("<U10")
    refused("unknown_worm.npz", r"row 4, column 'worm': 'Nobody2099/worm9' is unknown \(2 row\(s\) with unknown "
            r"names\); expected one of the \d+ worm ids of the celegans-activity store", **unknown)
    unknown["protocol"][2] = "later"
    refused("unknown_protocol.npz", r"row 2, column 'protocol': 'later' is unknown .*expected a split protocol, "
            r"'worms' or 'time'", **unknown)
    negative = {k: v.copy() for k, v in a.items()}
    negative["start"][5] = -3
    refused("negative.npz", r"row 5, column 'start': value -3 out of range; a sample index in the worm, >= 0", **negative)
    dup = {k: np.concatenate([v[1:], v[1:2]]) for k, v in a.items()}
    refused("dup.npz", r"appears more than once", **dup)
    refused("float_start.npz", r"column 'start' has dtype float64", **{**a, "start": a["start"].astype(float)})
    # NaN on a labeled neuron: the message names the row, window, step and neuron
    pred = a["prediction"].copy()
    w = {wid: i for i, wid in enumerate(data.store.worm_ids)}[str(a["worm"][3])]
    neuron = int(np.flatnonzero(data.store.labeled[w])[0])
    pred[3, 4, neuron] = np.nan
    refused("nan.npz", rf"field 'prediction' row 3 \(protocol={a['protocol'][3]}, worm={a['worm'][3]}, "
            rf"start={a['start'][3]}\): value nan at step 5, neuron {neuron}, which is labeled", **{**a, "prediction": pred})
    pred[3, 4, neuron] = np.inf
    refused("inf.npz", r"field 'prediction' row 3 .*value inf", **{**a, "prediction": pred})
    refused("shape.npz", rf"field 'prediction' has shape \({n}, 9, 302\); expected \(n_windows, 10, 302\)",
            **{**a, "prediction": a["prediction"][:, :9]})
    refused("rows.npz", rf"field 'prediction' has {n - 1} rows but the id fields .* have {n}",
            **{**a, "prediction": a["prediction"][1:]})
    refused("int.npz", r"field 'prediction' has dtype int64; expected float16, float32 or float64",
            **{**a, "prediction": a["prediction"].astype(np.int64)})
    refused("object.npz", r"field 'worm' is an object array \(pickle is never accepted\)",
            **{**a, "worm": a["worm"].astype(object)})
    refused("object_pred.npz", r"field 'prediction' is an object array", **{**a, "prediction": a["prediction"].astype(object)})
    refused("missing_field.npz", r"missing field\(s\) \['prediction'\]", **{k: v for k, v in a.items() if k != "prediction"})
    refused("extra_field.npz", r"unexpected field\(s\) \['notes'\]", **a, notes=np.zeros(3))
    # a pickle disguised as an npz is never unpickled
    import pickle

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled')",))

    disguised = tmp_path / "pickle.npz"
    disguised.write_bytes(pickle.dumps({"prediction": Boom()}))
    with pytest.raises(SubmissionError, match=rf"^{disguised}: the file is a Python pickle, not an \.npz \(zip\) "
                       r"archive; pickle is never accepted: pickles are never loaded") as e:
        task.evaluate(disguised)
    assert "allow_pickle" not in str(e.value)
    with pytest.raises(SubmissionError, match=r"unsupported format '\.pkl'"):
        task.evaluate(_save(tmp_path / "x.pkl", **a))


def test_shape_is_refused_from_the_header_without_loading(store_path, naive_file, tmp_path, monkeypatch):
    task = nh.get_task("celegans-forecast")
    a = _arrays(naive_file)
    path = _save(tmp_path / "shape.npz", **{**a, "prediction": a["prediction"][:, :, :10]})
    loads = []
    real = np.lib.format.read_array
    monkeypatch.setattr(np.lib.format, "read_array", lambda *x, **k: loads.append(1) or real(*x, **k))
    with pytest.raises(SubmissionError, match=r"field 'prediction' has shape"):
        task.evaluate(path)
    assert loads == []


def test_cli_template_and_evaluate_a_prediction_file(store_path, naive_file, tmp_path, capsys):
    import json

    import pandas as pd

    task = nh.get_task("celegans-forecast")
    assert main(["tasks", "template", "celegans-forecast", str(tmp_path / "template.npz")]) == 0
    with np.load(tmp_path / "template.npz", allow_pickle=False) as z:
        template = pd.DataFrame({k: z[k] for k in z.files})
    assert list(template["start"]) == list(task.submission_template()["start"])
    capsys.readouterr()
    assert main(["evaluate", "celegans-forecast", str(naive_file), "--json-out", str(tmp_path / "m.json"),
                 "--out", str(tmp_path / "records"), "--model-name", "my-naive"]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    want = task.run_model("naive", 0).metrics
    assert {k: metrics[k] for k in want} == want
    assert list((tmp_path / "records").rglob("*.json"))
    bad = _save(tmp_path / "bad.npz", **{**_arrays(naive_file), "prediction": np.zeros((1, 10, 302))})
    assert main(["evaluate", "celegans-forecast", str(bad)]) == 2
    assert f"error: {bad}: field 'prediction' has 1 rows" in capsys.readouterr().err


def test_size_limit_is_checked_before_loading(store_path, naive_file, monkeypatch):
    if forecast.check_size is None:
        pytest.skip("tasks/submission.py has no check_size")
    monkeypatch.setenv("NEUROHARNESS_MAX_SUBMISSION_BYTES", "1000")
    with pytest.raises(SubmissionError, match=rf"^{naive_file}: .*over the submission size limit of 1,000 bytes"):
        nh.get_task("celegans-forecast").evaluate(naive_file)


def test_damaged_archives_are_submission_errors(store_path, naive_file, tmp_path):
    """zipfile's RuntimeError (encrypted) and NotImplementedError (compression) escaped the reader before;
    headers declaring more than the limit, or impossible, are refused before anything is read."""
    import shutil
    import zipfile

    task = nh.get_task("celegans-forecast")

    def refused(path, pattern):
        with pytest.raises(SubmissionError, match=rf"^{path}: {pattern}"):
            task.evaluate(path)

    enc = shutil.copy(naive_file, tmp_path / "enc.npz")
    patch_zip(enc, 8, "<H", 0x1, local=6)
    refused(enc, r"member 'protocol\.npy' is encrypted")
    meth = shutil.copy(naive_file, tmp_path / "meth.npz")
    patch_zip(meth, 10, "<H", 9, local=8)
    refused(meth, r"member 'protocol\.npy' uses zip compression method 9")
    a = _arrays(naive_file)
    huge = _save(tmp_path / "huge.npz", **{k: v for k, v in a.items() if k != "prediction"})
    import io

    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10, 302)})
    with zipfile.ZipFile(huge, "a") as zf:
        zf.writestr("prediction.npy", head.getvalue() + b"\0" * 64)
    refused(huge, r"its arrays hold 12,080,\d{3},\d{3} bytes, over the submission size limit")
    escape = shutil.copy(naive_file, tmp_path / "escape.npz")
    with zipfile.ZipFile(escape, "a") as zf:
        zf.writestr("../prediction.npy", b"")
    refused(escape, r"member '\.\./prediction\.npy' is a path outside the archive's folder: the member path escapes")
