"""EEG loaders ``nszed`` and ``repod-schizophrenia`` (loaders/eeg/): the reader on files the tests write (units,
resampling equal to MNE's, annotations, channel mapping) and on the real small EDF/BDF files of the pyedflib wheel;
prepare from the synthetic fixtures (scripts/make_eeg_fixture.py) with the root table's values checked against the
fixture's manifest; bad recordings skipped with reasons naming the file while the others convert; --strict turning
skips into a failure that writes nothing; --layout provenance and reuse; stable checksums; no source."""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import closed_port_url, load_script

from neuroharness.cli import main
from neuroharness.errors import DataFormatError, DownloadError, NeuroharnessError
from neuroharness.loaders import get_loader
from neuroharness.loaders.eeg import cards
from neuroharness.loaders.eeg.layout import (SkipRecording, canonical_channels, packaged_layout,
                                             packaged_layout_text, parse_layout)
from neuroharness.loaders.eeg.reader import read_recording
from neuroharness.loaders.eeg.recordings import Recordings

mne = pytest.importorskip("mne")
gen = load_script("make_eeg_fixture")

SMALL = dict(n_patients=4, n_controls=3, seconds=20)
CANONICAL_19 = ["Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7", "C3", "Cz", "C4", "T8", "P7", "P3", "Pz", "P4",
                "P8", "O1", "O2"]  # the 19 of 10/20 in montage order
DEVICE_A_RENAMED = {"EEG T3-REF": "T7", "EEG T4-REF": "T8", "EEG T5-REF": "P7", "EEG T6-REF": "P8"}


@pytest.fixture(scope="module")
def nszed_src(tmp_path_factory):
    root = tmp_path_factory.mktemp("eeg") / "nszed"
    return gen.write_nszed(root, **SMALL)


@pytest.fixture(scope="module")
def repod_src(tmp_path_factory):
    root = tmp_path_factory.mktemp("eeg") / "repod"
    return gen.write_repod(root, n_patients=3, n_controls=2, seconds=12)


def leftovers(home: Path, name: str) -> list[str]:
    d = home / "datasets" / name
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def export(path: Path, labels, sfreq: float, data_v: np.ndarray, annotations=None, fmt: str | None = None) -> Path:
    """Write ``data_v`` (channels x samples, volts) as a real file through MNE's exporter (EDF or BrainVision)."""
    raw = mne.io.RawArray(data_v, mne.create_info(list(labels), sfreq, "eeg"), verbose="error")
    if annotations:
        onset, duration, desc = zip(*annotations)
        raw.set_annotations(mne.Annotations(onset, duration, desc))
    path.parent.mkdir(parents=True, exist_ok=True)
    mne.export.export_raw(path, raw, fmt=fmt or "auto", overwrite=True, verbose="error")
    return path


def sines(n_ch: int, sfreq: float, seconds: float, amp_uv: float = 40.0, seed: int = 0) -> np.ndarray:
    """Channels of sines (2-20 Hz) plus noise, in volts at the microvolt scale."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(sfreq * seconds))) / sfreq
    rows = [amp_uv * np.sin(2 * np.pi * (2 + 2 * k) * t + k) + rng.normal(0, 3, t.size) for k in range(n_ch)]
    return np.vstack(rows) * 1e-6


def mne_reference(path: Path, native_order, sfreq: float) -> np.ndarray:
    """What the store must hold: MNE's own read, pick, resample(npad="auto"), as float32."""
    raw = mne.io.read_raw(path, preload=True, verbose="error")
    raw.pick(list(native_order))
    if raw.info["sfreq"] != sfreq:
        raw.resample(sfreq, npad="auto", verbose="error")
    return raw.get_data().astype(np.float32)


def manifest_rows(m) -> dict[str, dict]:
    with open(m.root / "metadata.csv", newline="", encoding="utf-8") as fh:
        return {r["file"]: r for r in csv.DictReader(fh)}


# -- the reader ------------------------------------------------------------------------------------------------
def device(text: str = "", name: str = "d"):
    return parse_layout(textwrap.dedent(f"""
        [layout]
        name = "t"
        common_sfreq = 250
        [defaults]
        subject = "s"
        group = "patient"
        condition = "rest"
        session = "1"
        device = "{name}"
        [devices.{name}]
        """) + textwrap.dedent(text), "test.toml").device(name)


