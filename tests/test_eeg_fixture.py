"""The synthetic schizophrenia EEG generator (scripts/make_eeg_fixture.py): layouts, labels, units, metadata,
annotations, the group and device effects, determinism, atomic writes, CLI.

Every check reads the files as written, with plain ``mne.io.read_raw`` (and, for the EDF header, the raw
bytes), and compares them with literal expectations from the brief rather than the script's constants.
"""
import re
import subprocess
import sys
import warnings

import mne
import numpy as np
import pandas as pd
import pytest
from helpers import SCRIPTS, load_script
from scipy.signal import welch
from scipy.stats import mannwhitneyu, spearmanr

gen = load_script("make_eeg_fixture")

DEVICE_A = ["EEG Fp1-REF", "EEG Fp2-REF", "EEG F3-REF", "EEG F4-REF", "EEG C3-REF", "EEG C4-REF", "EEG P3-REF",
            "EEG P4-REF", "EEG O1-REF", "EEG O2-REF", "EEG F7-REF", "EEG F8-REF", "EEG T3-REF", "EEG T4-REF",
            "EEG T5-REF", "EEG T6-REF", "EEG Fz-REF", "EEG Cz-REF", "EEG Pz-REF", "ECG", "Photic"]
DEVICE_B = ["FP1", "FP2", "F7", "F3", "FZ", "F4", "F8", "T7", "C3", "CZ", "C4", "T8", "P7", "P3", "PZ", "P4", "P8",
            "O1", "O2"]
REPOD = ["Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T3", "C3", "Cz", "C4", "T4", "T5", "P3", "Pz", "P4", "T6",
         "O1", "O2"]
METADATA_HEADER = "file,subject_id,group,condition,session,device,age,sex,PANSS_total,WHODAS"
NAME = re.compile(r"(device_a|device_b)/(NSZ\d{3})_(resting|arithmetic|oddball)_s([12])\.(edf|vhdr|vmrk|eeg)")


def edf_header(path) -> dict:
    """The fields of an EDF header this test needs, parsed from the bytes (independent of MNE)."""
    raw = path.read_bytes()
    ns = int(raw[252:256])
    fields, at = {}, 256
    for name, width in (("label", 16), ("transducer", 80), ("dimension", 8), ("pmin", 8), ("pmax", 8),
                        ("dmin", 8), ("dmax", 8), ("prefilter", 80), ("samples", 8), ("reserved", 32)):
        fields[name] = [raw[at + i * width: at + (i + 1) * width].decode("ascii").strip() for i in range(ns)]
        at += ns * width
    keep = [i for i, lab in enumerate(fields["label"]) if lab != "EDF Annotations"]
    return {"reserved": raw[192:236].decode().strip(), "n_records": int(raw[236:244]),
            "duration": float(raw[244:252]), "labels": [fields["label"][i] for i in keep],
            "dimensions": [fields["dimension"][i] for i in keep],
            "samples": [int(fields["samples"][i]) for i in keep], "header_bytes": int(raw[184:192]),
            "size": len(raw)}


def read(path, preload=True):
    return mne.io.read_raw(path, preload=preload, verbose="error")


@pytest.fixture(scope="module")
def nszed(tmp_path_factory):
    root = tmp_path_factory.mktemp("eeg") / "nszed"
    m = gen.write_nszed(root)
    return m, root, {r.file: read(root / r.file) for r in m.recordings}


@pytest.fixture(scope="module")
def repod(tmp_path_factory):
    root = tmp_path_factory.mktemp("eeg") / "repod"
    m = gen.write_repod(root)
    return m, root, {r.file: read(root / r.file) for r in m.recordings}


