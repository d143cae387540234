"""Heavy work spread over a dask.distributed cluster, one cluster task per independent part.

Without a scheduler address everything runs in this process, as it always did. With one
(``--dask-scheduler ADDRESS`` or ``$NEUROHARNESS_DASK_SCHEDULER``, e.g. ``tcp://10.0.0.5:8786``,
what ``dask scheduler`` prints), the parts are submitted to that cluster, one task each:

- ``neuroharness run``: each (model, seed) pair; the records come back and are written here.
- ``datasets prepare``: each part of a tree store (FISBe sample, vessel graph, NSD subject, EEG
  recording) is written by a worker into this process's temporary store, which therefore must be on a
  filesystem the workers share (checked before any part runs); the index, the checks, the checksums and
  the atomic rename stay here, so the store is the one a single process writes.
- ``evaluate`` of FISBe: each sample's metrics (the prediction file must be shared too).

Workers must import the same neuroharness version and see the same stores (a shared ``NEUROHARNESS_HOME``,
local or a URL). Code already running on a worker never submits more tasks: there it runs in-process.
"""
from __future__ import annotations

import collections
import contextlib
import contextvars
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from neuroharness.errors import NeuroharnessError, UsageError

ENV = "NEUROHARNESS_DASK_SCHEDULER"
_USING: contextvars.ContextVar[str | None] = contextvars.ContextVar("neuroharness_dask_scheduler", default=None)


def scheduler_address(given: str | None = None) -> str | None:
    """The scheduler to use: ``given`` (the command-line flag), else the one of an enclosing :func:`using`, else
    ``$NEUROHARNESS_DASK_SCHEDULER``, else None (run in-process). An empty value means in-process too."""
    if given is None:
        given = _USING.get()
    value = given if given is not None else os.environ.get(ENV, "")
    value = value.strip()
    if not value or (given is None and on_worker()):
        return None
    if "://" not in value and ":" not in value:
        raise UsageError(f"dask scheduler {value!r}: expected an address such as tcp://HOST:8786 (what `dask "
                         "scheduler` prints)")
    return value


@contextlib.contextmanager
def using(address: str | None):
    """Within the block, :func:`scheduler_address` answers ``address`` where no address is given (code deep
    in a task, e.g. FISBe's per-sample scoring, sees the command's ``--dask-scheduler``); None changes nothing."""
    token = _USING.set(address) if address is not None else None
    try:
        yield
    finally:
        if token is not None:
            _USING.reset(token)


def on_worker() -> bool:
    """Whether this code runs inside a dask worker (there the environment's scheduler is not used again:
    a task waiting on tasks of its own cluster can starve it)."""
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


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


def run_parts(fn: Callable[..., Any], parts: Sequence[tuple], address: str | None,
              shared: Sequence[str] = (), purpose: str = "") -> Iterator[tuple[int, Any]]:
    """``(index, fn(*parts[index]))`` for every part, as each finishes (in order when in-process).

    With ``address``, each part is one task on the cluster (``pure=False``: every part runs, even with equal
    arguments); ``fn`` must be importable by the workers (a module-level function). ``shared``: local paths
    the workers must see (e.g. the store being written and the raw files); a worker that does not is an
    error naming them, before any part runs (``purpose`` says what needs them). An exception in a part is
    raised here, after cancelling the parts not yet done."""
    if address is None:
        for i, args in enumerate(parts):
            yield i, fn(*args)
        return
    from distributed import Event, as_completed

    with _session(address, shared, purpose) as (client, run_id):
        stop = Event(f"neuroharness-stop-{run_id}", client=client)
        futures = [client.submit(_unless_stopped, stop.name, fn, *args, pure=False,
                                 key=f"neuroharness-part-{i}-{run_id}") for i, args in enumerate(parts)]
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for future in as_completed(futures, loop=client.loop):
                yield index[future.key], future.result()
        except Exception:
            # a cancelled task that already runs goes on writing; so the parts not started return at once
            # and the running ones finish before the caller cleans up (at most one part per worker)
            stop.set()
            client.gather(futures, errors="skip")
            raise
        except BaseException:  # Ctrl-C: leave now; a later run removes what a late part wrote
            stop.set()
            client.cancel(futures)
            raise


def map_ordered(fn: Callable[..., Any], parts: Sequence[tuple], address: str | None, *, window: int | None = None,
                shared: Sequence[str] = (), purpose: str = "") -> Iterator[Any]:
    """``fn(*args)`` for every part, yielded in the order of ``parts``, for parts that only compute (write
    nothing) and whose results the caller must consume in order (e.g. sums that must add up bit for bit).

    With ``address``, at most ``window`` parts (default: twice the cluster's threads) are submitted or held
    at a time, so finished results wait on the workers, not in this process; an error cancels the rest.
    Without, the parts run here one by one as they are consumed."""
    if address is None:
        for args in parts:
            yield fn(*args)
        return
    with _session(address, shared, purpose) as (client, run_id):
        window = window or 2 * max(1, sum(client.nthreads().values()))
        todo = iter(enumerate(parts))
        pending: collections.deque = collections.deque()

        def submit_next() -> None:
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(client.submit(fn, *nxt[1], pure=False, key=f"neuroharness-map-{nxt[0]}-{run_id}"))

        for _ in range(window):
            submit_next()
        try:
            while pending:
                result = pending.popleft().result()  # the future is dropped: the cluster forgets its result
                submit_next()
                yield result
        except BaseException:  # an error, or the consumer stopped (GeneratorExit)
            client.cancel(list(pending))
            raise


@contextlib.contextmanager
def _session(address: str, shared: Sequence[str], purpose: str):
    """``(client, run id)`` for one batch of parts, after checking that every worker sees ``shared``."""
    client = connect(address)
    try:
        if shared:
            _check_shared(client, address, [str(p) for p in shared], purpose)
        yield client, f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    finally:
        client.close()


def _unless_stopped(stop: str, fn, *args):
    """``fn(*args)`` on a worker, unless the run already failed (the event named ``stop`` is set)."""
    from distributed import Event, get_client

    if Event(stop, client=get_client()).is_set():
        return None
    return fn(*args)


def _missing_paths(paths: list[str]) -> list[str]:
    return [p for p in paths if not os.path.exists(p)]


def _check_shared(client, address: str, paths: list[str], purpose: str) -> None:
    """Every worker sees ``paths`` (a shared filesystem), or a :class:`UsageError` naming a worker and a path."""
    missing = {w: m for w, m in client.run(_missing_paths, paths).items() if m}
    if missing:
        worker, lost = sorted(missing.items())[0]
        raise UsageError(
            f"the dask worker {worker} (cluster {address}) cannot see {lost[0]}"
            + (f" (nor {len(lost) - 1} more path(s))" if len(lost) > 1 else "")
            + f"; {purpose or 'the parts'} must be on a filesystem shared by this machine and every worker "
            "(e.g. NEUROHARNESS_HOME and --source on NFS or Lustre), or run without --dask-scheduler")


def describe(address: str | None) -> str:
    """A phrase for status lines: where the parts run."""
    return "in this process" if address is None else f"on the dask cluster at {address}"


__all__ = ["ENV", "scheduler_address", "using", "on_worker", "connect", "run_parts", "map_ordered", "describe"]
