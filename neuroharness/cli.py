"""The ``neuroharness`` command line: datasets, tasks, run, evaluate, leaderboard.

One handler function per subcommand (``cmd_<group>_<action>``). Each handler
checks its arguments first and raises :class:`~neuroharness.errors.UsageError`
for a bad command-line value before any data is read or written; problems found
in data raise the other :class:`~neuroharness.errors.NeuroharnessError` types.
:func:`main` prints them as ``usage error: ...`` or ``error: ...`` (exit 2).

Listing and describing (``tasks list``, ``tasks info``, ``datasets list``,
``--help``) read only the light cards: they import neither numpy, xarray,
torch nor numba. Every other import happens inside the handler that needs it.
"""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from neuroharness.errors import NeuroharnessError, UnknownNameError, UsageError
from neuroharness.progress import set_quiet

# argparse texts are literals, not __doc__, so that `python -OO -m neuroharness.cli` works
DESCRIPTION = "The neuroharness command line: datasets, tasks, run, evaluate, leaderboard."


# -- argument helpers ---------------------------------------------------------------
def _task_card(name: str):
    """The card of task ``name``; an unknown name is a usage error that lists the valid ones."""
    from neuroharness.tasks import get_card

    try:
        return get_card(name)
    except UnknownNameError as e:
        raise UsageError(str(e)) from None


def _dataset_card(name: str):
    from neuroharness.loaders import get_card

    try:
        return get_card(name)
    except UnknownNameError as e:
        raise UsageError(str(e)) from None


def _key_values(items, flag: str, example: str) -> dict[str, str]:
    """``KEY=VALUE`` strings as a dict; malformed or repeated keys are usage errors."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"{flag} {item!r}: expected KEY=VALUE, e.g. {flag} {example}")
        if key in out:
            raise UsageError(f"{flag} {key}: given twice ({out[key]!r} and {value!r}); give each key once")
        out[key] = value
    return out


def _task_options(card, args) -> dict[str, str]:
    """``--option KEY=VALUE`` arguments, checked against the card's options (no task import)."""
    return card.check_options(_key_values(getattr(args, "option", None), "--option", "graph=BALBc_no1"))


def _json_or_str(value: str):
    """A JSON literal (``3``, ``1e-3``, ``true``, ``null``, ``[1, 2]``, ``"x"``) when it parses, else the string."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def _hyperparameters(args) -> dict:
    raw = _key_values(getattr(args, "hyperparameter", None), "--hyperparameter", "epochs=50")
    return {k: _json_or_str(v) for k, v in raw.items()}


def _check_hyperparameters(card, models: list[str], hyperparameters: dict) -> None:
    """Every override must be a parameter of every chosen model's factory (imports the model modules;
    a plugin factory that cannot be imported is an error naming the model)."""
    import inspect

    from neuroharness.tasks.plugins import resolve, resolve_factory

    if not hyperparameters:
        return
    for name in models:
        factory = resolve_factory(resolve(card, name), card.name)
        try:
            params = inspect.signature(factory).parameters
        except (TypeError, ValueError):  # builtins without a signature: let the factory decide
            continue
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            continue
        accepted = [k for k, p in params.items()
                    if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
        for key in hyperparameters:
            if key not in accepted:
                raise UsageError(f"--hyperparameter {key}: model {name} of task {card.name} has no hyperparameter "
                                 f"{key!r}; valid hyperparameters: {', '.join(accepted) or 'none'}")


def _models(card, given: list[str]) -> list[str]:
    """Model names: the card's, installed plugins' (entry points) or import strings ``package.module:Factory``;
    'all' is every card and plugin model. Reads package metadata only (imports no model)."""
    from neuroharness.tasks.plugins import models_for, resolve

    if "all" in given:
        if len(given) > 1:
            raise UsageError(f"--model all runs every model; got it together with {', '.join(m for m in given if m != 'all')}")
        return list(models_for(card))
    for m in given:
        try:
            resolve(card, m)
        except UnknownNameError as e:
            raise UsageError(str(e)) from None
    return list(dict.fromkeys(given))


def _seeds(card, given: list[int] | None) -> list[int]:
    if given is None:
        return list(card.seeds)
    bad = [s for s in given if s < 0]
    if bad:
        raise UsageError(f"--seeds {' '.join(map(str, given))}: seed {bad[0]} is negative; expected integers >= 0")
    repeated = sorted({s for s in given if given.count(s) > 1})
    if repeated:
        raise UsageError(f"--seeds {' '.join(map(str, given))}: seed {repeated[0]} is given twice; "
                         "each seed writes one record")
    return list(given)


def _check_parents(p: Path, flag: str, folder: bool = False) -> None:
    """Refuse an output path below an existing file, or whose nearest existing folder cannot be written,
    before any work is done (missing folders are created when the output is written). ``folder``: ``p``
    itself is an output folder."""
    import os

    for parent in ([p.absolute()] if folder else []) + list(p.absolute().parents):
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{flag} {p}: {parent} is a file, not a folder; choose another path")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UsageError(f"{flag} {p}: the folder {parent} cannot be written; choose another path")
            return


def _output_file(path: str, flag: str, suffixes: tuple[str, ...] | None = None) -> Path:
    """An output file path: not an existing folder, with one of ``suffixes``, in a folder that can be made."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{flag} {p}: is a folder; expected a file name")
    if suffixes and p.suffix not in suffixes:
        raise UsageError(f"{flag} {p}: unsupported format {p.suffix or '(no suffix)'!r}; use {' or '.join(suffixes)}")
    _check_parents(p, flag)
    return p


