"""Run a registered model on a task over fixed seeds and write one record per run."""
from __future__ import annotations

import datetime as _dt
import os
import time
from pathlib import Path

from neuroharness.progress import status

from .records import SCHEMA_VERSION, environment, write_record


def run(task_name: str, model_name: str, seeds=None, out_dir: os.PathLike = "results",
        options: dict[str, str] | None = None) -> list[Path]:
    """Fit and score ``model_name`` on ``task_name`` once per seed; return record paths.

    ``seeds`` defaults to the task card's seeds. Each record lands in
    ``out_dir`` as ``<task>__<model>__seed<k>.json``. ``options`` set the
    task card's options (e.g. ``{"graph": "BALBc_no1"}``); the resolved values
    go into every record.
    """
    from neuroharness.tasks import get_task

    task = get_task(task_name)
    spec = task.get_model(model_name)  # fail on a bad name before any work
    options = task.resolve_options(options)
    seeds = list(task.card.seeds if seeds is None else seeds)
    checksums = task.dataset_checksums(**options)
    env = environment()
    paths = []
    for seed in seeds:
        t0 = time.perf_counter()
        result = task.run_model(model_name, seed, **options)
        wall = time.perf_counter() - t0
        record = {
            "schema_version": SCHEMA_VERSION,
            "task": {
                "name": task.card.name,
                "version": task.card.version,
                "main_metric": task.card.main_metric,
                "higher_is_better": task.card.higher_is_better,
                "headline_metrics": [m.name for m in task.card.metrics],
                "options": options,
            },
            "datasets": [
                {"name": d.name, "version": d.version, "content_sha256": checksums[d.name]} for d in task.card.datasets
            ],
            "model": {
                "name": spec.name,
                "description": spec.description,
                "n_parameters": result["n_parameters"],
                "hyperparameters": result["hyperparameters"],
            },
            "seed": int(seed),
            "split": "test",
            "metrics": result["metrics"],
            "validation_metrics": result["validation_metrics"],
            "environment": env,
            "wall_time_s": round(wall, 3),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        paths.append(write_record(record, out_dir))
        status(f"[{task_name}] {model_name} seed {seed}: {task.card.main_metric} = {result['metrics']['main_score']:.4f} ({wall:.1f} s)")
    return paths