def test_units_microvolt_sine_reads_back_in_volts(tmp_path):
    amp = 50e-6
    t = np.arange(2500) / 250.0
    x = np.vstack([amp * np.sin(2 * np.pi * 10 * t + k) for k in range(3)])
    for fmt, suffix, tol in (("brainvision", "vhdr", 1e-7), ("edf", "edf", 2e-5)):
        # float32 BrainVision: to 1e-7 of the amplitude; 16-bit EDF: to its quantization step (range / 65535)
        path = export(tmp_path / f"u.{suffix}", ["Fz", "Cz", "Pz"], 250.0, x, fmt=fmt)
        rec = read_recording(path, device(), 250.0)
        assert rec.eeg.dtype == np.float32 and rec.eeg.shape == (3, 2500)
        np.testing.assert_allclose(rec.eeg, x[[0, 1, 2]], rtol=0, atol=tol * amp)
        assert rec.channels == ("Fz", "Cz", "Pz") and rec.native_sfreq == 250.0
        assert rec.source_format == {"vhdr": "BrainVision", "edf": "EDF"}[suffix]


def test_layout_units_apply_where_the_header_has_none(tmp_path):
    x = sines(2, 250.0, 4, amp_uv=50)
    path = export(tmp_path / "u.edf", ["Fz", "Cz"], 250.0, x)
    blob = bytearray(path.read_bytes())
    ns = int(blob[252:256])  # signals incl. the EDF+ annotation signal
    assert blob[256 + ns * 96: 256 + ns * 96 + 8] == b"uV      "
    blob[256 + ns * 96: 256 + ns * 104] = b" " * (8 * ns)  # blank the physical-dimension fields
    blank = tmp_path / "blank.edf"
    blank.write_bytes(bytes(blob))
    auto = read_recording(blank, device('units = "auto"'), 250.0).eeg
    uv = read_recording(blank, device('units = "uV"'), 250.0).eeg
    mv = read_recording(blank, device('units = "mV"'), 250.0).eeg
    step = float(np.ptp(x, axis=1).max()) / 65535  # 16-bit EDF quantization step (V)
    np.testing.assert_allclose(uv, x, rtol=0, atol=step)
    np.testing.assert_allclose(auto, uv * 1e6, rtol=1e-6)  # no unit: MNE takes the numbers as volts
    np.testing.assert_allclose(mv, uv * 1e3, rtol=1e-6)
    # a header that says otherwise is not silently overridden
    with pytest.raises(SkipRecording, match=r"\[devices.d\] of the layout sets units = 'mV' but the file's header "
                                            r"disagrees \(Unit for channel Fz is present in the file as 'uV'"):
        read_recording(path, device('units = "mV"'), 250.0)
    vhdr = export(tmp_path / "u.vhdr", ["Fz", "Cz"], 250.0, x, fmt="brainvision")
    with pytest.raises(SkipRecording, match=r"units = 'uV', which applies to EDF/BDF only and this file is "
                                            r"BrainVision"):
        read_recording(vhdr, device('units = "uV"'), 250.0)


def test_resampling_500_to_250_equals_mne_resample_exactly(tmp_path):
    labels = ["EEG Fp1-REF", "EEG T3-REF", "ECG", "EEG O2-REF", "EEG Cz-REF"]
    x = sines(5, 500.0, 7.0, seed=3)
    path = export(tmp_path / "a.edf", labels, 500.0, x, annotations=[(1.25, 0.5, "standard"), (3.5, 0.0, "deviant")])
    rec = read_recording(path, packaged_layout("nszed").device("device_a"), 250.0)
    assert rec.channels == ("Fp1", "T7", "Cz", "O2")
    assert rec.native_names == ("EEG Fp1-REF", "EEG T3-REF", "EEG Cz-REF", "EEG O2-REF")
    assert rec.renamed == {"EEG T3-REF": "T7"} and rec.dropped == ("ECG",)
    assert (rec.sfreq, rec.native_sfreq) == (250.0, 500.0)
    expected = mne_reference(path, rec.native_names, 250.0)
    assert rec.eeg.shape == (4, 1750) == expected.shape
    assert np.array_equal(rec.eeg, expected)
    # the 256 Hz device: a non-integer ratio
    path = export(tmp_path / "b.edf", ["FP1", "T7", "CZ"], 256.0, sines(3, 256.0, 5.0, seed=4))
    rec = read_recording(path, packaged_layout("nszed").device("device_b"), 250.0)
    assert rec.eeg.shape == (3, 1250) and np.array_equal(rec.eeg, mne_reference(path, ["FP1", "T7", "CZ"], 250.0))