def _output_dir(path: str, flag: str, what: str) -> Path:
    """An output folder: not an existing file, below folders that can be made and written."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{flag} {p}: is a file; expected a folder for {what} (it is created if missing)")
    _check_parents(p, flag, folder=True)
    return p


def _existing(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{p}: no such file or folder ({what})")
    return p


def _fill(key: str, value, width: int) -> str:
    return f"{key + ':':<{width}} " + textwrap.fill(str(value), 100, subsequent_indent=" " * (width + 1))


# -- datasets ---------------------------------------------------------------------------
def cmd_datasets_list(args) -> int:
    """Registered datasets, from their cards and the cache layout (no numpy/xarray import)."""
    from neuroharness.loaders import get_card, list_datasets
    from neuroharness.loaders.cache import store_location

    for name in list_datasets():
        card = get_card(name)
        state = "prepared" if store_location(name, card.version).exists() else "not prepared"
        print(f"{name:<24} v{card.version:<5} {state:<13} {card.title}")
    return 0


def cmd_datasets_info(args) -> int:
    cards = [_dataset_card(name) for name in args.names]
    from neuroharness.loaders import get_loader

    for card in cards:
        info = card.to_dict()
        for key in ("name", "version", "title", "description", "license", "citation", "homepage", "offline"):
            print(_fill(key, info[key], 12))
        print(_fill("sharing", info["redistribution"], 12))  # the card's redistribution field
        loader = get_loader(card.name)
        location = loader.store_location()
        exists = location.exists()
        hint = "" if exists else f" (not prepared: run neuroharness datasets prepare {card.name})"
        print(f"{'store:':<12} {location}{hint}")
        if exists:
            ds = loader.open()
            print(f"{'source:':<12} {ds.attrs.get('source')}")
            print(f"{'sha256:':<12} {ds.attrs.get('content_sha256')}")
            print(f"{'dims:':<12} " + ", ".join(f"{k}={v}" for k, v in ds.sizes.items()))
            for line in loader.summary(ds):
                print("  " + line)
    return 0


def cmd_datasets_prepare(args) -> int:
    cards = [_dataset_card(name) for name in args.names]
    if getattr(args, "from_hub", None) is not None:
        return _datasets_prepare_from_hub(cards, args)
    for flag, value in (("--source", args.source), ("--only", args.only), ("--layout", args.layout)):
        if value and len(cards) > 1:
            raise UsageError(f"{flag} applies to one dataset; got {len(cards)}: {', '.join(args.names)}")
    if args.only is not None and not cards[0].parts:
        raise UsageError(f"dataset {cards[0].name} cannot be prepared in parts; only={sorted(set(args.only))} (--only) "
                         "applies to datasets made of selectable parts, e.g. the graphs of vesselgraph")
    from neuroharness.loaders import get_loader

    for card in cards:
        print(get_loader(card.name).prepare(args.source, force=args.force, only=args.only, strict=args.strict,
                                            layout=args.layout, dask_scheduler=args.dask_scheduler))
    return 0


# -- tasks ------------------------------------------------------------------------------
def cmd_tasks_list(args) -> int:
    """Registered tasks, from their cards (no task module import)."""
    from neuroharness.tasks import get_card, list_tasks

    names = list_tasks()
    width = max(map(len, names), default=0)
    for name in names:
        card = get_card(name)
        print(f"{name:<{width}}  v{card.version:<5} {card.title}")
    return 0


def cmd_tasks_info(args) -> int:
    """The card of one task (no task module import)."""
    card = _task_card(args.name)
    info = card.to_dict()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key in ("name", "version", "title", "description", "split", "inputs", "targets", "main_metric", "seeds",
                "chance", "submission"):
        print(_fill(key, info[key], 13))
    print("datasets:     " + ", ".join(f"{d.name} {d.version}" for d in card.datasets))
    print("metrics:")
    for m in card.metrics:
        print(f"  {m.name:<20} {'higher' if m.higher_is_better else 'lower'} is better; {m.description}")
    if card.options:
        print("options:")
        for key, opt in card.options.items():
            choices = f"; one of {', '.join(opt.choices)}" if opt.choices else ""
            print(f"  {key:<20} default {opt.default!r}{choices}; {opt.description}")
    print("models:")
    for m in card.models:
        print(f"  {m.name:<20} {m.description}")
    for ref in card.references:
        print(f"reference:    {ref}")
    return 0


def cmd_tasks_template(args) -> int:
    card = _task_card(args.name)
    options = _task_options(card, args)
    out = _output_file(args.out, "OUT", (".parquet", ".npz"))
    from neuroharness.tasks import get_task
    from neuroharness.tasks.submission import write_table

    task = get_task(card.name)
    if args.split == "test":  # ids only: test targets are never written
        template = task.submission_template("test", options=options)
    else:  # ids and targets (a task whose targets are not a table refuses, pointing to training_view())
        template = task.labelled_table(args.split, options=options)
    print(write_table(template, out))
    return 0


# -- models -----------------------------------------------------------------------------
def cmd_models_list(args) -> int:
    """Models of every task (or of TASK): the cards' and the installed plugins' (entry-point metadata only:
    no plugin module is imported, so plugins show no description)."""
    from neuroharness.tasks import get_card, list_tasks
    from neuroharness.tasks.plugins import models_for, origin_of, problems

    cards = [_task_card(args.task)] if args.task else [get_card(n) for n in list_tasks()]
    rows = []
    for card in cards:
        for spec in models_for(card).values():
            o = origin_of(spec)
            rows.append({"task": card.name, "model": spec.name, "origin": o["kind"], "package": o["package"],
                         "version": o["version"], "factory": spec.factory if isinstance(spec.factory, str) else None,
                         "description": spec.description or None})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        head = ("task", "model", "origin", "package", "version", "description")
        cells = [[str(r[k] if r[k] is not None else "-") for k in head] for r in rows]
        for c in cells:  # the whole description is in `tasks info TASK` and --json
            c[-1] = c[-1] if len(c[-1]) <= 72 else c[-1][:71].rstrip() + "…"
        widths = [max(len(x) for x in col) for col in zip(head, *cells)] if cells else [len(h) for h in head]
        for line in [list(head), *cells]:
            print("  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip())
    for problem in problems():
        print(f"warning: {problem}", file=sys.stderr)
    return 0


# -- run, evaluate, leaderboard -------------------------------------------------------------
def cmd_run(args) -> int:
    card = _task_card(args.task)
    options = _task_options(card, args)
    models = _models(card, args.model)
    seeds = _seeds(card, args.seeds)
    out = _output_dir(args.out, "--out", "the records")
    hyperparameters = _hyperparameters(args)
    _check_hyperparameters(card, models, hyperparameters)
    from neuroharness.tasks.plugins import build, resolve

    for m in models:  # every factory imports and builds before any record is written
        build(resolve(card, m), card.name, hyperparameters)
    from neuroharness.cluster import scheduler_address
    from neuroharness.leaderboards.runner import run_models

    for p in run_models(card.name, models, seeds, out, options=options, hyperparameters=hyperparameters or None,
                        force=args.force, scheduler=scheduler_address(args.dask_scheduler)):
        print(p)
    return 0


def cmd_reproduce(args) -> int:
    """Rerun official records; exit 1 when a metric differs beyond the card's tolerance."""
    card = _task_card(args.task)
    if args.model:
        _models(card, args.model)
    records = _existing(args.records, "--records: a folder of records") if args.records else None
    from neuroharness.leaderboards.reproduce import reproduce

    report = reproduce(card.name, models=args.model, records_dir=records)
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


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


