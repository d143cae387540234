"""Python access to an EEG store (loaders/eeg/recordings.py) and the hand-over to MNE and braindecode
(loaders/eeg/interop.py): Recordings from a prepared store and from memory; to_mne round trip (data, rate, channel
names, montage, annotations, subject/group) against the store; to_braindecode's clear error where braindecode cannot
be imported (always here: it requires torchaudio, see notes) and a real round trip where it can."""
from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from neuroharness.errors import NeuroharnessError
from neuroharness.loaders import get_loader
from neuroharness.loaders.eeg.interop import to_braindecode, to_mne
from neuroharness.loaders.eeg.layout import standard_montage
from neuroharness.loaders.eeg.recordings import Recordings, open_recordings

mne = pytest.importorskip("mne")

LAYOUT = """
[layout]
name = "mini"
common_sfreq = 200.0
[metadata]
table = "meta.csv"
[metadata.columns]
file = "file"
subject = "subject"
group = "group"
condition = "condition"
session = "session"
device = "device"
sex = "sex"
age = "age"
[devices."*"]
reference = "Cz"
"""


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A prepared store of two recordings (EDF with annotations at 400 Hz; BrainVision at 200 Hz, 7 s)."""
    monkeypatch.setenv("NEUROHARNESS_HOME", str(tmp_path / "home"))
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for name, labels, sfreq, seconds, fmt, ann in (
        ("p1.edf", ["Fz", "T3", "O1"], 400.0, 5, "edf", [(0.5, 0.0, "standard"), (2.25, 0.5, "deviant")]),
        ("c1.vhdr", ["FP1", "CZ"], 200.0, 7, "brainvision", []),
    ):
        raw = mne.io.RawArray(rng.normal(0, 20e-6, (len(labels), int(sfreq * seconds))),
                              mne.create_info(labels, sfreq, "eeg"), verbose="error")
        if ann:
            raw.set_annotations(mne.Annotations(*zip(*ann)))
        mne.export.export_raw(src / name, raw, fmt=fmt, verbose="error")
    (src / "meta.csv").write_text(textwrap.dedent("""\
        file,subject,group,condition,session,device,sex,age
        p1.edf,P1,patient,rest,1,x,F,33
        c1.vhdr,C1,control,rest,1,y,,
        """))
    (tmp_path / "mini.toml").write_text(LAYOUT)
    path = get_loader("nszed").prepare(source=src, layout=tmp_path / "mini.toml")
    return Recordings.from_path(path)


def test_recordings_api(store):
    assert store.recordings == ["C1_rest_ses-1_y", "P1_rest_ses-1_x"] and len(store) == 2
    assert "P1_rest_ses-1_x" in store and repr(store).startswith("Recordings('nszed': 2 recordings of 2 subjects")
    assert store.channels("P1_rest_ses-1_x") == ["Fz", "T7", "O1"]
    assert store.eeg("P1_rest_ses-1_x").shape == (3, 1000)  # 5 s at 200 Hz
    assert store.eeg("C1_rest_ses-1_y", ["Cz", "Fp1"]).shape == (2, 1400)
    np.testing.assert_array_equal(store.eeg("C1_rest_ses-1_y", ["Cz"])[0], store.eeg("C1_rest_ses-1_y")[1])
    with pytest.raises(NeuroharnessError, match=r"recording 'C1_rest_ses-1_y' has no channel\(s\) Oz; it has Fp1, "
                                                r"Cz"):
        store.eeg("C1_rest_ses-1_y", ["Oz"])
    with pytest.raises(NeuroharnessError, match=r"nszed: no recording 'nope'; it holds 2 recordings \(C1_rest_ses-1_y, "
                                                r"P1_rest_ses-1_x\)"):
        store.signal("nope")
    assert store.select(group="patient").index.tolist() == ["P1_rest_ses-1_x"]
    with pytest.raises(NeuroharnessError, match=r"the table has no column\(s\) \['diagnosis'\]"):
        store.select(diagnosis="x")
    assert store.table.loc["C1_rest_ses-1_y", "sex"] == "" and np.isnan(store.table.loc["C1_rest_ses-1_y", "age"])
    # open() finds the prepared store through the registry
    assert open_recordings("nszed").table.equals(store.table)


def test_from_memory_checks_and_sorts():
    table = pd.DataFrame({"recording": ["b", "a"], "subject": ["s2", "s1"], "group": ["control", "patient"],
                          "condition": ["rest"] * 2, "session": ["1"] * 2, "device": ["d"] * 2,
                          "file": ["b.edf", "a.edf"]})
    sig = {r: xr.Dataset({"eeg": (("channel", "time"), np.full((2, 5), i, np.float32))},
                         coords={"channel": ["Fz", "Cz"]}) for i, r in enumerate("ab")}
    rec = Recordings.from_memory("mem", table, sig, {"skipped": json.dumps([{"file": "x", "reason": "y"}])})
    assert rec.recordings == ["a", "b"] and rec.attrs["skipped"] == [{"file": "x", "reason": "y"}]
    assert rec.eeg("b", ["Cz"]).tolist() == [[1.0] * 5]
    with pytest.raises(NeuroharnessError, match=r"no signal for recording 'a' of the table"):
        Recordings.from_memory("mem", table, {"b": sig["b"]}, {})
    with pytest.raises(NeuroharnessError, match=r"table lacks column\(s\) \['file'\]"):
        Recordings.from_memory("mem", table.drop(columns="file"), sig, {})


def test_to_mne_round_trip_equals_the_store(store):
    rid = "P1_rest_ses-1_x"
    raw = to_mne(store, rid)
    ds = store.signal(rid)
    assert isinstance(raw, mne.io.RawArray)
    assert raw.ch_names == ["Fz", "T7", "O1"] and raw.info["sfreq"] == 200.0
    assert set(raw.get_channel_types()) == {"eeg"}
    np.testing.assert_array_equal(raw.get_data(), ds["eeg"].values.astype(np.float64))
    # the montage positions are MNE's 10/20 ones (in head coordinates, as set_montage puts them)
    pos = raw.get_montage().get_positions()["ch_pos"]
    ref = mne.io.RawArray(np.zeros((3, 1)), mne.create_info(raw.ch_names, 200.0, "eeg"), verbose="error")
    ref = ref.set_montage(standard_montage(), verbose="error").get_montage().get_positions()["ch_pos"]
    for ch in raw.ch_names:
        assert np.isfinite(pos[ch]).all()
        np.testing.assert_allclose(pos[ch], ref[ch])
    np.testing.assert_allclose(raw.annotations.onset, ds["annotation_onset"].values, atol=1e-9)
    np.testing.assert_allclose(raw.annotations.onset, [0.5, 2.25], atol=1e-6)
    np.testing.assert_array_equal(raw.annotations.duration, ds["annotation_duration"].values)
    assert list(raw.annotations.description) == ["standard", "deviant"]
    assert raw.info["description"] == ("nszed recording P1_rest_ses-1_x: subject P1, group patient, condition rest, "
                                       "session 1, device x")
    assert raw.info["subject_info"]["his_id"] == "P1" and raw.info["subject_info"]["sex"] == 2
    assert raw.info["meas_date"].isoformat() == ds.attrs["meas_date"]
    # no annotations, no sex, no date: still a valid Raw
    raw = to_mne(store, "C1_rest_ses-1_y")
    assert len(raw.annotations) == 0 and raw.ch_names == ["Fp1", "Cz"] and raw.n_times == 1400
    assert "sex" not in raw.info["subject_info"]


def test_to_braindecode_explains_why_it_cannot_import(store, monkeypatch):
    monkeypatch.setitem(sys.modules, "braindecode", None)  # as if the import failed (as it does beside CPU torch)
    monkeypatch.setitem(sys.modules, "braindecode.datasets", None)
    with pytest.raises(NeuroharnessError) as e:
        to_braindecode(store)
    msg = str(e.value)
    assert msg.startswith("to_braindecode needs braindecode, which cannot be imported here (ModuleNotFoundError: "
                          "import of braindecode")
    assert "braindecode requires torchaudio" in msg and "torch and torchaudio of matching builds" in msg
    assert isinstance(e.value.__cause__, ImportError)


def test_to_braindecode_here():
    """Where braindecode does not import (here: it requires torchaudio, whose PyPI build needs the CUDA torch),
    the error says why and carries the original exception's text."""
    try:
        import braindecode.datasets  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure is the case this test documents
        empty = pd.DataFrame(columns=["recording", "subject", "group", "condition", "session", "device", "file"])
        with pytest.raises(NeuroharnessError) as err:
            to_braindecode(Recordings.from_memory("m", empty, {}, {}))
        assert f"({type(e).__name__}: {' '.join(str(e).split())[:100]}" in str(err.value)
    else:
        pytest.skip("braindecode imports here: test_to_braindecode_round_trip covers it")


def test_to_braindecode_round_trip(store):
    pytest.importorskip("braindecode", reason="braindecode requires torchaudio, whose PyPI build needs the CUDA "
                                              "torch; install torch + torchaudio of matching builds to run this")
    ds = to_braindecode(store, condition="rest")
    assert len(ds.datasets) == 2
    desc = ds.description
    assert desc["recording"].tolist() == store.recordings
    assert desc["label"].tolist() == [0, 1] and desc["group"].tolist() == ["control", "patient"]
    for sub, rid in zip(ds.datasets, store.recordings):
        np.testing.assert_array_equal(sub.raw.get_data(), store.eeg(rid).astype(np.float64))
    with pytest.raises(NeuroharnessError, match=r"no recording of condition 'sleep'; the store has rest"):
        to_braindecode(store, condition="sleep")
