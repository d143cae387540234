"""Hand a prepared EEG store to MNE or braindecode, so users keep their own workflow.

- :func:`to_mne`: one recording as an ``mne.io.RawArray`` (volts, ``eeg`` channels, the 10/20 montage,
  annotations, subject and group in ``info``);
- :func:`to_braindecode`: recordings as a braindecode ``BaseConcatDataset`` whose ``description`` is the
  store's table. braindecode is imported only here, when called: it requires torchaudio, whose PyPI build
  needs the CUDA build of torch, so it may not import beside a CPU torch (a clear error then says so).
"""
from __future__ import annotations

import datetime as _dt

import numpy as np

from neuroharness.errors import NeuroharnessError

from .layout import standard_montage
from .recordings import LABELS, Recordings

SEX_CODES = {"m": 1, "male": 1, "f": 2, "female": 2}  # MNE's subject_info sex: 0 unknown, 1 male, 2 female


def to_mne(recordings: Recordings, recording: str):
    """Recording ``recording`` of ``recordings`` as an ``mne.io.RawArray``.

    Data in volts (float64, as MNE holds it), channel types ``eeg``, the store's sampling rate, the
    ``standard_1020`` montage, the annotations (onsets from the first sample), ``info["description"]`` naming
    the dataset, recording, subject, group, condition, session and device, and ``info["subject_info"]`` with
    ``his_id`` (the subject id) and, where the metadata gives it, ``sex``.
    """
    import mne

    ds = recordings.signal(recording)
    row = recordings.table.loc[recording]
    channels = [str(c) for c in ds["channel"].values]
    sfreq = float(ds.attrs.get("sfreq", row.get("sfreq")))
    info = mne.create_info(channels, sfreq, "eeg")
    raw = mne.io.RawArray(np.asarray(ds["eeg"].values, dtype=np.float64), info, verbose="error")
    raw.set_montage(standard_montage(), on_missing="ignore", verbose="error")
    meas_date = ds.attrs.get("meas_date", "")
    if meas_date:
        date = _dt.datetime.fromisoformat(meas_date)
        raw.set_meas_date(date if date.tzinfo else date.replace(tzinfo=_dt.timezone.utc))
    if "annotation_onset" in ds and ds.sizes.get("annotation", 0):
        raw.set_annotations(mne.Annotations(
            onset=np.asarray(ds["annotation_onset"].values, dtype=np.float64),
            duration=np.asarray(ds["annotation_duration"].values, dtype=np.float64),
            description=[str(d) for d in ds["annotation_description"].values],
            orig_time=None))
    raw.info["description"] = (
        f"{recordings.name} recording {recording}: subject {row['subject']}, group {row['group']}, condition "
        f"{row['condition']}, session {row['session']}, device {row['device']}")
    subject_info = {"his_id": str(row["subject"])}
    sex = SEX_CODES.get(str(row.get("sex", "")).strip().lower())
    if sex is not None:
        subject_info["sex"] = sex
    raw.info["subject_info"] = subject_info
    return raw


def _import_braindecode():
    try:
        import braindecode.datasets as bd
    except Exception as e:  # ImportError, or OSError from a torchaudio built for another torch
        raise NeuroharnessError(
            "to_braindecode needs braindecode, which cannot be imported here "
            f"({type(e).__name__}: {' '.join(str(e).split())[:300]}). braindecode requires torchaudio, and "
            "PyPI's torchaudio wheel is built against the CUDA build of torch, so it fails to load beside a CPU "
            "torch (e.g. 'libc10_cuda.so: cannot open shared object file'). Install torch and torchaudio of "
            "matching builds (same version and same CPU/CUDA variant, e.g. both from "
            "https://download.pytorch.org/whl/cpu), then `pip install braindecode`; or use to_mne() and your own "
            "windowing") from e
    return bd


def to_braindecode(recordings: Recordings, condition: str | None = None, recording_ids=None, target: str = "label"):
    """Recordings as a braindecode ``BaseConcatDataset`` of ``RawDataset(raw, description=row)`` (``BaseDataset``
    in braindecode <= 1.2).

    ``condition`` keeps that condition's recordings, ``recording_ids`` those ids (default: all). Each
    description is the recording's row of the table plus ``recording`` and ``label`` (1 patient, 0 control),
    which is the dataset's ``target_name`` by default (``target``).
    """
    bd = _import_braindecode()
    # braindecode renamed BaseDataset (<= 1.2) to RawDataset (1.3 onwards, without the old name)
    raw_dataset = getattr(bd, "RawDataset", None) or bd.BaseDataset
    import pandas as pd

    table = recordings.table
    if condition is not None:
        present = sorted(set(table["condition"]))
        if condition not in present:
            raise NeuroharnessError(f"{recordings.name}: no recording of condition {condition!r}; the store has "
                                    f"{', '.join(present)}")
        table = table[table["condition"] == condition]
    if recording_ids is not None:
        ids = list(recording_ids)
        for r in ids:
            recordings._check(r)
        table = table.loc[ids]
    datasets = []
    for rec, row in table.iterrows():
        description = pd.Series({"recording": rec, **row.to_dict(), "label": LABELS[row["group"]]})
        datasets.append(raw_dataset(to_mne(recordings, rec), description=description, target_name=target))
    return bd.BaseConcatDataset(datasets)
