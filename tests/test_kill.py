"""Kill tests: ``prepare`` and ``run`` killed with SIGKILL at exact points, then rerun to completion.

Every command runs as ``python -m neuroharness.cli ...`` in a subprocess with its own
``NEUROHARNESS_HOME``, not quiet, so its status lines can be read from stderr. To kill
at a deterministic point rather than "somewhere after a line was printed", the
subprocess gets a ``sitecustomize`` (written by :func:`hook_dir`, first on its
``PYTHONPATH``; the harness itself is unchanged) that, when ``NH_KILLTEST_PAUSE`` says
so, stops the process right at a status line (``log:REGEX``), at the creation of a
progress bar (``bar:REGEX``, e.g. the checksum of a fresh store) or just before an
``os.replace`` onto a matching path (``replace:REGEX``: a record or store written but
not yet moved into place). It prints ``NH-KILLTEST paused at ...`` and sleeps; the test
reads that line and sends SIGKILL. Downloads are stopped mid-body by the local HTTP
server instead (:class:`HeldServer`): it sends part of a response, then waits until
the test has seen the bytes land in the partial file and killed the client.

What counts as a temporary file (:data:`TEMPORARY`), from the writers of the cache:

- ``.<name>.tmp-<hex>``: ``loaders.io.temp_sibling`` (``atomic_path``, the store being
  written by ``DatasetLoader.prepare``, the old store set aside by ``replace_dir``) and
  the ``mkdtemp(prefix=".<name>.tmp-")`` of the site writers; any other hidden ``.*tmp*``;
- ``<file>.part``: ``loaders.fetch.download``'s partial download (kept after a failure so
  the next run resumes it; it may remain between a kill and the rerun, never after a
  successful rerun of the same command);
- ``*.incomplete``: ``huggingface_hub``'s partial blob in the cache's ``huggingface/``.

After each successful rerun none of these may remain anywhere under ``NEUROHARNESS_HOME``
(or the record folder), the store opens, and its ``content_sha256`` equals both a clean
build without kills and a recomputation from the data.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import load_script

MiB = 1 << 20
TEMPORARY = re.compile(r"^\..*tmp|\.tmp-|\.part$|\.incomplete$")
LINE_TIMEOUT = 60  # seconds to wait for one expected line; generous, a run takes a few seconds

HOOK = r'''
"""Test hook of tests/test_kill.py (see its docstring): stop at one exact point so the test can SIGKILL there."""
import os as _os

_SPEC = _os.environ.get("NH_KILLTEST_PAUSE", "")
_TRACE_LOCKS = _os.environ.get("NH_KILLTEST_TRACE_LOCKS") == "1"

if _SPEC or _TRACE_LOCKS:
    import re as _re
    import sys as _sys
    import time as _time

    def _say(text):
        _sys.stderr.write(f"NH-KILLTEST {text}\n")
        _sys.stderr.flush()

    def _pause(what):
        _say(f"paused at {what}")
        while True:  # until the test kills this process
            _time.sleep(3600)

    _KIND, _, _PATTERN = _SPEC.partition(":")
    _RX = _re.compile(_PATTERN)
    if _KIND == "log":
        import logging as _logging

        class _PauseHandler(_logging.Handler):
            def emit(self, record):
                message = record.getMessage()
                if _RX.search(message):
                    _pause(f"log: {message}")

        _logging.getLogger("neuroharness").addHandler(_PauseHandler())
    elif _KIND == "bar":
        import tqdm.auto as _tqdm_auto

        class _PausingTqdm(_tqdm_auto.tqdm):
            def __init__(self, *args, **kwargs):
                desc = str(kwargs.get("desc") or "")
                if _RX.search(desc):
                    _pause(f"bar: {desc}")
                super().__init__(*args, **kwargs)

        _tqdm_auto.tqdm = _PausingTqdm
    elif _KIND == "replace":
        _replace = _os.replace

        def _pausing_replace(src, dst, *args, **kwargs):
            if _RX.search(_os.fspath(dst)):
                _pause(f"replace: {_os.fspath(src)} -> {_os.fspath(dst)}")
            return _replace(src, dst, *args, **kwargs)

        _os.replace = _pausing_replace
    elif _SPEC:
        raise SystemExit(f"NH_KILLTEST_PAUSE={_SPEC!r}: expected log:, bar: or replace: and a regular expression")

    if _TRACE_LOCKS:
        import filelock as _filelock

        _acquire = _filelock.BaseFileLock.acquire

        def _traced_acquire(self, *args, **kwargs):
            _say(f"lock-wait {self.lock_file}")
            out = _acquire(self, *args, **kwargs)
            _say(f"lock-held {self.lock_file}")
            return out

        _filelock.BaseFileLock.acquire = _traced_acquire
'''


# -- the subprocess ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hook_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("killtest_hook")
    (d / "sitecustomize.py").write_text(HOOK)
    return d


class CLI:
    """``python -m neuroharness.cli ARGS`` running; its stdout and stderr lines are collected as they come."""

    def __init__(self, args: list[str], env: dict, cwd: Path):
        self.args = args
        self.proc = subprocess.Popen([sys.executable, "-m", "neuroharness.cli", *args], env=env, cwd=cwd,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self._eof = {"out": False, "err": False}
        self._cv = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=(s, n), daemon=True)
                         for s, n in ((self.proc.stdout, "out"), (self.proc.stderr, "err"))]
        for t in self._readers:
            t.start()

    def _read(self, stream, name):
        for line in stream:
            with self._cv:
                getattr(self, name).append(line.rstrip("\n"))
                self._cv.notify_all()
        with self._cv:
            self._eof[name] = True
            self._cv.notify_all()

    @property
    def stderr(self) -> str:
        with self._cv:
            return "\n".join(self.err)

    def wait_line(self, pattern: str, timeout: float = LINE_TIMEOUT) -> str:
        """The first stderr line matching ``pattern``; fails with the stderr so far if none comes."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cv:
            while True:
                for line in self.err[seen:]:
                    if rx.search(line):
                        return line
                seen = len(self.err)
                left = deadline - time.monotonic()
                if self._eof["err"] or left <= 0:
                    break
                self._cv.wait(min(left, 1.0))
        self.kill()
        why = "exited" if self.proc.returncode not in (None, -signal.SIGKILL) else "timed out"
        pytest.fail(f"neuroharness {' '.join(self.args)}: {why} (rc {self.proc.returncode}) without a stderr line "
                    f"matching {pattern!r}; stderr:\n{self.stderr}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        for t in self._readers:
            t.join(10)

    def finish(self, timeout: float = 120) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"neuroharness {' '.join(self.args)} ran over {timeout} s; stderr:\n{self.stderr}")
        for t in self._readers:
            t.join(10)
        return rc


