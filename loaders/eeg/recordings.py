"""Python access to a prepared EEG store (``nszed``, ``repod-schizophrenia``): a table and lazily read signals.

>>> from neuroharness.loaders.eeg.recordings import open_recordings
>>> rec = open_recordings("repod-schizophrenia")
>>> rec.table.loc[rec.table.group == "patient", ["subject", "n_samples"]]
>>> x = rec.eeg(rec.table.index[0], channels=["Fz", "Cz", "Pz"])   # (3, n_samples) float32, volts

The store (see :mod:`.store`) has one group per recording and a root table
with one row per recording; :class:`Recordings` wraps either a store on disk
(:meth:`Recordings.open`, :meth:`Recordings.from_path`) or the same content
built in memory (:meth:`Recordings.from_memory`, for tests and tasks).
"""
from __future__ import annotations

import json
import os
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
import xarray as xr

from neuroharness.errors import DataFormatError, NeuroharnessError

GROUPS = ("patient", "control")
LABELS = {"patient": 1, "control": 0}

# the root table: required columns (in this order), then the optional metadata fields a layout may name
REQUIRED_FIELDS = ("subject", "group", "condition", "session", "device", "file")
NUMERIC_COLUMNS = {"native_sfreq": "float64", "sfreq": "float64", "n_samples": "int64", "n_channels": "int32"}
OPTIONAL_FIELDS = ("age", "sex", "panss_total", "panss_positive", "panss_negative", "panss_general", "whodas")
STRING_OPTIONAL = ("sex",)
TABLE_COLUMNS = REQUIRED_FIELDS + tuple(NUMERIC_COLUMNS)


