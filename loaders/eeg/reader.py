"""Read one recording in any format MNE reads, homogenized: canonical channels, volts, common rate, annotations.

:func:`read_recording` opens the file with :func:`mne.io.read_raw`, maps its
channel labels with the device's rules of the layout (:meth:`.layout.Device.map_channels`),
keeps the mapped channels in montage order, resamples them to the layout's
common rate with ``raw.resample(sfreq, npad="auto")`` (MNE's FFT resampling;
the native rate is kept in the store), and returns the data in volts as
float32. Every failure of one recording is a :class:`~.layout.SkipRecording`
whose reason says what is wrong; the loader reports it and goes on.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .layout import Device, SkipRecording

FORMATS = {"edf": "EDF", "bdf": "BDF", "gdf": "GDF", "vhdr": "BrainVision", "set": "EEGLAB", "fif": "FIF",
           "cnt": "CNT", "fif.gz": "FIF"}
RESAMPLING = ("every recording is resampled from its native rate to the layout's common_sfreq with MNE's "
              "raw.resample(sfreq=common_sfreq, npad='auto') (FFT resampling, MNE's default window), after the "
              "channels are mapped and before the data is cast to float32; recordings already at that rate are "
              "not resampled")


#: Plausible native sampling rates (Hz) and the longest recording (s) converted; beyond them the header is damaged.
MIN_SFREQ, MAX_SFREQ = 1.0, 1_000_000.0
MAX_SECONDS = 24 * 3600


@dataclass
class RecordingData:
    """One recording, homogenized: ``eeg`` (channel, time) float32 volts at ``sfreq``; channels in montage order."""

    eeg: np.ndarray
    channels: tuple[str, ...]
    native_names: tuple[str, ...]
    sfreq: float
    native_sfreq: float
    onset: np.ndarray
    duration: np.ndarray
    description: np.ndarray
    meas_date: str
    source_format: str
    renamed: dict
    dropped: tuple[str, ...]
    reference: str


def source_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".fif.gz"):
        return "FIF"
    return FORMATS.get(path.suffix.lower().lstrip("."), path.suffix.lstrip(".").upper() or "unknown")


def check_edf_size(path: Path) -> None:
    """A truncated EDF/BDF file is refused: MNE reads the records that are there without an error.

    The header declares the number of data records and each signal's samples per record; the file must hold them.
    """
    bps = 3 if path.suffix.lower() == ".bdf" else 2
    try:
        with open(path, "rb") as f:
            head = f.read(256)
            if len(head) < 256:
                raise SkipRecording(f"truncated or not EDF/BDF: {len(head)} bytes, shorter than the 256-byte header")
            header_bytes, n_records, n_signals = (int(head[a:b].decode("ascii").strip() or "-1")
                                                  for a, b in ((184, 192), (236, 244), (252, 256)))
            if n_signals <= 0 or header_bytes != 256 * (n_signals + 1):
                raise SkipRecording(f"corrupt EDF/BDF header: {n_signals} signals with a {header_bytes}-byte header "
                                    "(expected 256 x (signals + 1))")
            f.seek(256 + n_signals * 216)
            fields = f.read(8 * n_signals)
            if len(fields) < 8 * n_signals:
                raise SkipRecording("truncated EDF/BDF header (the signal headers end early)")
            samples = [int(fields[8 * i : 8 * i + 8].decode("ascii").strip()) for i in range(n_signals)]
    except (UnicodeDecodeError, ValueError, struct.error):
        raise SkipRecording("corrupt EDF/BDF header (a numeric field is not a number)") from None
    if n_records < 0:  # -1: "unknown" (a recording still being written); MNE then reads what is there
        return
    expected = header_bytes + n_records * sum(samples) * bps
    actual = path.stat().st_size
    if actual < expected:
        raise SkipRecording(f"truncated: the header declares {n_records} data records ({expected:,} bytes) but the "
                            f"file has {actual:,} bytes; re-copy or re-export it")


def open_raw(path: Path, device: Device):
    """``mne.io.read_raw`` of ``path`` (not preloaded), with the device's units for EDF/BDF.

    The layout's ``units`` go to ``read_raw_edf/bdf(units=...)``, which applies them to the channels whose
    header unit field is empty (files that leave it blank are the reason for the setting); a header whose
    unit differs makes the recording skipped with both units named, never silently rescaled.
    """
    import mne

    path = Path(path)
    fmt = source_format(path)
    kwargs = {}
    if device.units != "auto":
        if fmt not in ("EDF", "BDF"):
            raise SkipRecording(f"[devices.{device.name}] of the layout sets units = {device.units!r}, which applies "
                                f"to EDF/BDF only and this file is {fmt}; set units = \"auto\" for that device")
        kwargs["units"] = device.units
    if fmt in ("EDF", "BDF"):
        check_edf_size(path)
    try:
        return mne.io.read_raw(path, preload=False, verbose="error", **kwargs)
    except Exception as e:  # readers raise ValueError, RuntimeError, OSError, KeyError, ... on bad files
        text = " ".join(str(e).split())[:300]
        if kwargs and "cannot overwrite it with the units" in text:
            # MNE applies units= only where the header's unit field is empty; a header that says otherwise wins
            raise SkipRecording(f"[devices.{device.name}] of the layout sets units = {device.units!r} but the file's "
                                f"header disagrees ({text}); set units = \"auto\" for that device, or fix the "
                                "header") from None
        raise SkipRecording(f"not readable by MNE as {fmt} ({type(e).__name__}: {text})") from None


def read_recording(path: Path, device: Device, common_sfreq: float) -> RecordingData:
    """Read, map, resample and convert one recording; :class:`SkipRecording` says why it cannot be."""
    raw = open_raw(path, device)
    mapping = device.map_channels(list(raw.ch_names))
    native_sfreq = float(raw.info["sfreq"])
    # the rate comes from the header (EDF: samples per record / record duration); a damaged field must not make
    # the resampling below allocate terabytes
    if not MIN_SFREQ <= native_sfreq <= MAX_SFREQ:
        raise SkipRecording(f"the header gives a sampling rate of {native_sfreq:g} Hz, outside the plausible "
                            f"{MIN_SFREQ:g}-{MAX_SFREQ:g} Hz (EDF/BDF: samples per record / record duration); "
                            "the header is damaged")
    if raw.n_times / native_sfreq > MAX_SECONDS:
        raise SkipRecording(f"the header gives a duration of {raw.n_times / native_sfreq / 3600:,.1f} h "
                            f"({raw.n_times} samples at {native_sfreq:g} Hz), more than {MAX_SECONDS // 3600} h; "
                            "the header is damaged, or split the recording")
    ann = raw.annotations
    # onsets relative to the first sample: annotations with an orig_time count from the measurement date
    shift = raw.first_time if ann.orig_time is not None else 0.0
    onset = np.asarray(ann.onset, dtype=np.float64) - shift
    duration = np.asarray(ann.duration, dtype=np.float64)
    description = np.asarray([str(d) for d in ann.description], dtype=str)
    meas_date = raw.info["meas_date"]
    try:
        raw.pick(list(mapping.native))
        # channel types do not matter here: the layout decides which labels are EEG
        raw.load_data(verbose="error")
        if native_sfreq != float(common_sfreq):
            raw.resample(sfreq=float(common_sfreq), npad="auto", verbose="error")
        data = raw.get_data()
    except SkipRecording:
        raise
    except Exception as e:
        text = " ".join(str(e).split())[:300]
        raise SkipRecording(f"reading its samples failed ({type(e).__name__}: {text})") from None
    if data.shape[1] == 0:
        raise SkipRecording("holds no samples")
    if not np.isfinite(data).all():
        raise SkipRecording("holds non-finite samples (NaN or inf) after reading")
    return RecordingData(
        eeg=data.astype(np.float32), channels=mapping.canonical, native_names=mapping.native,
        sfreq=float(common_sfreq), native_sfreq=native_sfreq, onset=onset, duration=duration,
        description=description, meas_date="" if meas_date is None else meas_date.isoformat(),
        source_format=source_format(Path(path)), renamed=dict(mapping.renamed), dropped=mapping.dropped,
        reference=device.reference,
    )
