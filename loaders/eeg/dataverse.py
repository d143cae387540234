"""Download a dataset's files from a Dataverse server (RepOD, which holds the Warsaw schizophrenia EEG, is one).

Dataverse's native API lists a dataset version's files at
``<server>/api/datasets/:persistentId/versions/<version>?persistentId=<pid>``
(``data.files[i].dataFile`` = ``{"id", "filename", "filesize", "md5" or
"checksum": {"type": "MD5", "value"}}``, ``data.files[i].directoryLabel`` for
files in folders, ``data.files[i].restricted``) and serves each file at
``<server>/api/access/datafile/<id>``. Every file is downloaded resumably and
kept only when its published md5 and size match (:func:`..fetch.download`).

``<server>`` is ``https://repod.icm.edu.pl``, or ``$NEUROHARNESS_REPOD_URL``
(any server answering the same API: a mirror, or the test's local server).
"""
from __future__ import annotations

import dataclasses
import os
import posixpath
import re
import urllib.parse
from pathlib import Path

from neuroharness.errors import DataFormatError
from neuroharness.progress import status

from .. import cache, fetch

ENV_URL = "NEUROHARNESS_REPOD_URL"
REPOD_SERVER = "https://repod.icm.edu.pl"
REPOD_PID = "doi:10.18150/repod.0107441"
#: Dataverse's name of the newest published version; the version actually read is recorded in the store.
LATEST = ":latest-published"
_SAFE = re.compile(r"[A-Za-z0-9._-][A-Za-z0-9._ -]*")


@dataclasses.dataclass(frozen=True)
class DataverseFile:
    """One file of a dataset version: its id on the server, its path in the dataset, its size (bytes) and md5."""

    id: int
    path: str
    size: int
    md5: str


def server_url() -> str:
    """``$NEUROHARNESS_REPOD_URL`` or RepOD's own server, without a trailing slash."""
    return (os.environ.get(ENV_URL) or REPOD_SERVER).rstrip("/")


def version_url(server: str, pid: str, version: str = LATEST) -> str:
    query = urllib.parse.urlencode({"persistentId": pid})
    # ':' kept literal: Dataverse names versions ':latest-published', ':draft'
    label = urllib.parse.quote(version, safe=":")
    return f"{server}/api/datasets/:persistentId/versions/{label}?{query}"


def _field(entry: dict, key: str, url: str, i: int):
    if key not in entry:
        raise DataFormatError(f"{url}: files[{i}].dataFile has no field {key!r}; expected Dataverse's "
                              "{id, filename, filesize, md5 | checksum}")
    return entry[key]


def parse_version(answer: dict, url: str) -> tuple[str, list[DataverseFile]]:
    """``(version label, files)`` from the JSON answer of :func:`version_url` (errors name the URL and field)."""
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise DataFormatError(f"{url}: expected a Dataverse version answer {{'status': 'OK', 'data': {{'files': "
                              f"[...]}}}}, got {str(answer)[:200]}")
    label = f"{data.get('versionNumber', '?')}.{data.get('versionMinorNumber', 0)}"
    files = []
    for i, item in enumerate(data["files"]):
        entry = item.get("dataFile") if isinstance(item, dict) else None
        if not isinstance(entry, dict):
            raise DataFormatError(f"{url}: files[{i}] has no 'dataFile' object")
        if item.get("restricted"):
            continue  # not downloadable anonymously; the layout decides whether anything needed is missing
        name = str(_field(entry, "filename", url, i))
        folder = str(item.get("directoryLabel") or "")
        path = posixpath.normpath(posixpath.join(folder, name)) if folder else name
        if path.startswith(("/", "..")) or not all(_SAFE.fullmatch(p) for p in path.split("/")):
            raise DataFormatError(f"{url}: files[{i}] has the unsafe path {path!r}; expected names of letters, "
                                  "digits, '.', '_', '-' and spaces in folders below the dataset")
        md5 = entry.get("md5")
        checksum = entry.get("checksum")
        if not md5 and isinstance(checksum, dict) and str(checksum.get("type", "")).upper() == "MD5":
            md5 = checksum.get("value")
        if not isinstance(md5, str) or not re.fullmatch(r"[0-9a-fA-F]{32}", md5):
            raise DataFormatError(f"{url}: files[{i}] ({path}) publishes no md5 (fields 'md5' or 'checksum' "
                                  f"{{type: MD5}}), so its download could not be verified")
        try:
            file_id, size = int(_field(entry, "id", url, i)), int(_field(entry, "filesize", url, i))
        except (TypeError, ValueError):
            raise DataFormatError(f"{url}: files[{i}] ({path}): 'id' and 'filesize' must be integers") from None
        files.append(DataverseFile(file_id, path, size, md5.lower()))
    return label, files


def download_dataset(name: str, pid: str, keep, server: str | None = None,
                     version: str = LATEST) -> tuple[Path, str, list[DataverseFile]]:
    """Download the files of dataset ``pid`` for which ``keep(path)`` is true into the cache.

    Returns ``(folder, origin, files)``: the folder holds the files under their dataset paths
    (``downloads/<name>/dataverse-<version>/``), ``origin`` names server, dataset and version for the
    store's provenance. Files already downloaded and verified are not fetched again.
    """
    server = (server or server_url()).rstrip("/")
    url = version_url(server, pid, version)
    label, files = parse_version(fetch.get_json(url, f"the Dataverse dataset {pid}"), url)
    wanted = [f for f in files if keep(f.path)]
    if not wanted:
        raise DataFormatError(f"{url}: version {label} of {pid} lists no file the layout reads "
                              f"({len(files)} listed: {', '.join(f.path for f in files[:8])})")
    folder = cache.downloads_dir() / name / f"dataverse-{label}"
    status(f"[{name}] {len(wanted)} files of {pid} version {label} from {server}")
    for f in wanted:
        fetch.download(f"{server}/api/access/datafile/{f.id}", folder / f.path, None, md5=f.md5, size=f.size)
    return folder, f"Dataverse {server} dataset {pid} version {label}", wanted
