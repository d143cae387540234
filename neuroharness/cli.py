"""The ``neuroharness`` command line: datasets, tasks, run, evaluate, leaderboard."""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from neuroharness.errors import NeuroharnessError
from neuroharness.progress import set_quiet


def _datasets(args) -> int:
    from neuroharness.loaders import get_loader, list_datasets

    if args.action == "list":
        for name in list_datasets():
            loader = get_loader(name)
            state = "prepared" if loader.store_path().exists() else "not prepared"
            print(f"{name:<24} v{loader.version:<5} {state:<13} {loader.title}")
        return 0
    if args.action == "prepare":
        for opt, value in (("--source", args.source), ("--only", args.only)):
            if value and len(args.names) > 1:
                raise NeuroharnessError(f"{opt} applies to one dataset; got {len(args.names)}: {', '.join(args.names)}")
        for name in args.names:
            print(get_loader(name).prepare(args.source, force=args.force, only=args.only))
        return 0
    # info
    for name in args.names:
        loader = get_loader(name)
        card = loader.card()
        for key in ("name", "version", "title", "description", "license", "citation", "homepage"):
            print(f"{key + ':':<12} " + textwrap.fill(str(card[key]), 100, subsequent_indent=" " * 13))
        path = loader.store_path()
        print(f"{'store:':<12} {path}{'' if path.exists() else ' (not prepared: run neuroharness datasets prepare ' + name + ')'}")
        if path.exists():
            ds = loader.open()
            print(f"{'source:':<12} {ds.attrs.get('source')}")
            print(f"{'sha256:':<12} {ds.attrs.get('content_sha256')}")
            print(f"{'dims:':<12} " + ", ".join(f"{k}={v}" for k, v in ds.sizes.items()))
            for line in loader.summary(ds):
                print("  " + line)
    return 0