@pytest.fixture
def cli(hook_dir, tmp_path):
    """``cli(args, home, env={...}, pause="log:REGEX")`` starts a CLI; every one still running is killed at teardown."""
    started: list[CLI] = []
    inherited = {k: v for k, v in os.environ.items()
                 if k != "CI" and not k.startswith(("NEUROHARNESS_", "NH_KILLTEST_", "HF_"))}

    def start(args, home: Path, env: dict | None = None, pause: str | None = None, trace_locks: bool = False) -> CLI:
        e = dict(inherited)
        e.update(NEUROHARNESS_HOME=str(home), NEUROHARNESS_QUIET="0", PYTHONUNBUFFERED="1",
                 HF_HUB_OFFLINE="0", HF_HUB_DISABLE_TELEMETRY="1",
                 PYTHONPATH=os.pathsep.join(filter(None, [str(hook_dir), os.environ.get("PYTHONPATH")])))
        if pause:
            e["NH_KILLTEST_PAUSE"] = pause
        if trace_locks:
            e["NH_KILLTEST_TRACE_LOCKS"] = "1"
        e.update(env or {})
        p = CLI([str(a) for a in args], e, tmp_path)
        started.append(p)
        return p

    yield start
    for p in started:
        p.kill()


def run_ok(p: CLI) -> CLI:
    rc = p.finish()
    assert rc == 0, f"neuroharness {' '.join(p.args)} exited {rc}; stderr:\n{p.stderr}"
    return p


def killed_at(p: CLI, pause_line: str = r"^NH-KILLTEST paused at ") -> str:
    """Wait until the process stopped at its pause point, SIGKILL it there; return the pause line."""
    line = p.wait_line(pause_line)
    p.kill()
    assert p.proc.returncode == -signal.SIGKILL
    return line


