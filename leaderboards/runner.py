"""Run a model on a task over fixed seeds and write one record per run."""
from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping

from neuroharness.errors import NeuroharnessError
from neuroharness.progress import status

from .records import SCHEMA_VERSION, environment, record_filename, write_record

log = logging.getLogger("neuroharness")


def dataset_entries(task, options: dict[str, str]) -> list[dict]:
    """The record's ``datasets`` list: each dataset the task read with these options (in the card's order),
    with the checksum of exactly what it read. A task whose options select among its datasets (the EEG
    task's ``dataset``/``protocol``) lists only those it read."""
    checksums = task.dataset_checksums(options)
    parts = task.dataset_parts(options)
    unknown = sorted(set(checksums) - {d.name for d in task.card.datasets})
    if unknown or not checksums:
        raise NeuroharnessError(f"task {task.name}: dataset_checksums gave {sorted(checksums)}, expected a non-empty "
                                f"subset of the card's datasets {[d.name for d in task.card.datasets]}")
    out = []
    for d in task.card.datasets:
        if d.name not in checksums:
            continue
        entry = {"name": d.name, "version": d.version, "content_sha256": checksums[d.name]}
        if d.name in parts:
            entry["parts"] = dict(sorted(parts[d.name].items()))
        out.append(entry)
    return out