_SUBMISSION_NAME = "letters, digits, '.', '_', '+' or '-', starting with a letter or digit (at most 100)"


def _submission_args(card, args) -> Path | None:
    """The record folder of ``evaluate --out DIR --model-name NAME`` (None: no record), after checking the
    record options; no task module is imported."""
    import re

    record_only = [f for f, v in (("--description", args.description), ("--n-parameters", args.n_parameters),
                                  ("--seed", args.seed)) if v is not None]
    if args.out is None:
        if args.model_name is not None:
            raise UsageError(f"--model-name {args.model_name}: names the record written to --out DIR; give --out DIR")
        if record_only:
            raise UsageError(f"{record_only[0]} describes the record written by --out DIR --model-name NAME; "
                             "give both (or leave it out)")
        return None
    out = Path(args.out)
    if args.model_name is None:
        raise UsageError(f"--out {out}: writes a leaderboard record, which needs --model-name NAME; to save the "
                         "metrics alone use --json-out FILE")
    if args.split != "test":
        raise UsageError(f"--out {out}: records are made on the test split only; --split {args.split} scores "
                         "without writing a record (--json-out FILE saves the metrics)")
    _output_dir(args.out, "--out", "the record")
    name = args.model_name
    if len(name) > 100 or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", name):
        raise UsageError(f"--model-name {name!r}: expected {_SUBMISSION_NAME}")
    from neuroharness.tasks.plugins import models_for, origin_of

    known = models_for(card)
    if name in known:
        o = origin_of(known[name])
        raise UsageError(f"--model-name {name}: is already a model of task {card.name} ({o['kind']}"
                         f"{' package ' + o['package'] if o.get('package') else ''}); name your submission otherwise")
    if args.n_parameters is not None and args.n_parameters < 0:
        raise UsageError(f"--n-parameters {args.n_parameters}: expected an integer >= 0")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed {args.seed}: expected an integer >= 0 (the seed your model was trained with)")
    return out


