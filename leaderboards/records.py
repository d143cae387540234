"""Result records: one JSON file per (task, model, seed), provenance-complete.

Schema (``schema_version`` 2)::

    {
      "schema_version": 2,
      "task": {"name": str, "version": str, "main_metric": str, "higher_is_better": bool,
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
      "created": ISO 8601 UTC
    }

``content_sha256`` is the checksum of exactly what the task read: the whole
store, or for a dataset read in parts (one graph of ``vesselgraph``) a digest
of those parts' checksums (see :func:`parts_digest`), so that records on the
same graph compare whatever else the store holds. Version 1 records (before
``split_sha256``) are refused with a message saying how to remake them.
"""
from __future__ import annotations

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


def write_record(record: dict, out_dir: os.PathLike) -> Path:
    """Validate and write ``record`` atomically; return its path."""
    validate_record(record, "record")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / record_filename(record["task"]["name"], record["model"]["name"], record["seed"],
                                     record["task"].get("options"))
    return write_text_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


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
    return record


def read_records(paths_or_dir) -> list[tuple[Path, dict]]:
    """Read and validate every ``*.json`` record under a directory (or a list of files)."""
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
        out.append((p, validate_record(record, str(p))))
    return out
