"""Leaderboards: aggregate result records into mean ± std over seeds.

Records are ranked together only if they agree on the task name, version
and options, on the evaluator version (the version of the task's scoring code), on every dataset's name, version and checksum of what was read,
and on the scored split and the digest of its ids (``split_sha256``);
otherwise :class:`IncomparableResultsError` names each field that differs and
the records carrying each value.

For each pair of neighbouring rows the table says whether the main-score gap
is larger than the seed-to-seed spread: a two-sided Welch t-test (unequal
variances, as ``scipy.stats.ttest_ind(a, b, equal_var=False)``) on the
per-seed main scores of the two rows, "yes" if p < 0.05 (:data:`GAP_ALPHA`);
"n/a" when a row has a single seed or both rows have zero spread.
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from neuroharness.errors import DataFormatError, IncomparableResultsError


GAP_ALPHA = 0.05
GAP_TEST = ("gap vs next: whether the main-score gap to the next row is larger than the seed-to-seed spread, by a "
            "two-sided Welch t-test (unequal variances) on the two rows' per-seed {main} scores: yes if p < {alpha}; "
            "n/a when a row has a single seed or both rows have zero spread")


def comparability_key(record: dict) -> tuple:
    """What two records must share to be ranked together (task, versions, data, options, split)."""
    t = record["task"]
    return (t["name"], t["version"], tuple((d["name"], d["version"], d["content_sha256"]) for d in record["datasets"]),
            tuple(sorted(t.get("options", {}).items())), record["split_sha256"], record.get("split", "test"),
            t.get("evaluator_version"))


def _describe(key: tuple) -> str:
    name, version, datasets, options, split_sha, split, evaluator = key
    ds = ", ".join(f"{n} {v} (sha256 {c[:12]})" for n, v, c in datasets)
    opts = "".join(f", {k}={v}" for k, v in options)
    return f"task {name} {version}{opts} on {ds}, {'' if split == 'test' else split + ' '}split sha256 {split_sha[:12]}, evaluator version {evaluator}"


def _fields(record: dict) -> dict[str, str]:
    """The fields that decide comparability, flattened: ``{"task.version": "1.0", "datasets[x].content_sha256": ...}``."""
    t = record["task"]
    out = {"task.name": t["name"], "task.version": t["version"],
           "task.evaluator_version": t.get("evaluator_version", "(not set)"),
           "datasets": ", ".join(d["name"] for d in record["datasets"]),
           "split": record.get("split", "test"), "split_sha256": record["split_sha256"]}
    for k, v in t.get("options", {}).items():
        out[f"task.options.{k}"] = v
    for d in record["datasets"]:
        out[f"datasets[{d['name']}].version"] = d["version"]
        out[f"datasets[{d['name']}].content_sha256"] = d["content_sha256"]
    return out


def _names(labels: list[str], shown: int = 3) -> str:
    more = f" and {len(labels) - shown} more" if len(labels) > shown else ""
    return ", ".join(labels[:shown]) + more


def _differences(records: list[tuple[str, dict]]) -> list[str]:
    """One line per comparability field whose value differs: each value and the records carrying it."""
    fields = [(label, _fields(r)) for label, r in records]
    keys = list(dict.fromkeys(k for _, f in fields for k in f))
    lines = []
    for key in keys:
        by_value: dict[str, list[str]] = {}
        for label, f in fields:
            by_value.setdefault(f.get(key, "(not set)"), []).append(label)
        if len(by_value) > 1:
            values = "; ".join(f"{v!r} in {len(ls)} record(s): {_names(ls)}" for v, ls in by_value.items())
            lines.append(f"  {key} differs: {values}")
    return lines


def _welch(a: np.ndarray, b: np.ndarray) -> float | None:
    """Two-sided p of Welch's t-test (= scipy.stats.ttest_ind(a, b, equal_var=False).pvalue); None if undefined.

    Computed with ``scipy.special.stdtr``: importing ``scipy.stats`` would take
    about a second, longer than the rest of the command.
    """
    if len(a) < 2 or len(b) < 2:
        return None
    # identical values have no spread (var() of three equal floats can come out as 1e-33, not 0)
    va, vb = ((0.0 if x.min() == x.max() else x.var(ddof=1) / len(x)) for x in (a, b))
    if va + vb == 0:
        return None
    from scipy.special import stdtr

    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return float(2 * stdtr(df, -abs(t)))


def build(records: list[tuple[Path, dict]], task: str | None = None,
          options: dict[str, str] | None = None, official=()) -> pd.DataFrame:
    """One row per model: metric means and stds over seeds, sorted by the main score.

    ``records`` are ``(path, record)`` pairs as from :func:`records.read_records`;
    ``task`` keeps only that task's records, ``options`` only records made with
    those task options. Std is the sample std (ddof=1); 0 for a single seed.
    ``official`` are the paths among them of official records: when records of
    both kinds remain, a ``source`` column ("official" or "results") tells them
    apart and a model present in both gets one row each. ``gap_vs_next`` (yes,
    no, n/a; empty on the last row) and ``gap_p_value`` compare each row with
    the next (see :data:`GAP_TEST`).
    """
    official = {Path(p) for p in official}
    if task is not None:
        records = [(p, r) for p, r in records if r["task"]["name"] == task]
    if options:
        records = [(p, r) for p, r in records
                   if all(str(r["task"].get("options", {}).get(k)) == str(v) for k, v in options.items())]
    if not records:
        opts = "".join(f" {k}={v}" for k, v in (options or {}).items())
        raise DataFormatError(f"no result records{' for task ' + task if task else ''}{' with' + opts if opts else ''}")
    def label(p: Path) -> str:
        return f"official {p.name}" if p in official else str(p)

    groups: dict[tuple, list[str]] = {}
    for p, r in records:
        groups.setdefault(comparability_key(r), []).append(label(Path(p)))
    if len(groups) > 1:
        lines = [f"  {_describe(k)}: {len(v)} record(s), e.g. {v[0]}" for k, v in groups.items()]
        raise IncomparableResultsError(
            "refusing to rank records made on different task or dataset versions, task options or splits, or evaluator versions:\n"
            + "\n".join(_differences([(label(Path(p)), r) for p, r in records]))
            + "\nthe comparable sets:\n" + "\n".join(lines)
            + "\nkeep one set of records per results directory (or rerun the older ones), or pick options with --option"
            + ("; --only-results leaves out the official records" if any(Path(p) in official for p, _ in records) else "")
        )
    first = records[0][1]
    main, higher = first["task"]["main_metric"], first["task"].get("higher_is_better", True)
    mixed = 0 < sum(Path(p) in official for p, _ in records) < len(records)
    by_model: dict[tuple[str, str], list[dict]] = {}
    for p, r in records:
        key = (r["model"]["name"], "official" if Path(p) in official else "results")
        seeds = [x["seed"] for x in by_model.get(key, [])]
        if r["seed"] in seeds:
            raise IncomparableResultsError(f"{p}: model {r['model']['name']} seed {r['seed']} appears twice")
        by_model.setdefault(key, []).append(r)
    metric_names = [m for m in first["metrics"] if m != "main_score"]
    rows = []
    for (model, source), rs in by_model.items():
        row = {"model": model, **({"source": source} if mixed else {}), "n_seeds": len(rs),
               "seeds": " ".join(str(s) for s in sorted(x["seed"] for x in rs)),
               "n_parameters": rs[0]["model"]["n_parameters"]}
        row["_main_scores"] = np.array([x["metrics"]["main_score"] for x in rs], dtype=float)
        for m in metric_names:
            vals = np.array([x["metrics"][m] for x in rs if m in x["metrics"]], dtype=float)
            row[f"{m}_mean"] = float(vals.mean())
            row[f"{m}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        rows.append(row)
    table = pd.DataFrame(rows).sort_values(f"{main}_mean", ascending=not higher, kind="mergesort").reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    scores = table.pop("_main_scores").tolist()
    p_values = [_welch(a, b) for a, b in zip(scores, scores[1:])]
    table["gap_vs_next"] = [("n/a" if p is None else "yes" if p < GAP_ALPHA else "no") for p in p_values] + [""]
    table["gap_p_value"] = [math.nan if p is None else p for p in p_values] + [math.nan]
    table.attrs.update(task=first["task"]["name"], task_version=first["task"]["version"], main_metric=main,
                       headline_metrics=list(first["task"].get("headline_metrics", [])),
                       options=dict(first["task"].get("options", {})),
                       datasets=[f"{d['name']} {d['version']}" for d in first["datasets"]],
                       gap_test=GAP_TEST.format(main=main, alpha=GAP_ALPHA))
    return table


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.4f} ± {std:.4f}" if math.isfinite(std) else f"{mean:.4f}"


def render(table: pd.DataFrame, fmt: str = "md", metrics: list[str] | None = None) -> str:
    """Render a leaderboard as Markdown, CSV or JSON."""
    if fmt == "json":
        rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
                for row in table.to_dict(orient="records")]
        return json.dumps({"meta": table.attrs, "rows": rows}, indent=2)
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
    source = ["source"] if "source" in table.columns else []
    header = ["rank", "model", *source, *[f"{m}{' (main)' if m == main else ''}" for m in metrics], "seeds", "params",
              "gap vs next"]
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
        cells = [str(r["rank"]), r["model"], *[r[c] for c in source], *[_fmt(r[f"{m}_mean"], r[f"{m}_std"]) for m in metrics],
                 str(r["n_seeds"]), f"{int(r['n_parameters']):,}", gap_text(r.get("gap_vs_next", ""), r.get("gap_p_value"))]
        lines.append("| " + " | ".join(cells) + " |")
    if "gap_test" in table.attrs:
        lines += ["", table.attrs["gap_test"] + "."]
    return "\n".join(lines) + "\n"


def gap_text(verdict: str, p: float | None) -> str:
    """The "gap vs next" cell: the Welch verdict with its p-value, or the verdict alone."""
    if verdict in ("yes", "no") and p is not None and math.isfinite(p):
        return f"{verdict} (p = {p:.3f})" if p >= 0.001 else f"{verdict} (p < 0.001)"
    return verdict or "–"