def cmd_evaluate(args) -> int:
    card = _task_card(args.task)
    options = _task_options(card, args)
    predictions = _existing(args.predictions, "the predictions to score")
    json_out = _output_file(args.json_out, "--json-out") if args.json_out else None
    record_dir = _submission_args(card, args)
    from neuroharness import cluster
    from neuroharness.tasks import get_task

    task = get_task(card.name)
    if args.dask_scheduler and not task.scores_on_cluster:
        raise UsageError(f"task {card.name} scores in this process (its metrics take seconds); --dask-scheduler "
                         "applies to evaluate of fisbe-instance-segmentation, and to `run` of every task")

    with cluster.using(cluster.scheduler_address(args.dask_scheduler)):
        if record_dir is None:
            metrics = task.evaluate(predictions, split=args.split, options=options)
        else:
            from neuroharness.leaderboards.runner import submission_record

            record = submission_record(card.name, predictions, args.model_name, seed=args.seed or 0, options=options,
                                       description=args.description or "", n_parameters=args.n_parameters or 0)
            metrics = record["metrics"]
    text = json.dumps(metrics, indent=2)
    # grouped results (per subset, per sample) read better as a table; --json keeps the raw output
    print(text if args.json or not any("/" in k for k in metrics) else _metrics_table(metrics))
    if record_dir is not None:  # scored and checked: now write (write_record validates before writing)
        from neuroharness.leaderboards.records import write_record

        print(f"record: {write_record(record, record_dir)}", file=sys.stderr)
    if json_out is not None:
        from neuroharness.loaders.io import write_text_atomic

        json_out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(json_out, text + "\n")
    return 0


