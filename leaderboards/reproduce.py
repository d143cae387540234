"""Rerun the official baselines of a task and compare them with the official records.

>>> from neuroharness.leaderboards.reproduce import reproduce
>>> report = reproduce("celegans-structure-function", models=["chance"])
>>> report.ok, report.lines()

Each official record is rerun with its model, seed and options; every metric
and validation metric is compared with the record's value within the card's
``reproduce_tolerance`` (absolute; 0 means bit-identical, what CPU baselines
that train on one thread give). The records' dataset checksums and split
digest must match too, so a difference in the data is told apart from a
difference in the numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from neuroharness.errors import DataFormatError


@dataclass
class Difference:
    record: str  # file name of the official record
    field: str  # e.g. "metrics.roc_auc", "split_sha256"
    official: object
    reproduced: object


@dataclass
class Report:
    task: str
    tolerance: float
    checked: list[str] = field(default_factory=list)  # record file names
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checked) and not self.differences

    def lines(self) -> list[str]:
        """A human summary: one line per record, then one per difference."""
        bad = {d.record for d in self.differences}
        out = [f"{'differs' if name in bad else 'ok':<8} {name}" for name in self.checked]
        for d in self.differences:
            out.append(f"  {d.record}: {d.field}: official {d.official!r}, reproduced {d.reproduced!r}")
        tol = "bit-identical" if self.tolerance == 0 else f"within {self.tolerance:g}"
        out.append(f"{len(self.checked) - len(bad)} of {len(self.checked)} official records of {self.task} "
                   f"reproduced ({tol})")
        return out


def _same(a, b, tol: float) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if tol == 0:
            return a == b
        return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= tol
    return a == b


def compare(official: dict, reproduced: dict, name: str, tol: float) -> list[Difference]:
    """Differences between an official record and its rerun (metrics within ``tol``; data exactly)."""
    out = []
    for part in ("metrics", "validation_metrics"):
        keys = sorted(set(official.get(part, {})) | set(reproduced.get(part, {})))
        for k in keys:
            a, b = official.get(part, {}).get(k), reproduced.get(part, {}).get(k)
            if not _same(a, b, tol):
                out.append(Difference(name, f"{part}.{k}", a, b))
    for key in ("split_sha256", "seed"):
        if official.get(key) != reproduced.get(key):
            out.append(Difference(name, key, official.get(key), reproduced.get(key)))
    # the rerun uses the card's settings: a changed default shows here, not as a mystery in the metrics
    a, b = official["model"].get("hyperparameters"), reproduced["model"].get("hyperparameters")
    if a != b:
        out.append(Difference(name, "model.hyperparameters", a, b))
    got = {d["name"]: d["content_sha256"] for d in reproduced.get("datasets", [])}
    for d in official.get("datasets", []):
        if got.get(d["name"]) != d["content_sha256"]:
            out.append(Difference(name, f"datasets.{d['name']}.content_sha256", d["content_sha256"], got.get(d["name"])))
    return out


def reproduce(task_name: str, models: list[str] | None = None, records_dir: Path | None = None,
              tolerance: float | None = None) -> Report:
    """Rerun the official records of ``task_name`` (optionally only ``models``) and compare.

    ``records_dir`` defaults to the installed official records; ``tolerance``
    to the card's ``reproduce_tolerance``. Nothing is written.
    """
    import tempfile

    from neuroharness.leaderboards import official_dir
    from neuroharness.leaderboards.records import read_records
    from neuroharness.leaderboards.runner import run
    from neuroharness.tasks import get_card, get_task

    card = get_card(task_name)
    tol = float(card.reproduce_tolerance if tolerance is None else tolerance)
    folder = Path(records_dir) if records_dir is not None else official_dir(task_name)
    if not folder.is_dir():
        raise DataFormatError(f"task {task_name} has no official records to reproduce (no folder {folder.name!r} "
                              "among the installed official records); run it with `neuroharness run` instead")
    records = [(p, r) for p, r in read_records(folder) if r["task"]["name"] == task_name]
    if models:
        task = get_task(task_name)
        for m in models:
            task.get_model(m)  # an unknown name fails before any work
        records = [(p, r) for p, r in records if r["model"]["name"] in models]
    if not records:
        raise DataFormatError(f"{folder}: no official records of task {task_name}"
                              + (f" for model(s) {', '.join(models)}" if models else ""))
    report = Report(task_name, tol)
    with tempfile.TemporaryDirectory(prefix="nh-reproduce-") as tmp:
        for path, official in records:
            (new,) = run(task_name, official["model"]["name"], [official["seed"]], tmp,
                         options=official["task"].get("options", {}))
            reproduced = read_records([new])[0][1]
            report.checked.append(path.name)
            report.differences += compare(official, reproduced, path.name, tol)
    return report
