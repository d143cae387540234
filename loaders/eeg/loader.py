"""The EEG loaders (``nszed``, ``repod-schizophrenia``): a folder of recordings + a layout file -> one store.

NSzED has no confirmed public URL, so ``--source DIR`` is required for it;
RepOD's files are downloaded from its Dataverse server when no ``--source`` is
given (:mod:`.dataverse`, md5-verified). The layout file (the packaged
``layouts/<name>.toml``, or the user's own with ``--layout FILE``) says which
files are recordings and what they are (:mod:`.layout`, :mod:`.metadata`);
each recording is read through MNE (:mod:`.reader`) and written as one group
(:mod:`.store`). A recording that cannot be converted is skipped with a
reason, the others go on, and the store lists the skips (root attribute
``skipped``); ``strict`` (``--strict``) turns any skip into a failure that
writes nothing.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import ClassVar

import zarr

from neuroharness.errors import DataFormatError, NeuroharnessError
from neuroharness.progress import status

from ..base import TreeLoader, root_attrs
from . import cards
from .dataverse import REPOD_PID, REPOD_SERVER, download_dataset
from .layout import Layout, SkipRecording, load_layout, packaged_layout
from .metadata import COMPANIONS, RecordingInfo, companions, plan

#: suffixes of the files that belong to a recording held in another file (BrainVision .vmrk/.eeg, EEGLAB .fdt)
COMPANION_SUFFIXES = frozenset(s for group in COMPANIONS.values() for s in group)
from .reader import read_recording
from .recordings import Recordings, open_recordings
from .store import root_attrs as store_root_attrs
from .store import write_recording, write_root


def convert_recording(target: str, info: RecordingInfo, device, common_sfreq: float,
                      progress=None) -> tuple[dict | None, dict | None]:
    """Read one recording and write its group into the (existing) store at ``target``: ``(row, None)``, or
    ``(None, {"file", "reason"})`` where it is skipped. One part of :meth:`EegLoader.write`, which may run
    on a dask worker."""
    try:
        data = read_recording(info.path, device, common_sfreq)
    except SkipRecording as e:
        result = None, {"file": info.file, "reason": e.reason}
    else:
        result = write_recording(Path(target), info, data), None
    if progress is not None:
        progress.update(1)
    return result


class EegSource(dict):
    """``{raw name: path}`` as :meth:`EegLoader.fetch` returns it (what ``raw_sha256`` digests: recordings, their
    companion files, the metadata table), plus the plan :meth:`EegLoader.write` follows."""

    def __init__(self, files, root: Path, layout: Layout, recordings: list[RecordingInfo], skipped: list[dict]):
        super().__init__(files)
        self.root, self.layout, self.recordings, self.skipped = root, layout, list(recordings), list(skipped)


def skipped_text(skipped: list[dict]) -> str:
    return "; ".join(f"{s['file']}: {s['reason']}" for s in skipped)


class EegLoader(TreeLoader):
    """A folder of EEG recordings described by a layout file; subclasses set ``card`` and :attr:`packaged`."""

    takes_layout: ClassVar[bool] = True
    skips_bad_parts: ClassVar[bool] = True
    #: the packaged layout read when no ``--layout`` is given (``layouts/<packaged>.toml``)
    packaged: ClassVar[str]
    #: ``(server, persistent id)`` of a public Dataverse dataset to download when no ``--source`` is given
    #: (``$NEUROHARNESS_REPOD_URL`` or an http(s) ``--source`` names another server); None: no download
    dataverse: ClassVar[tuple[str, str] | None] = None

    def current_layout(self) -> Layout:
        """The user's layout file (``--layout``) if one was given to :meth:`prepare`, else the packaged one."""
        return load_layout(self.layout) if self.layout is not None else packaged_layout(self.packaged)

    def fetch(self, source, only=None):
        layout = self.current_layout()
        text = "" if source is None else str(source)
        downloaded = None
        if self.dataverse is not None and (source is None or text.startswith(("http://", "https://"))):
            downloaded = self._download(layout, text or None)
        elif source is None:
            raise DataFormatError(f"{self.name}: {self.card.offline}")
        elif "://" in text:
            raise DataFormatError(f"--source {text}: only a local folder is read for {self.name}; "
                                  f"{self.card.offline}")
        root = downloaded[0] if downloaded else Path(text).expanduser().resolve()
        if not root.is_dir():
            raise DataFormatError(f"--source {root}: not a folder; expected the folder holding the recordings (and "
                                  f"the metadata table) of {self.name}")
        recordings, skipped, table_files = plan(root, layout)
        if only is not None:
            held = {r.recording: r for r in recordings}
            missing = [o for o in only if o not in held]
            if missing:
                raise DataFormatError(f"--only {' '.join(missing)}: no such recording in {root}; it holds "
                                      f"{', '.join(held) or 'no convertible recording'}")
            recordings = [held[o] for o in only]
        files = dict(table_files)
        for info in recordings:
            files[info.file] = info.path
            files.update(companions(root, info.file))
        where = downloaded[1] if downloaded else f"local copy {root}"
        origin = f"{where} read with the layout {layout.name!r} ({layout.origin})"
        return EegSource(files, root, layout, recordings, skipped), origin

    def _download(self, layout: Layout, server: str | None) -> tuple[Path, str]:
        """The recordings the layout reads (and their companions, and the metadata table), downloaded from the
        Dataverse dataset :attr:`dataverse` into the cache; ``(folder, origin)``."""
        _, pid = self.dataverse

        def keep(path: str) -> bool:
            suffix = Path(path).suffix.lower().lstrip(".")
            return layout.is_recording(path) or path == layout.metadata_table or suffix in COMPANION_SUFFIXES

        folder, origin, _ = download_dataset(self.name, pid, keep, server=server)
        return folder, origin

    def write(self, files, target):
        if not isinstance(files, EegSource):
            raise NeuroharnessError(f"{self.name}: write() takes what fetch() returns (an EegSource)")
        layout, skipped, rows = files.layout, list(files.skipped), []
        zarr.open_group(str(target), mode="w", zarr_format=2)
        parts = [(str(target), info, layout.device(info.device), layout.common_sfreq) for info in files.recordings]
        shared = [target, *sorted({str(info.path) for info in files.recordings})]
        for row, skip in self.write_parts(convert_recording, parts, desc=f"[{self.name}] recordings", unit="rec",
                                          shared=shared):
            if skip is None:
                rows.append(row)
            else:
                skipped.append(skip)
        skipped.sort(key=lambda s: s["file"])
        for s in skipped:
            # a warning: seen even when status lines are off (CI, -q)
            logging.getLogger("neuroharness").warning(f"[{self.name}] skipped {s['file']}: {s['reason']}")
        if skipped and self.strict:
            raise DataFormatError(f"{self.name}: --strict: {len(skipped)} recording(s) of {files.root} cannot be "
                                  f"converted, so nothing was written: {skipped_text(skipped)}")
        if not rows:
            raise DataFormatError(f"{self.name}: no recording of {files.root} could be converted with the layout "
                                  f"{layout.origin}" + (f": {skipped_text(skipped)}" if skipped else
                                                        f" (no file with a suffix in {', '.join(layout.formats)})"))
        write_root(target, rows, layout.optional_fields, store_root_attrs(layout, skipped))
        status(f"[{self.name}] converted {len(rows)}, skipped {len(skipped)}"
               + (": see the store attribute `skipped`" if skipped else ""))

    def _check_reuse(self, path, source, only):
        super()._check_reuse(path, source, only)
        recorded = root_attrs(path)
        built_with = recorded.get("layout_sha256")
        if self.layout is not None:
            wanted = load_layout(self.layout)
            if built_with != wanted.sha256:
                raise NeuroharnessError(
                    f"{path} was built with the layout {recorded.get('layout_origin') or recorded.get('layout_name')}"
                    f" (sha256 {str(built_with)[:12]}), not --layout {self.layout} (sha256 {wanted.sha256[:12]}); "
                    "pass force=True (--force) to rebuild it")
        else:
            default = packaged_layout(self.packaged)
            if built_with != default.sha256:
                if source is not None:
                    raise NeuroharnessError(
                        f"{path} was built with the layout {recorded.get('layout_origin')}, not the packaged "
                        f"{default.origin}; pass the same --layout to reuse it, or force=True (--force) to rebuild")
                status(f"[{self.name}] using {path}, built with the layout {recorded.get('layout_origin')}")
        if self.strict:
            skipped = json.loads(recorded.get("skipped") or "[]")
            if skipped:
                raise DataFormatError(f"{path} was built with {len(skipped)} skipped recording(s) and --strict "
                                      f"refuses skips: {skipped_text(skipped)}; fix them and rebuild with --force")

    def summary(self, tree):
        rec = Recordings.from_tree(tree, self.name)
        t = rec.table
        lines = [f"{len(t)} recordings of {t['subject'].nunique()} subjects "
                 f"({t.loc[t.group == 'patient', 'subject'].nunique()} patients, "
                 f"{t.loc[t.group == 'control', 'subject'].nunique()} controls) at "
                 f"{rec.attrs.get('common_sfreq')} Hz (layout {rec.attrs.get('layout_name')})"]
        for col in ("condition", "device", "session"):
            counts = t[col].value_counts().sort_index()
            lines.append(f"{col}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        rates = t["native_sfreq"].value_counts().sort_index()
        lines.append("native rates: " + ", ".join(f"{k:g} Hz ({v})" for k, v in rates.items()))
        lines.append(f"skipped: {len(rec.attrs['skipped'])}" + (" (store attribute `skipped`)"
                                                                 if rec.attrs["skipped"] else ""))
        return lines


class NszedLoader(EegLoader):
    card = cards.NSZED
    packaged = "nszed"


class RepodLoader(EegLoader):
    card = cards.REPOD
    packaged = "repod"
    dataverse = (REPOD_SERVER, REPOD_PID)


def loader(dataset: str = "nszed") -> EegLoader:
    """The registered loader of ``dataset`` (``"nszed"`` or ``"repod-schizophrenia"``; one instance each)."""
    from .. import get_loader

    if dataset not in (cards.NSZED.name, cards.REPOD.name):
        raise NeuroharnessError(f"{dataset!r} is not an EEG dataset; expected {cards.NSZED.name} or "
                                f"{cards.REPOD.name}")
    return get_loader(dataset)


def store_path(dataset: str = "nszed", version: str | None = None) -> Path:
    """Local path of the prepared store of ``dataset`` (it may not exist yet); a remote cache has none:
    see :func:`store_location`."""
    return loader(dataset).store_path(version)


def store_location(dataset: str = "nszed", version: str | None = None):
    """Where the store of ``dataset`` is (or would be): a
    :class:`~neuroharness.loaders.location.StoreLocation`, local or below a remote ``$NEUROHARNESS_HOME``."""
    return loader(dataset).store_location(version)


def recordings(dataset: str = "nszed", version: str | None = None) -> list[str]:
    """The recording ids of the prepared store (preparing it first if needed)."""
    return list(open_recordings(dataset, version).table.index)


__all__ = ["EegLoader", "NszedLoader", "RepodLoader", "Recordings", "loader", "open_recordings", "recordings",
           "store_location", "store_path"]
