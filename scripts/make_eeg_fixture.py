"""Synthetic schizophrenia EEG in the raw layouts of NSzED (a plausible guess) and RepOD (test and benchmark fixtures).

Every file is real: EDF written by ``mne.export.export_raw(fmt="edf")`` (edfio) and BrainVision by
``mne.export.export_raw(fmt="brainvision")`` (pybv), from signals in volts at the microvolt scale, so
``mne.io.read_raw`` reads them back in V. Nothing comes from real recordings.

NSzED-like layout (:func:`write_nszed`; the real release's layout is unknown, see
shared/reference/nszed_eeg.md, and the loader adapts through its layout file)::

    DIR/metadata.csv                      one row per recording, columns in this order:
        file,subject_id,group,condition,session,device,age,sex,PANSS_total,WHODAS
        file: path relative to DIR ('/'); group "SZ" / "HC"; condition "resting" / "arithmetic" / "oddball";
        session "1" / "2"; device "device_a" / "device_b" (the folder); PANSS_total and WHODAS (12-item
        simple score, 12-60) empty for controls
    DIR/device_a/NSZ001_resting_s1.edf    device A: EDF, 500 Hz, 21 signals: "EEG <name>-REF" with the OLD
                                          10/20 names (EEG T3-REF, EEG T4-REF, EEG T5-REF, EEG T6-REF), in a
                                          clinical order, then "ECG" (about 1 mV) and "Photic" (flat, no unit)
    DIR/device_b/NSZ002_resting_s1.edf    device B: EDF, 256 Hz, 19 signals with modern names in upper case
                                          ("FP1", ..., "T7", "P7", ...), 50 Hz line noise, a gain of 0.75
    DIR/device_b/NSZ007_oddball_s1.vhdr   device B oddball recordings are BrainVision (.vhdr/.vmrk/.eeg,
                                          float32, uV) with the stimuli as markers (Comment,standard /
                                          Comment,deviant; MNE reads them as "Comment/standard" ...)

Subjects are NSZ001, NSZ002, ... in pairs of one group (patients and controls interleaved, a lone
subject of a group with an odd count last); devices follow A B B A A B B A ... by position, so each pair
has one recording device of each kind and the devices are balanced within both groups. Every subject has
``resting`` session 1; by default (not with ``real_size``) subjects at positions 0, 3, 6, ... also have
``oddball`` (EDF with annotations on device A, BrainVision on device B), positions 1, 4, 7, ... have
``arithmetic``, and positions 2, 7, 12, ... a second ``resting`` session.

RepOD layout (:func:`write_repod`)::

    DIR/h01.edf .. DIR/h14.edf, DIR/s01.edf .. DIR/s14.edf     (h: healthy control, s: schizophrenia)
    EDF, 250 Hz, 19 signals Fp1 Fp2 F7 F3 Fz F4 F8 T3 C3 Cz C4 T4 T5 P3 Pz P4 T6 O1 O2, eyes-closed rest,
    no metadata table, no annotations

Signal model, per 10/20 channel, in uV before the device gain (all spectra shaped in the frequency
domain from complex Gaussian coefficients, one irfft per component):

* background: 1/f^beta noise (beta ~ U(1.2, 1.8) per subject, flat below 0.5 Hz, no DC), RMS ``background_uv``
  ~ U(8, 12) per subject, spatially correlated (exp(-distance / 0.35) on a unit-disk 10/20 layout);
* alpha: narrow-band noise (Gaussian bump, sd 0.8 Hz) at the subject's peak (10.2 Hz, -0.3 Hz in patients,
  per-subject sd 0.5 Hz), 60 % shared across channels, posterior topography (weight 0.35 ... 1), RMS
  ``alpha_uv`` at weight 1;
* delta: narrow-band noise at 2 Hz (sd 0.7 Hz), frontal topography (0.5 ... 1), RMS ``delta_uv``;
* subject amplitudes: ``alpha_uv = ALPHA_UV * exp(-effect [patients] + N(0, subject_sd))`` and
  ``delta_uv = DELTA_UV * exp(+effect [patients] + N(0, subject_sd))`` (defaults effect 0.35, subject_sd
  0.3: the log alpha/delta amplitude ratio separates the groups by about 1.65 sd, so a band-power
  classifier is good, not perfect); each recording multiplies them by a session jitter exp(N(0, 0.1)) and
  its condition's factor (alpha x 0.55 in arithmetic, x 0.8 in oddball);
* oddball: a stimulus every 0.9-1.1 s, 15 % deviants (never two in a row), N1/P2 responses at fronto-central
  channels and a mismatch negativity on deviants (smaller in patients);
* device: ``gain`` multiplies the brain signal; line noise ``line_uv`` (50 Hz sine, per-channel amplitude
  x U(0.5, 1.5)) is added; 0.5 uV white sensor noise. Device A: gain 1, line 0.25 uV; device B: gain 0.75,
  line U(4, 8) uV per subject; RepOD: gain 1, line 0.5 uV.

Determinism: subject parameters come from ``default_rng([seed, dataset, subject index])`` and each
recording's noise from ``default_rng([seed, dataset, subject index, recording index])``; measurement dates
are fixed, so the same arguments give byte-identical files. Writing is atomic: everything goes to a hidden
temporary sibling of DIR that is renamed into place at the end (removed on any error); a non-empty DIR is
refused unless ``force`` (then the old DIR is replaced whole).

Usage::

    python scripts/make_eeg_fixture.py nszed DIR [--patients 10] [--controls 8] [--seconds 60] [--seed 0] [--force]
    python scripts/make_eeg_fixture.py repod DIR [--patients 14] [--controls 14] [--seconds 60] [--seed 0] [--force]
    python scripts/make_eeg_fixture.py {nszed,repod} DIR --real-size    # benchmark size

``--real-size``: NSzED 37 patients + 22 controls x 30 min of ``resting`` at 250 Hz on both devices (no
other conditions: "59 subjects x 30 min x 19 channels at 250 Hz"), about 1 GB; RepOD 14 + 14 x 15 min.

API: :func:`write_nszed`, :func:`write_repod`, :func:`write_fixture`, :func:`plan_nszed`, :func:`plan_repod`
(the manifest without writing), :class:`Manifest`, :class:`Subject`, :class:`Recording`.
"""

