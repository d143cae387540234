"""Downloading the preprocessed VesselGraph archives (one zip per graph), resumable, with mirrors.

URLs come from the graph table (:mod:`.table`; the LRZ Sync+Share links of the
VesselGraph loaders, which have expired and been renewed before). Each archive
``<archive>`` is tried, in order, at:

1. ``<base>/<archive>`` when ``--source`` is an http(s) URL (then nowhere else);
2. ``$NEUROHARNESS_VESSELGRAPH_MIRROR/<archive>``;
3. the table's URLs.

Downloads go through :func:`neuroharness.loaders.fetch.download` (``.part``
file, HTTP ``Range`` resume, retries, atomic rename) into
``<cache>/downloads/vesselgraph/``. Where the table pins a sha256 or size the
file must match; no checksum is published for the release, so by default the
sha256 is computed and recorded in the store's ``raw_sha256`` (a status line
says so). A download that is not a zip archive (an expired share link answers
with a web page) is deleted and reported.
"""
from __future__ import annotations

import os
import urllib.parse
import zipfile
from pathlib import Path

from neuroharness.errors import ChecksumError, DownloadError, NeuroharnessError
from neuroharness.progress import status

from .. import cache, fetch
from .table import ENV_TABLE, GraphEntry, graph_table

ENV_MIRROR = "NEUROHARNESS_VESSELGRAPH_MIRROR"


def candidate_urls(entry: GraphEntry, base: str | None = None) -> list[str]:
    """Where ``entry``'s archive is looked for, in order (see the module docstring)."""
    name = urllib.parse.quote(entry.archive)
    if base:
        return [f"{base.rstrip('/')}/{name}"]
    mirror = os.environ.get(ENV_MIRROR, "").strip()
    return ([f"{mirror.rstrip('/')}/{name}"] if mirror else []) + list(entry.urls)


def download_archive(entry: GraphEntry, folder: Path, base: str | None = None) -> tuple[Path, str]:
    """Download (or re-verify) one graph's archive; return ``(path, where it came from)``."""
    if not entry.archive:
        raise DownloadError(f"graph {entry.graph}: the graph table names no archive for it; add one in ${ENV_TABLE}")
    dest = folder / entry.archive
    if dest.exists():
        try:
            fetch.verify(dest, entry.sha256, size=entry.size)
            return dest, f"{entry.archive} (downloaded before to {dest})"
        except ChecksumError as e:  # the table now pins other bytes: fetch it again
            status(f"[vesselgraph] {e}; downloading it again")
            dest.unlink()
    urls = candidate_urls(entry, base)
    if not urls:
        raise DownloadError(f"graph {entry.graph}: no URL for {entry.archive}; set ${ENV_MIRROR} or add urls in ${ENV_TABLE}")
    size = "size unknown" if entry.size is None else f"{entry.size / 1e9:.2f} GB"
    status(f"[vesselgraph] {entry.graph}: {entry.archive} ({size})")
    errors: list[str] = []
    checksum_failed = False
    for url in urls:
        try:
            fetch.download(url, dest, entry.sha256, size=entry.size)
        except ChecksumError as e:  # this host serves other bytes: the next one may not
            checksum_failed = True
            errors.append(str(e))
            continue
        except DownloadError as e:
            errors.append(str(e).removeprefix(f"could not download {dest.name}: "))
            continue
        if not zipfile.is_zipfile(dest):
            head = dest.read_bytes()[:60]
            dest.unlink()
            errors.append(f"{url} served {head!r}..., not a zip archive (an expired share link answers with a web page)")
            continue
        if entry.sha256 is None:
            status(f"[vesselgraph] {entry.archive}: no published sha256 to check; the sha256 computed from the download "
                   "is recorded in the store's raw_sha256")
        return dest, f"{entry.archive} from {url}"
    error = ChecksumError if checksum_failed else DownloadError
    raise error(f"graph {entry.graph}: could not download {entry.archive}: " + "; ".join(errors)
                + f". Hosts have moved before: set ${ENV_MIRROR} to a folder URL holding {entry.archive}, or pass "
                "--source with a local copy")


def download_graphs(names: list[str], base: str | None = None) -> tuple[dict[str, Path], str]:
    """Download the archives of graphs ``names``; return ``({"<graph>/<archive>": path}, origin)``."""
    table = graph_table()
    unknown = [g for g in names if g not in table]
    if unknown:
        raise NeuroharnessError(f"unknown VesselGraph graph(s) {', '.join(unknown)}; the graph table names "
                                f"{', '.join(table)} (add others with ${ENV_TABLE}, or use --source)")
    folder = cache.downloads_dir() / "vesselgraph"
    folder.mkdir(parents=True, exist_ok=True)
    files, origins = {}, []
    for g in names:
        path, origin = download_archive(table[g], folder, base)
        files[f"{g}/{path.name}"] = path
        origins.append(origin)
    return files, "VesselGraph preprocessed release: " + "; ".join(origins)
