"""Run a model on a task over fixed seeds and write one record per run."""
from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping

from neuroharness.progress import status

from .records import SCHEMA_VERSION, environment, record_filename, write_record

log = logging.getLogger("neuroharness")


def dataset_entries(task, options: dict[str, str]) -> list[dict]:
    """The record's ``datasets`` list: each dataset with the checksum of exactly what the task read."""
    checksums = task.dataset_checksums(options)
    parts = task.dataset_parts(options)
    out = []
    for d in task.card.datasets:
        entry = {"name": d.name, "version": d.version, "content_sha256": checksums[d.name]}
        if d.name in parts:
            entry["parts"] = dict(sorted(parts[d.name].items()))
        out.append(entry)
    return out


def make_record(task, model_name: str, seed: int, options: dict[str, str], result, wall: float,
                env: dict | None = None) -> dict:
    """A schema-version-2 record of one run (see :mod:`.records`)."""
    from neuroharness.tasks.plugins import description, origin_of

    spec = task.get_model(model_name)
    card = task.card
    return {
        "schema_version": SCHEMA_VERSION,
        "task": {
            "name": card.name,
            "version": card.version,
            "main_metric": card.main_metric,
            "higher_is_better": card.higher_is_better,
            "headline_metrics": [m.name for m in card.metrics],
            "options": dict(options),
        },
        "datasets": dataset_entries(task, options),
        "split": "test",
        "split_sha256": result.split_sha256,
        "model": {
            "name": spec.name,
            "description": description(spec),
            "origin": origin_of(spec),
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
        force: bool = False) -> list[Path]:
    """Fit and score ``model_name`` on ``task_name`` once per seed; return record paths.

    ``model_name`` is a model of the card, an installed plugin model (entry
    point) or an import string ``package.module:Factory``; records say which
    (``model.origin``). ``seeds`` defaults to the task card's seeds. Each record lands in
    ``out_dir`` as ``<task>__<model>__seed<k>.json``. ``options`` set the
    task card's options (e.g. ``{"graph": "BALBc_no1"}``); the resolved values
    go into every record. ``hyperparameters`` override the card's model settings.

    A rerun resumes: a seed whose record is already in ``out_dir``, valid and made
    with the same task version, dataset checksums, split and hyperparameters is kept,
    not recomputed, unless ``force``.
    """
    from neuroharness.tasks import get_task

    task = get_task(task_name)
    built = task.build_model(model_name, hyperparameters)  # fail on a bad name or a failing factory before any work
    options = task.resolve_options(options)
    seeds = list(task.card.seeds if seeds is None else seeds)
    env = environment()
    paths = []
    existing = {}
    if not force:
        existing = {seed: Path(out_dir) / record_filename(task_name, model_name, seed, options) for seed in seeds}
        existing = {seed: p for seed, p in existing.items() if p.is_file()}
    if existing:
        from neuroharness.tasks.model_utils import describe

        datasets, split = dataset_entries(task, options), task.split_sha256(options)
    for seed in seeds:
        if seed in existing:
            why = _finished(existing[seed], task, datasets, split, describe(built))
            if why is None:
                status(f"[{task_name}] {model_name} seed {seed}: kept {existing[seed]} (finished before; --force reruns it)")
                paths.append(existing[seed])
                continue
            status(f"[{task_name}] {model_name} seed {seed}: rerunning, {existing[seed].name} was {why}")
        t0 = time.perf_counter()
        result = task.run_model(model_name, seed, options=options, hyperparameters=hyperparameters)
        wall = time.perf_counter() - t0
        record = make_record(task, model_name, seed, options, result, wall, env)
        paths.append(write_record(record, out_dir))
        status(f"[{task_name}] {model_name} seed {seed}: {task.card.main_metric} = "
               f"{result.metrics['main_score']:.4f} ({wall:.1f} s)")
    return paths