def temporaries(root: Path) -> list[str]:
    """Temporary files and folders (:data:`TEMPORARY`) anywhere under ``root``, relative to it."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if TEMPORARY.search(p.name))


def wait_until(what: str, predicate, timeout: float = LINE_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting until {what}")
        time.sleep(0.01)


def size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


# -- a server that stops mid-response ------------------------------------------------------------
class Hold:
    """One response stopped after ``after`` body bytes: ``reached`` is set when it stops; after
    ``release`` the rest of the body is sent (``drop=False``) or never sent (the client was killed)."""

    def __init__(self, after: int, drop: bool):
        self.after, self.drop = after, drop
        self.reached, self.release = threading.Event(), threading.Event()


class _HeldWriter:
    def __init__(self, raw, handler):
        self._raw, self._h = raw, handler

    def write(self, data) -> int:
        h = self._h
        hold = getattr(h, "hold", None)
        if hold is None or not getattr(h, "in_body", False):
            return self._raw.write(data)
        view = memoryview(data).cast("B")
        room = max(0, hold.after - h.body_sent)
        if room:
            self._raw.write(view[:room])
            h.body_sent += min(room, len(view))
        if len(view) > room:
            hold.reached.set()
            hold.release.wait(120)
            if hold.drop:
                h.close_connection = True
            else:
                self._raw.write(view[room:])
                h.body_sent += len(view) - room
        return len(view)

    def __getattr__(self, name):
        return getattr(self._raw, name)


class HeldServer:
    """conftest's ``http_server``, whose GET responses can be held mid-body (:meth:`hold`)."""

    def __init__(self, server):
        self.server = server
        self._plans: dict[str, list[Hold]] = {}  # path -> holds of its next GETs
        self._made: list[Hold] = []
        self._lock = threading.Lock()
        plans = self

        class Handler(server.httpd.RequestHandlerClass):
            def setup(self):
                super().setup()
                self.wfile = _HeldWriter(self.wfile, self)

            def _serve(self, head):
                self.hold = None if head else plans._next(self.path.split("?", 1)[0])
                self.body_sent, self.in_body = 0, False
                super()._serve(head)

            def end_headers(self):
                super().end_headers()
                self.in_body = True

        server.httpd.RequestHandlerClass = Handler

    def hold(self, path: str, after: int, drop: bool = True) -> Hold:
        """Stop the next GET of ``path`` after ``after`` body bytes (see :class:`Hold`)."""
        h = Hold(after, drop)
        with self._lock:
            self._plans.setdefault("/" + path.lstrip("/"), []).append(h)
            self._made.append(h)
        return h

    def _next(self, path: str) -> Hold | None:
        with self._lock:
            plan = self._plans.get(path)
            return plan.pop(0) if plan else None

    def release_all(self) -> None:
        """Let every stopped response go on (so handler threads end before the server shuts down)."""
        with self._lock:
            for h in self._made:
                h.release.set()

    def gets(self, path: str) -> list[str | None]:
        """The Range header of every GET of ``path`` so far, in order (None: the whole file)."""
        return [r.range for r in self.server.requests_for(path) if r.method == "GET"]


@pytest.fixture
def held(http_server):
    server = HeldServer(http_server)
    yield server
    server.release_all()


