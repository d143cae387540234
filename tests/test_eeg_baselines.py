"""Baselines of eeg-schizophrenia: band-power features by hand, the majority floor, and every model on the
default-size fixture (scripts/make_eeg_fixture.py, prepared through the loader): band power must beat the
floor clearly (the fixture has a group effect in alpha and delta power), the shallow ConvNet must train in
well under a minute on CPU and give the same probabilities twice for one seed."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import load_script

from neuroharness.loaders.eeg.recordings import Recordings
from neuroharness.tasks import get_task
from neuroharness.tasks.eeg.baselines import BANDS, BandpowerLogreg, Majority, TangentSpaceLogreg, band_power_features
from neuroharness.tasks.eeg.data import EegInfo
from neuroharness.tasks.eeg.diagnosis import EegSchizophrenia
from neuroharness.tasks.eeg.shallow import ShallowConvNet
from neuroharness.tasks.protocols import WindowClassifier

TASK = "eeg-schizophrenia"


def test_band_power_features_by_hand():
    sfreq, n = 250.0, 1000
    t = np.arange(n) / sfreq
    rng = np.random.default_rng(0)
    X = np.stack([np.sin(2 * np.pi * 10 * t), np.sin(2 * np.pi * 2 * t), np.sin(2 * np.pi * 20 * t)])
    X = (X + 1e-3 * rng.standard_normal(X.shape))[None].astype(np.float32) * 1e-5  # volts
    F = band_power_features(X, sfreq).reshape(3, len(BANDS))  # channel-major: (channel, band)
    assert F.shape == (3, 5)
    names = list(BANDS)
    # nearly all the 1-45 Hz power of each sine is in its band: log10(relative power) close to 0
    assert F[0, names.index("alpha")] > -0.01 and F[1, names.index("delta")] > -0.01
    assert F[2, names.index("beta")] > -0.01
    assert F[0, names.index("delta")] < -2 and F[1, names.index("alpha")] < -2 and F[2, names.index("gamma")] < -2
    assert np.allclose(band_power_features(X * 7, sfreq), F.reshape(1, -1), atol=1e-6)  # relative: no gain effect


def test_majority_predicts_the_share_of_patient_subjects_not_windows():
    X = np.zeros((14, 2, 10), np.float32)
    y = np.array([1] * 10 + [0] * 4)
    groups = np.array(["A"] * 10 + ["B"] * 2 + ["C"] * 2)
    m = Majority().fit(X, y, groups, EegInfo(10.0, ("Fz", "Cz")), 0)
    assert m.prevalence_ == pytest.approx(1 / 3)  # 1 patient of 3 subjects, though 10 of 14 windows
    assert np.array_equal(m.predict_proba(X[:3]), np.full(3, 1 / 3))


def test_every_baseline_follows_the_protocol():
    for cls in (Majority, BandpowerLogreg, TangentSpaceLogreg, ShallowConvNet):
        assert isinstance(cls(), WindowClassifier)
    for spec in get_task(TASK).card.models:
        assert isinstance(spec.build(), WindowClassifier), spec.name


def _memory_store(n_patients=10, n_controls=8, seconds=20, sfreq=100.0):
    rng = np.random.default_rng(0)
    rows, signals = [], {}
    for i in range(n_patients + n_controls):
        group = "patient" if i < n_patients else "control"
        rec = f"S{i:02d}_rest_ses-1_dev"
        x = rng.standard_normal((3, int(seconds * sfreq))).astype(np.float32) * 1e-5
        signals[rec] = xr.Dataset({"eeg": (("channel", "time"), x)}, coords={"channel": ["Fz", "Cz", "Pz"]})
        rows.append(dict(recording=rec, subject=f"S{i:02d}", group=group, condition="rest", session="1",
                         device="dev", file=rec, native_sfreq=sfreq, sfreq=sfreq, n_samples=x.shape[1],
                         n_channels=3))
    return Recordings.from_memory("nszed", pd.DataFrame(rows), signals, {"content_sha256": "c" * 64})


def test_majority_scores_exactly_chance():
    task = EegSchizophrenia({"nszed": _memory_store()})
    m = task.run_model("majority", 0).metrics
    assert m["balanced_accuracy"] == 0.5 == m["main_score"]
    assert (m["sensitivity"], m["specificity"]) == (1.0, 0.0)  # 10 / 8: every training side is mostly patients
    assert m["accuracy"] == pytest.approx(10 / 18) == m["majority_accuracy"]


# -- the default-size fixture ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fixture_home(tmp_path_factory):
    from neuroharness.loaders import get_loader

    gen = load_script("make_eeg_fixture")
    base = tmp_path_factory.mktemp("eeg_baselines")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROHARNESS_HOME", str(base / "home"))
        gen.write_fixture("nszed", base / "nszed")
        get_loader("nszed").prepare(source=base / "nszed")
    return base / "home"


@pytest.fixture
def task(fixture_home, monkeypatch):
    monkeypatch.setenv("NEUROHARNESS_HOME", str(fixture_home))
    t = get_task(TASK)
    t.clear_cache()
    yield t
    t.clear_cache()


def test_band_power_beats_the_floor_clearly_on_the_fixture(task):
    floor = task.run_model("majority", 0).metrics
    band = task.run_model("bandpower-logreg", 0).metrics
    assert floor["balanced_accuracy"] == 0.5 and floor["n_subjects"] == 18
    assert band["balanced_accuracy"] >= 0.8 and band["balanced_accuracy"] - floor["balanced_accuracy"] >= 0.3
    assert band["roc_auc"] >= 0.85
    again = task.run_model("bandpower-logreg", 0).metrics
    assert again == band  # deterministic


def test_tangent_space_runs_on_the_fixture(task):
    m = task.run_model("tangent-space-logreg", 0).metrics
    assert 0.0 <= m["balanced_accuracy"] <= 1.0 and m["roc_auc"] > 0.6
    assert m["n_windows"] == task.data().subjects["n_windows"].sum()


def test_shallow_convnet_is_fast_and_deterministic(task):
    t0 = time.perf_counter()
    result = task.run_model("shallow-convnet", 0)
    elapsed = time.perf_counter() - t0
    assert elapsed < 60, f"shallow-convnet took {elapsed:.1f} s on the fixture (5 folds)"
    assert 0.0 <= result.metrics["balanced_accuracy"] <= 1.0 and result.n_parameters > 10_000
    assert set(k.split("/")[0] for k in result.fitted) == {f"fold{k}" for k in range(5)}
    view = task.training_view()
    train = view.fold(0)
    data = task.data()
    X_test = data.windows.batch(data.windows.of_subjects(data.fold(0).test))
    probs = []
    for seed in (3, 3, 4):
        m = task.build_model("shallow-convnet").fit(train.X, train.y, train.groups, train.info, seed)
        probs.append(m.predict_proba(X_test))
    assert probs[0].shape == (len(X_test),) and ((probs[0] >= 0) & (probs[0] <= 1)).all()
    assert np.array_equal(probs[0], probs[1])  # bit-identical for one seed
    assert not np.array_equal(probs[0], probs[2])
