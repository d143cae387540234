"""The runner, the result-record schema, leaderboard building, and the official records.

Official baseline records live in ``official/<task>/`` inside this package;
``scripts/regenerate_leaderboards.py`` rewrites them.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def official_dir(task: str) -> Path:
    """Folder of the official baseline records of ``task`` (installed with the package)."""
    return Path(str(resources.files(__package__).joinpath("official", task)))
