"""Prepared stores and task splits as Hugging Face ``datasets`` (Arrow), for users of the Hub's tools.

>>> from neuroharness.loaders.hf_export import to_hf_dataset, export
>>> ds = to_hf_dataset("celegans-activity")              # datasets.Dataset, one row per worm
>>> ds.with_format("numpy", dtype=None)[0]["calcium"]     # (time, 302) float32, NaN where not recorded
>>> export("celegans-structure-function", "out/sf")      # DatasetDict train/validation/test, save_to_disk

Command line: ``neuroharness datasets export NAME --format hf DIR``.

``NAME`` is a dataset (its prepared store) or a task with tabular targets (its own split tables:
``train`` and ``validation`` with targets, ``test`` with the ids a submission covers and the target
columns left null: test targets are never exported). One exporter module per data source family
(:mod:`.celegans`, :mod:`.vesselgraph`, :mod:`.nsd`, :mod:`.eeg`, :mod:`.fisbe`; tasks: :mod:`.tasks`),
found through :data:`EXPORTERS`. Datasets made of parts (vesselgraph graphs, NSD subjects) give one
``DatasetDict`` per part: ``part=`` in Python, ``DIR/<part>/`` on disk.

Features keep the store's dtypes and shapes (``Value``, fixed-length ``List``, ``Array2D`` ... with the
store's dtype, variable-length ``List`` for ragged values, ``ClassLabel`` for group columns); each
feature's ``id`` is a JSON object with its units, long name and dims; the ``DatasetInfo`` holds the
description, licence, citation and the store's checksums. ``datasets``' numpy format casts floats to
float32 and integers to int64 unless told not to: read with ``with_format("numpy", dtype=None)``.

This module imports only the standard library; ``datasets`` is imported when an export runs.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from neuroharness.errors import NeuroharnessError, UnknownNameError, UsageError

#: dataset name -> "module:function" (relative to this package) building its export plan
EXPORTERS = {
    "celegans-activity": ".celegans:activity",
    "celegans-connectome": ".celegans:connectome",
    "celegans-funatlas": ".celegans:funatlas",
    "vesselgraph": ".vesselgraph:graph",
    "nsd-algonauts2023": ".nsd:subject",
    "nszed": ".eeg:recordings",
    "repod-schizophrenia": ".eeg:recordings",
    "fisbe": ".fisbe:samples",
}
#: datasets exported one part at a time (``part=``): what a part is
PARTS = {"vesselgraph": "graph", "nsd-algonauts2023": "subject"}
#: the exporter of every task with tabular targets
TASK_EXPORTER = ".tasks:task_splits"
FORMATS = ("hf",)
MANIFEST = "neuroharness_export.json"


@dataclass
class ExportResult:
    """What :func:`export` wrote: ``path``, ``rows`` per part and table, ``bytes`` on disk, ``seconds``,
    ``notes`` (licence warnings) and ``load`` (Python lines that open the result)."""

    name: str
    path: Path
    rows: dict
    bytes: int
    seconds: float
    notes: list[str] = field(default_factory=list)
    load: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What the command line prints."""
        out = [str(self.path)]
        for part, tables in self.rows.items():
            where = f"{part}: " if part else ""
            out.append("  " + where + ", ".join(f"{t or 'rows'} {n:,}" for t, n in tables.items()))
        out.append(f"  {self.bytes / 1e6:,.1f} MB in {self.seconds:.1f} s")
        out += [f"  load: {line}" for line in self.load]
        out += [f"note: {n}" for n in self.notes]
        return out


# -- names, options, parts -------------------------------------------------------------------------------
def _resolve(name: str):
    """``("dataset", DatasetCard)`` or ``("task", TaskCard)``; an unknown name lists both kinds."""
    from neuroharness.loaders import get_card as dataset_card
    from neuroharness.loaders import list_datasets
    from neuroharness.tasks import get_card as task_card
    from neuroharness.tasks import list_tasks

    try:
        return "dataset", dataset_card(name)
    except UnknownNameError:
        pass
    try:
        return "task", task_card(name)
    except UnknownNameError:
        raise UsageError(f"unknown dataset or task {name!r}; datasets: {', '.join(list_datasets())}; tasks: "
                         f"{', '.join(list_tasks())}") from None