def test_annotations_kept_with_onset_duration_description(tmp_path):
    x = sines(2, 250.0, 6.0)
    ann = [(0.5, 0.0, "standard"), (1.5, 0.25, "deviant"), (4.0, 1.0, "eyes closed")]
    rec = read_recording(export(tmp_path / "a.edf", ["Fz", "Cz"], 250.0, x, annotations=ann), device(), 250.0)
    np.testing.assert_allclose(rec.onset, [0.5, 1.5, 4.0], atol=1e-6)
    np.testing.assert_allclose(rec.duration, [0.0, 0.25, 1.0], atol=1e-6)
    assert rec.description.tolist() == ["standard", "deviant", "eyes closed"]
    rec = read_recording(export(tmp_path / "a.vhdr", ["Fz", "Cz"], 250.0, x, annotations=ann, fmt="brainvision"),
                         device(), 250.0)
    assert rec.description.tolist() == ["Comment/standard", "Comment/deviant", "Comment/eyes closed"]
    np.testing.assert_allclose(rec.onset, [0.5, 1.5, 4.0], atol=1 / 250)
    rec = read_recording(export(tmp_path / "none.edf", ["Fz", "Cz"], 250.0, x), device(), 250.0)
    assert rec.onset.shape == (0,) and rec.description.shape == (0,)


def test_bad_files_are_skip_reasons(tmp_path):
    path = export(tmp_path / "a.edf", ["Fz", "Cz"], 250.0, sines(2, 250.0, 4.0))
    size = path.stat().st_size
    cut = tmp_path / "cut.edf"
    cut.write_bytes(path.read_bytes()[: size - 700])
    with pytest.raises(SkipRecording) as e:
        read_recording(cut, device(), 250.0)
    assert e.value.reason == (f"truncated: the header declares 4 data records ({size:,} bytes) but the file has "
                              f"{size - 700:,} bytes; re-copy or re-export it")
    junk = tmp_path / "junk.edf"
    junk.write_bytes(b"not an EDF file " * 40)
    with pytest.raises(SkipRecording, match=r"^corrupt EDF/BDF header \(a numeric field is not a number\)$"):
        read_recording(junk, device(), 250.0)
    (tmp_path / "tiny.edf").write_bytes(b"0       ")
    with pytest.raises(SkipRecording, match=r"^truncated or not EDF/BDF: 8 bytes"):
        read_recording(tmp_path / "tiny.edf", device(), 250.0)
    (tmp_path / "bad.vhdr").write_text("this is no BrainVision header\n")
    with pytest.raises(SkipRecording, match=r"^not readable by MNE as BrainVision \("):
        read_recording(tmp_path / "bad.vhdr", device(), 250.0)


# -- the real small files of the pyedflib wheel (reader smoke test) -----------------------------------------------
def pyedflib_file(rel: str) -> Path:
    pyedflib = pytest.importorskip("pyedflib", reason="pyedflib is not installed: its wheel ships the small real "
                                                       "EDF/BDF files of this smoke test (pip install pyedflib)")
    path = Path(pyedflib.__file__).parent / rel
    if not path.is_file():
        pytest.skip(f"this pyedflib ({pyedflib.__version__}) does not ship {rel}")
    return path


def explicit_layout(labels, sfreq: float):
    """A layout mapping each label to one of the 19 canonical names in turn (the synthetic files have none)."""
    mapping = ", ".join(f'"{lab}" = "{CANONICAL_19[i]}"' for i, lab in enumerate(labels))
    return device(f"channels = {{ {mapping} }}\n")


