"""Download the FISBe release from its Zenodo record (resumable, checked against the record's md5 and size).

The record JSON (``<base>/api/records/10875063``) lists the files as
``{"key", "size", "checksum": "md5:<hex>", "links": {"self" | "content": url}}``
(a list under ``files``, or under ``files.entries`` / ``entries``, as Zenodo's
API versions differ). File names are not documented, so they are matched by
pattern (assumption): every ``*.zip`` whose name contains ``completely`` or
``partly`` (e.g. ``fisbe_v1.0_completely.zip``, ``fisbe_v1.0_partly.zip``), and
``sample_list_per_split.txt``. MIP previews (names containing ``mip``) are
skipped. If no zip names a subset, every non-MIP zip is taken (one archive
holding both trees).

``<base>`` is ``https://zenodo.org``, or ``$NEUROHARNESS_FISBE_URL``, or the URL
given as ``--source``: any server answering the same API (a mirror). Download
links in the record that point at zenodo.org are redirected to a mirror base.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import urllib.parse
from pathlib import Path

from neuroharness.errors import DownloadError
from neuroharness.progress import status

from .. import cache, fetch, io

RECORD_ID = "10875063"
DOI = "10.5281/zenodo.10875063"
DEFAULT_BASE = "https://zenodo.org"
ENV_URL = "NEUROHARNESS_FISBE_URL"
SPLIT_FILE = "sample_list_per_split.txt"


@dataclasses.dataclass(frozen=True)
class RecordFile:
    key: str
    size: int | None
    md5: str | None
    url: str


def base_url(source: str | None = None) -> str:
    """The Zenodo-compatible server: ``source`` (an http(s) URL), else ``$NEUROHARNESS_FISBE_URL``, else zenodo.org."""
    return (source or os.environ.get(ENV_URL) or DEFAULT_BASE).rstrip("/")


def record_url(base: str) -> str:
    return f"{base}/api/records/{RECORD_ID}"


def record_files(record: dict, base: str) -> list[RecordFile]:
    """The files listed in a Zenodo record JSON, with download URLs on ``base``."""
    files = record.get("files", record.get("entries"))
    if isinstance(files, dict):
        files = files.get("entries", files)
    if isinstance(files, dict):
        files = list(files.values())
    if not isinstance(files, list):
        raise DownloadError(f"Zenodo record {RECORD_ID}: no file list (keys: {sorted(record)})")
    out = []
    for f in files:
        key = f.get("key") or f.get("filename")
        if not key:
            continue
        checksum = f.get("checksum") or ""
        md5 = checksum.split(":", 1)[1] if checksum.startswith("md5:") else None
        links = f.get("links") or {}
        url = links.get("content") or links.get("self") or links.get("download")
        if not url:
            url = f"{record_url(base)}/files/{urllib.parse.quote(key)}/content"
        elif base != DEFAULT_BASE:  # a mirror: keep the path, swap zenodo.org for it
            u = urllib.parse.urlsplit(url)
            if u.netloc == urllib.parse.urlsplit(DEFAULT_BASE).netloc:
                url = base + u.path + (f"?{u.query}" if u.query else "")
        size = f.get("size", f.get("filesize"))
        out.append(RecordFile(key, None if size is None else int(size), md5, url))
    return out


def select_files(files: list[RecordFile]) -> list[RecordFile]:
    """The release archives and the split list (see the module docstring for the matching rule)."""
    zips = [f for f in files if f.key.lower().endswith(".zip") and "mip" not in f.key.lower()]
    named = [f for f in zips if re.search(r"completely|partly", f.key, re.IGNORECASE)]
    chosen = named or zips
    if not chosen:
        raise DownloadError(f"Zenodo record {RECORD_ID}: no release archive among its files "
                            f"({', '.join(f.key for f in files) or 'none'}); expected e.g. fisbe_v1.0_completely.zip")
    chosen += [f for f in files if f.key == SPLIT_FILE]
    return chosen


def download_release(source: str | None = None) -> tuple[dict[str, Path], str]:
    """Download the release archives and split list; return ``({key: path}, origin)``."""
    base = base_url(source)
    url = record_url(base)
    folder = cache.downloads_dir() / f"fisbe-zenodo-{RECORD_ID}"
    folder.mkdir(parents=True, exist_ok=True)
    saved = folder / "record.json"
    try:
        record = fetch.get_json(url, "the Zenodo record")
    except DownloadError:
        if not saved.exists():  # offline but downloaded before: the saved record still pins the checksums
            raise
        status(f"[fisbe] {url} unreachable; using the saved record {saved}")
        record = json.loads(saved.read_text())
    io.write_text_atomic(saved, json.dumps(record))
    out = {}
    for f in select_files(record_files(record, base)):
        if "/" in f.key or f.key.startswith("."):
            raise DownloadError(f"Zenodo record {RECORD_ID}: unsafe file name {f.key!r}")
        status(f"[fisbe] {f.key} ({'?' if f.size is None else f'{f.size / 1e9:.2f} GB'})")
        out[f.key] = fetch.download(f.url, folder / f.key, None, md5=f.md5, size=f.size)
    return out, f"Zenodo record {RECORD_ID} (doi:{DOI}) via {base}"
