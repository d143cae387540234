"""Regenerate the official baseline records in ``leaderboards/official/<task>/``.

Runs every registered model of each task over the card's seeds on the real
data and replaces the task's folder in one rename, then prints the table:

    python scripts/regenerate_leaderboards.py [--task celegans-structure-function]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from neuroharness.leaderboards import table
from neuroharness.leaderboards.records import read_records
from neuroharness.leaderboards.runner import run
from neuroharness.tasks import get_task, list_tasks

OFFICIAL = Path(__file__).resolve().parents[1] / "leaderboards" / "official"


def regenerate(task_name: str) -> Path:
    task = get_task(task_name)
    final = OFFICIAL / task_name
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{task_name}.tmp-", dir=final.parent))
    try:
        for model in task.models:
            run(task_name, model, None, tmp)
        old = final.with_name(final.name + ".old")
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(table.render(table.build(read_records(final), task=task_name)))
    return final


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # only tasks whose data ship with PyPI packages have official records; celegans-forecast
    # needs the HuggingFace activity collection, which cannot be fetched where these are made
    ap.add_argument("--task", nargs="+", default=["celegans-structure-function"], choices=list_tasks())
    for name in ap.parse_args().task:
        regenerate(name)


if __name__ == "__main__":
    main()
