"""Leaderboards: aggregate result records into mean ± std over seeds.

Records are ranked together only if they agree on the task name, version
and options, on every dataset's name, version and checksum of what was read,
and on the digest of the scored ids (``split_sha256``); otherwise
:class:`IncomparableResultsError` says which records differ.
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from neuroharness.errors import DataFormatError, IncomparableResultsError


def _comparability_key(record: dict) -> tuple:
    t = record["task"]
    return (t["name"], t["version"], tuple((d["name"], d["version"], d["content_sha256"]) for d in record["datasets"]),
            tuple(sorted(t.get("options", {}).items())), record["split_sha256"])


def _describe(key: tuple) -> str:
    name, version, datasets, options, split = key
    ds = ", ".join(f"{n} {v} (sha256 {c[:12]})" for n, v, c in datasets)
    opts = "".join(f", {k}={v}" for k, v in options)
    return f"task {name} {version}{opts} on {ds}, split sha256 {split[:12]}"


def build(records: list[tuple[Path, dict]], task: str | None = None,
          options: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per model: metric means and stds over seeds, sorted by the main score.

    ``records`` are ``(path, record)`` pairs as from :func:`records.read_records`;
    ``task`` keeps only that task's records, ``options`` only records made with
    those task options. Std is the sample std (ddof=1); 0 for a single seed.
    """
    if task is not None:
        records = [(p, r) for p, r in records if r["task"]["name"] == task]
    if options:
        records = [(p, r) for p, r in records
                   if all(str(r["task"].get("options", {}).get(k)) == str(v) for k, v in options.items())]
    if not records:
        opts = "".join(f" {k}={v}" for k, v in (options or {}).items())
        raise DataFormatError(f"no result records{' for task ' + task if task else ''}{' with' + opts if opts else ''}")
    groups: dict[tuple, list[Path]] = {}
    for p, r in records:
        groups.setdefault(_comparability_key(r), []).append(p)
    if len(groups) > 1:
        lines = [f"  {_describe(k)}: {len(v)} record(s), e.g. {v[0]}" for k, v in groups.items()]
        raise IncomparableResultsError(
            "refusing to rank records made on different task or dataset versions, task options or splits:\n" + "\n".join(lines)
            + "\nkeep one set of records per results directory (or rerun the older ones), or pick options with --option"
        )
    first = records[0][1]
    main, higher = first["task"]["main_metric"], first["task"].get("higher_is_better", True)
    by_model: dict[str, list[dict]] = {}
    for p, r in records:
        seeds = [x["seed"] for x in by_model.get(r["model"]["name"], [])]
        if r["seed"] in seeds:
            raise IncomparableResultsError(f"{p}: model {r['model']['name']} seed {r['seed']} appears twice")
        by_model.setdefault(r["model"]["name"], []).append(r)
    metric_names = [m for m in first["metrics"] if m != "main_score"]
    rows = []
    for model, rs in by_model.items():
        row = {"model": model, "n_seeds": len(rs), "seeds": " ".join(str(s) for s in sorted(x["seed"] for x in rs)),
               "n_parameters": rs[0]["model"]["n_parameters"]}
        for m in metric_names:
            vals = np.array([x["metrics"][m] for x in rs if m in x["metrics"]], dtype=float)
            row[f"{m}_mean"] = float(vals.mean())
            row[f"{m}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        rows.append(row)
    table = pd.DataFrame(rows).sort_values(f"{main}_mean", ascending=not higher, kind="mergesort").reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    table.attrs.update(task=first["task"]["name"], task_version=first["task"]["version"], main_metric=main,
                       headline_metrics=list(first["task"].get("headline_metrics", [])),
                       options=dict(first["task"].get("options", {})),
                       datasets=[f"{d['name']} {d['version']}" for d in first["datasets"]])
    return table


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.4f} ± {std:.4f}" if math.isfinite(std) else f"{mean:.4f}"


def render(table: pd.DataFrame, fmt: str = "md", metrics: list[str] | None = None) -> str:
    """Render a leaderboard as Markdown, CSV or JSON."""
    if fmt == "json":
        return json.dumps({"meta": table.attrs, "rows": table.to_dict(orient="records")}, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        table.to_csv(buf, index=False)
        return buf.getvalue()
    if fmt != "md":
        raise ValueError(f"format {fmt!r}: expected md, csv or json")
    if metrics is None:
        metrics = [m for m in table.attrs.get("headline_metrics", []) if f"{m}_mean" in table.columns]
    if not metrics:  # records without a headline list: every metric but counts and chance levels
        metrics = [c[: -len("_mean")] for c in table.columns if c.endswith("_mean")
                   and not c.startswith(("n_", "chance_"))]
    main = table.attrs.get("main_metric")
    metrics = sorted(metrics, key=lambda m: m != main)
    header = ["rank", "model", *[f"{m}{' (main)' if m == main else ''}" for m in metrics], "seeds", "params"]
    lines = [
        f"Task {table.attrs.get('task')} v{table.attrs.get('task_version')}"
        f"{''.join(f', {k}={v}' for k, v in table.attrs.get('options', {}).items())} "
        f"on {', '.join(table.attrs.get('datasets', []))}; "
        "test split, mean ± std over seeds",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for _, r in table.iterrows():
        cells = [str(r["rank"]), r["model"], *[_fmt(r[f"{m}_mean"], r[f"{m}_std"]) for m in metrics], str(r["n_seeds"]), f"{int(r['n_parameters']):,}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
