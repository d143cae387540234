"""Run a model on a task over fixed seeds and write one record per run."""
from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping

from neuroharness.progress import status

from .records import SCHEMA_VERSION, environment, write_record

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
            "description": spec.description,
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


def run(task_name: str, model_name: str, seeds=None, out_dir: os.PathLike = "results",
        options: Mapping[str, str] | None = None, hyperparameters: Mapping[str, Any] | None = None) -> list[Path]:
    """Fit and score ``model_name`` on ``task_name`` once per seed; return record paths.

    ``seeds`` defaults to the task card's seeds. Each record lands in
    ``out_dir`` as ``<task>__<model>__seed<k>.json``. ``options`` set the
    task card's options (e.g. ``{"graph": "BALBc_no1"}``); the resolved values
    go into every record. ``hyperparameters`` override the card's model settings.
    """
    from neuroharness.tasks import get_task

    task = get_task(task_name)
    task.get_model(model_name)  # fail on a bad name before any work
    options = task.resolve_options(options)
    seeds = list(task.card.seeds if seeds is None else seeds)
    env = environment()
    paths = []
    for seed in seeds:
        t0 = time.perf_counter()
        result = task.run_model(model_name, seed, options=options, hyperparameters=hyperparameters)
        wall = time.perf_counter() - t0
        record = make_record(task, model_name, seed, options, result, wall, env)
        paths.append(write_record(record, out_dir))
        status(f"[{task_name}] {model_name} seed {seed}: {task.card.main_metric} = "
               f"{result.metrics['main_score']:.4f} ({wall:.1f} s)")
    return paths