@pytest.mark.parametrize("rel, n_ch, sfreq, n_times, n_ann, descriptions", [
    ("data/test_generator.edf", 11, 200.0, 120000, 2, {"Recording starts", "Recording ends"}),
    ("tests/data/test_legacy.edf", 11, 200.0, 120000, 2, {"Recording starts", "Recording ends"}),
    ("tests/data/test_generator.bdf", 5, 1000.0, 30000, 0, set()),
    ("tests/data/test_subsecond.edf", 1, 128.0, 89344, 4, {"XLSpike", "XLEvent", "Clip Note"}),
    ("tests/data/test_utf8.edf", 1, 128.0, 89344, 5, {"XLSpike", "XLEvent", "Clip Note", "中文测试八个字"}),
])
def test_real_pyedflib_files_through_the_reader(rel, n_ch, sfreq, n_times, n_ann, descriptions):
    path = pyedflib_file(rel)
    raw = mne.io.read_raw(path, verbose="error")  # what MNE itself reports
    assert (len(raw.ch_names), raw.info["sfreq"], raw.n_times) == (n_ch, sfreq, n_times)  # the reference table
    assert len(raw.annotations) == n_ann and set(raw.annotations.description) == descriptions
    dev = device() if raw.ch_names == ["Fp1"] else explicit_layout(raw.ch_names, sfreq)
    rec = read_recording(path, dev, sfreq)  # at the native rate: samples equal MNE's
    assert rec.native_sfreq == sfreq and rec.eeg.shape == (n_ch, n_times)
    assert len(rec.native_names) == n_ch and set(rec.native_names) == set(raw.ch_names)
    assert rec.source_format == ("BDF" if rel.endswith(".bdf") else "EDF")
    np.testing.assert_array_equal(rec.eeg, mne_reference(path, rec.native_names, sfreq))
    assert rec.description.tolist() == list(raw.annotations.description)
    np.testing.assert_allclose(rec.onset, raw.annotations.onset - raw.first_time)
    np.testing.assert_allclose(rec.duration, raw.annotations.duration)
    assert rec.meas_date == raw.info["meas_date"].isoformat()
    if rel.endswith("test_subsecond.edf"):  # one real clinical channel: about 16 uV of standard deviation
        assert rec.channels == ("Fp1",) and 5e-6 < float(rec.eeg.std()) < 50e-6
        half = read_recording(path, dev, 64.0)  # resampled: 698 s at 64 Hz
        assert half.eeg.shape == (1, 44672) and half.sfreq == 64.0 and half.native_sfreq == 128.0
        assert np.array_equal(half.eeg, mne_reference(path, ["Fp1"], 64.0))


