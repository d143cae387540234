"""Downloads with checksum verification, resume and atomic placement.

A download goes to ``<dest>.part``; an interrupted one resumes from there with
an HTTP ``Range`` request. Only a file whose sha256 (or, where that is what the
source publishes, md5 and size) matches the pinned value is renamed to
``dest``, so ``dest`` existing means it is complete and verified.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable

from neuroharness.errors import ChecksumError, DownloadError
from neuroharness.progress import progress_bar, status

CHUNK = 1 << 20


def sha256_file(path: os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def sha256_path(path: os.PathLike) -> str:
    """sha256 of a file, or of a directory tree: sorted relative POSIX paths of its
    files, each followed by the file's own sha256 (so a raw input may be a folder,
    e.g. a ``.zarr`` group)."""
    path = Path(path)
    if not path.is_dir():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path).as_posix()}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()


def _digests(path: Path, md5: bool) -> tuple[str, str | None]:
    """(sha256, md5 or None) of a file in one read."""
    hs, hm = hashlib.sha256(), hashlib.md5(usedforsecurity=False) if md5 else None
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            hs.update(block)
            if hm is not None:
                hm.update(block)
    return hs.hexdigest(), None if hm is None else hm.hexdigest()


def _mismatch(path: Path, sha256: str | None, md5: str | None, size: int | None) -> tuple[str, str | None]:
    """Return (sha256, a 'what is X, expected Y' text or None when everything pinned matches)."""
    if size is not None and path.stat().st_size != int(size):
        return "", f"size is {path.stat().st_size} bytes, expected {int(size)}"
    got, got_md5 = _digests(path, md5 is not None)
    if sha256 is not None and got != sha256.lower():
        return got, f"sha256 is {got}, expected {sha256}"
    if md5 is not None and got_md5 != md5.lower():
        return got, f"md5 is {got_md5}, expected {md5}"
    return got, None


def verify(path: Path, sha256: str | None, *, md5: str | None = None, size: int | None = None) -> str:
    """Return the file's sha256; raise :class:`ChecksumError` if it differs from the
    pinned ``sha256`` (or ``md5``, or ``size`` in bytes, where given)."""
    got, bad = _mismatch(Path(path), sha256, md5, size)
    if bad:
        raise ChecksumError(f"{path}: {bad}")
    return got


def _fetch_once(url: str, part: Path, timeout: float, desc: str) -> None:
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "neuroharness"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        if have and resp.status != 206:  # server ignored Range: start over
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        received = 0
        with open(part, "ab" if have else "wb") as out, progress_bar(total=total, initial=have, desc=desc, unit="B") as bar:
            for block in iter(lambda: resp.read(CHUNK), b""):
                out.write(block)
                received += len(block)
                bar.update(len(block))
        # urllib returns b"" when the connection drops mid-body; keep the partial for a resume
        if length is not None and received < int(length):
            raise ConnectionError(f"connection closed after {have + received} of {total} bytes")


def download(urls: str | Iterable[str], dest: os.PathLike, sha256: str | None, *, retries: int = 3, timeout: float = 60,
             md5: str | None = None, size: int | None = None) -> Path:
    """Download ``dest`` from the first URL of ``urls`` that works; verify its sha256.

    ``urls`` is one URL or mirrors tried in order. Where the source publishes
    md5 and size instead (Zenodo), pass ``sha256=None, md5=..., size=...``. An
    existing ``dest`` is re-verified instead of downloaded again. Returns ``dest``.
    """
    dest = Path(dest)
    urls = [urls] if isinstance(urls, str) else list(urls)
    errors, bad_checksums = [], []
    if dest.exists():
        _, bad = _mismatch(dest, sha256, md5, size)
        if not bad:
            return dest
        # a cached file damaged after it was verified (truncated copy, disk error): fetch it again instead of
        # failing the same check on every run
        status(f"{dest}: {bad}; removing it and downloading it again")
        dest.unlink()
        errors.append(f"the cached {dest} was damaged ({bad}) and has been removed")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for url in urls:
        for attempt in range(retries):
            if size is not None and part.exists() and part.stat().st_size > int(size):
                part.unlink()  # longer than the whole file: cannot be a prefix of it
            resumed = part.exists()
            try:
                _fetch_once(url, part, timeout, dest.name)
                _, bad = _mismatch(part, sha256, md5, size)
                if bad:
                    part.unlink(missing_ok=True)  # a corrupt partial must not be resumed
                    what, _, rest = bad.partition(" is ")
                    bad_checksums.append(f"{dest}: {what} of the download from {url} is {rest}")
                    if resumed:
                        continue  # the old partial may have been the corrupt part: once more from byte 0
                    break  # this mirror serves other bytes: try the next one
                os.replace(part, dest)
                return dest
            except urllib.error.HTTPError as e:
                errors.append(f"{url}: HTTP {e.code}")
                if e.code == 416:  # range past the end: the partial file is bad
                    part.unlink(missing_ok=True)
                elif 400 <= e.code < 500:
                    break
            except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as e:
                errors.append(f"{url}: {e}")
            time.sleep(min(2**attempt, 5) * 0.1)
    if bad_checksums:
        raise ChecksumError("; ".join(bad_checksums + errors))
    raise DownloadError(f"could not download {dest.name}: " + "; ".join(dedupe(errors)))


def get_json(url: str, what: str, retries: int = 3, timeout: float = 60) -> dict:
    """The JSON document at ``url`` (an API answer such as a Zenodo or Dataverse record), retried like downloads.

    ``what`` names it in errors ("the Zenodo record"). A 4xx answer other than 429 is not retried; a body that
    is not JSON is a :class:`DownloadError` at once."""
    errors = []
    for attempt in range(retries):
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "neuroharness", "Accept": "application/json"})
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read().decode())
        except urllib.error.HTTPError as e:
            errors.append(f"HTTP {e.code}")
            if 400 <= e.code < 500 and e.code != 429:
                break
        except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as e:
            errors.append(str(e))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DownloadError(f"{url}: {what} is not valid JSON ({e})") from e
        time.sleep(min(2**attempt, 5) * 0.1)
    raise DownloadError(f"could not read {what} {url}: " + "; ".join(dedupe(errors)))


def dedupe(errors: list[str]) -> list[str]:
    """Repeated retry errors once each, with a count (``... (3 times)``)."""
    counts: dict[str, int] = {}
    for e in errors:
        counts[e] = counts.get(e, 0) + 1
    return [e if n == 1 else f"{e} ({n} times)" for e, n in counts.items()]