def _function(spec: str):
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module, __name__), attr)


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise UsageError(f"--format {format!r}: unknown export format; expected one of {', '.join(FORMATS)} "
                         "(hf: Hugging Face `datasets`, saved with save_to_disk)")


def _check_request(kind: str, card, parts, options, store=None) -> dict[str, str]:
    """Options (tasks only, checked against the card) and parts (part datasets only), before any data is read."""
    if kind == "task":
        if store is not None:
            raise UsageError(f"store= applies to datasets; task {card.name} reads the stores of its datasets from "
                             "the cache (NEUROHARNESS_HOME, which may be a URL)")
        if parts:
            raise UsageError(f"--part applies to datasets made of parts ({', '.join(PARTS)}); task {card.name} "
                             "selects its data with --option (see `neuroharness tasks info`)")
        return card.check_options(dict(options or {}))
    if options:
        raise UsageError(f"--option applies to tasks; dataset {card.name} has no options")
    if parts and card.name not in PARTS:
        raise UsageError(f"--part applies to datasets exported one part at a time ({', '.join(f'{n} ({p})' for n, p in PARTS.items())}); "
                         f"dataset {card.name} is exported whole")
    if card.name not in EXPORTERS:
        raise UsageError(f"dataset {card.name} has no Hugging Face exporter yet; exportable datasets: "
                         f"{', '.join(sorted(EXPORTERS))}")
    return {}


def _prepared(name: str, version: str | None) -> bool:
    """Whether the store of ``name`` exists (in a local or remote cache), without preparing it."""
    from neuroharness.loaders import get_loader

    # a local folder or below a remote $NEUROHARNESS_HOME
    return bool(get_loader(name).store_location(version).exists())


def _require_prepared(kind: str, card, version: str | None, store=None) -> None:
    if store is not None:  # an explicit store URL: opening it checks that it exists and is one of `name`
        return
    refs = [(card.name, version)] if kind == "dataset" else [(d.name, d.version) for d in card.datasets]
    missing = [n for n, v in refs if not _prepared(n, v)]
    if missing:
        what = f"dataset {card.name}" if kind == "dataset" else f"task {card.name} reads {', '.join(n for n, _ in refs)}"
        raise NeuroharnessError(f"{what}: not prepared ({', '.join(missing)}); export reads prepared stores only: run "
                                f"`neuroharness datasets prepare {' '.join(missing)}` first")


# -- plans ---------------------------------------------------------------------------------------------
def available_parts(name: str, version: str | None = None) -> list[str]:
    """The parts of a prepared part dataset (vesselgraph graphs, NSD subjects), in store order."""
    from neuroharness.loaders import get_loader

    if name not in PARTS:
        raise UsageError(f"dataset {name} is not exported in parts; part datasets: {', '.join(PARTS)}")
    _require_prepared("dataset", get_loader(name).card, version)
    return list(get_loader(name).open(version).children)


def _plans(kind: str, card, *, parts, options, version, store=None, storage_options=None, one=False):
    """``[(part, Plan), ...]``: one plan, or one per selected part (``one``: exactly one part, chosen or the only one)."""
    if kind == "task":
        return [(None, _function(TASK_EXPORTER)(card, options))]
    from neuroharness.loaders import get_loader

    build = _function(EXPORTERS[card.name])
    loader = get_loader(card.name)
    store = loader.open(version) if store is None else loader.open_store(store, version, storage_options)
    if card.name not in PARTS:
        return [(None, build(card, store, None))]
    held = list(store.children)
    if one and not parts:
        if len(held) != 1:
            raise UsageError(f"dataset {card.name} holds {len(held)} {PARTS[card.name]}s ({', '.join(held) or 'none'}); "
                             "choose one with part=")
    chosen = list(dict.fromkeys(parts)) if parts else held
    unknown = [p for p in chosen if p not in held]
    if unknown:
        raise UsageError(f"dataset {card.name}: no {PARTS[card.name]} {unknown[0]!r} in the prepared store; it holds "
                         f"{', '.join(held) or 'none'}")
    return [(p, build(card, store, p)) for p in chosen]