# -- prepare from the fixtures ----------------------------------------------------------------------------------------
def test_nszed_fixture_store_values(nszed_src, home):
    m = nszed_src
    path = get_loader("nszed").prepare(source=m.root)
    rec = Recordings.from_path(path)
    t = rec.table
    rows = manifest_rows(m)
    assert len(t) == len(m.recordings) == len(rows)
    groups = {"SZ": "patient", "HC": "control"}
    conditions = {"resting": "rest", "arithmetic": "arithmetic", "oddball": "auditory-oddball"}
    for r in m.recordings:
        row = rows[r.file]
        rid = f"{r.subject}_{conditions[r.condition]}_ses-{r.session}_{r.device}"
        got = t.loc[rid]
        assert (got.subject, got.group, got.condition, got.session, got.device, got.file) == \
            (r.subject, groups[row["group"]], conditions[r.condition], str(r.session), r.device, r.file)
        assert got.native_sfreq == {"device_a": 500.0, "device_b": 256.0}[r.device] and got.sfreq == 250.0
        assert got.n_samples == SMALL["seconds"] * 250 and got.n_channels == 19
        assert got.age == float(row["age"]) and got.sex == row["sex"]
        if row["group"] == "HC":
            assert math.isnan(got.panss_total) and math.isnan(got.whodas)
        else:
            assert (got.panss_total, got.whodas) == (float(row["PANSS_total"]), float(row["WHODAS"]))
    assert list(t.index) == sorted(t.index)
    assert set(t.columns) == {"subject", "group", "condition", "session", "device", "file", "native_sfreq", "sfreq",
                              "n_samples", "n_channels", "age", "sex", "panss_total", "whodas"}
    assert t.dtypes["n_samples"] == np.int64 and t.dtypes["n_channels"] == np.int32
    # the root attributes: provenance of the layout, the resampling, no skip
    attrs = rec.attrs
    assert attrs["layout_name"] == "nszed" and attrs["layout_text"] == packaged_layout_text("nszed")
    assert attrs["layout_sha256"] == hashlib.sha256(packaged_layout_text("nszed").encode()).hexdigest()
    assert attrs["common_sfreq"] == 250.0 and "raw.resample(sfreq=common_sfreq, npad='auto')" in attrs["resampling"]
    assert attrs["skipped"] == [] and len(attrs["content_sha256"]) == 64
    assert set(json.loads(attrs["parts_sha256"])) == set(t.index)

    # device A: old names renamed, ECG/Photic dropped, labels kept; device B: upper case labels
    a = t[t.device == "device_a"].index[0]
    ds = rec.signal(a)
    assert [str(c) for c in ds.channel.values] == CANONICAL_19
    assert [str(c) for c in ds.native_name.values] == [
        f"EEG {({'T7': 'T3', 'T8': 'T4', 'P7': 'T5', 'P8': 'T6'}).get(c, c)}-REF" for c in CANONICAL_19]
    assert json.loads(ds.attrs["renamed"]) == DEVICE_A_RENAMED
    assert json.loads(ds.attrs["dropped_channels"]) == ["ECG", "Photic"]
    assert (ds.attrs["source_format"], ds.attrs["sfreq"], ds.attrs["native_sfreq"]) == ("EDF", 250.0, 500.0)
    assert ds.eeg.attrs["units"] == "V" and ds.eeg.dtype == np.float32
    assert ds.eeg.encoding["chunks"] == (19, SMALL["seconds"] * 250)
    b = t[(t.device == "device_b") & (t.condition == "rest")].index[0]
    ds_b = rec.signal(b)
    assert [str(c) for c in ds_b.native_name.values] == [c.upper() for c in CANONICAL_19]
    assert json.loads(ds_b.attrs["renamed"]) == {} and json.loads(ds_b.attrs["dropped_channels"]) == []
    # the samples are MNE's own read + resample of the file
    for rid in (a, b):
        native = [str(c) for c in rec.signal(rid).native_name.values]
        assert np.array_equal(rec.eeg(rid), mne_reference(m.root / t.loc[rid, "file"], native, 250.0))
    assert rec.eeg(a, ["Cz", "Fz"]).shape == (2, SMALL["seconds"] * 250)
    # oddball: EDF annotations on device A, BrainVision markers on device B, both the manifest's stimuli
    odd = t[t.condition == "auditory-oddball"]
    assert set(odd.device) == {"device_a", "device_b"}
    for rid, row in odd.iterrows():
        r = next(x for x in m.recordings if x.file == row.file)
        ann = rec.annotations(rid)
        prefix = "Comment/" if row.file.endswith(".vhdr") else ""
        assert ann.description.tolist() == [prefix + d for _, d in r.events]
        np.testing.assert_allclose(ann.onset, [o for o, _ in r.events], atol=1 / row.native_sfreq)
        assert rec.signal(rid).attrs["source_format"] == ("BrainVision" if prefix else "EDF")
    assert len(rec.annotations(a if t.loc[a, "condition"] == "rest" else b)) == 0
    summary = get_loader("nszed").summary(get_loader("nszed").open())
    assert summary[0] == f"{len(t)} recordings of 7 subjects (4 patients, 3 controls) at 250.0 Hz (layout nszed)"
    assert summary[-1] == "skipped: 0"


def test_repod_fixture_names_from_file_names(repod_src, home):
    path = get_loader("repod-schizophrenia").prepare(source=repod_src.root)
    rec = Recordings.from_path(path)
    t = rec.table
    assert list(t.index) == ["h01_rest_ses-1_repod", "h02_rest_ses-1_repod", "s01_rest_ses-1_repod",
                             "s02_rest_ses-1_repod", "s03_rest_ses-1_repod"]
    assert t.group.tolist() == ["control"] * 2 + ["patient"] * 3
    assert t.subject.tolist() == ["h01", "h02", "s01", "s02", "s03"]
    assert (t.n_samples == 12 * 250).all() and (t.native_sfreq == 250.0).all() and (t.n_channels == 19).all()
    assert list(t.columns) == ["subject", "group", "condition", "session", "device", "file", "native_sfreq", "sfreq",
                               "n_samples", "n_channels"]  # no clinical fields in this layout
    ds = rec.signal("s01_rest_ses-1_repod")
    assert [str(c) for c in ds.channel.values] == CANONICAL_19
    assert json.loads(ds.attrs["renamed"]) == {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}
    assert rec.attrs["layout_name"] == "repod"
    # 250 Hz already: no resampling, the samples are MNE's read of the file
    native = [str(c) for c in ds.native_name.values]
    assert np.array_equal(rec.eeg("s01_rest_ses-1_repod"), mne_reference(repod_src.root / "s01.edf", native, 250.0))