def cmd_leaderboard(args) -> int:
    if args.task == "publish":
        return cmd_leaderboard_publish(args)
    _check_not_publish(args)
    if args.all and args.task:
        raise UsageError("give a TASK or --all, not both")
    if not args.all and not args.task:
        raise UsageError("give a TASK (see `tasks list`), or --all --html DIR for the site of every task")
    if args.all and not args.html:
        raise UsageError("--all builds the site of every task: give --html DIR")
    if args.all and args.option:
        raise UsageError("--option selects records of one TASK; it does not apply with --all")
    card = _task_card(args.task) if args.task else None
    options = _task_options(card, args) if card else {}
    if args.only_results and not args.results:
        raise UsageError("--only-results shows the records of --results DIR alone; give --results DIR")
    results = _results_folder(args.results, card) if args.results else None
    if args.html:
        _output_dir(args.html, "--html", "the site")
    from neuroharness.errors import DataFormatError
    from neuroharness.leaderboards import official_dir, table
    from neuroharness.leaderboards.records import read_records

    if card is None:
        from neuroharness.tasks import list_tasks

        names = list_tasks()
    else:
        names = [card.name]
    official = []
    if not args.only_results:
        for name in names:
            folder = official_dir(name)
            official += sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not official and results is None:
        if card is None:
            raise DataFormatError("no official records yet; give your own with --results DIR")
        raise DataFormatError(
            f"task {card.name} has no official records yet; rank your own: `neuroharness run {card.name} --model M "
            f"--out DIR`, then `neuroharness leaderboard {card.name} "
            f"--results DIR`")
    records = (read_records(official) if official else []) + (read_records(results) if results else [])
    if args.html:
        from neuroharness.leaderboards.site import write_site

        if card is not None:
            # the table's task/option filter, so that the site shows what the printed table would
            records = [(p, r) for p, r in records if r["task"]["name"] == card.name
                       and all(str(r["task"].get("options", {}).get(k)) == str(v) for k, v in options.items())]
            if not records:
                table.build(records, task=card.name, options=options)  # raises "no result records ..."
        out = write_site(args.html, records, official=official)
        print(out / "index.html")
        return 0
    print(table.render(table.build(records, task=card.name, options=options, official=official), args.format), end="")
    return 0


# -- the Hugging Face Hub ------------------------------------------------------------------
def cmd_datasets_publish(args) -> int:
    card = _dataset_card(args.name)
    from neuroharness.loaders.hub import parse_repo, publish_store

    parse_repo(args.repo, "--repo", revision=False)
    published = publish_store(card.name, args.repo, revision=args.revision, private=args.private)
    print("\n".join(published.lines()))
    print(f"install it elsewhere: neuroharness datasets prepare {card.name} --from-hub "
          f"{published.repo_id}@{published.commit}")
    return 0


def _datasets_prepare_from_hub(cards, args) -> int:
    if len(cards) > 1:
        raise UsageError(f"--from-hub applies to one dataset; got {len(cards)}: {', '.join(args.names)}")
    for flag, value in (("--source", args.source), ("--only", args.only), ("--layout", args.layout),
                        ("--strict", args.strict), ("--dask-scheduler", args.dask_scheduler)):
        if value:
            raise UsageError(f"--from-hub installs the store as it was published; {flag} applies to building it "
                             "from a source (leave out --from-hub)")
    from neuroharness.loaders.hub import parse_repo, prepare_from_hub

    parse_repo(args.from_hub, "--from-hub")
    print(prepare_from_hub(cards[0].name, args.from_hub, force=args.force))
    return 0


def _check_not_publish(args) -> None:
    """Flags and the second TASK of `leaderboard publish TASK` given to a plain `leaderboard` are usage errors."""
    if args.publish_task is not None:
        raise UsageError(f"unexpected argument {args.publish_task!r}: give one TASK (or `leaderboard publish TASK "
                         "--repo ORG/NAME --results DIR` to upload records)")
    for flag, value in (("--repo", args.repo), ("--revision", args.revision), ("--private", args.private)):
        if value:
            raise UsageError(f"{flag} applies to `leaderboard publish TASK --repo ORG/NAME --results DIR`")


def _results_folder(results: str, card) -> Path:
    """The folder of ``--results``: a local folder, or the records at ``hf://datasets/ORG/NAME[@REV][/PATH]``
    downloaded at the commit the revision resolves to."""
    from neuroharness.leaderboards.hub import fetch_results, is_hub_url

    if is_hub_url(results):
        from neuroharness.loaders.hub import parse_repo

        parse_repo(results, "--results", path=True)
        return fetch_results(results, card.name if card is not None else None)
    return _existing(results, "--results: the folder of records")


