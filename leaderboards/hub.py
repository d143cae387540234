"""Result records on the Hugging Face Hub: publish a task's records, read them back with ``--results hf://...``.

Layout of a results repository (a Hub *dataset* repository; several tasks may share one)::

    <task>/<task>__<model>__seed<k>[__<option>=<value>...].json     one record per run, as ``run`` writes them

:func:`publish_results` validates every record of the folder (schema, digest, task card ranges) before
anything is uploaded and commits the task's records in one commit. :func:`fetch_results` resolves the
revision to its commit (the pin), downloads the records of that commit into huggingface_hub's cache under
``$NEUROHARNESS_HOME/huggingface`` (content-addressed, so a pinned commit is downloaded once) and returns the
folder, which the leaderboard reads as it reads a local ``--results DIR``.
"""
from __future__ import annotations

import os
from pathlib import Path

from neuroharness import __version__
from neuroharness.errors import DataFormatError, NeuroharnessError, UsageError
from neuroharness.loaders import cache
from neuroharness.loaders.hub import (REPO_TYPE, Published, hub_api, hub_endpoint, hub_errors, open_target_repo,
                                      parse_repo, quiet_bars)
from neuroharness.progress import status

PREFIX = "hf://"


def is_hub_url(value) -> bool:
    """True for an ``hf://`` results location (anything else is a local folder)."""
    return isinstance(value, str) and value.startswith(PREFIX)


def publish_results(task: str, repo: str, results: os.PathLike | str, revision: str | None = None,
                    private: bool = False) -> Published:
    """Upload the records of ``task`` found under the folder ``results`` to ``repo`` (``ORG/NAME``), folder ``<task>/``.

    Every record of the folder is validated first (:func:`~neuroharness.leaderboards.records.read_records`);
    records of other tasks are left out (and counted in a status line). One commit on branch ``revision``
    (default ``main``, created if missing); records already in the repository stay unless this commit
    replaces them (same file name: same task, model, seed and options).
    """
    from huggingface_hub import CommitOperationAdd

    from neuroharness.tasks import get_card

    from .records import read_records

    repo_id, _, _ = parse_repo(repo, "--repo", revision=False)
    get_card(task)  # an unknown task is an error naming the valid ones
    branch = revision or "main"
    folder = Path(results)
    if not folder.is_dir():
        raise UsageError(f"--results {results}: no such folder; expected the folder of records that `neuroharness "
                         f"run {task} --out DIR` writes")
    records = read_records(folder)
    mine = [(Path(p), r) for p, r in records if r["task"]["name"] == task]
    if not mine:
        others = sorted({r["task"]["name"] for _, r in records})
        raise DataFormatError(f"{folder}: no records of task {task} (found {len(records)} record(s)"
                              f"{' of ' + ', '.join(others) if others else ''}); expected records written by "
                              f"`neuroharness run {task} --out {folder}`")
    if len(mine) < len(records):
        status(f"[{task}] leaving out {len(records) - len(mine)} record(s) of other tasks")
    names: dict[str, Path] = {}
    for p, _ in mine:
        if p.name in names:
            raise DataFormatError(f"{folder}: two records named {p.name} ({names[p.name]} and {p}); they would land "
                                  f"on the same file in {task}/; keep one")
        names[p.name] = p
    api = hub_api()
    with quiet_bars(), hub_errors(f"publishing the records of {task}", repo_id, NeuroharnessError):
        info = open_target_repo(api, repo_id, branch, private)
        operations = [CommitOperationAdd(path_in_repo=f"{task}/{name}", path_or_fileobj=str(p))
                      for name, p in sorted(names.items())]
        status(f"[{task}] uploading {len(operations)} record(s) to datasets/{repo_id} ({branch})")
        commit = api.create_commit(repo_id, operations, repo_type=REPO_TYPE, revision=branch, parent_commit=info.sha,
                                   commit_message=f"neuroharness: {len(operations)} record(s) of {task}",
                                   commit_description=f"neuroharness {__version__}")
    n_bytes = sum(p.stat().st_size for p in names.values())
    return Published(repo_id, branch, commit.oid, commit.commit_url, len(operations), n_bytes)


def fetch_results(url: str, task: str | None = None, flag: str = "--results") -> Path:
    """Download the records at ``url`` (``hf://datasets/ORG/NAME[@REVISION][/PATH]``) and return their local folder.

    Without ``PATH``, the folder ``<task>/`` of the repository when ``task`` is given (what
    :func:`publish_results` writes), else every record of the repository. The revision (default ``main``) is
    resolved to its commit once and everything is read at that commit.
    """
    from huggingface_hub import snapshot_download

    repo_id, revision, sub = parse_repo(url, flag, path=True)
    if not is_hub_url(url):
        raise UsageError(f"{flag} {url}: expected hf://datasets/ORG/NAME[@REVISION][/PATH] or a local folder")
    sub = sub or (task or "")
    api = hub_api()
    where = f"datasets/{repo_id}@{revision or 'main'}"
    with quiet_bars(), hub_errors(f"reading the records of {where}", repo_id):
        info = api.repo_info(repo_id, repo_type=REPO_TYPE, revision=revision or "main")
        sha = info.sha  # the pin
        prefix = f"{sub}/" if sub else ""
        wanted = [s.rfilename for s in (info.siblings or [])
                  if s.rfilename.startswith(prefix) and s.rfilename.endswith(".json")]
        if not wanted:
            raise DataFormatError(f"datasets/{repo_id}@{sha}: no records (*.json) under {sub or 'the repository'}/"
                                  f"; expected the folder that `neuroharness leaderboard publish "
                                  f"{task or 'TASK'} --repo {repo_id}` writes")
        status(f"reading {len(wanted)} record(s) of datasets/{repo_id}@{sha}")
        root = snapshot_download(repo_id, repo_type=REPO_TYPE, revision=sha, allow_patterns=[f"{prefix}*.json"],
                                 cache_dir=str(cache.home() / "huggingface"), endpoint=hub_endpoint())
    return Path(root) / sub if sub else Path(root)