# -- layout and names --------------------------------------------------------------------------------
def test_nszed_layout(nszed):
    m, root, _ = nszed
    on_disk = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert on_disk == list(m.files)
    assert sorted(p.name for p in root.iterdir()) == ["device_a", "device_b", "metadata.csv"]
    for f in on_disk:
        assert f == "metadata.csv" or NAME.fullmatch(f), f
    # the brief's examples, on their devices
    for f in ("device_a/NSZ001_resting_s1.edf", "device_b/NSZ002_resting_s1.edf", "device_b/NSZ007_oddball_s1.vhdr"):
        assert (root / f).is_file(), f
    vhdr = [f for f in on_disk if f.endswith(".vhdr")]
    assert vhdr and all(f.startswith("device_b/") and "_oddball_" in f for f in vhdr)
    for f in vhdr:  # the BrainVision triple
        assert (root / f[:-5]).with_suffix(".vmrk").is_file() and (root / f[:-5]).with_suffix(".eeg").is_file()
    recs = [NAME.fullmatch(f).groups() for f in on_disk if f.endswith((".edf", ".vhdr"))]
    subjects = sorted({r[1] for r in recs})
    assert subjects == [f"NSZ{i:03d}" for i in range(1, 19)]
    assert all((d, s, "resting", "1") in {r[:4] for r in recs} for d, s in {(r[0], r[1]) for r in recs})
    assert {r[2] for r in recs} == {"resting", "arithmetic", "oddball"} and {r[3] for r in recs} == {"1", "2"}
    assert len({r[0] for r in recs if r[1] == "NSZ007"}) == 1  # a subject keeps its device


def test_repod_layout(repod):
    m, root, _ = repod
    expected = [f"h{i:02d}.edf" for i in range(1, 15)] + [f"s{i:02d}.edf" for i in range(1, 15)]
    assert sorted(p.name for p in root.iterdir()) == expected == list(m.files)
    assert all(p.is_file() for p in root.iterdir())  # flat, no metadata table


# -- labels, rates, durations, units -----------------------------------------------------------------
def test_nszed_labels_rates_and_durations(nszed):
    m, root, raws = nszed
    for f, raw in raws.items():
        device = f.split("/")[0]
        labels, sfreq = (DEVICE_A, 500.0) if device == "device_a" else (DEVICE_B, 256.0)
        assert raw.ch_names == labels, f
        assert raw.info["sfreq"] == sfreq, f
        assert raw.n_times == 60 * sfreq, f
        if f.endswith(".edf"):
            h = edf_header(root / f)
            assert h["labels"] == labels, f
            assert h["reserved"] == "EDF+C" and h["duration"] == 1.0 and h["n_records"] == 60
            assert set(h["samples"]) == {int(sfreq)}
            dims = ["" if lab == "Photic" else "uV" for lab in labels]
            assert h["dimensions"] == dims, f  # EEG and ECG stored in microvolts, as MNE exports them
    # old names only on device A, modern ones only on device B
    a = next(r for f, r in raws.items() if f.startswith("device_a"))
    assert {"EEG T3-REF", "EEG T4-REF", "EEG T5-REF", "EEG T6-REF"} <= set(a.ch_names)
    assert not {"T7", "T8", "P7", "P8"} & {c.split()[-1].removesuffix("-REF") for c in a.ch_names}


def test_repod_labels_rates_and_durations(repod):
    _, root, raws = repod
    for f, raw in raws.items():
        assert raw.ch_names == REPOD and raw.info["sfreq"] == 250.0 and raw.n_times == 60 * 250, f
        assert len(raw.annotations) == 0, f
        h = edf_header(root / f)
        assert h["labels"] == REPOD and h["dimensions"] == ["uV"] * 19 and set(h["samples"]) == {250}