import argparse
import csv
import dataclasses
import datetime as dt
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# 10/20 channels in canonical (MNE standard_1020) spelling, in the RepOD file order
CHANNELS = ("Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7", "C3", "Cz", "C4", "T8", "P7", "P3", "Pz", "P4",
            "P8", "O1", "O2")
OLD_NAMES = {"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6"}
# device A's clinical order (left/right pairs front to back, then the temporal chain, then the midline)
DEVICE_A_ORDER = ("Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T7", "T8", "P7",
                  "P8", "Fz", "Cz", "Pz")
DEVICE_A_EXTRA = ("ECG", "Photic")
# azimuthal projection of the 10/20 positions: Cz at the centre, the Fpz-T7-Oz-T8 ring at radius 0.8
_XY = {"Fp1": (-0.247, 0.761), "Fp2": (0.247, 0.761), "F7": (-0.647, 0.470), "F3": (-0.31, 0.42),
       "Fz": (0.0, 0.4), "F4": (0.31, 0.42), "F8": (0.647, 0.470), "T7": (-0.8, 0.0), "C3": (-0.4, 0.0),
       "Cz": (0.0, 0.0), "C4": (0.4, 0.0), "T8": (0.8, 0.0), "P7": (-0.647, -0.470), "P3": (-0.31, -0.42),
       "Pz": (0.0, -0.4), "P4": (0.31, -0.42), "P8": (0.647, -0.470), "O1": (-0.247, -0.761),
       "O2": (0.247, -0.761)}
CORRELATION_LENGTH = 0.35  # background correlation exp(-d / L) on the unit-disk layout

ALPHA_UV, DELTA_UV = 10.0, 6.0  # control means of the subject amplitudes (RMS uV at topography weight 1)
ALPHA_PEAK_HZ, ALPHA_PEAK_SHIFT, ALPHA_PEAK_SD, ALPHA_WIDTH = 10.2, -0.3, 0.5, 0.8
DELTA_PEAK_HZ, DELTA_WIDTH = 2.0, 0.7
EFFECT, SUBJECT_SD, SESSION_SD = 0.35, 0.3, 0.1
BACKGROUND_UV, EXPONENT = (8.0, 12.0), (1.2, 1.8)
SENSOR_UV = 0.5
CONDITION_ALPHA = {"resting": 1.0, "arithmetic": 0.55, "oddball": 0.8, "rest": 1.0}
CANONICAL_CONDITION = {"resting": "rest", "arithmetic": "arithmetic", "oddball": "auditory-oddball", "rest": "rest"}
# device: (gain, line noise uV (low, high) per subject)
DEVICES = {"device_a": (1.0, (0.25, 0.25)), "device_b": (0.75, (4.0, 8.0)), "repod": (1.0, (0.5, 0.5))}
LINE_HZ = 50.0
SOA = (0.9, 1.1)
DEVIANT_P = 0.15
MMN_UV = {"control": 2.5, "patient": 1.2}