def test_checksum_stable_across_two_builds_and_only(nszed_src, tmp_path, monkeypatch):
    sums = []
    for k in range(2):
        monkeypatch.setenv("NEUROHARNESS_HOME", str(tmp_path / f"home{k}"))
        path = get_loader("nszed").prepare(source=nszed_src.root)
        zattrs = Recordings.from_path(path).attrs
        sums.append((zattrs["content_sha256"], zattrs["parts_sha256"]))
    assert sums[0] == sums[1]
    monkeypatch.setenv("NEUROHARNESS_HOME", str(tmp_path / "home_only"))
    one = Recordings.from_path(get_loader("nszed").prepare(source=nszed_src.root,
                                                           only=["NSZ001_rest_ses-1_device_a"]))
    assert list(one.table.index) == ["NSZ001_rest_ses-1_device_a"]
    assert json.loads(one.attrs["parts_sha256"])["NSZ001_rest_ses-1_device_a"] == \
        json.loads(sums[0][1])["NSZ001_rest_ses-1_device_a"]
    monkeypatch.setenv("NEUROHARNESS_HOME", str(tmp_path / "home_bad"))
    with pytest.raises(DataFormatError, match=r"--only NSZ999_rest_ses-1_device_a: no such recording in .*it holds "
                                              r"NSZ001_auditory-oddball_ses-1_device_a, "):
        get_loader("nszed").prepare(source=nszed_src.root, only=["NSZ999_rest_ses-1_device_a"])
    assert leftovers(tmp_path / "home_bad", "nszed") == []


# -- bad recordings: skipped with a reason; --strict --------------------------------------------------------------------
LAYOUT = """
[layout]
name = "mini"
common_sfreq = 250.0
formats = ["edf", "vhdr"]
[metadata]
table = "metadata.csv"
[metadata.columns]
file = "file"
subject = "subject_id"
group = "group"
condition = "condition"
session = "session"
device = "device"
age = "age"
whodas = "WHODAS"
[groups]
patient = ["SZ"]
control = ["HC"]
[conditions]
rest = ["resting"]
[devices."*"]
reference = "Cz"
strip_prefix = ["EEG "]
strip_suffix = ["-REF"]
ignore = ["ECG"]
"""