def test_amplitudes_are_volts_at_the_microvolt_scale(nszed, repod):
    for raws in (nszed[2], repod[2]):
        for f, raw in raws.items():
            eeg = raw.get_data(picks=[c for c in raw.ch_names if c not in ("ECG", "Photic")])
            sd = eeg.std(axis=1)
            assert (sd > 3e-6).all() and (sd < 40e-6).all(), (f, sd.min(), sd.max())  # tens of uV, in V
            assert np.abs(eeg).max() < 300e-6, f
            assert np.abs(eeg.mean(axis=1)).max() < 5e-6, f  # no offset
            if "ECG" in raw.ch_names:
                ecg = raw.get_data(picks=["ECG"])[0]
                assert 0.5e-3 < ecg.max() < 2e-3, f  # R peaks of about 1 mV
                assert not raw.get_data(picks=["Photic"]).any(), f
    vhdr = next(p for p in nszed[1].rglob("*.vhdr"))
    text = vhdr.read_text(encoding="utf-8")
    assert "BinaryFormat=IEEE_FLOAT_32" in text
    assert all(f"={c},,0.1,µV" in text for c in DEVICE_B)


def test_canonical_names_are_standard_1020(nszed):
    m = nszed[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # MNE 1.13 renames standard_1020; the names stay
        montage = set(mne.channels.make_standard_montage("standard_1020").ch_names)
    for r in m.recordings:
        names = [c for c in r.canonical if c is not None]
        assert len(names) == 19 == len(set(names)) and set(names) <= montage
        assert len(r.canonical) == len(r.labels)
    a = next(r for r in m.recordings if r.device == "device_a")
    mapping = dict(zip(a.labels, a.canonical))
    assert (mapping["EEG T3-REF"], mapping["EEG T4-REF"], mapping["EEG T5-REF"], mapping["EEG T6-REF"]) == (
        "T7", "T8", "P7", "P8")
    assert mapping["ECG"] is None and mapping["Photic"] is None


# -- metadata table ----------------------------------------------------------------------------------
def test_metadata_table(nszed):
    m, root, _ = nszed
    path = root / "metadata.csv"
    assert path.read_text(encoding="utf-8").splitlines()[0] == METADATA_HEADER
    t = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(t.columns) == METADATA_HEADER.split(",")
    recordings = sorted(f for f in m.files if f.endswith((".edf", ".vhdr")))
    assert sorted(t.file) == recordings and t.file.is_unique
    parts = t.file.str.extract(NAME.pattern)
    assert (parts[0] == t.device).all() and (parts[1] == t.subject_id).all()
    assert (parts[2] == t.condition).all() and (parts[3] == t.session).all()
    assert set(t.group) == {"SZ", "HC"} and set(t.condition) == {"resting", "arithmetic", "oddball"}
    assert set(t.sex) <= {"M", "F"}
    assert t.age.astype(int).between(18, 65).all()
    sz, hc = t[t.group == "SZ"], t[t.group == "HC"]
    assert (hc.PANSS_total == "").all() and (hc.WHODAS == "").all()
    assert sz.PANSS_total.astype(int).between(30, 210).all() and sz.WHODAS.astype(int).between(12, 60).all()
    # one value per subject of every subject-level column
    per_subject = t.groupby("subject_id")[["group", "device", "age", "sex", "PANSS_total", "WHODAS"]].nunique()
    assert (per_subject == 1).all().all()
    subjects = t.drop_duplicates("subject_id")
    assert (subjects.group == "SZ").sum() == 10 and (subjects.group == "HC").sum() == 8
    # devices balanced within each group, at the subject level
    assert pd.crosstab(subjects.group, subjects.device).to_dict() == {
        "device_a": {"HC": 4, "SZ": 5}, "device_b": {"HC": 4, "SZ": 5}}
    # the manifest says the same as the table
    for r in m.recordings:
        row = t.set_index("file").loc[r.file]
        assert (row.subject_id, row.group, row.condition, row.session, row.device) == (
            r.subject, r.group_code, r.condition, r.session, r.device)
        assert r.group == {"SZ": "patient", "HC": "control"}[row.group]


# -- annotations -------------------------------------------------------------------------------------
def test_oddball_recordings_carry_stimulus_annotations(nszed):
    m, root, raws = nszed
    oddball = [r for r in m.recordings if r.condition == "oddball"]
    assert {r.format for r in oddball} == {"EDF", "BrainVision"}
    for r in m.recordings:
        ann = raws[r.file].annotations
        if r.condition != "oddball":
            assert len(ann) == 0, r.file
            continue
        prefix = "Comment/" if r.format == "BrainVision" else ""
        kinds = [d.removeprefix(prefix) for d in ann.description]
        assert set(ann.description) == {prefix + "standard", prefix + "deviant"}, r.file
        onset = np.asarray(ann.onset)
        gaps = np.diff(onset)
        assert (gaps > 0.9 - 1 / r.sfreq).all() and (gaps < 1.1 + 1 / r.sfreq).all(), r.file
        assert onset[0] >= 1.0 - 1e-9 and onset[-1] < 60
        share = kinds.count("deviant") / len(kinds)
        assert 0.05 < share < 0.3, (r.file, share)
        assert "deviant deviant" not in " ".join(kinds)  # never two in a row
        # on the intended samples, in both formats
        np.testing.assert_array_equal(np.round(onset * r.sfreq, 3), [round(t * r.sfreq) for t, _ in r.events])
        assert kinds == [d for _, d in r.events]
        if r.format == "BrainVision":
            vmrk = (root / r.file[:-5]).with_suffix(".vmrk").read_text(encoding="utf-8")
            assert vmrk.count("=Comment,standard,") + vmrk.count("=Comment,deviant,") == len(kinds)


# -- the group and device effects, measured independently -------------------------------------------
def band_powers(raw) -> dict:
    picks = [c for c in raw.ch_names if c not in ("ECG", "Photic")]
    sfreq = raw.info["sfreq"]
    f, p = welch(raw.get_data(picks=picks), sfreq, nperseg=int(4 * sfreq))
    power = lambda lo, hi: p[:, (f >= lo) & (f < hi)].sum(axis=1).mean()  # noqa: E731
    return {"alpha": power(8, 13), "delta": power(1, 4), "line": power(49.5, 50.5)}


def resting_table(m, raws) -> pd.DataFrame:
    rows = []
    for r in m.recordings:
        if r.canonical_condition == "rest" and r.session == "1":
            rows.append({"subject": r.subject, "group": r.group, "device": r.device,
                         "model_ratio": np.log(r.alpha_uv / r.delta_uv), **band_powers(raws[r.file])})
    t = pd.DataFrame(rows)
    t["ratio"] = np.log10(t.alpha / t.delta)
    return t


@pytest.mark.parametrize("which", ["nszed", "repod"])
def test_group_effect_is_there_but_not_perfect(which, request):
    m, _, raws = request.getfixturevalue(which)
    t = resting_table(m, raws)
    patients, controls = t[t.group == "patient"], t[t.group == "control"]
    assert patients.ratio.mean() < controls.ratio.mean() - 0.2
    # AUC of "controls have the higher alpha/delta ratio": a classifier's job, not a trivial one
    auc = mannwhitneyu(controls.ratio, patients.ratio).statistic / (len(controls) * len(patients))
    assert 0.75 < auc < 1.0, auc
    # the manifest's generating amplitudes predict what was measured
    assert spearmanr(t.model_ratio, t.ratio).statistic > 0.8


def test_device_effect_is_balanced_across_groups(nszed):
    m, _, raws = nszed
    t = resting_table(m, raws)
    line = np.log10(t.line)
    a, b = line[t.device == "device_a"], line[t.device == "device_b"]
    assert b.min() > a.max() + 1.0  # 50 Hz: device B has > 10x the power of any device A recording
    counts = pd.crosstab(t.group, t.device)
    assert (counts.device_a == counts.device_b).all()
    by_group = line.groupby(t.group).mean()
    assert abs(by_group.patient - by_group.control) < 0.2 * (b.mean() - a.mean())
    # nor does the device carry the group effect: within each device the patients' ratio is lower
    for device, d in t.groupby("device"):
        assert d.ratio[d.group == "patient"].mean() < d.ratio[d.group == "control"].mean(), device


# -- manifest and plans ------------------------------------------------------------------------------
def test_manifest_describes_what_was_written(nszed):
    m, root, raws = nszed
    assert m.dataset == "nszed" and m.root == root.absolute() and m.metadata == "metadata.csv"
    assert len(m.subjects) == 18 and len(m.recordings) == len(raws) == 34
    assert m.params["seed"] == 0 and m.params["seconds"] == 60 and m.params["effect"] > 0
    for r in m.recordings:
        raw = raws[r.file]
        assert (raw.ch_names, raw.info["sfreq"], raw.n_times) == (list(r.labels), r.sfreq, r.n_samples)
        assert r.seconds == 60 and r.alpha_uv > 0 and r.delta_uv > 0 and 8.5 <= r.alpha_peak_hz <= 12
    t = m.table()
    assert len(t) == 34 and {"file", "subject", "group", "device", "sfreq", "n_samples", "alpha_uv", "delta_uv",
                             "gain", "line_uv", "n_events"} <= set(t.columns)
    # the plan is the manifest, before writing
    planned = gen.plan_nszed()
    assert planned.recordings == m.recordings and planned.subjects == m.subjects and planned.params == m.params


def test_real_size_plans():
    n = gen.plan_nszed(real_size=True)
    patients = [s for s in n.subjects if s.group == "patient"]
    assert len(n.subjects) == 59 and len(patients) == 37
    assert len(n.recordings) == 59
    assert {(r.condition, r.session, r.sfreq, r.n_samples) for r in n.recordings} == {("resting", "1", 250.0, 450000)}
    devices = pd.crosstab([s.group for s in n.subjects], [s.device for s in n.subjects])
    assert devices.to_dict() == {"device_a": {"control": 11, "patient": 18}, "device_b": {"control": 11, "patient": 19}}
    r = gen.plan_repod(real_size=True)
    assert len(r.recordings) == 28 and {(x.sfreq, x.n_samples) for x in r.recordings} == {(250.0, 225000)}


@pytest.mark.parametrize("kw, field", [({"seconds": 0}, "seconds"), ({"n_patients": -1}, "n_patients"),
                                       ({"n_patients": 0, "n_controls": 0}, "at least one subject"),
                                       ({"seed": -1}, "seed"), ({"seconds": 2.5}, "seconds")])
def test_bad_arguments_write_nothing(tmp_path, kw, field):
    with pytest.raises(ValueError, match=field):
        gen.write_nszed(tmp_path / "out", **kw)
    with pytest.raises(ValueError, match="sfreqs"):
        gen.write_nszed(tmp_path / "out", sfreqs={"device_a": 500})
    with pytest.raises(ValueError, match="at most 99"):
        gen.write_repod(tmp_path / "out", n_patients=100)
    assert list(tmp_path.iterdir()) == []


# -- determinism -------------------------------------------------------------------------------------
SMALL = dict(n_patients=4, n_controls=4, seconds=4)  # 8 subjects: EDF, BrainVision and annotations


def test_same_seed_same_bytes(tmp_path):
    one = gen.write_nszed(tmp_path / "one", seed=3, **SMALL)
    two = gen.write_nszed(tmp_path / "two", seed=3, **SMALL)
    other = gen.write_nszed(tmp_path / "other", seed=4, **SMALL)
    assert one.files == two.files == other.files and any(f.endswith(".vhdr") for f in one.files)
    for f in one.files:
        assert (one.root / f).read_bytes() == (two.root / f).read_bytes(), f
    data = [f for f in one.files if f.endswith((".edf", ".eeg"))]
    assert all((one.root / f).read_bytes() != (other.root / f).read_bytes() for f in data)
    x1 = read(one.root / "device_b/NSZ007_oddball_s1.vhdr").get_data()
    x2 = read(two.root / "device_b/NSZ007_oddball_s1.vhdr").get_data()
    np.testing.assert_array_equal(x1, x2)


def test_recordings_do_not_depend_on_the_roster_size():
    # a subject's signals are seeded by its own position: adding subjects leaves the others alone
    small, large = gen.plan_repod(2, 2, 4), gen.plan_repod(3, 3, 4)
    assert small.subject("h01") == large.subject("h01") and small.recordings[0] == large.recordings[0]


# -- atomic writes and --force -----------------------------------------------------------------------
@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_failure_midway_leaves_nothing(tmp_path, monkeypatch, exc):
    calls = []
    real = gen._export

    def failing(path, raw, fmt):
        calls.append(path)
        if len(calls) == 3:
            raise exc("disk full")
        real(path, raw, fmt)

    monkeypatch.setattr(gen, "_export", failing)
    with pytest.raises(exc, match="disk full"):
        gen.write_nszed(tmp_path / "out", **SMALL)
    assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []  # no target, no temporary sibling


def test_failure_midway_keeps_the_old_folder(tmp_path, monkeypatch):
    target = tmp_path / "out"
    gen.write_repod(target, 1, 1, 3)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    monkeypatch.setattr(gen, "_export", lambda *a: (_ for _ in ()).throw(OSError("no space left")))
    with pytest.raises(OSError, match="no space left"):
        gen.write_repod(target, 2, 2, 3, force=True)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_non_empty_target_needs_force(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "stray.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=r"out is not empty.*--force"):
        gen.write_repod(target, 1, 1, 3)
    assert [p.name for p in target.iterdir()] == ["stray.txt"] and [p.name for p in tmp_path.iterdir()] == ["out"]
    m = gen.write_repod(target, 1, 1, 3, force=True)
    assert sorted(p.name for p in target.iterdir()) == ["h01.edf", "s01.edf"] == list(m.files)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_empty_target_is_fine_and_a_file_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    assert gen.write_repod(tmp_path / "empty", 0, 1, 3).files == ("h01.edf",)
    (tmp_path / "file").write_text("x")
    for force in (False, True):
        with pytest.raises(FileExistsError, match="not a folder"):
            gen.write_repod(tmp_path / "file", 1, 0, 3, force=force)
    assert (tmp_path / "file").read_text() == "x"


# -- command line ------------------------------------------------------------------------------------
def test_cli(tmp_path, capsys):
    out = tmp_path / "r"
    assert gen.main(["repod", str(out), "--patients", "1", "--controls", "2", "--seconds", "3"]) == 0
    assert "3 recordings of 3 subjects" in capsys.readouterr().out
    assert gen.main(["repod", str(out), "--patients", "1", "--controls", "1", "--seconds", "3"]) == 2
    assert "error:" in capsys.readouterr().err and len(list(out.iterdir())) == 3
    assert gen.main(["repod", str(out), "--patients", "1", "--controls", "1", "--seconds", "3", "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["h01.edf", "s01.edf"]
    assert gen.main(["nszed", str(tmp_path / "n"), "--seconds", "0"]) == 2
    assert "seconds" in capsys.readouterr().err and not (tmp_path / "n").exists()


def test_script_runs_as_a_program(tmp_path):
    out = tmp_path / "n"
    done = subprocess.run([sys.executable, str(SCRIPTS / "make_eeg_fixture.py"), "nszed", str(out), "--patients", "1",
                           "--controls", "1", "--seconds", "2", "--seed", "5"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.edf")) == [
        "device_a/NSZ001_oddball_s1.edf", "device_a/NSZ001_resting_s1.edf", "device_b/NSZ002_arithmetic_s1.edf",
        "device_b/NSZ002_resting_s1.edf"]
