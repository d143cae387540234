"""Result records: one JSON file per (task, model, seed), provenance-complete.

Schema (``schema_version`` 2)::

    {
      "schema_version": 2,
      "task": {"name": str, "version": str, "evaluator_version": str, "main_metric": str, "higher_is_better": bool,
               "headline_metrics": [str], "options": {str: str}},
      "datasets": [{"name": str, "version": str, "content_sha256": str,
                    "parts": {part: sha256}}, ...],   # parts: only for datasets read in parts
      "split": "test",
      "split_sha256": str,          # digest of the scored ids and their order
      "model": {"name": str, "description": str, "n_parameters": int,
                "hyperparameters": {...}, "fitted": {...}},
      "seed": int,
      "metrics": {"main_score": float, ...},
      "validation_metrics": {...},
      "environment": {"harness_version": str, "git_commit": str | null, "python": str,
                      "platform": str, "device": str (CPU model or CUDA device), "threads": int, "torch_cuda": str | null,
                      "cudnn": int | null, "packages": {name: version}},
      "wall_time_s": float,
      "created": ISO 8601 UTC,
      "predictions_sha256": str,    # optional: records of a scored predictions file
      "record_digest": str          # sha256 of the record's canonical JSON without this field
    }

``model`` may also hold ``origin``: ``{"kind": "builtin" | "plugin" | "submission",
"package": str | null, "version": str | null}``. The published JSON Schema
(draft 2020-12) is ``record.schema.json`` beside this module
(:func:`schema_path`); :func:`write_record` and :func:`read_records` validate
every record against it, after the checks below that name the field, what was
found and what was expected.

``record_digest`` (:func:`record_digest`) is the sha256 of the UTF-8 canonical
JSON of the record without that field (keys sorted, no whitespace). A record
edited after it was written no longer matches it and is refused, and so is a
record without one. The digest shows edits; it is not a signature (anyone can
recompute it), which is why the leaderboard also checks every metric against
the range its task card gives and that ``main_score`` is the main metric's value
(:func:`check_against_card`), and why official numbers are reproducible.

``content_sha256`` is the checksum of exactly what the task read: the whole
store, or for a dataset read in parts (one graph of ``vesselgraph``) a digest
of those parts' checksums (see :func:`parts_digest`), so that records on the
same graph compare whatever else the store holds. Version 1 records (before
``split_sha256``) are refused with a message saying how to remake them.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from neuroharness.errors import DataFormatError
from neuroharness.loaders.io import write_text_atomic
from neuroharness.tasks.base import parts_digest

SCHEMA_VERSION = 2
SCHEMA_FILE = "record.schema.json"
#: slack on a card's metric range, for values computed in floating point (e.g. a Spearman rho of 1 + 2e-16)
RANGE_TOLERANCE = 1e-9
REQUIRED = ("schema_version", "task", "datasets", "model", "seed", "split", "split_sha256", "metrics", "environment")
PACKAGES = ("numpy", "scipy", "pandas", "xarray", "zarr", "numcodecs", "dask", "scikit-learn", "torch", "torch-geometric",
            "numba", "h5py", "huggingface-hub")


def git_commit() -> str | None:
    """The harness checkout's commit, with ``-dirty`` if it has local changes; None outside git."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():  # an installed copy, not a checkout: no commit to report
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
        return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_name() -> str:
    """The CPU model (e.g. "AMD EPYC 7B13"), from /proc/cpuinfo on Linux; the platform's words elsewhere."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return f"CPU {line.split(':', 1)[1].strip()}"
    except OSError:
        pass
    return f"CPU {platform.processor() or platform.machine()}"


def compute_environment() -> dict:
    """What decides numbers beyond the code: device, threads, torch's CUDA/cuDNN (only if torch is loaded)."""
    out = {"device": _cpu_name(), "threads": os.cpu_count(), "torch_cuda": None, "cudnn": None}
    torch = sys.modules.get("torch")  # importing torch only to describe it would cost seconds
    if torch is not None:
        out["threads"] = torch.get_num_threads()
        out["torch_cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            out["device"] = torch.cuda.get_device_name(0)
            out["cudnn"] = torch.backends.cudnn.version()
    return out


def environment() -> dict:
    from neuroharness import __version__

    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            versions[p] = None
    return {
        "harness_version": __version__,
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        **compute_environment(),
        "packages": versions,
    }


def record_filename(task: str, model: str, seed: int, options: dict[str, str] | None = None) -> str:
    """``<task>__<model>__seed<k>.json``, with ``__<key>=<value>`` per task option (sorted),
    so runs with different options never overwrite each other."""
    opts = "".join(f"__{k}={v}" for k, v in sorted((options or {}).items()))
    return f"{task}__{model}__seed{seed}{opts}.json"


def record_digest(record: dict) -> str:
    """sha256 of the canonical JSON of ``record`` without its ``record_digest``: keys sorted, no whitespace."""
    body = {k: v for k, v in record.items() if k != "record_digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_record(record: dict, out_dir: os.PathLike) -> Path:
    """Stamp ``record_digest``, validate (schema, card ranges) and write atomically; return the path.

    A record without ``task.evaluator_version`` gets its registered card's (the
    scoring code in this process made it).

    ``record`` itself is not changed; the file holds it with its digest. Nothing
    is written when a check fails.
    """
    record = {k: v for k, v in record.items() if k != "record_digest"}
    task = record.get("task")
    if isinstance(task, dict) and "evaluator_version" not in task:  # the scoring code writing it is the card's
        card = _registered_card(task.get("name"))
        if card is not None:
            record["task"] = {**task, "evaluator_version": card.evaluator_version}
    record["record_digest"] = record_digest(record)
    validate_record(record, "record")
    check_against_card(record, "record")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / record_filename(record["task"]["name"], record["model"]["name"], record["seed"],
                                     record["task"].get("options"))
    return write_text_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def _registered_card(name):
    """The registered card of task ``name``, or None (unknown names are reported by the checks)."""
    from neuroharness.errors import UnknownNameError
    from neuroharness.tasks import get_card

    try:
        return get_card(name) if isinstance(name, str) else None
    except UnknownNameError:
        return None


def validate_record(record: dict, source: str) -> dict:
    """Check required fields and finite metrics; :class:`DataFormatError` naming ``source`` otherwise."""
    if not isinstance(record, dict):
        raise DataFormatError(f"{source}: expected a JSON object, got {type(record).__name__}")
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise DataFormatError(f"{source}: missing field(s) {missing}")
    if record["schema_version"] == 1:
        name = record.get("task", {}).get("name", "TASK") if isinstance(record.get("task"), dict) else "TASK"
        model = record.get("model", {}).get("name", "MODEL") if isinstance(record.get("model"), dict) else "MODEL"
        raise DataFormatError(
            f"{source}: a schema_version 1 record (neuroharness 0.1): it has no split_sha256, so it cannot be compared "
            f"with current records; remake it with `neuroharness run {name} --model {model} --seeds {record.get('seed')}`")
    if record["schema_version"] != SCHEMA_VERSION:
        raise DataFormatError(f"{source}: schema_version {record['schema_version']!r}, expected {SCHEMA_VERSION}")
    for key, kind in (("task", dict), ("datasets", list), ("model", dict), ("metrics", dict), ("environment", dict)):
        if not isinstance(record[key], kind):
            raise DataFormatError(f"{source}: field {key} is a {type(record[key]).__name__}, expected a {kind.__name__}")
    for key in ("name", "version", "main_metric"):
        if not isinstance(record["task"].get(key), str):
            raise DataFormatError(f"{source}: field task.{key} missing or not a string")
    options = record["task"].get("options", {})
    if not isinstance(options, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in options.items()):
        raise DataFormatError(f"{source}: field task.options must map option names to string values, got {options!r}")
    for i, d in enumerate(record["datasets"]):
        for key in ("name", "version", "content_sha256"):
            if not isinstance(d, dict) or not isinstance(d.get(key), str):
                raise DataFormatError(f"{source}: field datasets[{i}].{key} missing or not a string")
        parts = d.get("parts")
        if parts is not None:
            if not isinstance(parts, dict) or not parts or not all(isinstance(v, str) for v in parts.values()):
                raise DataFormatError(f"{source}: field datasets[{i}].parts must map part names to sha256 strings")
            if parts_digest(parts) != d["content_sha256"]:
                raise DataFormatError(f"{source}: field datasets[{i}].content_sha256 is not the digest of its parts")
    if not isinstance(record["split_sha256"], str) or len(record["split_sha256"]) != 64:
        raise DataFormatError(f"{source}: field split_sha256 = {record['split_sha256']!r}, expected 64 hex digits")
    if not isinstance(record["model"].get("name"), str):
        raise DataFormatError(f"{source}: field model.name missing or not a string")
    n_params = record["model"].get("n_parameters")
    if not isinstance(n_params, int) or isinstance(n_params, bool):
        raise DataFormatError(f"{source}: field model.n_parameters = {n_params!r}, expected an integer")
    metrics = record["metrics"]
    if "main_score" not in metrics:
        raise DataFormatError(f"{source}: field metrics.main_score missing")
    if record["task"]["main_metric"] not in metrics:
        raise DataFormatError(f"{source}: field metrics.{record['task']['main_metric']} (the task's main_metric) missing")
    for k, v in metrics.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise DataFormatError(f"{source}: metrics.{k} = {v!r}, expected a finite number")
    if not isinstance(record["seed"], int) or isinstance(record["seed"], bool):
        raise DataFormatError(f"{source}: seed = {record['seed']!r}, expected an integer")
    main = record["task"]["main_metric"]
    if metrics["main_score"] != metrics[main]:
        raise DataFormatError(
            f"{source}: metrics.main_score = {metrics['main_score']!r} differs from metrics.{main} = {metrics[main]!r}; "
            f"expected the value of the task's main_metric {main}")
    if "evaluator_version" not in record["task"]:
        raise DataFormatError(
            f"{source}: field task.evaluator_version missing: the record predates evaluator versions (the version "
            f"of the task's scoring code), so it cannot be compared with current records; remake it with "
            f"`neuroharness run {record['task'].get('name', 'TASK')} --model {record['model'].get('name', 'MODEL')} "
            f"--seeds {record['seed']}`")
    if not isinstance(record["task"]["evaluator_version"], str):
        raise DataFormatError(f"{source}: field task.evaluator_version = {record['task']['evaluator_version']!r}, "
                              "expected a string")
    if "record_digest" not in record:
        raise DataFormatError(
            f"{source}: field record_digest missing: the record was not written by neuroharness's write_record (or "
            f"predates record digests); remake it with `neuroharness run {record['task']['name']} --model "
            f"{record['model']['name']} --seeds {record['seed']}`")
    digest = record_digest(record)
    if record["record_digest"] != digest:
        raise DataFormatError(
            f"{source}: record_digest {record['record_digest']!r} does not match the record's content (sha256 "
            f"{digest}): the record was edited after it was written; remake it instead of editing it")
    _check_schema(record, source)
    return record


# -- the published schema --------------------------------------------------------------
def schema_path() -> Path:
    """Path of the published JSON Schema of records (``record.schema.json``, installed with the package)."""
    return Path(__file__).with_name(SCHEMA_FILE)


@functools.lru_cache(maxsize=1)
def _schema_validator():
    import jsonschema  # imported here: only `run` and `leaderboard` read or write records

    schema = json.loads(schema_path().read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _field(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _schema_message(error) -> str:
    """One error of the schema as "field F = found, expected E"."""
    where = _field(error.absolute_path)
    found, kind, value = error.instance, error.validator, error.validator_value
    if kind == "required":
        missing = [k for k in value if isinstance(found, dict) and k not in found]
        names = [f"{where}.{k}" if where else k for k in missing]
        return f"missing field(s) {names}"
    if kind == "additionalProperties" and value is False:
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(k for k in found if k not in allowed)
        return (f"field(s) {extra} not allowed {'in ' + where if where else 'in a record'} "
                f"(the schema allows {', '.join(allowed)})")
    expected = {
        "type": lambda: f"expected {' or '.join(value) if isinstance(value, list) else value}",
        "enum": lambda: f"expected one of {value}",
        "const": lambda: f"expected {value!r}",
        "pattern": lambda: "expected 64 lowercase hex digits" if value == "^[0-9a-f]{64}$" else f"expected to match {value}",
        "minimum": lambda: f"expected >= {value}",
        "minLength": lambda: "expected a non-empty string",
        "minItems": lambda: f"expected at least {value} item(s)",
        "minProperties": lambda: f"expected at least {value} entr{'y' if value == 1 else 'ies'}",
    }.get(kind, lambda: f"not valid ({error.message})")()
    text = repr(found)
    return f"field {where or '(record)'} = {text if len(text) <= 80 else text[:77] + '...'}, {expected}"


def _check_schema(record: dict, source: str) -> None:
    from jsonschema.exceptions import best_match

    error = best_match(_schema_validator().iter_errors(record))
    if error is not None:
        raise DataFormatError(f"{source}: {_schema_message(error)} (schema {SCHEMA_FILE})")


# -- the task card ------------------------------------------------------------------------
def check_against_card(record: dict, source: str, card=None) -> dict:
    """Check ``record`` against its registered task card; :class:`DataFormatError` naming ``source`` otherwise.

    Every metric (test and validation) that the card gives a range must lie in it
    (within :data:`RANGE_TOLERANCE`); a record of the card's version must name the
    card's main metric and direction. ``card`` defaults to
    ``neuroharness.tasks.get_card(record["task"]["name"])``.
    """
    from neuroharness.errors import UnknownNameError

    name = record["task"]["name"]
    if card is None:
        from neuroharness.tasks import get_card

        try:
            card = get_card(name)
        except UnknownNameError as e:
            raise DataFormatError(f"{source}: field task.name = {name!r}: {e}") from None
    if record["task"]["version"] == card.version:
        if record["task"]["main_metric"] != card.main_metric:
            raise DataFormatError(f"{source}: field task.main_metric = {record['task']['main_metric']!r}, but task "
                                  f"card {name} v{card.version} says {card.main_metric!r}")
        higher = record["task"].get("higher_is_better", True)
        if higher != card.higher_is_better:
            raise DataFormatError(f"{source}: field task.higher_is_better = {higher!r}, but task card {name} "
                                  f"v{card.version} says {card.higher_is_better!r} for {card.main_metric}")
    for spec in card.metrics:
        if spec.low is None and spec.high is None:
            continue
        for group in ("metrics", "validation_metrics"):
            value = (record.get(group) or {}).get(spec.name)
            if value is None or value != value:  # absent, or a NaN validation score (test scores are finite)
                continue
            low = -math.inf if spec.low is None else spec.low
            high = math.inf if spec.high is None else spec.high
            if not low - RANGE_TOLERANCE <= value <= high + RANGE_TOLERANCE:
                raise DataFormatError(
                    f"{source}: {group}.{spec.name} = {value!r}, outside the range {_range_text(spec)} that task card "
                    f"{name} gives for {spec.name}")
    return record


def _range_text(spec) -> str:
    if spec.low is not None and spec.high is not None:
        return f"[{spec.low:g}, {spec.high:g}]"
    return f">= {spec.low:g}" if spec.low is not None else f"<= {spec.high:g}"


def read_records(paths_or_dir) -> list[tuple[Path, dict]]:
    """Read and validate every ``*.json`` record under a directory (or a list of files).

    Each record is checked against the schema, its ``record_digest`` and its task's
    registered card (:func:`validate_record`, :func:`check_against_card`).
    """
    if isinstance(paths_or_dir, (str, os.PathLike)):
        root = Path(paths_or_dir)
        if not root.exists():
            raise DataFormatError(f"{root}: results directory not found")
        paths = sorted(root.rglob("*.json")) if root.is_dir() else [root]
    else:
        paths = [Path(p) for p in paths_or_dir]
    out = []
    for p in paths:
        try:
            record = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise DataFormatError(f"{p}: not a readable JSON record ({e})") from None
        out.append((p, check_against_card(validate_record(record, str(p)), str(p))))
    return out