def kill_mid_download(p: CLI, hold: Hold, part: Path, have: int) -> int:
    """Kill ``p`` once the server stopped ``hold`` and the bytes before it reached ``part``; return its size.

    The client writes whole blocks of ``loaders.fetch.CHUNK`` (or, if that changes, what it received)."""
    from neuroharness.loaders.fetch import CHUNK

    if not hold.reached.wait(LINE_TIMEOUT):
        p.kill()
        pytest.fail(f"the server never reached {hold.after} bytes of the download; stderr:\n{p.stderr}")
    expected = {have + hold.after, have + hold.after // CHUNK * CHUNK} - {have}
    wait_until(f"{part} holds one of {sorted(expected)} bytes (now {size(part)})", lambda: size(part) in expected)
    p.kill()
    hold.release.set()
    return size(part)


# -- VesselGraph: download (resumed), homogenizing, store writing ---------------------------------
VG_GRAPHS = {"synthetic_graph_1": 34000, "synthetic_graph_2": 800}  # graph 1: a 3.6 MB zip, several 1 MiB blocks
VG_PREPARE = ["datasets", "prepare", "vesselgraph", "--only", *VG_GRAPHS]


@pytest.fixture(scope="module")
def vg_zips(tmp_path_factory) -> dict[str, bytes]:
    """Release zips made by scripts/make_vesselgraph_fixture.py: ``{graph: zip bytes}``."""
    gen = load_script("make_vesselgraph_fixture")
    root = tmp_path_factory.mktemp("vg_release")
    info = gen.write_release(root, graphs=VG_GRAPHS, seed=0, zip=True)
    zips = {g: e["zip"].read_bytes() for g, e in info.items()}
    assert len(zips["synthetic_graph_1"]) > 3 * MiB  # the kills below need at least three blocks
    return zips


@pytest.fixture
def vg_served(http_server, vg_zips) -> dict:
    """The zips on the local server; the environment that points the loader at it (the mirror variable)."""
    from neuroharness.loaders.vesselgraph.download import ENV_MIRROR

    for g, data in vg_zips.items():
        http_server.add(f"/mirror/{g}.zip", data)
    return {ENV_MIRROR: http_server.url("/mirror/")}


def vg_store(home: Path) -> Path:
    return home / "datasets" / "vesselgraph" / "1.0.zarr"


def store_attrs(store: Path) -> dict:
    return dict(json.loads((store / ".zmetadata").read_text())["metadata"][".zattrs"])


def clean_build(name: str, home: Path, env: dict, monkeypatch, **kwargs) -> dict:
    """Root attributes of ``name`` prepared without kills, in this process (same code, no interpreter start)."""
    from neuroharness.loaders import get_loader

    with monkeypatch.context() as m:
        m.setenv("NEUROHARNESS_HOME", str(home))
        for k, v in env.items():
            m.setenv(k, v)
        return store_attrs(get_loader(name).prepare(**kwargs))


def check_vg_store(store: Path, clean: dict, vg_zips: dict) -> None:
    """The store opens, holds both graphs whole, and its checksums equal the clean build's and the data's."""
    import xarray as xr

    from neuroharness.loaders.base import tree_checksums
    from neuroharness.loaders.vesselgraph import graph_index

    tree = xr.open_datatree(store, engine="zarr", consolidated=True, chunks=None)
    idx = graph_index(tree)
    assert idx["graph"].tolist() == list(VG_GRAPHS) and idx["n_nodes"].tolist() == list(VG_GRAPHS.values())
    attrs = store_attrs(store)
    content, parts = tree_checksums(tree)
    assert attrs["content_sha256"] == clean["content_sha256"] == content
    assert json.loads(attrs["parts_sha256"]) == json.loads(clean["parts_sha256"]) == parts
    assert json.loads(attrs["raw_sha256"]) == {f"{g}/{g}.zip": hashlib.sha256(data).hexdigest()
                                               for g, data in vg_zips.items()}


def test_prepare_vesselgraph_killed_at_each_stage(cli, held, vg_served, vg_zips, tmp_path, monkeypatch):
    """Kills during the download (twice, each resumed with Range), between downloads, at homogenizing, half-way
    through the store, at its checksum; then a rebuild (--force) killed between the two renames that swap the
    store, at "wrote" and at its checksum. Each rerun ends with a store equal to a clean build and no temporary
    file."""
    clean = clean_build("vesselgraph", tmp_path / "clean", vg_served, monkeypatch, only=list(VG_GRAPHS))
    held.server.clear()
    home = tmp_path / "home"
    store, big = vg_store(home), "/mirror/synthetic_graph_1.zip"
    part = home / "downloads" / "vesselgraph" / "synthetic_graph_1.zip.part"
    prepare = lambda *extra, pause=None: cli(VG_PREPARE + list(extra), home, vg_served, pause=pause)  # noqa: E731

    # 1. mid-download: the first block is in the .part file, the rest is still on its way
    hold = held.hold(big, after=3 * MiB // 2)
    first = kill_mid_download(prepare(), hold, part, have=0)
    assert first > 0 and not store.exists() and temporaries(home) == [str(part.relative_to(home))]

    # 2. the rerun resumes where the partial ends, and is killed mid-download again
    hold = held.hold(big, after=3 * MiB // 2)
    second = kill_mid_download(prepare(), hold, part, have=first)
    assert second > first and not store.exists()

    # 3. between the two downloads: graph 1's archive complete and verified, graph 2's not started
    killed_at(prepare(pause=r"log:synthetic_graph_2: synthetic_graph_2\.zip \("))
    assert (home / "downloads" / "vesselgraph" / "synthetic_graph_1.zip").read_bytes() == vg_zips["synthetic_graph_1"]
    assert temporaries(home) == [] and not store.exists()

    # 4. at "homogenizing": every raw file there, no store begun
    killed_at(prepare(pause=r"log:\] homogenizing "))
    assert temporaries(home) == [] and not store.exists()

    # 5. half-way through writing the store: graph 1 written into the temporary store, graph 2 not yet
    killed_at(prepare(pause=r"log:\] synthetic_graph_2: .*_processed\.csv"))
    (tmp,) = store.parent.glob(".1.0.zarr.tmp-*")
    assert (tmp / "synthetic_graph_1" / ".zgroup").is_file() and not (tmp / "synthetic_graph_2").exists()
    assert not store.exists()

    # 6. at the checksum: the temporary store is complete but not checked, attributed or consolidated
    killed_at(prepare(pause=r"bar:\[vesselgraph\] checksum"))
    assert not store.exists() and len(list(store.parent.glob(".1.0.zarr.tmp-*"))) == 1  # step 5's was removed

    # the rerun finishes: same store as the clean build, nothing temporary left, each file fetched once in all
    p = run_ok(prepare())
    assert p.out == [str(store)] and "] wrote " in p.stderr
    check_vg_store(store, clean, vg_zips)
    assert temporaries(home) == []
    assert held.gets(big) == [None, f"bytes={first}-", f"bytes={second}-"]  # resumed twice, never from 0 again
    assert held.gets("/mirror/synthetic_graph_2.zip") == [None]

    # 7. --force killed between the two renames of the swap: the old store is set aside, the new one not yet in
    #    place; rerunning the command rebuilds from the cached downloads and removes both
    killed_at(prepare("--force", pause=r"replace:/datasets/vesselgraph/1\.0\.zarr$"))
    assert not store.exists() and len([t for t in temporaries(home) if ".1.0.zarr.tmp-" in t]) == 2
    run_ok(prepare("--force"))
    check_vg_store(store, clean, vg_zips)
    assert temporaries(home) == []

    # 8. --force killed at "wrote": the new store is in place and complete
    killed_at(prepare("--force", pause=r"log:\] wrote "))
    check_vg_store(store, clean, vg_zips)
    p = run_ok(prepare())
    assert "homogenizing" not in p.stderr and temporaries(home) == []
    assert held.gets(big) == [None, f"bytes={first}-", f"bytes={second}-"]  # rebuilds use the cached archives

    # 9. --force killed at its checksum leaves the old store as it was; the next plain prepare reuses that store
    #    and removes the abandoned temporary store (a whole store's size) instead of keeping it for ever
    killed_at(prepare("--force", pause=r"bar:\[vesselgraph\] checksum"))
    check_vg_store(store, clean, vg_zips)
    assert [t for t in temporaries(home) if ".1.0.zarr.tmp-" in t]
    p = run_ok(prepare())
    assert p.out == [str(store)] and "homogenizing" not in p.stderr
    check_vg_store(store, clean, vg_zips)
    assert temporaries(home) == [], "a prepare that reuses the store keeps the killed rebuild's temporary store"


def test_two_concurrent_prepares_build_once(cli, held, vg_served, vg_zips, tmp_path, monkeypatch):
    """Two prepares of one dataset started together: one builds while the other waits for the lock, then reuses
    the store. Both exit 0, each archive is downloaded once, the store equals a clean build."""
    clean = clean_build("vesselgraph", tmp_path / "clean", vg_served, monkeypatch, only=list(VG_GRAPHS))
    held.server.clear()
    home = tmp_path / "home"
    big = "/mirror/synthetic_graph_1.zip"
    # the builder's download is held until the other process is known to wait for the lock
    hold = held.hold(big, after=MiB, drop=False)
    procs = [cli(VG_PREPARE, home, vg_served, trace_locks=True) for _ in range(2)]
    assert hold.reached.wait(LINE_TIMEOUT), "no download started:\n" + "\n---\n".join(p.stderr for p in procs)
    wait_until("one process says it fetches", lambda: any("fetching raw files" in p.stderr for p in procs))
    (builder,) = [p for p in procs if "fetching raw files" in p.stderr]
    (waiter,) = [p for p in procs if p is not builder]
    lock = r"\S*vesselgraph\S*\.lock"
    waiter.wait_line(rf"^NH-KILLTEST lock-wait {lock}$")
    assert not re.search(rf"lock-held {lock}", waiter.stderr) and "fetching raw files" not in waiter.stderr
    hold.release.set()
    for p in procs:
        run_ok(p)
        assert p.out == [str(vg_store(home))]
    assert "] wrote " in builder.stderr
    assert re.search(rf"lock-held {lock}", waiter.stderr)  # it got the lock once the builder let go
    assert not re.search(r"fetching raw files|homogenizing|\] wrote ", waiter.stderr), waiter.stderr
    assert held.gets(big) == [None] and held.gets("/mirror/synthetic_graph_2.zip") == [None]
    check_vg_store(vg_store(home), clean, vg_zips)
    assert temporaries(home) == []


# -- C. elegans activity through a local server speaking the Hub's protocol ----------------------------
@pytest.fixture(scope="module")
def activity_parquet_bytes(tmp_path_factory) -> bytes:
    fx = load_script("make_celegans_activity_fixture")
    (path,) = fx.write_activity_fixture(tmp_path_factory.mktemp("activity_raw"), n_worms=14, seed=3, wide=True,
                                        max_len=1500)
    data = path.read_bytes()
    assert len(data) > 20 * MiB  # more than two of huggingface_hub's 10 MiB write blocks
    return data


def test_prepare_celegans_activity_killed_at_each_stage(cli, held, http_server, activity_parquet_bytes, tmp_path,
                                                        monkeypatch):
    """celegans-activity from the Hub protocol (HF_ENDPOINT): killed mid-download, at homogenizing and at the
    checksum; the rerun's store equals a clean build and no partial download remains in the cache."""
    import xarray as xr

    from neuroharness.loaders.base import content_checksum
    from neuroharness.loaders.celegans import activity_parquet
    from test_celegans_activity import _serve_hf

    data = activity_parquet_bytes
    commit = hashlib.sha1(b"killtest").hexdigest()
    _serve_hf(http_server, data, commit, hashlib.sha256(data).hexdigest())
    env = {"HF_ENDPOINT": http_server.base}
    args = ["datasets", "prepare", "celegans-activity"]
    clean = clean_build("celegans-activity", tmp_path / "clean", env, monkeypatch)
    http_server.clear()
    home = tmp_path / "home"
    store = home / "datasets" / "celegans-activity" / "1.0.zarr"
    resolve = f"/datasets/{activity_parquet.HF_REPO}/resolve/{commit}/{activity_parquet.HF_FILES[0]}"

    # 1. mid-download: huggingface_hub writes blocks (10 MiB) to a <etag>.<hex>.incomplete file
    hold = held.hold(resolve, after=12 * MiB)
    p = cli(args, home, env)
    if not hold.reached.wait(LINE_TIMEOUT):
        p.kill()
        pytest.fail(f"no GET of {resolve} was held; requests: "
                    f"{[(r.method, r.path) for r in http_server.requests]}; stderr:\n{p.stderr}")

    def partial() -> list[Path]:
        return list((home / "huggingface").rglob("*.incomplete"))

    wait_until("a partial download is on disk", lambda: any(size(f) > 0 for f in partial()))
    p.kill()
    hold.release.set()
    assert partial() and not store.exists()

    # 2. at "homogenizing" and 3. at the checksum of the written store
    killed_at(cli(args, home, env, pause=r"log:\] homogenizing "))
    killed_at(cli(args, home, env, pause=r"bar:\[celegans-activity\] checksum"))
    assert not store.exists() and list(store.parent.glob(".1.0.zarr.tmp-*"))

    p = run_ok(cli(args, home, env))
    assert p.out == [str(store)]
    ds = xr.open_zarr(store, consolidated=True, chunks=None)
    attrs = store_attrs(store)
    assert attrs["content_sha256"] == clean["content_sha256"] == content_checksum(ds)
    assert ds.sizes["worm"] == 14 and ds.sizes["neuron"] == 302
    assert json.loads(attrs["raw_sha256"]) == {activity_parquet.HF_FILES[0]: hashlib.sha256(data).hexdigest()}
    # the file itself was fetched twice: huggingface_hub downloads into a temporary file unique to each process,
    # so a partial download cannot be resumed by another process; a Range request, if any, continues a partial
    gets = held.gets(resolve)
    assert len(gets) == 2 and all(r is None or re.fullmatch(r"bytes=\d+-", r) for r in gets), gets
    assert temporaries(home) == [], "the killed download's partial file is never removed"


# -- run: records --------------------------------------------------------------------------------
RUN_TASK, RUN_MODEL, RUN_SEEDS = "celegans-structure-function", "chance", (0, 1, 2)


def records_of(folder: Path) -> dict[int, dict]:
    from neuroharness.leaderboards.records import read_records, record_digest

    out = {}
    for _, rec in read_records(folder):  # schema, card ranges and record_digest
        assert rec["record_digest"] == record_digest(rec)
        out[rec["seed"]] = rec
    return out


def outcome(rec: dict) -> dict:
    """What a record states about the run, without when and where it ran."""
    return {k: rec[k] for k in ("task", "datasets", "split", "split_sha256", "seed", "model", "metrics",
                                "validation_metrics")}


@pytest.mark.skipif(importlib.util.find_spec("cect") is None or importlib.util.find_spec("wormneuroatlas") is None,
                    reason="needs the cect and wormneuroatlas wheels (the data of celegans-structure-function): "
                           "pip install --no-deps cect==0.3.5 wormneuroatlas==0.0.7.3")
def test_run_killed_between_and_during_records(cli, tmp_path):
    """`run` killed after its first record, while writing the second (written, not yet renamed), and a --force
    rerun killed while replacing a finished record: every rerun keeps the finished records, completes the rest,
    and leaves exactly the valid records of an uninterrupted run and no temporary file."""
    home = tmp_path / "home"

    def run(out: Path, *extra, pause=None) -> CLI:
        return cli(["run", RUN_TASK, "--model", RUN_MODEL, "--seeds", *RUN_SEEDS, "--out", out, *extra], home,
                   pause=pause)

    clean_dir, out = tmp_path / "clean", tmp_path / "out"
    run_ok(run(clean_dir))
    clean = records_of(clean_dir)
    assert sorted(clean) == list(RUN_SEEDS)
    name = {s: f"{RUN_TASK}__{RUN_MODEL}__seed{s}.json" for s in RUN_SEEDS}

    # 1. between records: seed 0's record written, seed 1 not begun
    killed_at(run(out, pause=rf"log:{RUN_MODEL} seed 0: \w+ = "))
    assert sorted(p.name for p in out.iterdir()) == [name[0]]
    assert outcome(records_of(out)[0]) == outcome(clean[0])

    # 2. while writing seed 1's record: its temporary file is complete, the rename has not happened
    p = run(out, pause=r"replace:seed1\.json$")
    killed_at(p)
    assert re.search(rf"seed 0: kept .*{re.escape(name[0])}", p.stderr)
    assert sorted(q.name for q in out.iterdir() if not TEMPORARY.search(q.name)) == [name[0]]
    assert len(list(out.glob(f".{name[1]}.tmp-*"))) == 1

    p = run_ok(run(out))
    assert re.search(r"seed 0: kept ", p.stderr) and not re.search(r"seed [12]: kept ", p.stderr)
    got = records_of(out)
    assert {s: outcome(r) for s, r in got.items()} == {s: outcome(r) for s, r in clean.items()}
    assert sorted(q.name for q in out.iterdir()) == sorted(name.values()), "a killed write's temporary file remains"

    # 3. --force killed while replacing seed 2's finished record: the old record stays whole; the plain rerun
    #    keeps all three and removes the abandoned temporary file
    before = (out / name[2]).read_bytes()
    killed_at(run(out, "--force", pause=r"replace:seed2\.json$"))
    assert (out / name[2]).read_bytes() == before and len(list(out.glob(f".{name[2]}.tmp-*"))) == 1
    p = run_ok(run(out))
    assert len(re.findall(r"seed \d: kept ", p.stderr)) == 3
    assert {s: outcome(r) for s, r in records_of(out).items()} == {s: outcome(r) for s, r in clean.items()}
    assert sorted(q.name for q in out.iterdir()) == sorted(name.values())
    assert temporaries(home) == []
