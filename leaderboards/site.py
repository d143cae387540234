"""A static leaderboard site: ``neuroharness leaderboard --all --html DIR``.

``index.html`` lists every task that has records (its datasets, main metric
and best entry) and links to one page per task. A task page holds, for each
comparable set of records, the table of :func:`.table.build` (the numbers are
not recomputed here) sortable by clicking a column header, the provenance of
each entry (shown by clicking its row: environment, git commit, dataset
checksums, ``split_sha256``, ``record_digest`` of every record), the published
reference rows of the task class (``reference_rows``), marked as published and
not produced here, and an inline SVG plot of the main score per model with
error bars of ± one std over seeds.

The pages need no server and no network: styles, script and plots are inline.
The site is written into a temporary folder beside ``out`` and renamed into
place, so a failed build leaves an existing site as it was.
"""
from __future__ import annotations

import html
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

from neuroharness.errors import UsageError

from . import table as _table

MARKER = ".neuroharness-site"  # a folder holding this file is a site this module may replace
PUBLISHED = "published, not produced here"
NUM = ' class="num"'

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
th,td{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}
th.sortable{cursor:pointer;user-select:none;background:#f4f4f4}
th.sortable:hover{background:#e8e8e8}
th[aria-sort=ascending]::after{content:' \\25B2'} th[aria-sort=descending]::after{content:' \\25BC'}
tr.entry{cursor:pointer} tr.entry:hover{background:#f7f7ff} tr.entry.selected{background:#e8ecff}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.published td{color:#555;font-style:italic}
.provenance{border:1px solid #99a;padding:.5rem 1rem;margin:1rem 0;background:#fafaff}
.provenance pre{white-space:pre-wrap;font-size:.8rem}
code{font-size:.85rem} .note{color:#555;font-size:.85rem}
"""

# sort a table by a header click: numbers by data-sort, text otherwise; a second click reverses
_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th.sortable').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      table.querySelectorAll('th.sortable').forEach(function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var numeric = th.dataset.type === 'number';
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.sort, y = b.cells[col].dataset.sort;
        var d = numeric ? (parseFloat(x) - parseFloat(y)) : x.localeCompare(y);
        if (numeric && isNaN(d)) { d = isNaN(parseFloat(x)) - isNaN(parseFloat(y)); }
        return asc ? d : -d;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
document.querySelectorAll('tr.entry').forEach(function (row) {
  row.addEventListener('click', function () {
    var id = row.dataset.provenance;
    document.querySelectorAll('section.provenance').forEach(function (s) { s.hidden = s.id !== id; });
    document.querySelectorAll('tr.entry').forEach(function (r) { r.classList.toggle('selected', r === row); });
    var target = document.getElementById(id);
    if (target) { target.scrollIntoView({block: 'nearest'}); }
  });
});
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _page(title: str, body: str, script: bool = False) -> str:
    js = f"<script>{_JS}</script>" if script else ""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n{js}</body></html>\n")


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _mean_std(mean: float, std: float) -> str:
    return f"{mean:.4f} ± {std:.4f}" if math.isfinite(std) else f"{mean:.4f}"


def _source(path: Path, official: set[Path]) -> str:
    return "official" if Path(path) in official else "results"


def _reference_rows(task: str) -> tuple[dict, ...]:
    """``reference_rows`` of the task's implementation class (imports the task module only, not its data)."""
    from importlib import import_module

    from neuroharness.tasks import get_card

    try:
        module, _, cls = get_card(task).implementation.partition(":")
        rows = getattr(getattr(import_module(module), cls), "reference_rows", ())
    except Exception:  # noqa: BLE001 - a task module that cannot import has no published rows to show
        return ()
    return tuple(rows or ())


def _groups(records: list[tuple[Path, dict]]) -> dict[str, list[list[tuple[Path, dict]]]]:
    """Records by task, then by comparable set (task version, options, datasets, split), in first-seen order."""
    out: dict[str, dict[tuple, list]] = {}
    for p, r in records:
        out.setdefault(r["task"]["name"], {}).setdefault(_table.comparability_key(r), []).append((Path(p), r))
    return {t: list(g.values()) for t, g in sorted(out.items())}


def _headline(tab) -> list[str]:
    main = tab.attrs["main_metric"]
    metrics = [m for m in tab.attrs.get("headline_metrics", []) if f"{m}_mean" in tab.columns] or \
              [c[: -len("_mean")] for c in tab.columns if c.endswith("_mean") and not c.startswith(("n_", "chance_"))]
    return sorted(dict.fromkeys(metrics), key=lambda m: m != main)


def _plot(rows: list[dict], main: str, higher: bool) -> str:
    """Inline SVG: one line per model, a dot at the mean main score, ± std error bars, faint dots per seed."""
    if not rows:
        return ""
    values = [v for r in rows for v in (r["mean"] - r["std"], r["mean"] + r["std"], *r["scores"]) if math.isfinite(v)]
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    pad = (hi - lo) * 0.08
    lo, hi = lo - pad, hi + pad
    left, width, row_h, top = 230, 440, 26, 30
    height = top + row_h * len(rows) + 40

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * width

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{left + width + 30}" height="{height}" '
             f'role="img" aria-label="{_e(main)} per model, mean ± std over seeds">',
             f'<text x="{left}" y="18" font-size="13">{_e(main)} ({"higher" if higher else "lower"} is better), '
             f'mean ± std over seeds</text>']
    for i in range(6):  # axis ticks
        v = lo + (hi - lo) * i / 5
        parts.append(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{top - 4}" y2="{height - 34}" stroke="#e4e4e4"/>'
                     f'<text x="{x(v):.1f}" y="{height - 18}" font-size="11" text-anchor="middle">{v:.3g}</text>')
    for i, r in enumerate(rows):
        y = top + row_h * i + row_h / 2
        a, b = x(r["mean"] - r["std"]), x(r["mean"] + r["std"])
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" font-size="12" text-anchor="end">{_e(r["label"])}</text>')
        parts.append(f'<line x1="{a:.1f}" x2="{b:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="#333" stroke-width="1.5"/>'
                     f'<line x1="{a:.1f}" x2="{a:.1f}" y1="{y - 6:.1f}" y2="{y + 6:.1f}" stroke="#333"/>'
                     f'<line x1="{b:.1f}" x2="{b:.1f}" y1="{y - 6:.1f}" y2="{y + 6:.1f}" stroke="#333"/>')
        for s in r["scores"]:
            parts.append(f'<circle cx="{x(s):.1f}" cy="{y:.1f}" r="2.5" fill="#8aa" fill-opacity="0.7"/>')
        parts.append(f'<circle cx="{x(r["mean"]):.1f}" cy="{y:.1f}" r="4.5" fill="#1f5fbf">'
                     f'<title>{_e(r["label"])}: {_e(_mean_std(r["mean"], r["std"]))}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def _provenance(pid: str, label: str, rs: list[tuple[Path, dict]]) -> str:
    items = []
    for p, r in sorted(rs, key=lambda x: x[1]["seed"]):
        env = r.get("environment", {})
        info = {
            "file": p.name, "seed": r["seed"], "created": r.get("created"), "record_digest": r.get("record_digest"),
            "split": r.get("split", "test"), "split_sha256": r.get("split_sha256"),
            "git_commit": env.get("git_commit"),
            "datasets": r.get("datasets", []), "model": r.get("model", {}), "environment": env,
        }
        items.append(
            f"<h4>seed {_e(r['seed'])} <span class=\"note\">{_e(p.name)}</span></h4><ul>"
            f"<li>git commit: <code class=\"git-commit\">{_e(env.get('git_commit'))}</code></li>"
            f"<li>record_digest: <code class=\"record-digest\">{_e(r.get('record_digest'))}</code></li>"
            f"<li>split_sha256 ({_e(r.get('split', 'test'))}): <code class=\"split-sha256\">{_e(r.get('split_sha256'))}</code></li>"
            + "".join(f"<li>dataset {_e(d['name'])} {_e(d['version'])}: content_sha256 "
                      f"<code class=\"dataset-sha256\">{_e(d['content_sha256'])}</code>"
                      + (f" ({len(d['parts'])} parts)" if d.get("parts") else "") + "</li>"
                      for d in r.get("datasets", []))
            + f"<li>environment: python {_e(env.get('python'))}, {_e(env.get('platform'))}, {_e(env.get('device'))}, "
            f"{_e(env.get('threads'))} thread(s), harness {_e(env.get('harness_version'))}</li></ul>"
            f"<details><summary>full provenance (JSON)</summary><pre>{_e(json.dumps(info, indent=2, sort_keys=True))}</pre>"
            f"</details>")
    return (f"<section class=\"provenance\" id=\"{_e(pid)}\" hidden><h3>Provenance: {_e(label)}</h3>"
            + "".join(items) + "</section>")


def _published_table(rows: tuple[dict, ...], main: str) -> str:
    if not rows:
        return ""
    skip = {"method", "source", "citation"}
    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in skip]
    keys = sorted(keys, key=lambda k: k != main)
    head = "".join(f"<th>{_e(k)}</th>" for k in ["method", *keys, "source"])
    body = "".join(
        "<tr class=\"published\">" + f"<td>{_e(r.get('method', ''))} <span class=\"note\">({PUBLISHED})</span></td>"
        + "".join(f"<td class=\"num\">{'' if r.get(k) is None else _e(r.get(k))}</td>" for k in keys)
        + f"<td>{_e(r.get('source', ''))}</td></tr>" for r in rows)
    return (f"<h3>Published reference results ({PUBLISHED})</h3><p class=\"note\">Numbers from the literature, "
            "copied from the task card; not produced by this harness, and not necessarily on the same split, data "
            "version or scale (see the task card's references).</p>"
            f"<table class=\"published-rows\"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _group_section(task: str, gi: int, rs: list[tuple[Path, dict]], official: set[Path]) -> tuple[str, dict]:
    tab = _table.build(rs, task=task, official=[p for p, _ in rs if p in official])
    main = tab.attrs["main_metric"]
    higher = rs[0][1]["task"].get("higher_is_better", True)
    metrics = _headline(tab)
    by_key: dict[tuple[str, str], list] = {}
    for p, r in rs:
        by_key.setdefault((r["model"]["name"], _source(p, official)), []).append((p, r))
    mixed = "source" in tab.columns
    only_source = _source(rs[0][0], official)
    cols = [("rank", "number"), ("model", "text"), *([("source", "text")] if mixed else []),
            *[(f"{m} (main)" if m == main else m, "number") for m in metrics],
            ("seeds", "number"), ("parameters", "number"), ("origin", "text"), ("date", "text"), ("gap vs next", "text")]
    head = "".join(f"<th class=\"sortable\" data-type=\"{t}\">{_e(c)}</th>" for c, t in cols)
    body, provs, plot_rows = [], [], []
    for _, row in tab.iterrows():
        source = row["source"] if mixed else only_source
        group = by_key[(row["model"], source)]
        pid = f"prov-{gi}-{_slug(row['model'])}-{source}"
        origin = ", ".join(sorted({r["model"].get("origin", {}).get("kind", "unknown") for _, r in group}))
        dates = sorted(str(r.get("created", "")) for _, r in group)
        date = dates[-1][:10] if dates and dates[-1] else ""
        gap = _table.gap_text(row.get("gap_vs_next", ""), row.get("gap_p_value"))
        cells = [(row["rank"], str(row["rank"]), True), (row["model"], row["model"], False)]
        if mixed:
            cells.append((source, source, False))
        cells += [(row[f"{m}_mean"], _mean_std(row[f"{m}_mean"], row[f"{m}_std"]), True) for m in metrics]
        cells += [(row["n_seeds"], f"{row['n_seeds']} ({row['seeds']})", True),
                  (int(row["n_parameters"]), f"{int(row['n_parameters']):,}", True),
                  (origin, origin, False), (dates[-1] if dates else "", date, False), (gap, gap, False)]
        body.append(f"<tr class=\"entry\" data-provenance=\"{_e(pid)}\" data-model=\"{_e(row['model'])}\" "
                    f"title=\"click for provenance\">"
                    + "".join(f"<td{NUM if num else ''} data-sort=\"{_e(key)}\">{_e(text)}</td>"
                              for key, text, num in cells) + "</tr>")
        label = row["model"] + (f" ({source})" if mixed else "")
        provs.append(_provenance(pid, label, group))
        plot_rows.append({"label": label, "mean": float(row[f"{main}_mean"]), "std": float(row[f"{main}_std"]),
                          "scores": [float(r["metrics"]["main_score"]) for _, r in group]})
    a = tab.attrs
    opts = "".join(f", {k}={v}" for k, v in a.get("options", {}).items())
    caption = (f"{task} v{a['task_version']}{opts} on {', '.join(a['datasets'])}; "
               f"{rs[0][1].get('split', 'test')} split (sha256 {rs[0][1]['split_sha256'][:12]}), mean ± std over seeds")
    best = tab.iloc[0]
    summary = {"caption": caption, "main": main, "datasets": a["datasets"], "options": a.get("options", {}),
               "best": f"{best['model']}: {_mean_std(best[f'{main}_mean'], best[f'{main}_std'])}",
               "entries": len(tab), "records": len(rs)}
    html_ = (f"<section class=\"board\" id=\"set-{gi}\"><h2>{_e(caption)}</h2>"
             f"<p class=\"note\">Click a column header to sort, a row to show the provenance of its records.</p>"
             f"<table class=\"sortable leaderboard\"><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
             f"<p class=\"note\">{_e(a.get('gap_test', ''))}.</p>"
             f"<figure>{_plot(plot_rows, main, higher)}<figcaption class=\"note\">{_e(main)} per model: dot = mean, "
             f"bar = ± one std over seeds, small dots = individual seeds.</figcaption></figure>"
             + "".join(provs) + "</section>")
    return html_, summary


def _task_page(task: str, groups: list[list[tuple[Path, dict]]], official: set[Path]) -> tuple[str, list[dict]]:
    from neuroharness.tasks import get_card

    card = get_card(task)
    sections, summaries = [], []
    for gi, rs in enumerate(groups):
        s, summary = _group_section(task, gi, rs, official)
        sections.append(s)
        summaries.append(summary)
    body = (f"<p><a href=\"index.html\">&larr; all tasks</a></p><h1>{_e(task)} <span class=\"note\">v{_e(card.version)}"
            f"</span></h1><p>{_e(card.title)}</p>" + "".join(sections)
            + _published_table(_reference_rows(task), card.main_metric))
    return _page(f"{task} leaderboard", body, script=True), summaries


def _index(entries: list[tuple[str, str, list[dict]]]) -> str:
    rows = []
    for task, page, summaries in entries:
        for s in summaries:
            rows.append(f"<tr class=\"task\"><td><a href=\"{_e(page)}\">{_e(task)}</a></td>"
                        f"<td>{_e(', '.join(s['datasets']))}</td>"
                        f"<td>{_e(', '.join(f'{k}={v}' for k, v in s['options'].items()))}</td>"
                        f"<td>{_e(s['main'])}</td><td>{_e(s['best'])}</td><td class=\"num\">{s['entries']}</td></tr>")
    body = ("<h1>neuroharness leaderboards</h1><p class=\"note\">One row per task (and per comparable set of "
            "records); the best entry is by the main metric, mean ± std over seeds.</p>"
            "<table class=\"index\"><thead><tr><th>task</th><th>datasets</th><th>options</th><th>main metric</th>"
            f"<th>best entry</th><th>entries</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")
    return _page("neuroharness leaderboards", body)


def write_site(out, records: list[tuple[Path, dict]], official=()) -> Path:
    """Write the site of ``records`` (``(path, record)`` pairs) into folder ``out``; returns ``out``.

    ``official`` are the paths among them of official records. An existing
    ``out`` is replaced only if it is empty or a site written here before.
    """
    out = Path(out)
    if not records:
        raise UsageError("no records to put on the site")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--html {out}: is a file; expected a folder for the site")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise UsageError(f"--html {out}: folder exists and is not a site written by neuroharness; "
                         "give a new or empty folder")
    official = {Path(p) for p in official}
    pages = {}
    entries = []
    for task, groups in _groups(records).items():
        page, summaries = _task_page(task, groups, official)
        name = f"{_slug(task)}.html"
        pages[name] = page
        entries.append((task, name, summaries))
    pages["index.html"] = _index(entries)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for name, text in pages.items():
            (tmp / name).write_text(text, encoding="utf-8")
        (tmp / MARKER).write_text("written by `neuroharness leaderboard --html`; the next run replaces this folder\n")
        os.chmod(tmp, 0o755)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.rename(out, old / "site")
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
