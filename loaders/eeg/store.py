"""The EEG store on disk (Zarr v2): one group per recording and a root table of recordings.

Group ``/<recording>`` (dims ``channel``, ``time``, ``annotation``):

- ``eeg`` (channel, time) float32 volts, chunks (all channels, :data:`TIME_CHUNK` samples);
- coordinates ``channel`` (canonical name, montage order) and ``native_name`` (the label in the file);
- ``annotation_onset`` / ``annotation_duration`` (annotation) float64 seconds from the recording start and
  ``annotation_description`` (annotation) str (empty when the file has none);
- attributes ``recording``, ``subject``, ``group``, ``condition``, ``session``, ``device``, ``sfreq``,
  ``native_sfreq``, ``reference``, ``source_file``, ``source_format``, ``renamed`` (JSON), ``dropped_channels``
  (JSON), ``meas_date``.

Root (dim ``recording``, rows sorted): coordinate ``recording`` and one variable per column of
:class:`~.recordings.Recordings.table`; attributes ``layout_name``, ``layout_sha256``, ``layout_text``,
``common_sfreq``, ``resampling``, ``skipped`` (JSON list of ``{"file", "reason"}``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from .metadata import RecordingInfo
from .reader import RESAMPLING, RecordingData
from .recordings import NUMERIC_COLUMNS, OPTIONAL_FIELDS, REQUIRED_FIELDS, STRING_OPTIONAL

TIME_CHUNK = 65536  # samples per chunk: 4.4 min at 250 Hz, 5 MB for 19 channels in float32

UNITS = {"native_sfreq": ("Hz", "native sampling rate of the recording"),
         "sfreq": ("Hz", "sampling rate in the store (the layout's common_sfreq)"),
         "n_samples": ("1", "number of samples at sfreq"),
         "n_channels": ("1", "number of canonical EEG channels"),
         "subject": ("1", "subject id"),
         "group": ("1", "diagnostic group: patient or control"),
         "condition": ("1", "recording condition (canonical name from the layout)"),
         "session": ("1", "session"),
         "device": ("1", "recording device (the layout's device name)"),
         "file": ("1", "path of the recording relative to the source root"),
         "age": ("years", "age"),
         "sex": ("1", "sex as given by the metadata ('' when absent)"),
         "panss_total": ("1", "PANSS total score (NaN when absent)"),
         "panss_positive": ("1", "PANSS positive scale (NaN when absent)"),
         "panss_negative": ("1", "PANSS negative scale (NaN when absent)"),
         "panss_general": ("1", "PANSS general psychopathology scale (NaN when absent)"),
         "whodas": ("1", "WHODAS 2.0 score (NaN when absent)")}


def recording_dataset(info: RecordingInfo, data: RecordingData) -> xr.Dataset:
    """The group of one recording as an ``xarray.Dataset`` (see the module docstring)."""
    n_ann = len(data.onset)
    ds = xr.Dataset(
        {
            "eeg": (("channel", "time"), data.eeg,
                    {"units": "V", "long_name": "EEG potential (re the recording reference)"}),
            "annotation_onset": (("annotation",), np.asarray(data.onset, np.float64).reshape(n_ann),
                                 {"units": "s", "long_name": "annotation onset from the recording start"}),
            "annotation_duration": (("annotation",), np.asarray(data.duration, np.float64).reshape(n_ann),
                                    {"units": "s", "long_name": "annotation duration"}),
            "annotation_description": (("annotation",), _strings(data.description, n_ann),
                                       {"units": "1", "long_name": "annotation description (as MNE reads it)"}),
        },
        coords={
            "channel": ("channel", _strings(data.channels), {"units": "1", "long_name": "canonical 10/20 channel name"}),
            "native_name": ("channel", _strings(data.native_names), {"units": "1", "long_name": "channel label in the file"}),
        },
        attrs={
            "recording": info.recording, "subject": info.subject, "group": info.group,
            "condition": info.condition, "session": info.session, "device": info.device,
            "sfreq": float(data.sfreq), "native_sfreq": float(data.native_sfreq), "reference": data.reference,
            "source_file": info.file, "source_format": data.source_format,
            "renamed": json.dumps(data.renamed, sort_keys=True), "dropped_channels": json.dumps(list(data.dropped)),
            "meas_date": data.meas_date,
        },
    )
    return ds


def write_recording(target: Path, info: RecordingInfo, data: RecordingData) -> dict:
    """Write the group of one recording under ``target``; return its row of the root table."""
    ds = recording_dataset(info, data)
    n_ch, n_t = data.eeg.shape
    encoding = {"eeg": {"chunks": (n_ch, min(TIME_CHUNK, max(1, n_t)))}}
    ds.to_zarr(target, group=info.recording, mode="w", zarr_format=2, consolidated=False, encoding=encoding)
    return {"recording": info.recording, **info.fields(), "native_sfreq": float(data.native_sfreq), "sfreq": float(data.sfreq),
            "n_samples": int(n_t), "n_channels": int(n_ch)}


def root_dataset(rows: list[dict], optional_fields, attrs: dict) -> xr.Dataset:
    """The root table: one row per written recording (sorted by id), every column with units and long_name."""
    rows = sorted(rows, key=lambda r: r["recording"])
    ids = _strings([r["recording"] for r in rows])
    variables = {}
    for name in REQUIRED_FIELDS + tuple(NUMERIC_COLUMNS) + tuple(f for f in OPTIONAL_FIELDS if f in optional_fields):
        values = [r[name] for r in rows]
        if name in REQUIRED_FIELDS or name in STRING_OPTIONAL:
            array = _strings(values)
        else:
            array = np.asarray(values, dtype=NUMERIC_COLUMNS.get(name, "float64"))
        units, long_name = UNITS[name]
        variables[name] = (("recording",), array, {"units": units, "long_name": long_name})
    return xr.Dataset(variables, coords={"recording": ("recording", ids, {"units": "1", "long_name": "recording id"})},
                      attrs=attrs)


def root_attrs(layout, skipped: list[dict]) -> dict:
    """The root attributes describing how the store was made (layout provenance, resampling, skips)."""
    return {"layout_name": layout.name, "layout_sha256": layout.sha256, "layout_text": layout.text,
            "layout_origin": layout.origin, "common_sfreq": float(layout.common_sfreq), "resampling": RESAMPLING,
            "skipped": json.dumps(skipped)}


def write_root(target: Path, rows: list[dict], optional_fields, attrs: dict) -> None:
    """Write the root table and attributes into the store at ``target`` (whose groups are already written)."""
    root_dataset(rows, optional_fields, attrs).to_zarr(target, mode="a", zarr_format=2, consolidated=False)


def _strings(values, n: int | None = None) -> np.ndarray:
    values = [str(v) for v in values]
    if not values:
        return np.zeros(0 if n is None else n, dtype="<U1")
    return np.asarray(values, dtype=str)