class Recordings:
    """The recordings of one prepared EEG store: a table, and signals read lazily.

    ``table``: index ``recording`` (str, sorted); columns subject, group
    ("patient"/"control"), condition, session, device, file, native_sfreq,
    sfreq, n_samples, n_channels and the optional metadata fields the layout
    names (age, sex, panss_*, whodas). ``attrs``: the root attributes
    (``common_sfreq``, ``layout_name``, ``skipped`` parsed into a list of
    ``{"file", "reason"}``, ``content_sha256`` for a prepared store, ...).
    """

    def __init__(self, name: str, table: pd.DataFrame, attrs: Mapping, signal_of, origin: str = "memory"):
        self.name = str(name)
        self.table = table
        self.attrs = dict(attrs)
        self._signal_of = signal_of
        self.origin = origin

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def open(cls, dataset: str, version: str | None = None) -> "Recordings":
        """The prepared store of ``dataset`` (``"nszed"``, ``"repod-schizophrenia"``), preparing it if missing."""
        from neuroharness.loaders import get_loader

        loader = get_loader(dataset)
        location = loader.locate(version)
        return cls.from_tree(loader.open(version), dataset, origin=str(location))

    @classmethod
    def from_path(cls, path: os.PathLike | str, name: str | None = None) -> "Recordings":
        """The store at ``path``: a folder (any EEG store written by the loaders; e.g. a temp store in tests)
        or an fsspec URL of one (``s3://...``, ``https://...``; consolidated metadata needed)."""
        from ..location import StoreLocation

        location = StoreLocation(path)
        if location.is_local:
            path = location.path
            if not path.is_dir():
                raise DataFormatError(f"{path}: no such EEG store (expected a Zarr v2 folder written by "
                                      "`neuroharness datasets prepare nszed|repod-schizophrenia`)")
            consolidated = (path / ".zmetadata").is_file()
            tree = xr.open_datatree(path, engine="zarr", chunks={}, consolidated=consolidated, zarr_format=2)
        else:
            if not location.exists():
                raise location.missing_error("EEG store", "nszed|repod-schizophrenia")
            tree = location.open_datatree(chunks={}, zarr_format=2)
        return cls.from_tree(tree, name or str(tree.attrs.get("dataset", location.name)), origin=str(location))

    @classmethod
    def from_tree(cls, tree: xr.DataTree, name: str, origin: str = "") -> "Recordings":
        """A DataTree as :class:`~neuroharness.loaders.base.TreeLoader.open` returns it."""
        root = tree.to_dataset(inherit=False)
        if "recording" not in root.coords:
            raise DataFormatError(f"{origin or name}: the root group has no 'recording' coordinate; expected an EEG "
                                  "store written by the nszed / repod-schizophrenia loader (rebuild it with --force)")
        table = table_from_dataset(root)
        missing = [r for r in table.index if r not in tree.children]
        if missing:
            raise DataFormatError(f"{origin or name}: the root table lists recording {missing[0]!r} but the store "
                                  "has no group of that name; rebuild it with --force")

        def signal_of(recording: str) -> xr.Dataset:
            return tree[recording].to_dataset(inherit=False)

        return cls(name, table, parse_attrs(tree.attrs), signal_of, origin=origin or name)

    @classmethod
    def from_memory(cls, name: str, table: pd.DataFrame, signals: Mapping[str, xr.Dataset],
                    attrs: Mapping | None = None) -> "Recordings":
        """Recordings held in memory: ``table`` (index or column ``recording``), ``signals`` {recording: group
        Dataset with ``eeg`` (channel, time) and a ``channel`` coordinate}, ``attrs`` (root attributes)."""
        table = table.copy()
        if "recording" in table.columns:
            table = table.set_index("recording")
        table.index = table.index.astype(str)
        table.index.name = "recording"
        table = table.sort_index()
        missing = [c for c in REQUIRED_FIELDS if c not in table.columns]
        if missing:
            raise NeuroharnessError(f"Recordings.from_memory({name!r}): table lacks column(s) {missing}; expected "
                                    f"{', '.join(TABLE_COLUMNS)}")
        absent = [r for r in table.index if r not in signals]
        if absent:
            raise NeuroharnessError(f"Recordings.from_memory({name!r}): no signal for recording {absent[0]!r} of "
                                    "the table; give one xarray.Dataset per table row")
        for rec, ds in signals.items():
            if "eeg" not in ds or "channel" not in ds.coords:
                raise NeuroharnessError(f"Recordings.from_memory({name!r}): signal {rec!r} lacks variable 'eeg' or "
                                        "coordinate 'channel'")
        held = dict(signals)
        return cls(name, table, parse_attrs(attrs or {}), lambda r: held[r], origin="memory")

    # -- access ------------------------------------------------------------------------------------
    @property
    def recordings(self) -> list[str]:
        """The recording ids (the table's index, sorted)."""
        return list(self.table.index)

    def __len__(self) -> int:
        return len(self.table)

    def __contains__(self, recording) -> bool:
        return recording in self.table.index

    def __repr__(self) -> str:
        return (f"Recordings({self.name!r}: {len(self.table)} recordings of {self.table['subject'].nunique()} "
                f"subjects, from {self.origin})")

    def _check(self, recording: str) -> str:
        if recording not in self.table.index:
            near = ", ".join(self.recordings[:5]) + (" ..." if len(self) > 5 else "")
            raise NeuroharnessError(f"{self.name}: no recording {recording!r}; it holds {len(self)} recordings "
                                    f"({near or 'none'})")
        return recording

    def signal(self, recording: str) -> xr.Dataset:
        """The group of ``recording``: ``eeg`` (channel, time) lazily, channel coords, annotations, attrs."""
        return self._signal_of(self._check(recording))

    def channels(self, recording: str) -> list[str]:
        """Canonical channel names of ``recording``, in the store's (montage) order."""
        return [str(c) for c in self.signal(recording)["channel"].values]

    def eeg(self, recording: str, channels: Iterable[str] | None = None) -> np.ndarray:
        """``(n_channels, n_samples)`` float32 volts; ``channels`` selects and orders channels by canonical name."""
        ds = self.signal(recording)
        if channels is not None:
            wanted = list(channels)
            held = [str(c) for c in ds["channel"].values]
            missing = [c for c in wanted if c not in held]
            if missing:
                raise NeuroharnessError(f"{self.name}: recording {recording!r} has no channel(s) "
                                        f"{', '.join(missing)}; it has {', '.join(held)}")
            ds = ds.sel(channel=wanted)
        return np.asarray(ds["eeg"].values, dtype=np.float32)

    def annotations(self, recording: str) -> pd.DataFrame:
        """Annotations of ``recording``: columns onset (s from the start), duration (s), description."""
        ds = self.signal(recording)
        if "annotation_onset" not in ds:
            return pd.DataFrame({"onset": np.zeros(0), "duration": np.zeros(0), "description": np.zeros(0, str)})
        return pd.DataFrame({"onset": np.asarray(ds["annotation_onset"].values, dtype=np.float64),
                             "duration": np.asarray(ds["annotation_duration"].values, dtype=np.float64),
                             "description": [str(d) for d in ds["annotation_description"].values]})

    def select(self, **where) -> pd.DataFrame:
        """Rows of the table whose columns equal the given values, e.g. ``select(condition="rest")``."""
        unknown = [k for k in where if k not in self.table.columns]
        if unknown:
            raise NeuroharnessError(f"{self.name}: the table has no column(s) {unknown}; it has "
                                    f"{', '.join(self.table.columns)}")
        mask = np.ones(len(self.table), dtype=bool)
        for key, value in where.items():
            mask &= (self.table[key] == value).to_numpy()
        return self.table[mask]


def table_from_dataset(root: xr.Dataset) -> pd.DataFrame:
    """The root group's variables on dim ``recording`` as a DataFrame (strings as ``str``, index ``recording``)."""
    columns = {}
    for name in root.data_vars:
        var = root[name]
        if var.dims != ("recording",):
            continue
        values = np.asarray(var.values)
        if values.dtype.kind in "OUS":
            values = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)
        columns[str(name)] = values
    index = pd.Index([str(r) for r in np.asarray(root["recording"].values)], name="recording")
    order = [c for c in TABLE_COLUMNS if c in columns] + [c for c in OPTIONAL_FIELDS if c in columns]
    order += [c for c in columns if c not in order]
    return pd.DataFrame({c: columns[c] for c in order}, index=index)


def parse_attrs(attrs: Mapping) -> dict:
    """Root attributes with ``skipped`` parsed from its JSON text into a list of ``{"file", "reason"}``."""
    out = dict(attrs)
    skipped = out.get("skipped", "[]")
    if isinstance(skipped, str):
        try:
            skipped = json.loads(skipped or "[]")
        except ValueError:
            raise DataFormatError(f"store attribute 'skipped' is not JSON: {skipped[:80]!r}") from None
    out["skipped"] = list(skipped)
    return out


def open_recordings(dataset: str, version: str | None = None) -> Recordings:
    """:meth:`Recordings.open`: the prepared store of ``dataset`` (prepared from the default source if missing)."""
    return Recordings.open(dataset, version)