def _options(args) -> dict[str, str]:
    """``--option KEY=VALUE`` arguments as a dict."""
    out = {}
    for item in getattr(args, "option", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise NeuroharnessError(f"--option {item!r}: expected KEY=VALUE, e.g. --option graph=BALBc_no1")
        out[key] = value
    return out


def _tasks(args) -> int:
    from neuroharness.tasks import get_task, list_tasks

    if args.action == "list":
        names = list_tasks()
        width = max(map(len, names), default=0)
        for name in names:
            t = get_task(name)
            print(f"{name:<{width}}  v{t.card.version:<5} {t.card.title}")
        return 0
    task = get_task(args.name)
    if args.action == "template":
        from neuroharness.tasks.submission import write_table

        path = write_table(task.submission_template(args.split, **task.resolve_options(_options(args))), args.out)
        print(path)
        return 0
    card = task.card.to_dict()
    if args.json:
        card["models"] = {k: m.description for k, m in task.models.items()}
        print(json.dumps(card, indent=2))
        return 0
    for key in ("name", "version", "title", "description", "split", "inputs", "targets", "main_metric", "seeds", "chance", "submission"):
        print(f"{key + ':':<13} " + textwrap.fill(str(card[key]), 100, subsequent_indent=" " * 14))
    print("datasets:     " + ", ".join(f"{d['name']} {d['version']}" for d in card["datasets"]))
    print("metrics:")
    for m in task.card.metrics:
        print(f"  {m.name:<20} {'higher' if m.higher_is_better else 'lower'} is better; {m.description}")
    if task.card.options:
        print("options:")
        for key, opt in task.card.options.items():
            choices = f"; one of {', '.join(opt.choices)}" if opt.choices else ""
            print(f"  {key:<20} default {opt.default!r}{choices}; {opt.description}")
    print("models:")
    for name, m in task.models.items():
        print(f"  {name:<20} {m.description}")
    for ref in task.card.references:
        print(f"reference:    {ref}")
    return 0


def _run(args) -> int:
    from neuroharness.leaderboards.runner import run
    from neuroharness.tasks import get_task

    task = get_task(args.task)
    models = list(task.models) if args.model == ["all"] else args.model
    for m in models:
        task.get_model(m)
    for m in models:
        for p in run(args.task, m, args.seeds, args.out, options=_options(args)):
            print(p)
    return 0


def _format_value(v) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    return str(v) if isinstance(v, int) else f"{v:.4f}"


def _metrics_table(metrics: dict) -> str:
    """Grouped metrics (``group/name`` keys) as a table: one row for the ungrouped values, one per group."""
    groups: dict[str, dict] = {}
    for k, v in metrics.items():
        if "/" in k:
            g, name = k.rsplit("/", 1)
            groups.setdefault(g, {})[name] = v
    columns = list(dict.fromkeys(n for g in groups.values() for n in g))
    top = {k: v for k, v in metrics.items() if "/" not in k}
    lines = [f"{k}: {_format_value(v)}" for k, v in top.items() if k not in columns]
    rows = [("all", {k: v for k, v in top.items() if k in columns})] + list(groups.items())
    cells = [[name] + [_format_value(r[c]) if c in r else "" for c in columns] for name, r in rows]
    widths = [max(len(x) for x in col) for col in zip(["", *columns], *cells)]
    for i, line in enumerate([["", *columns], *cells]):
        lines.append("  ".join(x.ljust(w) if j == 0 else x.rjust(w) for j, (x, w) in enumerate(zip(line, widths))).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _evaluate(args) -> int:
    from neuroharness.tasks import get_task

    task = get_task(args.task)
    metrics = task.evaluate(args.predictions, split=args.split, **task.resolve_options(_options(args)))
    text = json.dumps(metrics, indent=2)
    # grouped results (per subset, per sample) read better as a table; --json keeps the raw output
    print(text if args.json or not any("/" in k for k in metrics) else _metrics_table(metrics))
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


def _leaderboard(args) -> int:
    from neuroharness.leaderboards import official_dir, table
    from neuroharness.leaderboards.records import read_records
    from neuroharness.tasks import get_task

    get_task(args.task)
    results = args.results or official_dir(args.task)
    print(table.render(table.build(read_records(results), task=args.task, options=_options(args)), args.format), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from neuroharness import __version__

    p = argparse.ArgumentParser(prog="neuroharness", description=__doc__)
    p.add_argument("--version", action="version", version=f"neuroharness {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or status lines")
    sub = p.add_subparsers(dest="command", required=True)
    # -q is accepted after the verb too; SUPPRESS keeps a top-level -q from being reset
    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars or status lines")
    option = argparse.ArgumentParser(add_help=False)
    option.add_argument("--option", action="append", metavar="KEY=VALUE",
                        help="set a task option (see `tasks info TASK`); repeatable")

    d = sub.add_parser("datasets", parents=[quiet], help="list, describe and prepare datasets")
    dsub = d.add_subparsers(dest="action", required=True)
    dsub.add_parser("list", parents=[quiet], help="registered datasets and whether they are prepared")
    di = dsub.add_parser("info", parents=[quiet], help="dataset card and, if prepared, a summary")
    di.add_argument("names", nargs="+", metavar="NAME")
    dp = dsub.add_parser("prepare", parents=[quiet], help="fetch, verify and homogenize into the cache")
    dp.add_argument("names", nargs="+", metavar="NAME")
    dp.add_argument("--source", help="local copy (file or folder) or URL to use instead of the default source")
    dp.add_argument("--only", nargs="+", metavar="PART",
                    help="prepare only these parts of a dataset made of parts (vesselgraph: graph names, e.g. BALBc_no1)")
    dp.add_argument("--force", action="store_true", help="rebuild even if the store exists")
    d.set_defaults(func=_datasets)

    t = sub.add_parser("tasks", parents=[quiet], help="list and describe tasks")
    tsub = t.add_subparsers(dest="action", required=True)
    tsub.add_parser("list", parents=[quiet])
    ti = tsub.add_parser("info", parents=[quiet], help="the task card")
    ti.add_argument("name", metavar="TASK")
    ti.add_argument("--json", action="store_true", help="machine-readable card")
    tt = tsub.add_parser("template", parents=[quiet, option], help="write the id columns a submission must cover")
    tt.add_argument("name", metavar="TASK")
    tt.add_argument("out", metavar="OUT", help="output file: .parquet or .npz")
    tt.add_argument("--split", default="test", choices=["test", "val"])
    t.set_defaults(func=_tasks)

    r = sub.add_parser("run", parents=[quiet, option], help="run registered models over seeds, one JSON record per run")
    r.add_argument("task", metavar="TASK")
    r.add_argument("--model", nargs="+", required=True, metavar="MODEL", help="model name(s), or 'all'")
    r.add_argument("--seeds", nargs="+", type=int, help="default: the task card's seeds")
    r.add_argument("--out", default="results", help="folder for the records (default: results)")
    r.set_defaults(func=_run)

    e = sub.add_parser("evaluate", parents=[quiet, option], help="score a predictions file (npz, parquet or zarr)")
    e.add_argument("task", metavar="TASK")
    e.add_argument("predictions", metavar="PREDICTIONS")
    e.add_argument("--split", default="test", choices=["test", "val"])
    e.add_argument("--out", help="also write the metrics to this JSON file")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON (default: a table when they are grouped)")
    e.set_defaults(func=_evaluate)

    lb = sub.add_parser("leaderboard", parents=[quiet, option], help="aggregate records into mean ± std over seeds")
    lb.add_argument("task", metavar="TASK")
    lb.add_argument("--results", help="folder of records (default: the official baseline records)")
    lb.add_argument("--format", default="md", choices=["md", "csv", "json"])
    lb.set_defaults(func=_leaderboard)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_quiet(args.quiet)
    try:
        return args.func(args)
    except NeuroharnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
