"""Downloads with sha256 verification, resume and atomic placement.

A download goes to ``<dest>.part``; an interrupted one resumes from there with
an HTTP ``Range`` request. Only a file whose sha256 matches the pinned value is
renamed to ``dest``, so ``dest`` existing means it is complete and verified.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable

from neuroharness.errors import ChecksumError, DownloadError
from neuroharness.progress import progress_bar

CHUNK = 1 << 20


def sha256_file(path: os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, sha256: str | None) -> str:
    """Return the file's sha256; raise :class:`ChecksumError` if it is not ``sha256``."""
    got = sha256_file(path)
    if sha256 is not None and got != sha256.lower():
        raise ChecksumError(f"{path}: sha256 is {got}, expected {sha256}")
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


def download(urls: str | Iterable[str], dest: os.PathLike, sha256: str | None, *, retries: int = 3, timeout: float = 60) -> Path:
    """Download ``dest`` from the first URL of ``urls`` that works; verify its sha256.

    ``urls`` is one URL or mirrors tried in order. An existing ``dest`` is
    re-verified instead of downloaded again. Returns ``dest``.
    """
    dest = Path(dest)
    urls = [urls] if isinstance(urls, str) else list(urls)
    if dest.exists():
        verify(dest, sha256)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    errors, bad_checksums = [], []
    for url in urls:
        for attempt in range(retries):
            resumed = part.exists()
            try:
                _fetch_once(url, part, timeout, dest.name)
                got = sha256_file(part)
                if sha256 is not None and got != sha256.lower():
                    part.unlink(missing_ok=True)  # a corrupt partial must not be resumed
                    bad_checksums.append(f"{dest}: sha256 of the download from {url} is {got}, expected {sha256}")
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
    raise DownloadError(f"could not download {dest.name}: " + "; ".join(errors))