NSZED_SFREQ = {"device_a": 500.0, "device_b": 256.0}
REAL_SFREQ = 250.0
NSZED_REAL = dict(n_patients=37, n_controls=22, seconds=1800)
REPOD_REAL = dict(n_patients=14, n_controls=14, seconds=900)
REPOD_SFREQ = 250.0
DATASET_CODE = {"nszed": 1, "repod": 2}
BASE_DATE = dt.datetime(2022, 5, 2, 9, 0, 0, tzinfo=dt.timezone.utc)
METADATA_COLUMNS = ("file", "subject_id", "group", "condition", "session", "device", "age", "sex", "PANSS_total",
                    "WHODAS")


# -- manifest ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Subject:
    """One synthetic subject and the parameters its recordings are generated from."""

    subject: str
    group: str  # "patient" / "control"
    group_code: str  # as the table or file name writes it: "SZ" / "HC" (NSzED), "s" / "h" (RepOD)
    device: str
    index: int  # position in the roster (seeds its random streams)
    age: int
    sex: str  # "M" / "F"
    panss_total: int | None  # None for controls and RepOD
    whodas: int | None
    alpha_uv: float  # RMS uV at topography weight 1, before condition, session jitter and device gain
    delta_uv: float
    alpha_peak_hz: float
    background_uv: float
    exponent: float  # 1/f exponent of the background power spectrum
    mmn_uv: float
    line_uv: float  # 50 Hz amplitude (uV) of this subject's device
    gain: float


@dataclass(frozen=True)
class Recording:
    """One recording file: what it holds, and the parameters its signal was generated from."""

    file: str  # path relative to the fixture root, '/' separators (the .vhdr for BrainVision)
    subject: str
    group: str  # "patient" / "control"
    group_code: str
    condition: str  # as written in the table ("resting", "arithmetic", "oddball"; "rest" for RepOD)
    canonical_condition: str  # "rest", "arithmetic", "auditory-oddball"
    session: str
    device: str
    format: str  # "EDF" / "BrainVision"
    sfreq: float
    n_samples: int
    labels: tuple[str, ...]  # every channel label in file order
    canonical: tuple[str | None, ...]  # the canonical 10/20 name of each label (None: ECG, Photic)
    index: int  # recording index within the subject (seeds its noise)
    alpha_uv: float  # subject alpha x condition factor x session jitter (before the device gain)
    delta_uv: float
    alpha_peak_hz: float
    gain: float
    line_uv: float
    events: tuple[tuple[float, str], ...] = ()  # (onset s, "standard" / "deviant") of the oddball stimuli

    @property
    def seconds(self) -> float:
        return self.n_samples / self.sfreq

    @property
    def eeg_labels(self) -> tuple[str, ...]:
        return tuple(lab for lab, c in zip(self.labels, self.canonical) if c is not None)


@dataclass
class Manifest:
    """What a fixture holds (or, from a plan_* function, will hold once written)."""

    dataset: str  # "nszed" / "repod"
    root: Path | None
    params: dict
    subjects: tuple[Subject, ...]
    recordings: tuple[Recording, ...]
    metadata: str | None = None  # the table's path relative to root
    files: tuple[str, ...] = field(default=())  # every file written, relative to root, sorted

    def table(self):
        """One row per recording (pandas DataFrame, events and labels left out)."""
        import pandas as pd

        rows = [{k: v for k, v in dataclasses.asdict(r).items() if k not in ("labels", "canonical", "events")}
                | {"n_events": len(r.events)} for r in self.recordings]
        return pd.DataFrame(rows)

    def subject(self, name: str) -> Subject:
        return next(s for s in self.subjects if s.subject == name)