def cmd_leaderboard_publish(args) -> int:
    if not args.publish_task:
        raise UsageError("leaderboard publish TASK --repo ORG/NAME --results DIR: give the TASK")
    card = _task_card(args.publish_task)
    if not args.repo:
        raise UsageError("leaderboard publish: give --repo ORG/NAME, the Hugging Face dataset repository to upload to")
    if not args.results:
        raise UsageError("leaderboard publish: give --results DIR, the folder of records to upload")
    for flag, value in (("--all", args.all), ("--html", args.html), ("--only-results", args.only_results),
                        ("--option", args.option)):
        if value:
            raise UsageError(f"{flag} does not apply to `leaderboard publish` (it uploads every record of TASK in DIR)")
    from neuroharness.leaderboards.hub import is_hub_url, publish_results
    from neuroharness.loaders.hub import parse_repo

    if is_hub_url(args.results):
        raise UsageError(f"--results {args.results}: publish uploads a local folder of records")
    parse_repo(args.repo, "--repo", revision=False)
    folder = _existing(args.results, "--results: the folder of records")
    published = publish_results(card.name, args.repo, folder, revision=args.revision, private=args.private)
    print("\n".join(published.lines()))
    print(f"rank them: neuroharness leaderboard {card.name} --results "
          f"hf://datasets/{published.repo_id}@{published.commit}")
    return 0


# -- Hugging Face `datasets` export ----------------------------------------------------------
def cmd_datasets_export(args) -> int:
    """A prepared store, or a task's split tables, as Hugging Face ``datasets`` saved in DIR
    (:mod:`neuroharness.loaders.hf_export`)."""
    options = _key_values(args.option, "--option", "graph=BALBc_no1")
    out = _output_dir(args.dir, "DIR", "the exported dataset")
    from neuroharness.loaders.hf_export import export

    print("\n".join(export(args.name, out, format=args.format, parts=args.part, options=options,
                           force=args.force).lines()))
    return 0


