"""EEG stores (``nszed``, ``repod-schizophrenia``) as a Hugging Face dataset: one row per recording.

Columns: the store's table of recordings with its dtypes (``recording``, ``subject``, ``group`` as a
``ClassLabel`` control = 0 / patient = 1, the task's label codes, ``condition``, ``session``, ``device``,
``file``, ``native_sfreq``, ``sfreq``, ``n_samples``, ``n_channels`` and the optional clinical fields);
then per recording ``eeg`` (channels x time float32 volts, a ragged ``List`` of ``List``: recordings
differ in length), ``channel`` and ``native_name`` (one name per row of ``eeg``), the annotations
(``annotation_onset``/``annotation_duration`` float64 seconds, ``annotation_description``) and the
conversion facts (``reference``, ``source_format``, ``renamed`` and ``dropped_channels`` as JSON text,
``meas_date``). Memory: one batch of recordings (about 64 MB of signal) at a time.
"""
from __future__ import annotations

import numpy as np

from ._common import array_feature, feature_id, rows_per_batch, store_plan, strings, value_dtype, xarray_table

ATTRS = {"reference": "recording reference as documented by the release",
         "source_format": "file format of the source recording",
         "renamed": "JSON {label in the file: canonical channel name} of the renamed channels",
         "dropped_channels": "JSON list of the file's channels that are not EEG and were left out",
         "meas_date": "measurement date of the recording (ISO 8601; '' when the file has none)"}
ANNOTATIONS = ("annotation_onset", "annotation_duration", "annotation_description")


def recordings(card, tree, part=None):
    """The plan of an EEG store (the DataTree ``tree``): one row per recording."""
    import datasets

    from neuroharness.loaders.eeg.recordings import LABELS, OPTIONAL_FIELDS, TABLE_COLUMNS

    where = f"{card.name} store"
    root = tree.to_dataset(inherit=False)
    names = [n for n, _ in sorted(LABELS.items(), key=lambda kv: kv[1])]
    table = xarray_table(root, "recording", where=where, class_labels={"group": names},
                         about="One row per recording; eeg[c, t] is channel `channel[c]` at sample t / sfreq "
                               "seconds from the recording start.")
    ids = [str(r) for r in strings(np.asarray(root["recording"].values))]
    first = tree[ids[0]].to_dataset(inherit=False) if ids else None
    # the columns in the order of Recordings.table, then any other the store has
    order = ["recording", *TABLE_COLUMNS, *OPTIONAL_FIELDS]
    f = {k: table.features[k] for k in sorted(table.features, key=lambda k: (order.index(k) if k in order else len(order), k))}

    def var_id(name, dims):
        return feature_id(first[name].attrs if first is not None and name in first.variables else {}, dims=dims)

    dtype = value_dtype(first["eeg"].dtype, where) if first is not None else "float32"
    f["eeg"] = array_feature((0, 0), dtype, var_id("eeg", ["channel", "time"]), ragged=True)
    for name in ("channel", "native_name"):
        f[name] = array_feature((0,), "string", var_id(name, ["channel"]), ragged_first=True)
    for name in ANNOTATIONS:
        kind = "string" if name.endswith("description") else "float64"
        f[name] = array_feature((0,), kind, var_id(name, ["annotation"]), ragged_first=True)
    for name, text in ATTRS.items():
        f[name] = datasets.Value("string", id=feature_id(long_name=text, units="1"))
    table.features = datasets.Features(f)
    n_ch = np.asarray(root["n_channels"].values, dtype=np.int64) if "n_channels" in root else np.zeros(len(ids), int)
    n_t = np.asarray(root["n_samples"].values, dtype=np.int64) if "n_samples" in root else np.zeros(len(ids), int)
    table.row_bytes = int(max(1, (n_ch * n_t).mean() if len(ids) else 1) * 4)
    rows = table.batches

    def batches():
        step = rows_per_batch(table.row_bytes, cap=1024)
        # regroup the table's batches by the signal bytes they hold
        for batch in rows():
            for lo in range(0, len(batch["recording"]), step):
                part = {k: v[lo:lo + step] for k, v in batch.items()}
                groups = [tree[str(r)].to_dataset(inherit=False) for r in part["recording"]]
                part["eeg"] = [np.asarray(g["eeg"].values) for g in groups]
                for name in ("channel", "native_name"):
                    part[name] = [strings(np.asarray(g[name].values)) for g in groups]
                for name in ANNOTATIONS:
                    part[name] = [(strings(np.asarray(g[name].values)) if name.endswith("description")
                                   else np.asarray(g[name].values, dtype=np.float64)) if name in g else np.zeros(0)
                                  for g in groups]
                for name in ATTRS:
                    part[name] = [str(g.attrs.get(name, "")) for g in groups]
                yield part

    table.batches = batches
    facts = [f"store {k}: {root.attrs[k]}" for k in ("layout_name", "layout_sha256", "layout_origin", "common_sfreq",
                                                       "resampling", "skipped") if k in root.attrs]
    return store_plan(card, tree.attrs, {None: table}, provenance=facts)