def bad_source(root: Path) -> tuple[Path, list[dict]]:
    """Two good recordings of different lengths and rates, and one of each bad case; returns the expected skips."""
    labels = ["EEG Fz-REF", "EEG Cz-REF", "EEG T4-REF", "ECG"]
    export(root / "good1.edf", labels, 500.0, sines(4, 500.0, 10.0, seed=1),
           annotations=[(2.0, 1.0, "eyes open")])
    export(root / "good2.vhdr", ["Fz", "Cz", "T8"], 250.0, sines(3, 250.0, 13.0, seed=2), fmt="brainvision")
    for name in ("trunc", "nometa", "badgroup", "badcond"):
        export(root / f"{name}.edf", labels, 250.0, sines(4, 250.0, 4.0, seed=3))
    export(root / "unmappable.edf", ["EEG Fz-REF", "EEG X9-REF"], 250.0, sines(2, 250.0, 4.0, seed=4))
    whole = (root / "trunc.edf").read_bytes()
    (root / "trunc.edf").write_bytes(whole[: len(whole) // 2])
    (root / "corrupt.edf").write_bytes(b"\x00\xff garbage " * 64)
    (root / "metadata.csv").write_text(textwrap.dedent("""\
        file,subject_id,group,condition,session,device,age,WHODAS
        good1.edf,S1,SZ,resting,1,a,30,25
        good2.vhdr,S2,HC,resting,1,b,41,
        trunc.edf,S3,SZ,resting,1,a,,
        corrupt.edf,S4,SZ,resting,1,a,,
        unmappable.edf,S5,HC,resting,1,a,,
        badgroup.edf,S6,MCI,resting,1,a,,
        badcond.edf,S7,HC,sleep,1,a,,
        """))
    expected = [
        {"file": "badcond.edf", "reason": "condition 'sleep' (column 'condition', row 8, of the metadata table "
                                          "metadata.csv) is not listed in the [conditions] table of the layout; "
                                          "expected one of rest, resting"},
        {"file": "badgroup.edf", "reason": "group 'MCI' (column 'group', row 7, of the metadata table metadata.csv) "
                                           "is neither patient nor control; expected one of control, hc, patient, "
                                           "sz (the [groups] table of the layout)"},
        {"file": "corrupt.edf", "reason": "corrupt EDF/BDF header (a numeric field is not a number)"},
        {"file": "nometa.edf", "reason": "not listed in the metadata table metadata.csv (column 'file'), so its "
                                         "subject and group are unknown; add a row for it"},
        {"file": "trunc.edf", "reason": f"truncated: the header declares 4 data records ({len(whole):,} bytes) but "
                                        f"the file has {len(whole) // 2:,} bytes; re-copy or re-export it"},
        {"file": "unmappable.edf", "reason": "channel(s) 'EEG X9-REF' cannot be mapped to a 10/20 name by "
                                             "[devices.*] of the layout; map them in its 'channels' table, strip a "
                                             "prefix/suffix, or drop them with 'ignore'"},
    ]
    layout = root.parent / "mini.toml"
    layout.write_text(LAYOUT)
    return layout, expected


def test_bad_recordings_are_skipped_and_reported_the_others_convert(tmp_path, home, caplog):
    layout, expected = bad_source(tmp_path / "src")
    with caplog.at_level(logging.INFO, logger="neuroharness"):
        path = get_loader("nszed").prepare(source=tmp_path / "src", layout=layout)
    rec = Recordings.from_path(path)
    assert rec.attrs["skipped"] == expected
    lines = [r.getMessage() for r in caplog.records]
    for s in expected:
        assert f"[nszed] skipped {s['file']}: {s['reason']}" in lines
    assert "[nszed] converted 2, skipped 6: see the store attribute `skipped`" in lines
    t = rec.table
    assert list(t.index) == ["S1_rest_ses-1_a", "S2_rest_ses-1_b"]
    # ragged: 10 s and 13 s at 250 Hz, no padding
    assert t.n_samples.tolist() == [2500, 3250] and rec.eeg("S2_rest_ses-1_b").shape == (3, 3250)
    assert t.native_sfreq.tolist() == [500.0, 250.0] and t.n_channels.tolist() == [3, 3]
    assert t.age.tolist() == [30.0, 41.0] and t.whodas.iloc[0] == 25.0 and math.isnan(t.whodas.iloc[1])
    assert t.group.tolist() == ["patient", "control"]
    assert rec.channels("S1_rest_ses-1_a") == ["Fz", "Cz", "T8"]  # montage order, not the file's (Fz, Cz, T4)
    s1 = rec.signal("S1_rest_ses-1_a")
    assert json.loads(s1.attrs["renamed"]) == {"EEG T4-REF": "T8"} and s1.attrs["reference"] == "Cz"
    assert json.loads(s1.attrs["dropped_channels"]) == ["ECG"]
    ann = rec.annotations("S1_rest_ses-1_a")
    assert ann.description.tolist() == ["eyes open"] and ann.duration.tolist() == [1.0]
    np.testing.assert_allclose(ann.onset, [2.0], atol=1e-6)
    assert rec.attrs["layout_name"] == "mini" and rec.attrs["layout_text"] == LAYOUT
    assert rec.attrs["layout_sha256"] == hashlib.sha256(LAYOUT.encode()).hexdigest()


def test_strict_turns_skips_into_a_failure_that_writes_nothing(tmp_path, home):
    layout, expected = bad_source(tmp_path / "src")
    with pytest.raises(DataFormatError) as e:
        get_loader("nszed").prepare(source=tmp_path / "src", layout=layout, strict=True)
    msg = str(e.value)
    assert msg.startswith(f"nszed: --strict: 6 recording(s) of {tmp_path / 'src'} cannot be converted, so nothing "
                          "was written: ")
    for s in expected:
        assert f"{s['file']}: {s['reason']}" in msg
    assert leftovers(home, "nszed") == []
    # through the command line: exit 2, the same message
    assert main(["datasets", "prepare", "nszed", "--source", str(tmp_path / "src"), "--layout", str(layout),
                 "--strict"]) == 2
    assert leftovers(home, "nszed") == []
    # without --strict it converts; a later --strict refuses the store that has skips
    assert main(["datasets", "prepare", "nszed", "--source", str(tmp_path / "src"), "--layout", str(layout)]) == 0
    with pytest.raises(DataFormatError, match=r"was built with 6 skipped recording\(s\) and --strict refuses skips: "
                                              r"badcond\.edf: condition 'sleep'"):
        get_loader("nszed").prepare(source=tmp_path / "src", layout=layout, strict=True)


def test_layout_reuse_and_errors_before_writing(tmp_path, home):
    layout, _ = bad_source(tmp_path / "src")
    src = tmp_path / "src"
    loader = get_loader("nszed")
    path = loader.prepare(source=src, layout=layout)
    assert loader.prepare(source=src, layout=layout) == path  # the same layout: reused
    other = tmp_path / "other.toml"
    other.write_text(LAYOUT.replace('reference = "Cz"', 'reference = "linked mastoids"'))
    with pytest.raises(NeuroharnessError, match=r"was built with the layout .*mini\.toml \(sha256 [0-9a-f]{12}\), not "
                                                r"--layout .*other\.toml .*pass force=True \(--force\)"):
        loader.prepare(source=src, layout=other)
    with pytest.raises(NeuroharnessError, match=r"was built with the layout .*mini\.toml, not the packaged "
                                                r"loaders/eeg/layouts/nszed\.toml"):
        loader.prepare(source=src)
    rebuilt = Recordings.from_path(loader.prepare(source=src, layout=other, force=True))
    assert rebuilt.signal("S1_rest_ses-1_a").attrs["reference"] == "linked mastoids"
    assert rebuilt.attrs["layout_text"] == other.read_text()


@pytest.mark.parametrize("case, message", [
    ("unknown_key", r"layout file .*bad\.toml: \[devices\.\*\]: unknown key 'refrence'; allowed keys: reference, "
                    r"units, channels, strip_prefix, strip_suffix, ignore"),
    ("duplicate_id", r"recordings 'good1\.edf' and 'good2\.vhdr' both get the recording id 'S1_rest_ses-1_a'"),
    ("nothing", r"nszed: no recording of .* could be converted with the layout .*: badcond\.edf: "),
])
def test_source_errors_write_nothing(tmp_path, home, case, message):
    layout, _ = bad_source(tmp_path / "src")
    src = tmp_path / "src"
    if case == "unknown_key":
        layout = tmp_path / "bad.toml"
        layout.write_text(LAYOUT.replace('reference = "Cz"', 'refrence = "Cz"'))
    elif case == "duplicate_id":
        meta = (src / "metadata.csv").read_text().replace("good2.vhdr,S2,HC,resting,1,b", "good2.vhdr,S1,SZ,resting,1,a")
        (src / "metadata.csv").write_text(meta)
    else:
        for f in ("good1.edf", "good2.vhdr"):
            (src / f).unlink()
    with pytest.raises(DataFormatError, match=message):
        get_loader("nszed").prepare(source=src, layout=layout)
    assert leftovers(home, "nszed") == []


def test_no_source_gives_the_offline_text(home, tmp_path, monkeypatch):
    with pytest.raises(DataFormatError) as e:
        get_loader("nszed").prepare()
    assert str(e.value) == f"nszed: {cards.NSZED.offline}"
    assert leftovers(home, "nszed") == []
    # RepOD is downloaded when no source is given (tests/test_eeg_download.py); with its server unreachable the
    # error ends with the same offline text
    monkeypatch.setenv("NEUROHARNESS_REPOD_URL", closed_port_url())
    with pytest.raises(DownloadError) as e:
        get_loader("repod-schizophrenia").prepare()
    assert str(e.value).endswith(f"\nTo work offline: {cards.REPOD.offline}")
    assert leftovers(home, "repod-schizophrenia") == []
    with pytest.raises(DataFormatError, match=r"--source https://example\.org/x: only a local folder is read"):
        get_loader("nszed").prepare(source="https://example.org/x")
    (tmp_path / "f.edf").write_bytes(b"")
    with pytest.raises(DataFormatError, match=r"f\.edf: not a folder; expected the folder holding the recordings"):
        get_loader("nszed").prepare(source=tmp_path / "f.edf")
    # --layout belongs to the EEG loaders only
    assert get_loader("nszed").takes_layout and get_loader("repod-schizophrenia").skips_bad_parts
    assert canonical_channels()[0] == "Fp1"


def test_a_folder_copied_elsewhere_builds_the_same_store(nszed_src, tmp_path, monkeypatch):
    """Paths in the table are relative to the source, so the content checksum does not depend on where it lies."""
    copy = tmp_path / "copy"
    shutil.copytree(nszed_src.root, copy)
    sums = []
    for k, src in enumerate((nszed_src.root, copy)):
        monkeypatch.setenv("NEUROHARNESS_HOME", str(tmp_path / f"h{k}"))
        sums.append(Recordings.from_path(get_loader("nszed").prepare(source=src, only=[
            "NSZ002_rest_ses-1_device_b", "NSZ007_auditory-oddball_ses-1_device_b"])).attrs["content_sha256"])
    assert sums[0] == sums[1]
