"""Shared fixtures.

``http_server``: a real HTTP server on 127.0.0.1 (random port) in a thread,
serving in-memory files, with ``Range`` support, a request log and
configurable failures, so downloads are tested without the internet.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import HealthCheck, settings

# Fuzz tests (tests/test_fuzz_*.py): the default profile keeps the whole fuzz run under a minute;
# `python -m pytest tests/test_fuzz_*.py --hypothesis-profile=fuzz-long` runs the long one.
settings.register_profile("default", max_examples=40, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("fuzz-long", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile("default")


@dataclass
class Request:
    """One request the server received, and what it answered."""

    method: str
    path: str
    headers: dict
    status: int = 0
    sent: int = 0  # body bytes the server sent (or, for a truncated response, sent before dropping)

    @property
    def range(self) -> str | None:
        return self.headers.get("Range")


@dataclass
class _File:
    data: bytes
    ranges: bool = True  # honour Range (206) or always answer 200 with the whole body
    fail: list = field(default_factory=list)  # status codes answered, one per request, before serving
    truncate: list = field(default_factory=list)  # body byte counts to stop after (then drop the connection)
    headers: dict = field(default_factory=dict)  # extra response headers (e.g. ETag, X-Repo-Commit)


class LocalHTTPServer:
    """Handle of the running server; see :func:`http_server`."""

    def __init__(self):
        self.files: dict[str, _File] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        state = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection; dropping it ends the body

            def log_message(self, *args):  # keep test output clean
                pass

            def do_HEAD(self):
                self._serve(head=True)

            def do_GET(self):
                self._serve(head=False)

            def _serve(self, head: bool):
                path = self.path.split("?", 1)[0]
                req = Request(self.command, path, dict(self.headers.items()))
                with state._lock:
                    state.requests.append(req)
                    f = state.files.get(path)
                    failure = f.fail.pop(0) if f is not None and f.fail else None
                    cut = f.truncate.pop(0) if f is not None and f.truncate else None
                if f is None or failure is not None:
                    req.status = 404 if f is None else failure
                    self.send_error(req.status)
                    return
                data, status, start = f.data, 200, 0
                rng = req.range if f.ranges else None
                if rng is not None:
                    m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
                    if m is None:
                        req.status = 400
                        self.send_error(400, "bad Range")
                        return
                    start = int(m.group(1))
                    end = int(m.group(2)) if m.group(2) else len(data) - 1
                    if start >= len(data):
                        req.status = 416
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    end = min(end, len(data) - 1)
                    status = 206
                    body = data[start : end + 1]
                else:
                    body = data
                req.status = status
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes" if f.ranges else "none")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{len(data)}")
                for k, v in f.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if head:
                    return
                if cut is not None:
                    body = body[:cut]
                req.sent = len(body)  # set before writing: the client may finish reading first
                self.wfile.write(body)
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="test-http-server", daemon=True)
        self._thread.start()

    # -- configuration -------------------------------------------------------
    def add(self, path: str, data: bytes, *, ranges: bool = True, headers: dict | None = None) -> str:
        """Serve ``data`` at ``path`` (``/x.bin``), with extra response ``headers``; return its URL."""
        path = "/" + path.lstrip("/")
        self.files[path] = _File(bytes(data), ranges=ranges, headers=dict(headers or {}))
        return self.url(path)

    def url(self, path: str) -> str:
        """URL of ``path`` on this server (served or not: unknown paths answer 404)."""
        return self.base + "/" + path.lstrip("/")

    def fail(self, path: str, *statuses: int) -> None:
        """Answer the next requests for ``path`` with these HTTP error statuses, in order."""
        self.files["/" + path.lstrip("/")].fail.extend(statuses)

    def truncate(self, path: str, *nbytes: int) -> None:
        """Drop the connection after ``nbytes`` body bytes on the next requests for ``path``."""
        self.files["/" + path.lstrip("/")].truncate.extend(nbytes)

    # -- inspection ----------------------------------------------------------
    def requests_for(self, path: str) -> list[Request]:
        path = "/" + path.lstrip("/")
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def http_server():
    """A :class:`LocalHTTPServer` on 127.0.0.1; stopped after the test.

    >>> url = http_server.add("/a.bin", b"...")            # serve bytes (Range honoured)
    >>> http_server.add("/b.bin", data, ranges=False)      # always 200 + full body
    >>> http_server.fail("/a.bin", 500, 503)               # next two requests fail
    >>> http_server.truncate("/a.bin", 1000)               # next response stops after 1000 bytes
    >>> http_server.requests_for("/a.bin")[0].range        # the Range header received
    """
    server = LocalHTTPServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty cache root for one test (``$NEUROHARNESS_HOME``), not created yet."""
    root = tmp_path / "home"
    monkeypatch.setenv("NEUROHARNESS_HOME", str(root))
    return root


@pytest.fixture(scope="session", autouse=True)
def nh_home(tmp_path_factory):
    """Every test session gets its own cache root, so tests never touch the
    user's cache and real-data stores are prepared once per session."""
    home = tmp_path_factory.mktemp("neuroharness_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROHARNESS_HOME", str(home))
        mp.setenv("NEUROHARNESS_QUIET", "1")
        yield home
