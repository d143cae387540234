"""Progress bars that stay quiet under ``--quiet``, in CI and off a terminal."""
from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm

_QUIET = False


def set_quiet(quiet: bool) -> None:
    """Silence (or re-enable) every progress bar and status line of the harness."""
    global _QUIET
    _QUIET = bool(quiet)


def is_quiet() -> bool:
    return _QUIET or bool(os.environ.get("CI")) or os.environ.get("NEUROHARNESS_QUIET") == "1"


def progress_bar(**kwargs) -> tqdm:
    """A ``tqdm`` bar on stderr, disabled when quiet."""
    kwargs.setdefault("leave", False)
    kwargs.setdefault("unit_scale", kwargs.get("unit") == "B")
    return tqdm(disable=is_quiet() or not sys.stderr.isatty(), file=sys.stderr, **kwargs)


def status(msg: str) -> None:
    """One line of status on stderr unless quiet."""
    if not is_quiet():
        print(msg, file=sys.stderr, flush=True)