# -- parser ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from neuroharness import __version__

    p = argparse.ArgumentParser(prog="neuroharness", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"neuroharness {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or status lines")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # -q is accepted after the verb too; SUPPRESS keeps a top-level -q from being reset
    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="no progress bars or status lines")
    option = argparse.ArgumentParser(add_help=False)
    option.add_argument("--option", action="append", metavar="KEY=VALUE",
                        help="set a task option (see `tasks info TASK`); repeatable")

    d = sub.add_parser("datasets", parents=[quiet], help="list, describe and prepare datasets")
    dsub = d.add_subparsers(dest="action", required=True, metavar="ACTION")
    dl = dsub.add_parser("list", parents=[quiet], help="registered datasets and whether they are prepared")
    dl.set_defaults(func=cmd_datasets_list)
    di = dsub.add_parser("info", parents=[quiet], help="dataset card and, if prepared, a summary")
    di.add_argument("names", nargs="+", metavar="NAME")
    di.set_defaults(func=cmd_datasets_info)
    dp = dsub.add_parser("prepare", parents=[quiet], help="fetch, verify and homogenize into the cache")
    dp.add_argument("names", nargs="+", metavar="NAME")
    dp.add_argument("--source", help="local copy (file or folder) or URL to use instead of the default source")
    dp.add_argument("--only", nargs="+", metavar="PART",
                    help="prepare only these parts of a dataset made of parts (vesselgraph: graph names, e.g. BALBc_no1)")
    dp.add_argument("--force", action="store_true", help="rebuild even if the store exists")
    dp.add_argument("--layout", metavar="FILE",
                    help="layout file (TOML or YAML) describing the source, for datasets read through one "
                         "(nszed, repod-schizophrenia); default: the one installed with the harness")
    dp.add_argument("--strict", action="store_true",
                    help="fail when any part cannot be converted (default: skip it and report why)")
    dp.add_argument("--dask-scheduler", metavar="ADDRESS",
                    help="write each part (FISBe sample, vessel graph, NSD subject, EEG recording) as one task on "
                         "this dask.distributed cluster (e.g. tcp://HOST:8786; default $NEUROHARNESS_DASK_SCHEDULER, "
                         "else in this process); the cache and --source must be on a filesystem the workers share")
    dp.add_argument("--from-hub", metavar="ORG/NAME[@REVISION]",
                    help="install the store published in this Hugging Face dataset repository (by `datasets "
                         "publish`) instead of building it: the revision is pinned to its commit and the content "
                         "checksum checked against the published card")
    dp.set_defaults(func=cmd_datasets_prepare)
    dpub = dsub.add_parser("publish", parents=[quiet],
                           help="upload a prepared store with a generated dataset card to a Hugging Face dataset "
                                "repository (datasets whose licence allows redistribution)")
    dpub.add_argument("name", metavar="NAME")
    dpub.add_argument("--repo", required=True, metavar="ORG/NAME", help="the dataset repository (created if missing)")
    dpub.add_argument("--revision", metavar="BRANCH", help="branch to commit to (default main; created if missing)")
    dpub.add_argument("--private", action="store_true", help="create the repository private")
    dpub.set_defaults(func=cmd_datasets_publish)
    dex = dsub.add_parser("export", parents=[quiet, option],
                          help="write a prepared store, or a task's split tables, as a Hugging Face `datasets` "
                               "Dataset/DatasetDict in DIR (save_to_disk; open it with datasets.load_from_disk)")
    dex.add_argument("name", metavar="NAME", help="a dataset, or a task with tabular targets (train and validation "
                                                  "with targets; test with its ids only: test targets are never exported)")
    dex.add_argument("dir", metavar="DIR", help="folder to write (new or empty; created if missing)")
    dex.add_argument("--format", required=True, choices=["hf"], help="hf: Hugging Face datasets (Arrow)")
    dex.add_argument("--part", nargs="+", metavar="PART",
                     help="only these parts of a dataset exported per part (vesselgraph graphs, nsd-algonauts2023 "
                          "subjects); default: every part, each in DIR/PART")
    dex.add_argument("--force", action="store_true", help="replace an earlier export in DIR")
    dex.set_defaults(func=cmd_datasets_export)

    t = sub.add_parser("tasks", parents=[quiet], help="list and describe tasks")
    tsub = t.add_subparsers(dest="action", required=True, metavar="ACTION")
    tl = tsub.add_parser("list", parents=[quiet], help="registered tasks")
    tl.set_defaults(func=cmd_tasks_list)
    ti = tsub.add_parser("info", parents=[quiet], help="the task card")
    ti.add_argument("name", metavar="TASK")
    ti.add_argument("--json", action="store_true", help="machine-readable card")
    ti.set_defaults(func=cmd_tasks_info)
    tt = tsub.add_parser("template", parents=[quiet, option],
                         help="write the id columns a submission must cover (test), or the items of train or val "
                              "with their targets")
    tt.add_argument("name", metavar="TASK")
    tt.add_argument("out", metavar="OUT", help="output file: .parquet or .npz")
    tt.add_argument("--split", default="test", choices=["train", "val", "test"],
                    help="test (default): the ids to predict, no targets; train or val: ids and targets, for "
                         "training a model outside neuroharness (tabular tasks only)")
    tt.set_defaults(func=cmd_tasks_template)

    m = sub.add_parser("models", parents=[quiet], help="list the models of tasks: built in and installed plugins")
    msub = m.add_subparsers(dest="action", required=True, metavar="ACTION")
    ml = msub.add_parser("list", parents=[quiet], help="task, model, origin (builtin or plugin), package and version")
    ml.add_argument("task", nargs="?", metavar="TASK", help="only the models of this task")
    ml.add_argument("--json", action="store_true", help="machine-readable list")
    ml.set_defaults(func=cmd_models_list)

    r = sub.add_parser("run", parents=[quiet, option], help="run models over seeds, one JSON record per run")
    r.add_argument("task", metavar="TASK")
    r.add_argument("--model", nargs="+", required=True, metavar="MODEL",
                   help="model name(s) (see `models list TASK`: the card's and installed plugins'), "
                        "package.module:Factory for an importable unregistered factory, or 'all'")
    r.add_argument("--seeds", nargs="+", type=int, metavar="SEED", help="integers >= 0 (default: the task card's seeds)")
    r.add_argument("--hyperparameter", action="append", metavar="KEY=VALUE",
                   help="override a model hyperparameter; VALUE is read as JSON when it parses (3, 1e-3, true, "
                        "[64, 64]), else as a string; repeatable")
    r.add_argument("--out", default="results", help="folder for the records (default: results)")
    r.add_argument("--force", action="store_true",
                   help="recompute seeds whose records are already in --out (default: keep finished ones)")
    r.add_argument("--dask-scheduler", metavar="ADDRESS",
                   help="run each (model, seed) on this dask.distributed cluster (e.g. tcp://HOST:8786; default "
                        "$NEUROHARNESS_DASK_SCHEDULER, else in this process); records are written here")
    r.set_defaults(func=cmd_run)

    rp = sub.add_parser("reproduce", parents=[quiet],
                        help="rerun the official baselines and compare with the official records")
    rp.add_argument("task", metavar="TASK")
    rp.add_argument("--model", nargs="+", metavar="MODEL", help="only these models (default: every official record)")
    rp.add_argument("--records", metavar="DIR", help="records to reproduce instead of the official ones")
    rp.set_defaults(func=cmd_reproduce)

    e = sub.add_parser("evaluate", parents=[quiet, option], help="score a predictions file (npz, parquet or zarr)")
    e.add_argument("task", metavar="TASK")
    e.add_argument("predictions", metavar="PREDICTIONS")
    e.add_argument("--split", default="test", choices=["test", "val"])
    e.add_argument("--json-out", metavar="FILE", help="also write the metrics to this JSON file")
    e.add_argument("--out", metavar="DIR",
                   help="write a leaderboard record of this submission into DIR (test split; needs --model-name); "
                        "`leaderboard TASK --results DIR` ranks it")
    e.add_argument("--model-name", metavar="NAME", help="the submission's name in the record and the leaderboard")
    e.add_argument("--description", metavar="TEXT", help="a line about the model, kept in the record")
    e.add_argument("--n-parameters", type=int, metavar="N", help="the model's parameter count, kept in the record")
    e.add_argument("--seed", type=int, metavar="K",
                   help="the seed your model was trained with (default 0); one record per seed, so several "
                        "seeds give a mean ± std")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON (default: a table when they are grouped)")
    e.add_argument("--dask-scheduler", metavar="ADDRESS",
                   help="score each sample as one task on this dask.distributed cluster (fisbe-instance-segmentation;"
                        " default $NEUROHARNESS_DASK_SCHEDULER, else in this process); the predictions file and the "
                        "store must be on a filesystem the workers share")
    e.set_defaults(func=cmd_evaluate)

    lb = sub.add_parser("leaderboard", parents=[quiet, option], help="aggregate records into mean ± std over seeds")
    lb.add_argument("task", nargs="?", metavar="TASK",
                    help="the task (optional with --all); or `publish TASK --repo ORG/NAME --results DIR` to upload "
                         "the task's records to a Hugging Face dataset repository")
    lb.add_argument("publish_task", nargs="?", metavar="TASK", help=argparse.SUPPRESS)
    lb.add_argument("--all", action="store_true", help="every task with records (with --html)")
    lb.add_argument("--html", metavar="DIR",
                    help="write a static site (index.html and one page per task) into DIR instead of printing")
    lb.add_argument("--repo", metavar="ORG/NAME", help="with publish: the dataset repository (created if missing)")
    lb.add_argument("--revision", metavar="BRANCH", help="with publish: the branch to commit to (default main)")
    lb.add_argument("--private", action="store_true", help="with publish: create the repository private")
    lb.add_argument("--results", metavar="DIR",
                    help="folder of your records, or hf://datasets/ORG/NAME[@REVISION][/PATH] on the Hugging Face Hub "
                         "(read at the commit the revision resolves to), ranked together with the official records")
    lb.add_argument("--only-results", action="store_true", help="show the records of --results alone, without the official ones")
    lb.add_argument("--format", default="md", choices=["md", "csv", "json"])
    lb.set_defaults(func=cmd_leaderboard)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command; 0 on success, 2 on a usage or data error (argparse's own usage errors exit 2 too)."""
    args = build_parser().parse_args(argv)
    set_quiet(bool(args.quiet))  # not quiet: status lines on stderr (CI still silences them)
    try:
        return args.func(args)
    except UsageError as e:
        print(f"usage error: {e}", file=sys.stderr)
        return 2
    except NeuroharnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
