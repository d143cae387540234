"""A local stand-in for the Hugging Face Hub: the HTTP endpoints that huggingface_hub 2.4 calls to create a
repository, commit files (regular git blobs only), resolve revisions, list trees and download files.

Importable by tests (``tests/`` is on ``sys.path`` under pytest)::

    server = HubServer()                      # 127.0.0.1, random port, in a thread
    monkeypatch.setenv("HF_ENDPOINT", server.base)
    ...                                       # HfApi / hf_hub_download / snapshot_download against it
    server.files("org/name")                  # {path: bytes} at the head of main
    server.tamper("org/name", "1.0.zarr/x/0", b"...")   # serve other bytes for a file from now on
    server.close()

What each endpoint answers, as huggingface.co does (``TYPE`` is ``datasets``, ``models`` or ``spaces``):

- ``POST /api/repos/create``: ``{"url": ...}``; 409 when the repository exists (``exist_ok`` relies on it).
  The new repository has one commit on ``main`` holding ``.gitattributes``.
- ``POST /api/TYPE/ID/branch/BRANCH``: a branch from ``startingPoint`` (default ``main``); 409 if it exists.
- ``POST /api/validate-yaml``: the front matter of a README must be a YAML mapping (400 with ``errors`` if not).
- ``POST /api/TYPE/ID/preupload/REV``: every file is ``"regular"``, so commits carry their bytes in base64
  and no LFS or Xet upload happens (``hf_xet`` is never called: the upload mode decides, not its presence).
- ``POST /api/TYPE/ID/commit/REV``: an NDJSON body (header, ``file`` with base64 content, ``deletedFile``,
  ``deletedFolder``); a ``parentCommit`` that is not the branch head is refused (412), ``lfsFile`` too (400).
- ``GET /api/TYPE/ID[/revision/REV]``: ``id``, ``sha`` (the commit the revision resolves to), ``private``,
  ``siblings``.
- ``GET /api/TYPE/ID/tree/REV[/PATH]?recursive=&cursor=``: files (``oid`` = git blob sha1, ``size``) and
  directories, :attr:`HubServer.page_size` entries per page with a ``Link: <...>; rel="next"`` header.
- ``HEAD``/``GET /[TYPE/]ID/resolve/REV/PATH``: the bytes (``Range`` honoured) with ``ETag`` (the blob oid),
  ``X-Repo-Commit`` and ``Content-Length``, which ``hf_hub_download`` requires.
- ``GET /api/agent-harnesses``: an empty registry (huggingface_hub fetches it once per process, from the endpoint
  it read at import, to describe its caller in the User-Agent unless ``HF_HUB_DISABLE_TELEMETRY``).

Errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) so the client raises
its own exception types. With :attr:`HubServer.token` set, the write endpoints answer 401 unless the request
carries ``Authorization: Bearer <token>``.
"""
from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

TYPES = {"datasets": "dataset", "models": "model", "spaces": "space"}
GITATTRIBUTES = b"*.zarr/** -text\n"