def _quiet_datasets():
    """Context: ``datasets``' own progress bars follow neuroharness's (off when quiet or unwatched)."""
    import contextlib
    import sys

    import datasets

    from neuroharness.progress import in_notebook, is_quiet

    def watched() -> bool:
        try:
            return in_notebook() or bool(sys.stderr.isatty())
        except (AttributeError, ValueError):  # a closed or replaced stderr
            return False

    @contextlib.contextmanager
    def ctx():
        was = datasets.is_progress_bar_enabled()
        if is_quiet() or not watched():
            datasets.disable_progress_bars()
        try:
            yield
        finally:
            (datasets.enable_progress_bars if was else datasets.disable_progress_bars)()

    return ctx()


# -- the public functions -------------------------------------------------------------------------------
def _default_cache() -> Path:
    """``$NEUROHARNESS_HOME/hf_export``; the user cache folder where the harness cache is remote (read-only)."""
    from neuroharness.errors import CacheError
    from neuroharness.loaders import cache

    try:
        return cache.home() / "hf_export"
    except CacheError:
        import platformdirs

        return Path(platformdirs.user_cache_dir("neuroharness")) / "hf_export"


def to_hf_dataset(name: str, *, part: str | None = None, options: Mapping[str, str] | None = None,
                  version: str | None = None, cache_dir: os.PathLike | str | None = None,
                  store: os.PathLike | str | None = None, storage_options: dict | None = None):
    """Dataset or task ``name`` as a ``datasets.Dataset`` (one table) or ``datasets.DatasetDict``.

    The Arrow files are written once per store content under ``cache_dir`` (default
    ``$NEUROHARNESS_HOME/hf_export``; safe to delete) and opened memory-mapped. ``part``: the graph
    (vesselgraph) or subject (NSD) to export; optional when the store holds one. ``options``: a task's
    options (e.g. ``{"graph": "BALBc_no1"}``). ``store``: a store path or fsspec URL to read instead of
    the cache's (datasets only). The store must be prepared: nothing is downloaded or built."""
    from neuroharness.loaders import io

    kind, card = _resolve(name)
    options = _check_request(kind, card, [part] if part else None, options, store)
    _require_prepared(kind, card, version, store)
    ((_, plan),) = _plans(kind, card, parts=[part] if part else None, options=options, version=version, store=store,
                          storage_options=storage_options, one=True)
    from ._common import EXPORT_VERSION, materialize

    root = Path(cache_dir) if cache_dir is not None else _default_cache()
    key = [plan.key, EXPORT_VERSION, _harness_version(), sorted(options.items()), part]
    final = root / card.name / hashlib.sha256(json.dumps(key).encode()).hexdigest()[:24]
    started = time.time()
    with _quiet_datasets():
        if not (final / "complete").is_file():
            io.remove_abandoned_temps(final, started)  # what a killed call left
            tmp = io.temp_sibling(final)
            try:
                materialize(plan, tmp)
                (tmp / "complete").write_text(plan.key + "\n")
                if (final / "complete").is_file():  # written meanwhile by another process: keep that one
                    io.remove(tmp)
                else:
                    io.remove(final)
                    os.replace(tmp, final)
            except BaseException:
                io.remove(tmp)
                raise
        return _open_cached(plan, final)


def _open_cached(plan, folder: Path):
    import datasets

    from ._common import dataset_info

    out = {}
    for table in plan.tables:
        path = folder / f"{'data' if table is None else table}.arrow"
        out[table] = datasets.Dataset.from_file(str(path), info=dataset_info(plan, table),
                                                split=None if table is None else datasets.NamedSplit(table))
    return out[None] if plan.single else datasets.DatasetDict(out)


