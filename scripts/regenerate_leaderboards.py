"""Regenerate the official baseline records in ``leaderboards/official/<task>/``.

Runs every model of each task's card over the card's seeds on the real data
and replaces the task's folder in one rename, then prints the table. Official
numbers come from the exact versions in ``constraints.txt``: the script
refuses to run when an installed version differs (install with
``pip install -c constraints.txt -e .``)::

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

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL = ROOT / "leaderboards" / "official"


def unpinned(constraints: Path = ROOT / "constraints.txt") -> list[str]:
    """``name installed X, constraints pin Y`` for every pinned package installed at another version."""
    from importlib import metadata

    out = []
    for line in constraints.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" not in line:
            continue
        name, version = (x.strip() for x in line.split("==", 1))
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        if installed.split("+", 1)[0] != version.split("+", 1)[0]:
            out.append(f"{name} installed {installed}, constraints pin {version}")
    return out


def regenerate(task_name: str) -> Path:
    task = get_task(task_name)
    final = OFFICIAL / task_name
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{task_name}.tmp-", dir=final.parent))
    try:
        for model in task.card.model_specs:  # built-in baselines only, never installed plugins
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
    ap = argparse.ArgumentParser(description="Regenerate the official baseline records.")
    # only tasks whose data ship with PyPI packages have official records; celegans-forecast
    # needs the HuggingFace activity collection, which cannot be fetched where these are made
    ap.add_argument("--task", nargs="+", default=["celegans-structure-function"], choices=list_tasks())
    ap.add_argument("--allow-unpinned", action="store_true", help="run even if installed versions differ from constraints.txt")
    args = ap.parse_args()
    wrong = unpinned()
    if wrong and not args.allow_unpinned:
        raise SystemExit("refusing to make official records with versions other than constraints.txt's:\n  "
                         + "\n  ".join(wrong) + "\ninstall with: pip install -c constraints.txt -e .")
    for name in args.task:
        regenerate(name)


if __name__ == "__main__":
    main()