def blob_oid(data: bytes) -> str:
    """The git blob sha1 of ``data`` (what the Hub reports as a regular file's ``oid`` and ETag)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    sha: str
    parent: str | None
    message: str
    files: dict[str, bytes]


@dataclass
class Repo:
    type: str  # "dataset", "model" or "space"
    id: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit sha
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        """The commit of a branch name or of a full commit sha; None if neither."""
        sha = self.branches.get(revision, revision)
        return self.commits.get(sha)


class _Error(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra or {}


class HubServer:
    """The running server; see the module docstring. ``requests`` logs ``(method, path)`` of every request,
    ``unknown`` those to endpoints it does not implement (answered 404)."""

    def __init__(self, page_size: int = 1000, token: str | None = None):
        self.repos: dict[tuple[str, str], Repo] = {}
        self.page_size = page_size
        self.token = token
        self.requests: list[tuple[str, str]] = []
        self.unknown: list[tuple[str, str]] = []  # requests to endpoints this server does not implement
        self.overrides: dict[tuple[str, str, str], bytes] = {}  # (type, id, path) -> bytes served instead
        self._lock = threading.Lock()
        self._counter = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server._handle(self, "GET")

            def do_HEAD(self):
                server._handle(self, "HEAD")

            def do_POST(self):
                server._handle(self, "POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="test-hub-server", daemon=True)
        self._thread.start()

    # -- inspection and test hooks -----------------------------------------------------------------
    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "dataset") -> dict[str, bytes]:
        """``{path: bytes}`` of the commit ``revision`` resolves to."""
        with self._lock:
            return dict(self.repo(repo_id, repo_type).resolve(revision).files)

    def head(self, repo_id: str, branch: str = "main", repo_type: str = "dataset") -> str:
        """The commit sha at the head of ``branch``."""
        return self.repo(repo_id, repo_type).branches[branch]

    def history(self, repo_id: str, branch: str = "main", repo_type: str = "dataset") -> list[Commit]:
        """The commits of ``branch``, newest first (the repository's initial commit last)."""
        repo = self.repo(repo_id, repo_type)
        out, sha = [], repo.branches[branch]
        while sha is not None:
            out.append(repo.commits[sha])
            sha = repo.commits[sha].parent
        return out

    def tamper(self, repo_id: str, path: str, data: bytes, repo_type: str = "dataset") -> None:
        """Serve ``data`` for ``path`` from now on, at every revision, while the tree listing keeps the committed
        size and oid: what a damaged or compromised storage backend would do."""
        with self._lock:
            self.overrides[(repo_type, repo_id, path)] = bytes(data)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    # -- request handling --------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(h.path)
        with self._lock:
            self.requests.append((method, url.path))
        body = b""
        if method == "POST":
            body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        try:
            with self._lock:
                status, headers, payload = self._route(method, url.path, parse_qs(url.query), body, h.headers)
        except _Error as e:
            status, payload = e.status, json.dumps({"error": e.message, **e.extra}).encode()
            headers = {"Content-Type": "application/json", "X-Error-Message": e.message}
            if e.code:
                headers["X-Error-Code"] = e.code
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        if "Content-Length" not in headers:
            h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        if method != "HEAD":
            h.wfile.write(payload)

    def _route(self, method, path, query, body, headers):
        segments = [unquote(s) for s in path.split("/")[1:]]
        if method == "POST" and segments[:3] == ["api", "repos", "create"]:
            self._authorize(headers)
            return self._create_repo(json.loads(body))
        if method == "GET" and segments[:2] == ["api", "agent-harnesses"]:  # huggingface_hub's user-agent registry
            return self._json({"standardEnvVars": [], "harnesses": {}})
        if method == "POST" and segments[:2] == ["api", "validate-yaml"]:
            return self._validate_yaml(json.loads(body))
        if segments[:1] == ["api"] and len(segments) >= 4 and segments[1] in TYPES:
            repo = self._repo(TYPES[segments[1]], f"{segments[2]}/{segments[3]}")
            action, rest = (segments[4], segments[5:]) if len(segments) > 4 else (None, [])
            if method == "GET" and action is None:
                return self._info(repo, "main")
            if method == "GET" and action == "revision" and rest:
                return self._info(repo, "/".join(rest))
            if method == "GET" and action == "tree" and rest:
                return self._tree(repo, rest[0], "/".join(rest[1:]), query, path)
            if method == "POST" and action == "preupload" and rest:
                self._authorize(headers)
                return self._preupload(repo, json.loads(body))
            if method == "POST" and action == "commit" and rest:
                self._authorize(headers)
                return self._commit(repo, "/".join(rest), body)
            if method == "POST" and action == "branch" and rest:
                self._authorize(headers)
                return self._branch(repo, "/".join(rest), json.loads(body or b"{}"))
        if method in ("GET", "HEAD") and "resolve" in segments:
            i = segments.index("resolve")
            prefix = segments[:i]
            kind = TYPES.get(prefix[0]) if len(prefix) == 3 else ("model" if len(prefix) == 2 else None)
            if kind is not None and len(segments) > i + 2:
                repo = self._repo(kind, "/".join(prefix[-2:]))
                return self._resolve(repo, segments[i + 1], "/".join(segments[i + 2:]), headers)
        self.unknown.append((method, path))
        raise _Error(404, f"no such endpoint: {method} {path}")

    def _authorize(self, headers) -> None:
        if self.token is not None and headers.get("Authorization") != f"Bearer {self.token}":
            raise _Error(401, "Invalid username or password.")

    def _repo(self, kind: str, repo_id: str) -> Repo:
        repo = self.repos.get((kind, repo_id))
        if repo is None:
            raise _Error(404, "Repository not found", "RepoNotFound")
        return repo

    def _commit_of(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise _Error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def _new_commit(self, repo: Repo, parent: str | None, message: str, files: dict[str, bytes]) -> Commit:
        self._counter += 1
        digest = json.dumps([parent, message, self._counter, sorted((p, blob_oid(d)) for p, d in files.items())])
        commit = Commit(hashlib.sha1(digest.encode()).hexdigest(), parent, message, files)
        repo.commits[commit.sha] = commit
        return commit

    def _url(self, repo: Repo) -> str:
        prefix = "" if repo.type == "model" else f"{repo.type}s/"
        return f"{self.base}/{prefix}{repo.id}"

    @staticmethod
    def _json(obj, status: int = 200, headers: dict | None = None):
        return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(obj).encode()

    # -- endpoints ---------------------------------------------------------------------------------
    def _create_repo(self, payload: dict):
        kind = payload.get("type") or "model"
        repo_id = f"{payload.get('organization')}/{payload['name']}"
        if (kind, repo_id) in self.repos:  # the Hub names the existing repository (create_repo reads "url")
            raise _Error(409, "You already created this repo", extra={"url": self._url(self.repos[(kind, repo_id)])})
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        repo = Repo(kind, repo_id, private)
        first = self._new_commit(repo, None, "initial commit", {".gitattributes": GITATTRIBUTES})
        repo.branches["main"] = first.sha
        self.repos[(kind, repo_id)] = repo
        return self._json({"url": self._url(repo), "name": repo_id})

    def _branch(self, repo: Repo, branch: str, payload: dict):
        if branch in repo.branches:
            raise _Error(409, f"Reference refs/heads/{branch} already exists")
        repo.branches[branch] = self._commit_of(repo, payload.get("startingPoint") or "main").sha
        return self._json({})

    @staticmethod
    def _validate_yaml(payload: dict):
        import yaml

        text = payload.get("content", "")
        m = re.match(r"\A---\n(.*?)\n---\n", text, re.S)
        errors = []
        if m is not None:
            try:
                meta = yaml.safe_load(m.group(1))
            except yaml.YAMLError as e:
                meta, errors = None, [{"message": f"invalid YAML: {e}"}]
            if not errors and not isinstance(meta, dict):
                errors = [{"message": "the metadata must be a YAML mapping"}]
        return HubServer._json({"errors": errors, "warnings": []}, status=400 if errors else 200)

    @staticmethod
    def _preupload(repo: Repo, payload: dict):
        files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                 for f in payload.get("files", [])]
        return HubServer._json({"files": files, "commitOid": repo.branches.get("main")})

    def _commit(self, repo: Repo, branch: str, body: bytes):
        if branch not in repo.branches:
            raise _Error(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        head = repo.commits[repo.branches[branch]]
        files = dict(head.files)
        message = ""
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                message = value.get("summary", "")
                parent = value.get("parentCommit")
                if parent is not None and not head.sha.startswith(parent):
                    raise _Error(412, f"A commit has happened since the parent commit {parent}: head is {head.sha}")
            elif key == "file":
                if value.get("encoding") != "base64":
                    raise _Error(400, f"file {value.get('path')}: encoding {value.get('encoding')!r}, expected base64")
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                if value["path"] not in files:
                    raise _Error(404, "A file with this name doesn't exist", "EntryNotFound")
                del files[value["path"]]
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                gone = [p for p in files if p.startswith(folder)]
                if not gone:
                    raise _Error(404, "A file with this name doesn't exist", "EntryNotFound")
                for p in gone:
                    del files[p]
            else:  # lfsFile: this server stores no LFS objects (preupload never asks for them)
                raise _Error(400, f"unsupported commit operation {key!r} (this server takes regular files only)")
        commit = self._new_commit(repo, head.sha, message, files)
        repo.branches[branch] = commit.sha
        return self._json({"success": True, "commitOid": commit.sha, "commitUrl": f"{self._url(repo)}/commit/{commit.sha}",
                           "pullRequestUrl": None, "commitMessage": message})

    def _info(self, repo: Repo, revision: str):
        commit = self._commit_of(repo, revision)
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return self._json({"_id": hashlib.sha1(repo.id.encode()).hexdigest()[:24], "id": repo.id,
                           "author": repo.id.split("/")[0], "sha": commit.sha, "private": repo.private,
                           "disabled": False, "gated": False, "lastModified": now, "createdAt": now, "tags": [],
                           "siblings": [{"rfilename": p} for p in sorted(commit.files)]})

    def _tree(self, repo: Repo, revision: str, folder: str, query: dict, path: str):
        commit = self._commit_of(repo, revision)
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        prefix = folder.rstrip("/") + "/" if folder else ""
        entries: dict[str, dict] = {}
        for p, data in commit.files.items():
            if not p.startswith(prefix):
                continue
            parts = p[len(prefix):].split("/")
            # the folders between the listed folder and the file, then the file itself
            for depth in range(1, len(parts)):
                if depth > 1 and not recursive:
                    break
                d = prefix + "/".join(parts[:depth])
                entries.setdefault(d, {"type": "directory", "path": d, "size": 0,
                                       "oid": hashlib.sha1(d.encode()).hexdigest()})
            if len(parts) == 1 or recursive:
                entries[p] = {"type": "file", "path": p, "size": len(data), "oid": blob_oid(data)}
        if folder and not entries:
            raise _Error(404, f"{folder} does not exist on {revision}", "EntryNotFound")
        listing = [entries[k] for k in sorted(entries)]
        start = int(query.get("cursor", ["0"])[0])
        page = listing[start : start + self.page_size]
        extra = {}
        if start + self.page_size < len(listing):
            nxt = f"{self.base}{path}?recursive={str(recursive).lower()}&cursor={start + self.page_size}"
            extra["Link"] = f'<{nxt}>; rel="next"'
        return self._json(page, headers=extra)

    def _resolve(self, repo: Repo, revision: str, path: str, headers):
        commit = self._commit_of(repo, revision)
        if path not in commit.files:
            raise _Error(404, f"Entry not found: {path}", "EntryNotFound")
        committed = commit.files[path]
        data = self.overrides.get((repo.type, repo.id, path), committed)
        out = {"ETag": f'"{blob_oid(committed)}"', "X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes",
               "Content-Type": "application/octet-stream"}
        status, body = 200, data
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", (headers.get("Range") or "").strip())
        if m is not None:
            start = int(m.group(1))
            end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
            if start >= len(data) and data:
                return 416, {"Content-Range": f"bytes */{len(data)}"}, b""
            status, body = 206, data[start : end + 1]
            out["Content-Range"] = f"bytes {start}-{start + len(body) - 1}/{len(data)}"
        out["Content-Length"] = str(len(body))
        return status, out, body