# -- plans -------------------------------------------------------------------------------------------
def _check_counts(n_patients, n_controls, seconds, seed, limit):
    for name, v, lo in (("n_patients", n_patients, 0), ("n_controls", n_controls, 0), ("seconds", seconds, 2),
                        ("seed", seed, 0)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
            raise ValueError(f"{name} is {v!r}, expected an integer >= {lo}")
    if n_patients + n_controls < 1 or max(n_patients, n_controls) > limit:
        raise ValueError(f"{n_patients} patients and {n_controls} controls: expected at least one subject and at "
                         f"most {limit} per group (the file names' numbering)")


def _roster(n_patients: int, n_controls: int) -> list[str]:
    """Group of each roster position: same-group pairs, interleaved evenly, lone subjects last."""
    pairs = [((i + 0.5) / (n_patients // 2), 0, "patient") for i in range(n_patients // 2)]
    pairs += [((i + 0.5) / (n_controls // 2), 1, "control") for i in range(n_controls // 2)]
    groups = [g for *_, g in sorted(pairs) for _ in range(2)]
    return groups + ["patient"] * (n_patients % 2) + ["control"] * (n_controls % 2)


def _subject(rng, name, group, code, device, index, clinical: bool) -> Subject:
    patient = group == "patient"
    shift = EFFECT if patient else 0.0
    gain, (line_lo, line_hi) = DEVICES[device]
    return Subject(
        subject=name, group=group, group_code=code, device=device, index=index,
        age=int(np.clip(round(rng.normal(35.0, 9.0)), 18, 65)),
        sex=str(rng.choice(["M", "F"])),
        panss_total=int(np.clip(round(rng.normal(82, 16)), 30, 210)) if patient and clinical else None,
        whodas=int(np.clip(round(rng.normal(28, 8)), 12, 60)) if patient and clinical else None,
        alpha_uv=float(ALPHA_UV * np.exp(-shift + rng.normal(0, SUBJECT_SD))),
        delta_uv=float(DELTA_UV * np.exp(shift + rng.normal(0, SUBJECT_SD))),
        alpha_peak_hz=float(np.clip(ALPHA_PEAK_HZ + (ALPHA_PEAK_SHIFT if patient else 0.0)
                                    + rng.normal(0, ALPHA_PEAK_SD), 8.5, 12.0)),
        background_uv=float(rng.uniform(*BACKGROUND_UV)),
        exponent=float(rng.uniform(*EXPONENT)),
        mmn_uv=float(MMN_UV[group] * np.exp(rng.normal(0, 0.2))),
        line_uv=float(rng.uniform(line_lo, line_hi)),
        gain=gain)


def _stimuli(rng, seconds: float, sfreq: float) -> tuple[tuple[float, str], ...]:
    """Oddball stimuli (onset on a sample, description), from 1 s to 0.6 s before the end."""
    out, t, last_deviant = [], 1.0, True
    while t < seconds - 0.6:
        deviant = len(out) >= 3 and not last_deviant and rng.random() < DEVIANT_P / (1 - DEVIANT_P)
        out.append((round(t * sfreq) / sfreq, "deviant" if deviant else "standard"))
        last_deviant = deviant
        t += rng.uniform(*SOA)
    return tuple(out)


def _recording(seed, dataset, s: Subject, index, file, condition, session, fmt, sfreq, seconds, labels,
               canonical) -> Recording:
    rng = np.random.default_rng([seed, DATASET_CODE[dataset], s.index, index])
    jitter_a, jitter_d = np.exp(rng.normal(0, SESSION_SD, 2))
    events = _stimuli(rng, seconds, sfreq) if condition == "oddball" else ()
    return Recording(
        file=file, subject=s.subject, group=s.group, group_code=s.group_code, condition=condition,
        canonical_condition=CANONICAL_CONDITION[condition], session=session, device=s.device, format=fmt,
        sfreq=float(sfreq), n_samples=int(round(seconds * sfreq)), labels=tuple(labels), canonical=tuple(canonical),
        index=index, alpha_uv=float(s.alpha_uv * CONDITION_ALPHA[condition] * jitter_a),
        delta_uv=float(s.delta_uv * jitter_d), alpha_peak_hz=s.alpha_peak_hz, gain=s.gain, line_uv=s.line_uv,
        events=events)


def _device_labels(device: str) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
    if device == "device_a":
        labels = tuple(f"EEG {OLD_NAMES.get(c, c)}-REF" for c in DEVICE_A_ORDER) + DEVICE_A_EXTRA
        return labels, DEVICE_A_ORDER + (None,) * len(DEVICE_A_EXTRA)
    if device == "device_b":
        return tuple(c.upper() for c in CHANNELS), CHANNELS
    return tuple(OLD_NAMES.get(c, c) for c in CHANNELS), CHANNELS  # RepOD


def plan_nszed(n_patients: int | None = None, n_controls: int | None = None, seconds: int | None = None,
               seed: int = 0, *, real_size: bool = False, sfreqs: dict | None = None,
               extras: bool | None = None) -> Manifest:
    """The NSzED-like fixture's manifest (``root`` None), without writing anything.

    Defaults: 10 patients, 8 controls, 60 s, device A 500 Hz / device B 256 Hz, extra conditions and
    sessions; ``real_size``: 37 + 22 subjects, 1800 s, 250 Hz on both devices, ``resting`` only.
    Explicit arguments win over either set of defaults.
    """
    real = NSZED_REAL if real_size else dict(n_patients=10, n_controls=8, seconds=60)
    n_patients = real["n_patients"] if n_patients is None else n_patients
    n_controls = real["n_controls"] if n_controls is None else n_controls
    seconds = real["seconds"] if seconds is None else seconds
    extras = (not real_size) if extras is None else extras
    sfreqs = dict(sfreqs or ({d: REAL_SFREQ for d in NSZED_SFREQ} if real_size else NSZED_SFREQ))
    _check_counts(n_patients, n_controls, seconds, seed, 999)
    if set(sfreqs) != set(NSZED_SFREQ) or any(not float(f).is_integer() or f < 100 for f in sfreqs.values()):
        raise ValueError(f"sfreqs is {sfreqs!r}, expected whole rates >= 100 Hz for exactly {sorted(NSZED_SFREQ)}")
    subjects, recordings = [], []
    for i, group in enumerate(_roster(n_patients, n_controls)):
        name = f"NSZ{i + 1:03d}"
        device = "device_a" if i % 4 in (0, 3) else "device_b"
        rng = np.random.default_rng([seed, DATASET_CODE["nszed"], i])
        s = _subject(rng, name, group, "SZ" if group == "patient" else "HC", device, i, clinical=True)
        subjects.append(s)
        todo = [("resting", "1")]
        if extras:
            todo += [("oddball", "1")] * (i % 3 == 0) + [("arithmetic", "1")] * (i % 3 == 1)
            todo += [("resting", "2")] * (i % 5 == 2)
        labels, canonical = _device_labels(device)
        for k, (condition, session) in enumerate(todo):
            fmt = "BrainVision" if condition == "oddball" and device == "device_b" else "EDF"
            ext = "vhdr" if fmt == "BrainVision" else "edf"
            file = f"{device}/{name}_{condition}_s{session}.{ext}"
            recordings.append(_recording(seed, "nszed", s, k, file, condition, session, fmt, sfreqs[device],
                                         seconds, labels, canonical))
    params = dict(n_patients=n_patients, n_controls=n_controls, seconds=seconds, seed=seed, real_size=real_size,
                  extras=extras, sfreqs=sfreqs, **_model_params())
    return Manifest("nszed", None, params, tuple(subjects), tuple(recordings), metadata="metadata.csv")


def plan_repod(n_patients: int | None = None, n_controls: int | None = None, seconds: int | None = None,
               seed: int = 0, *, real_size: bool = False) -> Manifest:
    """The RepOD-like fixture's manifest (``root`` None), without writing anything.

    Defaults: 14 patients (``sNN.edf``), 14 controls (``hNN.edf``), 60 s (``real_size``: 900 s), 250 Hz.
    """
    real = REPOD_REAL if real_size else dict(n_patients=14, n_controls=14, seconds=60)
    n_patients = real["n_patients"] if n_patients is None else n_patients
    n_controls = real["n_controls"] if n_controls is None else n_controls
    seconds = real["seconds"] if seconds is None else seconds
    _check_counts(n_patients, n_controls, seconds, seed, 99)
    labels, canonical = _device_labels("repod")
    subjects, recordings = [], []
    roster = [("control", "h", j) for j in range(n_controls)] + [("patient", "s", j) for j in range(n_patients)]
    for i, (group, code, j) in enumerate(roster):
        name = f"{code}{j + 1:02d}"
        rng = np.random.default_rng([seed, DATASET_CODE["repod"], i])
        s = _subject(rng, name, group, code, "repod", i, clinical=False)
        subjects.append(s)
        recordings.append(_recording(seed, "repod", s, 0, f"{name}.edf", "rest", "1", "EDF", REPOD_SFREQ, seconds,
                                     labels, canonical))
    params = dict(n_patients=n_patients, n_controls=n_controls, seconds=seconds, seed=seed, real_size=real_size,
                  sfreq=REPOD_SFREQ, **_model_params())
    return Manifest("repod", None, params, tuple(subjects), tuple(recordings))


def _model_params() -> dict:
    return dict(alpha_uv=ALPHA_UV, delta_uv=DELTA_UV, effect=EFFECT, subject_sd=SUBJECT_SD, session_sd=SESSION_SD,
                alpha_peak_hz=ALPHA_PEAK_HZ, alpha_peak_shift=ALPHA_PEAK_SHIFT, delta_peak_hz=DELTA_PEAK_HZ,
                condition_alpha=dict(CONDITION_ALPHA), devices={k: {"gain": g, "line_uv": list(r)}
                                                                for k, (g, r) in DEVICES.items()},
                line_hz=LINE_HZ, deviant_p=DEVIANT_P)


# -- signals -----------------------------------------------------------------------------------------
def _shaped(rng, n_rows: int, n: int, sfreq: float, amplitude) -> np.ndarray:
    """``(n_rows, n)`` noise with amplitude spectrum ``amplitude(f)``, each row scaled to unit RMS."""
    f = np.fft.rfftfreq(n, 1 / sfreq)
    spec = rng.standard_normal((n_rows, len(f))) + 1j * rng.standard_normal((n_rows, len(f)))
    spec *= amplitude(f)
    x = np.fft.irfft(spec, n=n)
    x /= x.std(axis=1, keepdims=True)
    return x


def _bump(centre: float, width: float):
    return lambda f: np.exp(-0.5 * ((f - centre) / width) ** 2)


def _topographies():
    xy = np.array([_XY[c] for c in CHANNELS])
    y = xy[:, 1] / 0.8
    alpha = 0.35 + 0.65 / (1 + np.exp(4 * y))  # posterior
    delta = 0.5 + 0.5 / (1 + np.exp(-4 * y))  # frontal
    erp = np.exp(-0.5 * (xy[:, 0] ** 2 + (xy[:, 1] - 0.2) ** 2) / 0.3 ** 2)  # fronto-central
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    mix = np.linalg.cholesky(np.exp(-d / CORRELATION_LENGTH))
    return alpha, delta, erp, mix


def _erp_kernel(sfreq: float, mmn_uv: float) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(0.5 * sfreq)) / sfreq
    g = lambda mu, sd: np.exp(-0.5 * ((t - mu) / sd) ** 2)  # noqa: E731
    standard = -3.0 * g(0.10, 0.02) + 2.5 * g(0.19, 0.03)
    return standard, standard - mmn_uv * g(0.17, 0.035)


def synthesize(rec: Recording, s: Subject, seed: int, dataset: str) -> np.ndarray:
    """The recording's signals in V, ``(len(rec.labels), rec.n_samples)`` float64, rows in file order."""
    from scipy.signal import fftconvolve

    rng = np.random.default_rng([seed, DATASET_CODE[dataset], s.index, rec.index, 1])
    n, sf, nc = rec.n_samples, rec.sfreq, len(CHANNELS)
    topo_alpha, topo_delta, topo_erp, mix = _topographies()
    floor = 0.5

    def pink(f):
        a = np.where(f >= floor, np.maximum(f, floor) ** (-s.exponent / 2), floor ** (-s.exponent / 2) * f / floor)
        a[0] = 0.0
        return a

    eeg = s.background_uv * (mix @ _shaped(rng, nc, n, sf, pink))
    alpha = _shaped(rng, nc + 1, n, sf, _bump(rec.alpha_peak_hz, ALPHA_WIDTH))
    eeg += rec.alpha_uv * topo_alpha[:, None] * (np.sqrt(0.6) * alpha[-1] + np.sqrt(0.4) * alpha[:-1])
    delta = _shaped(rng, nc + 1, n, sf, _bump(DELTA_PEAK_HZ, DELTA_WIDTH))
    eeg += rec.delta_uv * topo_delta[:, None] * (np.sqrt(0.5) * delta[-1] + np.sqrt(0.5) * delta[:-1])
    if rec.events:
        standard, deviant = _erp_kernel(sf, s.mmn_uv)
        evoked = np.zeros(n)
        for kernel, kind in ((standard, "standard"), (deviant, "deviant")):
            train = np.zeros(n)
            train[[round(t * sf) for t, d in rec.events if d == kind]] = 1.0
            evoked += fftconvolve(train, kernel)[:n]
        eeg += topo_erp[:, None] * evoked
    eeg *= rec.gain
    # each channel's line noise a * sin(wt + phi), as a mix of one sine and one cosine (cheaper than nc sines)
    wt = 2 * np.pi * LINE_HZ * np.arange(n) / sf
    amp, phase = rec.line_uv * rng.uniform(0.5, 1.5, nc), rng.uniform(0, 2 * np.pi, nc)
    eeg += np.outer(amp * np.cos(phase), np.sin(wt)) + np.outer(amp * np.sin(phase), np.cos(wt))
    eeg += SENSOR_UV * rng.standard_normal(eeg.shape)
    rows = {c: eeg[i] for i, c in enumerate(CHANNELS)}
    out = np.empty((len(rec.labels), n))
    for i, (label, canon) in enumerate(zip(rec.labels, rec.canonical)):
        if canon is not None:
            out[i] = rows[canon]
        elif label == "ECG":
            out[i] = _ecg(rng, n, sf)
        else:  # Photic: no stimulation during these recordings
            out[i] = 0.0
    return out * 1e-6


def _ecg(rng, n: int, sfreq: float) -> np.ndarray:
    """uV: R peaks of ~1 mV and T waves at 60-85 beats per minute, plus 20 uV noise."""
    from scipy.signal import fftconvolve

    period = 60.0 / rng.uniform(60, 85)
    beats = np.cumsum(period * (1 + 0.03 * rng.standard_normal(int(n / sfreq / period) + 2)))
    train = np.zeros(n)
    idx = np.round(beats * sfreq).astype(int)
    train[idx[idx < n]] = 1.0
    t = np.arange(int(0.6 * sfreq)) / sfreq
    kernel = 1000 * np.exp(-0.5 * ((t - 0.05) / 0.008) ** 2) + 250 * np.exp(-0.5 * ((t - 0.3) / 0.04) ** 2)
    return fftconvolve(train, kernel)[:n] + 20 * rng.standard_normal(n)


# -- writing -----------------------------------------------------------------------------------------
def _export(path: Path, raw, fmt: str) -> None:
    import mne

    with warnings.catch_warnings():
        # pybv says it converts the float64 RawArray to float32: that is the format intended here
        warnings.filterwarnings("ignore", message="Encountered data in", category=RuntimeWarning)
        mne.export.export_raw(path, raw, fmt=fmt, physical_range="auto", overwrite=False, verbose="error")


def _write_recording(root: Path, rec: Recording, s: Subject, seed: int, dataset: str, date: dt.datetime) -> None:
    import mne

    data = synthesize(rec, s, seed, dataset)
    types = ["eeg" if c is not None else ("ecg" if lab == "ECG" else "misc")
             for lab, c in zip(rec.labels, rec.canonical)]
    raw = mne.io.RawArray(data, mne.create_info(list(rec.labels), rec.sfreq, types), verbose="error")
    raw.set_meas_date(date)
    raw.info["subject_info"] = {"his_id": s.subject, "sex": 1 if s.sex == "M" else 2}
    if rec.events:
        onsets = np.array([t for t, _ in rec.events])
        if rec.format == "BrainVision":
            # MNE's BrainVision export floors onset * sfreq after Annotations rounded the onset to 6 decimals,
            # which can land one sample early: a quarter sample later floors to the intended sample
            onsets = onsets + 0.25 / rec.sfreq
        raw.set_annotations(mne.Annotations(onsets, [0.0] * len(rec.events), [d for _, d in rec.events],
                                            orig_time=date))
    path = root / rec.file
    path.parent.mkdir(parents=True, exist_ok=True)
    _export(path, raw, "brainvision" if rec.format == "BrainVision" else "edf")


def _write_metadata(path: Path, manifest: Manifest) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(METADATA_COLUMNS)
        for r in manifest.recordings:
            s = manifest.subject(r.subject)
            w.writerow([r.file, r.subject, r.group_code, r.condition, r.session, r.device, s.age, s.sex,
                        "" if s.panss_total is None else s.panss_total, "" if s.whodas is None else s.whodas])


def _prepare_target(target: Path, force: bool) -> None:
    if target.exists() or target.is_symlink():
        if not target.is_dir() or target.is_symlink():
            raise FileExistsError(f"{target} exists and is not a folder; give a folder path that does not exist")
        if any(target.iterdir()) and not force:
            raise FileExistsError(f"{target} is not empty; pass force=True (--force) to replace it whole, "
                                  f"or choose another folder")


def write(manifest: Manifest, target, *, force: bool = False) -> Manifest:
    """Write a planned fixture into ``target`` atomically; return the manifest with ``root`` and ``files``."""
    from neuroharness.loaders.io import replace_dir, temp_sibling

    target = Path(target).absolute()
    _prepare_target(target, force)
    tmp = temp_sibling(target)
    tmp.mkdir()
    try:
        seed = manifest.params["seed"]
        subjects = {s.subject: s for s in manifest.subjects}
        for k, rec in enumerate(manifest.recordings):
            s = subjects[rec.subject]
            date = BASE_DATE + dt.timedelta(days=s.index, hours=rec.index)
            _write_recording(tmp, rec, s, seed, manifest.dataset, date)
        if manifest.metadata:
            _write_metadata(tmp / manifest.metadata, manifest)
        files = tuple(sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file()))
        _prepare_target(target, force)  # nothing appeared meanwhile that we would silently replace
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dataclasses.replace(manifest, root=target, files=files)


def write_nszed(dir, n_patients: int | None = None, n_controls: int | None = None, seconds: int | None = None,
                seed: int = 0, *, real_size: bool = False, sfreqs: dict | None = None, extras: bool | None = None,
                force: bool = False) -> Manifest:
    """Write the NSzED-like fixture into ``dir`` (see the module docstring and :func:`plan_nszed`)."""
    return write(plan_nszed(n_patients, n_controls, seconds, seed, real_size=real_size, sfreqs=sfreqs,
                            extras=extras), dir, force=force)


def write_repod(dir, n_patients: int | None = None, n_controls: int | None = None, seconds: int | None = None,
                seed: int = 0, *, real_size: bool = False, force: bool = False) -> Manifest:
    """Write the RepOD-like fixture into ``dir`` (see the module docstring and :func:`plan_repod`)."""
    return write(plan_repod(n_patients, n_controls, seconds, seed, real_size=real_size), dir, force=force)


def write_fixture(dataset: str, dir, **kw) -> Manifest:
    """:func:`write_nszed` or :func:`write_repod` by name."""
    writers = {"nszed": write_nszed, "repod": write_repod}
    if dataset not in writers:
        raise ValueError(f"dataset is {dataset!r}, expected one of {sorted(writers)}")
    return writers[dataset](dir, **kw)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", choices=["nszed", "repod"])
    p.add_argument("out", type=Path, help="folder to create (must not exist or be empty, unless --force)")
    p.add_argument("--patients", type=int, help="default 10 (nszed) / 14 (repod); --real-size: 37 / 14")
    p.add_argument("--controls", type=int, help="default 8 (nszed) / 14 (repod); --real-size: 22 / 14")
    p.add_argument("--seconds", type=int, help="per recording; default 60; --real-size: 1800 (nszed) / 900 (repod)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--real-size", action="store_true", help="the benchmark size (see the module docstring)")
    p.add_argument("--force", action="store_true", help="replace a non-empty OUT whole")
    a = p.parse_args(argv)
    start = time.perf_counter()
    try:
        m = write_fixture(a.dataset, a.out, n_patients=a.patients, n_controls=a.controls, seconds=a.seconds,
                          seed=a.seed, real_size=a.real_size, force=a.force)
    except (FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    size = sum((m.root / f).stat().st_size for f in m.files)
    print(f"{m.root}: {len(m.recordings)} recordings of {len(m.subjects)} subjects, {len(m.files)} files, "
          f"{size / 1e6:.1f} MB in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