def make_record(task, model_name: str, seed: int, options: dict[str, str], result, wall: float,
                env: dict | None = None, model: dict | None = None) -> dict:
    """A schema-version-2 record of one run (see :mod:`.records`).

    ``model`` (``name``, ``description``, ``origin``) describes a model that is not
    one of the task's (a scored predictions file); default: ``model_name`` resolved."""
    from neuroharness.tasks.plugins import description, origin_of

    if model is None:
        spec = task.get_model(model_name)
        model = {"name": spec.name, "description": description(spec), "origin": origin_of(spec)}
    card = task.card
    return {
        "schema_version": SCHEMA_VERSION,
        "task": {
            "name": card.name,
            "version": card.version,
            "evaluator_version": card.evaluator_version,
            "main_metric": card.main_metric,
            "higher_is_better": card.higher_is_better,
            "headline_metrics": [m.name for m in card.metrics],
            "options": dict(options),
        },
        "datasets": dataset_entries(task, options),
        "split": "test",
        "split_sha256": result.split_sha256,
        "model": {
            "name": model["name"],
            "description": model["description"],
            "origin": model["origin"],
            "n_parameters": result.n_parameters,
            "hyperparameters": result.hyperparameters,
            "fitted": result.fitted,
        },
        "seed": int(seed),
        "metrics": result.metrics,
        "validation_metrics": result.validation_metrics,
        "environment": env or environment(),
        "wall_time_s": round(wall, 3),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _finished(path: Path, task, datasets: list[dict], split_sha256: str, hyper: dict) -> str | None:
    """Why the record at ``path`` cannot stand for this run (None: it can, so it is kept)."""
    from neuroharness.errors import DataFormatError

    from .records import read_records

    try:
        (_, rec), = read_records([path])
    except DataFormatError as e:
        return f"unreadable ({e})"
    for what, old, new in (("task version", rec["task"]["version"], task.card.version),
                           ("datasets", rec["datasets"], datasets), ("split", rec["split_sha256"], split_sha256),
                           ("hyperparameters", rec["model"]["hyperparameters"], hyper)):
        if old != new:
            return f"made with other {what}"
    return None


def run(task_name: str, model_name: str, seeds=None, out_dir: os.PathLike = "results",
        options: Mapping[str, str] | None = None, hyperparameters: Mapping[str, Any] | None = None,
        force: bool = False, scheduler: str | None = None) -> list[Path]:
    """Fit and score ``model_name`` on ``task_name`` once per seed; return record paths.

    ``model_name`` is a model of the card, an installed plugin model (entry
    point) or an import string ``package.module:Factory``; records say which
    (``model.origin``). ``seeds`` defaults to the task card's seeds. Each record lands in
    ``out_dir`` as ``<task>__<model>__seed<k>.json``. ``options`` set the
    task card's options (e.g. ``{"graph": "BALBc_no1"}``); the resolved values
    go into every record. ``hyperparameters`` override the card's model settings.

    A rerun resumes: a seed whose record is already in ``out_dir``, valid and made
    with the same task version, dataset checksums, split and hyperparameters is kept,
    not recomputed, unless ``force``. Temporary files of its records that a killed
    run left (``.<record>.tmp-*``) are deleted. ``scheduler``: see :func:`run_models`.
    """
    return run_models(task_name, [model_name], seeds, out_dir, options=options, hyperparameters=hyperparameters,
                      force=force, scheduler=scheduler)


def run_models(task_name: str, model_names: list[str], seeds=None, out_dir: os.PathLike = "results",
               options: Mapping[str, str] | None = None, hyperparameters: Mapping[str, Any] | None = None,
               force: bool = False, scheduler: str | None = None) -> list[Path]:
    """:func:`run` for several models; record paths in (model, seed) order.

    ``scheduler`` (a dask.distributed address; ``None`` reads ``$NEUROHARNESS_DASK_SCHEDULER``, where empty
    means in-process): every (model, seed) run still to do is one task on that cluster, computed by a worker
    (the record's ``environment`` is the worker's) and written here as it arrives. The stores are prepared
    here first, so workers only read them."""
    from neuroharness import cluster
    from neuroharness.loaders.io import remove_abandoned_temps
    from neuroharness.tasks import get_task
    from neuroharness.tasks.model_utils import describe

    started = time.time()  # temporary record files older than this were abandoned by a killed run
    address = cluster.scheduler_address(scheduler)
    task = get_task(task_name)
    options = task.resolve_options(options)
    seeds = list(task.card.seeds if seeds is None else seeds)
    datasets = split = None
    paths: dict[tuple[str, int], Path] = {}
    pending: list[tuple[str, int]] = []
    for model_name in model_names:
        built = task.build_model(model_name, hyperparameters)  # a bad name or failing factory fails before any work
        for seed in seeds:
            path = Path(out_dir) / record_filename(task_name, model_name, seed, options)
            if not force and path.is_file():
                if datasets is None:
                    datasets, split = dataset_entries(task, options), task.split_sha256(options)
                why = _finished(path, task, datasets, split, describe(built))
                if why is None:
                    status(f"[{task_name}] {model_name} seed {seed}: kept {path} (finished before; --force reruns it)")
                    paths[(model_name, seed)] = path
                    remove_abandoned_temps(path, started)
                    continue
                status(f"[{task_name}] {model_name} seed {seed}: rerunning, {path.name} was {why}")
            pending.append((model_name, seed))
    if pending and address is not None:
        dataset_entries(task, options)  # prepares missing stores here, once, not on every worker at the same time
        status(f"[{task_name}] {len(pending)} run(s) {cluster.describe(address)}")
        env = None
    else:
        env = environment()
    parts = [(task_name, m, seed, dict(options), dict(hyperparameters or {}) or None, env) for m, seed in pending]
    for i, (record, wall) in cluster.run_parts(_run_one, parts, address):
        model_name, seed = pending[i]
        path = write_record(record, out_dir)
        paths[(model_name, seed)] = path
        remove_abandoned_temps(path, started)
        status(f"[{task_name}] {model_name} seed {seed}: {task.card.main_metric} = "
               f"{record['metrics']['main_score']:.4f} ({wall:.1f} s)")
    return [paths[(m, seed)] for m in model_names for seed in seeds]


def _run_one(task_name: str, model_name: str, seed: int, options: dict, hyperparameters: dict | None,
             env: dict | None) -> tuple[dict, float]:
    """One (model, seed) run: the record (not yet written) and its wall time (s). Module-level, so dask workers
    can import it; ``env`` None: the environment of the process that runs it."""
    from neuroharness.tasks import get_task

    task = get_task(task_name)
    t0 = time.perf_counter()
    result = task.run_model(model_name, seed, options=options, hyperparameters=hyperparameters)
    wall = time.perf_counter() - t0
    return make_record(task, model_name, seed, options, result, wall, env if env is not None else environment()), wall


def predictions_sha256(path: os.PathLike) -> str:
    """sha256 of a predictions file's bytes; for a folder (a .zarr store) a digest over its files'
    relative paths (POSIX) and bytes, in sorted order (``path|size\n`` then the bytes, per file)."""
    import hashlib

    path = Path(path)
    h = hashlib.sha256()
    files = [(path, "")] if path.is_file() else sorted(
        ((p, p.relative_to(path).as_posix()) for p in path.rglob("*") if p.is_file()), key=lambda x: x[1])
    for p, rel in files:
        if rel:
            h.update(f"{rel}|{p.stat().st_size}\n".encode())
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def submission_record(task_name: str, predictions: os.PathLike, model_name: str, *, seed: int = 0,
                      options: Mapping[str, str] | None = None, description: str = "",
                      n_parameters: int = 0) -> dict:
    """Score a predictions file on the test split and return its record (not yet written: see
    :func:`~.records.write_record`, which stamps ``record_digest``).

    The record has the schema of a ``run`` record, with ``model.origin`` ``{"kind": "submission"}``,
    ``predictions_sha256`` (:func:`predictions_sha256`), ``seed`` the submitter's own training seed,
    empty ``hyperparameters``, ``fitted`` and ``validation_metrics``. Raises (and so nothing is
    written) when the file fails the task's checks."""
    from neuroharness.tasks import get_task
    from neuroharness.tasks.base import RunResult

    task = get_task(task_name)
    options = task.resolve_options(options)
    digest = predictions_sha256(predictions)  # before scoring: the bytes that were scored
    t0 = time.perf_counter()
    metrics = task.evaluate(predictions, "test", options=options)
    wall = time.perf_counter() - t0
    result = RunResult(metrics=metrics, validation_metrics={}, n_parameters=int(n_parameters), hyperparameters={},
                       fitted={}, split_sha256=task.split_sha256(options), fit_predict_seconds=wall)
    model = {"name": model_name, "description": description,
             "origin": {"kind": "submission", "package": None, "version": None}}
    record = make_record(task, model_name, seed, options, result, wall, model=model)
    record["predictions_sha256"] = digest
    return record