def check_target(target: os.PathLike | str, force: bool = False) -> Path:
    """The export folder ``target``, refused (:class:`UsageError`, nothing written) when it is a file, lies
    below a file or an unwritable folder, or is a non-empty folder (``force`` replaces an earlier export,
    never another folder)."""
    target = Path(target).expanduser()
    if target.exists() and not target.is_dir():
        raise UsageError(f"DIR {target}: is a file; expected a folder for the exported dataset (created if missing)")
    if target.is_dir() and any(target.iterdir()):
        if not force:
            raise UsageError(f"DIR {target}: exists and is not empty; choose a new folder, or pass --force "
                             "(force=True) to replace an earlier export there")
        if not (target / MANIFEST).is_file():
            raise UsageError(f"DIR {target}: is not empty and holds no {MANIFEST}, so it is not an earlier "
                             "export; --force replaces only those: choose a new or empty folder")
    for parent in target.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"DIR {target}: {parent} is a file, not a folder; choose another path")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UsageError(f"DIR {target}: the folder {parent} cannot be written; choose another path")
            break
    return target


def export(name: str, target: os.PathLike | str, *, format: str = "hf", parts: list[str] | None = None,
           options: Mapping[str, str] | None = None, version: str | None = None, force: bool = False,
           store: os.PathLike | str | None = None, storage_options: dict | None = None) -> ExportResult:
    """Write dataset or task ``name`` to the folder ``target`` with ``save_to_disk``; return what was written.

    ``target`` then opens with ``datasets.load_from_disk(target)`` (a part dataset: ``target/<part>``).
    Everything is checked before writing, and the folder appears at once when complete (built in a
    temporary sibling, then renamed): on any error nothing is left. The Arrow data is written twice
    (a working copy, then the saved one), so the disk needs about twice the export's size meanwhile;
    memory holds one batch of rows (one row of large values: a worm, a recording, a volume)."""
    from neuroharness.loaders import io

    t0 = time.perf_counter()
    _check_format(format)
    kind, card = _resolve(name)
    options = _check_request(kind, card, parts, options, store)
    target = check_target(target, force)
    _require_prepared(kind, card, version, store)
    plans = _plans(kind, card, parts=parts, options=options, version=version, store=store,
                   storage_options=storage_options)
    created = [p for p in [target.absolute(), *target.absolute().parents] if not p.exists()]
    out, work = io.temp_sibling(target), io.temp_sibling(target)
    rows, notes = {}, []
    try:
        from ._common import materialize

        with _quiet_datasets():
            for part, plan in plans:
                data = materialize(plan, work / (part or "data"))
                data.save_to_disk(str(out / part) if part else str(out))
                rows[part or ""] = ({None: len(data)} if plan.single else {t: len(d) for t, d in data.items()})
                del data
                io.remove(work / (part or "data"))
                notes += [n for n in plan.notes if n not in notes]
        manifest = {
            "name": card.name, "kind": kind, "format": format, "version": card.version,
            "options": options, "parts": [p for p, _ in plans if p is not None],
            "rows": {p: {t or "rows": n for t, n in tables.items()} for p, tables in rows.items()},
            "checksums": {k: v for _, plan in plans for k, v in plan.checksums.items()}, "notes": notes,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "harness_version": _harness_version(),
        }
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        io.remove(work)
        io.replace_dir(out, target)
    except BaseException:
        io.remove(out)
        io.remove(work)
        for p in created:  # folders made for the target only, deepest first
            if p.is_dir() and not any(p.iterdir()):
                p.rmdir()
        raise
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    load = ([f"datasets.load_from_disk({str(target / p)!r})" for p, _ in plans] if plans[0][0] is not None
            else [f"datasets.load_from_disk({str(target)!r})"])
    return ExportResult(card.name, target, rows, size, time.perf_counter() - t0, notes, load)


def _harness_version() -> str:
    from neuroharness import __version__

    return __version__


__all__ = ["EXPORTERS", "FORMATS", "PARTS", "ExportResult", "available_parts", "check_target", "export",
           "to_hf_dataset"]
