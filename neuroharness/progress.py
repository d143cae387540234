"""Status lines through :mod:`logging` and progress bars, quiet where nobody watches.

Status lines
    Every message of the harness goes to the logger ``"neuroharness"``
    (:func:`status` logs at INFO; problems are WARNING). Like other scientific
    libraries that talk while they download and build (MNE's ``set_log_level``,
    Hugging Face's ``set_verbosity``), the verbosity has one switch,
    :func:`set_quiet`, with three states:

    - not set (the default for library users): the harness adds no handler and
      does not change any logger level, so INFO lines appear only if you
      configure logging yourself, e.g. ``logging.basicConfig(level="INFO")`` or a
      handler on ``logging.getLogger("neuroharness")``. Warnings reach stderr
      through Python's last-resort handler as usual.
    - ``set_quiet(False)`` (what the ``neuroharness`` command does): a plain
      stderr handler (message only, no prefix) is added to the ``"neuroharness"``
      logger, whose level is set to INFO if it was not set. Messages still
      propagate to your own handlers, so do not call it if you configured
      logging yourself (or you see each line twice).
    - ``set_quiet(True)`` (``neuroharness -q``): no progress bars and no status
      lines; the stderr handler still prints warnings and errors.

    The environment can decide instead of code: ``CI`` (set and not ``0``/
    ``false``) or ``NEUROHARNESS_QUIET=1`` make everything quiet whatever
    :func:`set_quiet` said; ``NEUROHARNESS_QUIET=0`` acts as ``set_quiet(False)``
    where :func:`set_quiet` was not called.

Progress bars
    :func:`progress_bar` returns a ``tqdm.auto`` bar on stderr: a widget in
    Jupyter (a text bar if ipywidgets is missing), text in a terminal. Bars are
    shown when stderr is a terminal or the code runs in a Jupyter/IPython kernel
    (whose stderr is never a terminal), and are off when quiet or in CI.

This module imports only the standard library; tqdm is imported with the first bar.
"""
from __future__ import annotations

import logging
import os
import sys

logger = logging.getLogger("neuroharness")

_QUIET: bool | None = None  # None: set_quiet was never called (or reset)
_LEVEL_SET_HERE = False


class _StderrHandler(logging.StreamHandler):
    """Plain ``message`` lines on the *current* ``sys.stderr`` (so redirection and
    pytest's capture see them); INFO and below are dropped while quiet."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; the current sys.stderr wins
        pass

    def filter(self, record):
        if record.levelno < logging.WARNING and is_quiet():
            return False
        return super().filter(record)


_HANDLER = _StderrHandler()


def _env_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def is_quiet() -> bool:
    """True when bars and status lines are off: ``set_quiet(True)``, ``NEUROHARNESS_QUIET=1`` or ``CI``."""
    return _QUIET is True or os.environ.get("NEUROHARNESS_QUIET") == "1" or _env_ci()


def _echo() -> bool:
    """Whether the harness's own stderr handler prints status lines now."""
    if is_quiet():
        return False
    return _QUIET is False or (_QUIET is None and os.environ.get("NEUROHARNESS_QUIET") == "0")


def _sync() -> None:
    """Attach or detach the stderr handler (and the INFO level it needs) to match the current state.

    The handler is attached once verbosity was chosen (``set_quiet(True/False)``, as the command line
    does, or ``NEUROHARNESS_QUIET=0``); while quiet it passes only warnings and errors."""
    global _LEVEL_SET_HERE
    if _QUIET is not None or _echo():
        if _HANDLER not in logger.handlers:
            logger.addHandler(_HANDLER)
    elif _HANDLER in logger.handlers:
        logger.removeHandler(_HANDLER)
    if _echo():
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
            _LEVEL_SET_HERE = True
    elif _LEVEL_SET_HERE:
        logger.setLevel(logging.NOTSET)
        _LEVEL_SET_HERE = False


def set_quiet(quiet: bool | None = True) -> None:
    """``True``: no bars, no status lines. ``False``: status lines on stderr (see the module docs).

    ``None`` goes back to the default: bars where someone watches, status lines only
    through logging configured by the caller."""
    global _QUIET
    _QUIET = None if quiet is None else bool(quiet)
    _sync()


def status(msg: str) -> None:
    """One status line, logged at INFO on the ``"neuroharness"`` logger."""
    _sync()
    logger.info(msg)


def in_notebook() -> bool:
    """True inside a Jupyter/IPython kernel (never imports IPython)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # noqa: BLE001 - a broken IPython is not a notebook
        return False
    if shell is None:
        return False
    return "IPKernelApp" in getattr(shell, "config", {}) or type(shell).__name__ == "ZMQInteractiveShell"


def progress_bar(**kwargs):
    """A ``tqdm.auto`` bar on stderr; disabled when quiet, in CI, or when nobody watches."""
    from tqdm.auto import tqdm

    kwargs.setdefault("leave", False)
    kwargs.setdefault("unit_scale", kwargs.get("unit") == "B")
    watched = in_notebook() or _isatty(sys.stderr)
    return tqdm(disable=is_quiet() or not watched, file=sys.stderr, **kwargs)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


# NEUROHARNESS_QUIET=0 at import: status lines on stderr from the first message
_sync()
