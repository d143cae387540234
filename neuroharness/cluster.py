"""Heavy work spread over a dask.distributed cluster, one cluster task per independent part.

Without a scheduler address everything runs in this process, as it always did. With one
(``--dask-scheduler ADDRESS`` or ``$NEUROHARNESS_DASK_SCHEDULER``, e.g. ``tcp://10.0.0.5:8786``,
what ``dask scheduler`` prints), the parts (e.g. the (model, seed) runs of ``neuroharness run``) are
submitted to that cluster and their results come back here, where they are written, so files are only
ever written by this process and atomically. Workers must import the same neuroharness version and see
the same stores (a shared ``NEUROHARNESS_HOME``, local or a URL).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from neuroharness.errors import NeuroharnessError, UsageError

ENV = "NEUROHARNESS_DASK_SCHEDULER"


def scheduler_address(given: str | None = None) -> str | None:
    """The scheduler to use: ``given`` (the command-line flag), else ``$NEUROHARNESS_DASK_SCHEDULER``, else None
    (run in-process). An empty value means in-process too."""
    value = given if given is not None else os.environ.get(ENV, "")
    value = value.strip()
    if not value:
        return None
    if "://" not in value and ":" not in value:
        raise UsageError(f"dask scheduler {value!r}: expected an address such as tcp://HOST:8786 (what `dask "
                         "scheduler` prints)")
    return value


def connect(address: str, timeout: float = 20.0):
    """A ``distributed.Client`` for ``address`` (not made the default client); a clear error when it cannot
    connect."""
    try:
        from distributed import Client
    except ImportError as e:  # pragma: no cover - distributed is a dependency
        raise NeuroharnessError(f"--dask-scheduler needs dask.distributed ({e}); pip install distributed") from e
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as e:
        raise NeuroharnessError(
            f"could not reach the dask scheduler at {address} ({type(e).__name__}: {' '.join(str(e).split())[:200]});"
            f" start one (`dask scheduler`, then `dask worker {address}` on each machine) or unset {ENV} to run "
            "in this process") from None


def run_parts(fn: Callable[..., Any], parts: Sequence[tuple], address: str | None) -> Iterator[tuple[int, Any]]:
    """``(index, fn(*parts[index]))`` for every part, as each finishes (in order when in-process).

    With ``address``, each part is one task on the cluster (``pure=False``: every part runs, even with equal
    arguments); ``fn`` must be importable by the workers (a module-level function). An exception in a part is
    raised here, after cancelling the parts not yet done."""
    if address is None:
        for i, args in enumerate(parts):
            yield i, fn(*args)
        return
    from distributed import as_completed

    client = connect(address)
    try:
        futures = [client.submit(fn, *args, pure=False, key=f"neuroharness-part-{i}-{os.getpid()}-{id(parts)}")
                   for i, args in enumerate(parts)]
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for future in as_completed(futures, loop=client.loop):
                yield index[future.key], future.result()
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        client.close()


def describe(address: str | None) -> str:
    """A phrase for status lines: where the parts run."""
    return "in this process" if address is None else f"on the dask cluster at {address}"


__all__ = ["ENV", "scheduler_address", "connect", "run_parts", "describe"]
