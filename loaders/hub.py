"""Prepared stores on the Hugging Face Hub: publish one, or install a published one instead of rebuilding it.

- :func:`publish_store` uploads the cached store of a dataset to a Hub *dataset*
  repository as ``<version>.zarr/`` plus a generated ``README.md`` dataset card
  (:func:`dataset_card`: schema, licence, citation, checksums, how to open it),
  in one commit. Only datasets whose card says redistribution is allowed are
  published (:class:`RedistributionError` otherwise, naming the licence).
- :func:`prepare_from_hub` resolves a revision to its commit (the pin), downloads
  ``<version>.zarr/`` of that commit, recomputes the store's content checksum
  with the loader's own checksum code and compares it with the published card
  and the store's attributes, then installs the store in the cache atomically,
  as :meth:`DatasetLoader.prepare` would have written it (``source`` =
  ``huggingface datasets/ORG/NAME@<commit>``).

The endpoint is ``$HF_ENDPOINT`` (read at each call) or huggingface.co; the token
is huggingface_hub's (``$HF_TOKEN`` or ``hf auth login``). Repository layout::

    README.md            the dataset card (YAML front matter: license, pretty_name, tags, neuroharness)
    <version>.zarr/...   the store, byte for byte as prepared (Zarr v2, consolidated metadata)

Standard library only at import time; huggingface_hub, xarray and zarr are imported by the functions.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from neuroharness import __version__
from neuroharness.errors import ChecksumError, DataFormatError, DownloadError, NeuroharnessError, UsageError
from neuroharness.progress import is_quiet, status

from . import cache, io

REPO_TYPE = "dataset"
CARD_FILE = "README.md"
#: licence texts of the cards -> the Hub's licence identifiers (first match; anything else is "other")
HUB_LICENSES = (("CC BY-NC 4.0", "cc-by-nc-4.0"), ("CC BY 4.0", "cc-by-4.0"), ("GPL-3.0", "gpl-3.0"),
                ("MIT", "mit"))
_REPO_ID = r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*"
MAX_GROUP_ROWS = 200  # rows of the per-group table in a card; the rest is counted


class RedistributionError(NeuroharnessError):
    """A dataset whose licence forbids redistribution, or whose licence is not verified, asked to be published."""


@dataclass(frozen=True)
class Published:
    """What :func:`publish_store` / ``leaderboard publish`` committed."""

    repo_id: str
    branch: str
    commit: str  # the commit sha: pin it (``ORG/NAME@<commit>``)
    url: str
    n_files: int
    n_bytes: int

    def lines(self) -> list[str]:
        return [f"committed {self.n_files} files ({_size(self.n_bytes)}) to datasets/{self.repo_id} "
                f"branch {self.branch}", f"commit {self.commit}", self.url]


# -- repository references ------------------------------------------------------------------------
def parse_repo(value: str, flag: str = "--repo", revision: bool = True, path: bool = False) -> tuple[str, str | None, str]:
    """``(repo_id, revision or None, path_in_repo)`` of ``ORG/NAME[@REVISION]`` or ``hf://datasets/ORG/NAME[@REVISION][/PATH]``.

    A revision holding ``/`` (``refs/pr/1``) is written percent-encoded when a
    path follows (``@refs%2Fpr%2F1/TASK``). ``revision=False`` refuses a
    revision (publishing names a branch with ``--revision``); ``path=False``
    refuses a path. Malformed values are :class:`UsageError` naming ``flag``.
    """
    text = str(value).strip()
    expected = "hf://datasets/ORG/NAME" if text.startswith("hf://") else "ORG/NAME"
    expected += "[@REVISION]" if revision else ""
    expected += "[/PATH]" if path else ""
    if text.startswith("hf://"):
        if not text.startswith("hf://datasets/"):
            raise UsageError(f"{flag} {value}: expected {expected}, a dataset repository (hf://datasets/...)")
        text = text[len("hf://datasets/"):]
    pattern = rf"({_REPO_ID})(?:@([^/]+))?(?:/(.*))?" if path else rf"({_REPO_ID})(?:@(.+))?"
    m = re.fullmatch(pattern, text)
    if m is None or (m.group(2) is not None and not revision):
        raise UsageError(f"{flag} {value}: expected {expected}, e.g. my-org/celegans-connectome"
                         + ("@main" if revision else ""))
    repo_id, rev = m.group(1), m.group(2)
    from huggingface_hub.utils import validate_repo_id
    from huggingface_hub.errors import HFValidationError

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise UsageError(f"{flag} {value}: {e}") from None
    rev = unquote(rev) if rev is not None else None
    if rev is not None and not rev.strip():
        raise UsageError(f"{flag} {value}: empty revision after '@'; expected a branch, tag or commit sha")
    sub = (m.group(3) or "").strip("/") if path else ""
    if ".." in sub.split("/"):
        raise UsageError(f"{flag} {value}: path {sub!r} has a '..' component; expected a folder of the repository")
    return repo_id, rev, sub


def hub_endpoint() -> str | None:
    """``$HF_ENDPOINT`` or None (huggingface.co); read per call, as huggingface_hub reads it once, at import."""
    return os.environ.get("HF_ENDPOINT") or None


def _where() -> str:
    return hub_endpoint() or "https://huggingface.co"


def hub_api():
    """An ``HfApi`` on :func:`hub_endpoint`, naming neuroharness in its User-Agent."""
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub_endpoint(), library_name="neuroharness", library_version=__version__)


@contextlib.contextmanager
def quiet_bars():
    """huggingface_hub's progress bars follow the harness's quiet switch (restored afterwards)."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was = are_progress_bars_disabled()
    if is_quiet() and not was:
        disable_progress_bars()
    try:
        yield
    finally:
        if is_quiet() and not was:
            enable_progress_bars()


@contextlib.contextmanager
def hub_errors(what: str, repo_id: str, error=DownloadError):
    """Turn what huggingface_hub raises into ``error`` (a :class:`NeuroharnessError`) saying ``what`` failed,
    on which repository, and what to do. Errors about local files pass through."""
    from huggingface_hub import errors as E

    where = f"datasets/{repo_id} on {_where()}"
    try:
        yield
    except NeuroharnessError:
        raise
    except E.RevisionNotFoundError as e:
        raise error(f"{what}: revision not found in {where} ({_first_line(e)}); expected a branch, tag or commit "
                    "sha of that repository") from None
    except (E.RepositoryNotFoundError, E.GatedRepoError):
        raise error(f"{what}: repository {where} not found, or not readable with your token; check the name, and "
                    "for a private repository set HF_TOKEN (or run `hf auth login`)") from None
    except E.LocalEntryNotFoundError as e:  # what the client raises when it cannot reach the Hub mid-download
        raise error(f"{what}: could not reach {where}: {_first_line(e)}") from None
    except E.EntryNotFoundError as e:
        raise error(f"{what}: {where}: {_first_line(e)}") from None
    except E.HfHubHTTPError as e:
        code = getattr(getattr(e, "response", None), "status_code", None)
        if code in (401, 403):
            hint = ("set HF_TOKEN to a token with write access to the organization "
                    "(https://huggingface.co/settings/tokens) or run `hf auth login`")
        elif code == 412:
            hint = "someone committed to the branch meanwhile; run the command again"
        else:
            hint = "check the repository and try again"
        raise error(f"{what}: {where} answered {code}: {_first_line(e)}; {hint}") from None
    except E.OfflineModeIsEnabled:
        raise error(f"{what}: HF_HUB_OFFLINE is set, so {where} is not contacted; unset it") from None
    except Exception as e:  # noqa: BLE001 -- narrowed to network errors below
        if isinstance(e, OSError) and getattr(e, "filename", None) is not None:
            raise  # a local file (e.g. the cache cannot be written): reported as such by the caller
        module = type(e).__module__.split(".")[0]
        if isinstance(e, (OSError, TimeoutError)) or module in {"httpx", "httpx2", "httpcore", "requests", "urllib3",
                                                                 "huggingface_hub"}:
            raise error(f"{what}: could not reach {where}: {type(e).__name__}: {_first_line(e)}") from None
        raise


def _first_line(e: BaseException) -> str:
    lines = [line for line in str(e).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


# -- publishing ------------------------------------------------------------------------------------
def check_redistribution(name: str) -> None:
    """Raise :class:`RedistributionError` unless the card of ``name`` says its store may be redistributed."""
    from . import get_card

    card = get_card(name)
    why = card.redistribution_reason
    if card.redistribution_status == "forbidden":
        raise RedistributionError(
            f"dataset {name} is not published: its licence forbids redistribution ({card.license}): "
            f"{why or 'see the dataset card'}. Share the recipe instead: "
            f"`neuroharness datasets prepare {name}` on each machine that has a copy")
    if card.redistribution_status != "allowed":
        raise RedistributionError(
            f"dataset {name} is not published: whether its licence allows redistribution is unverified "
            f"({why or 'the card does not say'}; licence: {card.license}). You must check the terms yourself: "
            "neuroharness publishes only datasets whose card says redistribution is allowed")


def open_target_repo(api, repo_id: str, branch: str, private: bool):
    """Create dataset repository ``repo_id`` (and ``branch``) where missing; return its info at ``branch`` (the
    head the one commit is made against). ``private`` on a repository that exists and is public is refused:
    nothing is uploaded rather than published publicly."""
    api.create_repo(repo_id, repo_type=REPO_TYPE, private=private or None, exist_ok=True)
    if branch != "main":
        api.create_branch(repo_id, branch=branch, repo_type=REPO_TYPE, exist_ok=True)
    info = api.repo_info(repo_id, repo_type=REPO_TYPE, revision=branch)
    if private and not info.private:
        raise NeuroharnessError(f"--private: datasets/{repo_id} already exists and is public; nothing was "
                                "uploaded. Make it private on the Hub first, or publish without --private")
    return info


def publish_store(name: str, repo: str, revision: str | None = None, private: bool = False) -> Published:
    """Upload the prepared store of dataset ``name`` to the Hub dataset repository ``repo`` (``ORG/NAME``).

    One commit on branch ``revision`` (default ``main``; created from ``main`` if
    missing) holds ``<version>.zarr/`` and the generated ``README.md``; files of
    an earlier upload of the same version that the store no longer has are
    deleted in that commit, and the commit is made on the head read before it
    (a concurrent commit makes it fail, never merge). The repository is created
    if missing (private with ``private``; an existing public one is refused
    then). The store is verified first: its content checksum is recomputed and
    must equal the one it records.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    from . import get_loader

    repo_id, _, _ = parse_repo(repo, "--repo", revision=False)
    branch = revision or "main"
    check_redistribution(name)
    loader = get_loader(name)
    store = loader.store_path()
    if not store.exists():
        raise NeuroharnessError(f"dataset {name} is not prepared ({store} is missing); run `neuroharness datasets "
                                f"prepare {name}` first")
    attrs = _store_attrs(store, name, loader.version, f"{store}")
    status(f"[{name}] verifying {store} before publishing")
    _verify(loader, store, attrs, f"{store}", recorded="the store's content_sha256 attribute",
            hint=f"the cached store is damaged: rebuild it with `neuroharness datasets prepare {name} --force`")
    if attrs.get("source_argument"):
        status(f"[{name}] note: this store was built from --source {attrs['source_argument']} "
               f"({attrs.get('source')}); the card says so")
    folder = f"{loader.version}.zarr"
    files = sorted(p for p in store.rglob("*") if p.is_file())
    text = dataset_card(name, repo_id, branch, store)
    api = hub_api()
    with quiet_bars(), hub_errors(f"publishing {name}", repo_id, NeuroharnessError):
        info = open_target_repo(api, repo_id, branch, private)
        remote = [s.rfilename for s in (info.siblings or [])]
        _check_card_of(api, repo_id, info.sha, remote, name)
        local = {f"{folder}/{p.relative_to(store).as_posix()}" for p in files}
        operations = [CommitOperationDelete(path_in_repo=p) for p in remote
                      if p.startswith(folder + "/") and p not in local]
        operations += [CommitOperationAdd(path_in_repo=f"{folder}/{p.relative_to(store).as_posix()}",
                                          path_or_fileobj=str(p)) for p in files]
        operations.append(CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=text.encode("utf-8")))
        status(f"[{name}] uploading {len(files)} files of {folder} to datasets/{repo_id} ({branch})")
        commit = api.create_commit(
            repo_id, operations, repo_type=REPO_TYPE, revision=branch, parent_commit=info.sha,
            commit_message=f"neuroharness: publish {name} {loader.version}",
            commit_description=f"content sha256 {attrs['content_sha256']}; neuroharness {__version__}")
    n_bytes = sum(p.stat().st_size for p in files) + len(text.encode("utf-8"))
    return Published(repo_id, branch, commit.oid, commit.commit_url, len(files) + 1, n_bytes)


def _check_card_of(api, repo_id: str, sha: str, remote: list[str], name: str) -> None:
    """Refuse to publish ``name`` over a repository whose card describes another dataset."""
    if CARD_FILE not in remote:
        return
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(repo_id, CARD_FILE, repo_type=REPO_TYPE, revision=sha, endpoint=hub_endpoint(),
                           cache_dir=str(cache.home() / "huggingface"))
    meta = card_metadata(Path(path).read_text(encoding="utf-8"), f"datasets/{repo_id}/{CARD_FILE}", strict=False)
    other = (meta.get("neuroharness") or {}).get("dataset") if isinstance(meta.get("neuroharness"), dict) else None
    if other is not None and other != name:
        raise NeuroharnessError(f"datasets/{repo_id} holds dataset {other} (its {CARD_FILE} says so), not {name}; "
                                f"nothing was uploaded. Publish each dataset to its own repository, e.g. ORG/{name}")


# -- the dataset card --------------------------------------------------------------------------------
def hub_license(license_text: str) -> str:
    """The Hub's licence identifier for a card's licence text (``"other"`` when none fits)."""
    if license_text.startswith("source annotations"):  # several licences, one per publication
        return "other"
    return next((hub for text, hub in HUB_LICENSES if text in license_text), "other")


def dataset_card(name: str, repo_id: str, revision: str, store: os.PathLike | str) -> str:
    """The ``README.md`` of a published store: YAML front matter the Hub reads (``license``, ``pretty_name``,
    ``tags``, and a ``neuroharness`` block with the dataset, version and checksums that
    :func:`prepare_from_hub` checks), then the description, how to open it, licence and redistribution,
    citation, provenance, checksums and the schema (dims; variables with dtype, shape, units, long_name;
    per group of a tree store a summary line)."""
    import yaml

    from . import get_card
    from .base import root_attrs

    card = get_card(name)
    store = Path(store)
    attrs = root_attrs(store)
    folder = store.name
    parts = json.loads(attrs["parts_sha256"]) if attrs.get("parts_sha256") else None
    license_id = hub_license(card.license)
    meta: dict = {"license": license_id}
    if license_id == "other":
        meta["license_name"] = f"{name}-license"
        meta["license_link"] = card.homepage or "LICENSE"
    meta["pretty_name"] = card.title
    meta["tags"] = ["neuroscience", "neuroharness", "zarr", name]
    block = {"dataset": name, "version": card.version, "store": folder,
             "content_sha256": attrs["content_sha256"]}
    if parts is not None:
        block["parts_sha256"] = parts
    block["harness_version"] = str(attrs.get("harness_version", __version__))
    meta["neuroharness"] = block
    at = "" if revision == "main" else f"@{revision}"
    tree = parts is not None
    opener = (f'tree = xr.open_datatree("hf://datasets/{repo_id}{at}/{folder}", engine="zarr", chunks={{}})'
              if tree else f'ds = xr.open_zarr("hf://datasets/{repo_id}{at}/{folder}")')
    lines = [
        "---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000).rstrip(), "---", "",
        f"# {card.title}", "",
        " ".join(card.description.split()), "",
        f"This repository holds `{folder}`, the store of the neuroharness "
        f"dataset `{name}` version {card.version}: Zarr v2 with consolidated metadata, exactly as "
        f"`neuroharness datasets prepare {name}` writes it (every variable carries `units` and `long_name`).", "",
        "## Open it", "",
        "With neuroharness: download it, check its content checksum against this card and install it in the "
        "cache as if it had been prepared locally (pin a commit for reproducible work):", "",
        "```bash",
        f"neuroharness datasets prepare {name} --from-hub {repo_id}{at or '@<commit>'}",
        "```", "",
        f"then `neuroharness.loaders.open_dataset(\"{name}\")` and every task reading it work as usual.", "",
        "With xarray alone (huggingface_hub's `hf://` filesystem; append `@<commit>` to the repository to pin it):",
        "", "```python", "import xarray as xr", "", opener, "```", "",
        "## Licence and redistribution", "",
        f"- Licence: {card.license}",
        f"- Redistribution: {card.redistribution_status}: {card.redistribution_reason or 'see the licence'}",
    ]
    if card.homepage:
        lines.append(f"- Homepage: {card.homepage}")
    lines += ["", "## Citation", "", card.citation, "",
              "## Provenance", "",
              f"- Built by neuroharness {attrs.get('harness_version', '?')} on {attrs.get('created', '?')} from: "
              f"{attrs.get('source', '?')}"]
    if attrs.get("source_argument"):
        lines.append(f"- Built from `--source {attrs['source_argument']}` (a local copy, mirror or fixture), "
                     "not the default source")
    if attrs.get("only"):
        lines.append(f"- Only these {card.parts or 'parts'}: {', '.join(map(str, attrs['only']))}")
    raw = json.loads(attrs["raw_sha256"]) if attrs.get("raw_sha256") else {}
    if raw:
        lines.append(f"- sha256 of the {len(raw)} raw files it was built from: in the store's `raw_sha256` attribute")
    lines += ["", "## Checksums", "",
              f"`content_sha256` = `{attrs['content_sha256']}`: sha256 over the names, dims, dtypes and values of "
              "every variable (independent of chunking and attributes; `neuroharness.loaders.base."
              f"{'tree_checksums' if tree else 'content_checksum'}`)."]
    if parts:
        lines += ["", f"Per {card.parts or 'part'} (`parts_sha256`):", "", "| part | sha256 |", "|---|---|"]
        lines += [f"| `{p}` | `{h}` |" for p, h in sorted(parts.items())]
    lines += ["", "## Schema", ""] + _schema_lines(store, tree)
    return "\n".join(lines) + "\n"


def _md(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _var_row(name: str, var, kind: str) -> str:
    shape = " x ".join(map(str, var.shape)) or "scalar"
    dims = ", ".join(map(str, var.dims)) or "-"
    return (f"| `{_md(name)}` | {kind} | {dims} | {shape} | {var.dtype} | {_md(var.attrs.get('units', ''))} | "
            f"{_md(var.attrs.get('long_name', ''))} |")


def _dataset_rows(ds) -> list[str]:
    rows = ["| variable | kind | dims | shape | dtype | units | long_name |", "|---|---|---|---|---|---|---|"]
    rows += [_var_row(str(k), ds.coords[k], "coordinate") for k in sorted(map(str, ds.coords))]
    rows += [_var_row(str(k), ds.data_vars[k], "data") for k in sorted(map(str, ds.data_vars))]
    return rows


def _schema_lines(store: Path, tree: bool) -> list[str]:
    import xarray as xr

    if not tree:
        ds = xr.open_zarr(store, consolidated=True, chunks=None)
        return [f"Dimensions: {', '.join(f'`{k}` = {v}' for k, v in ds.sizes.items()) or 'none'}", ""] + _dataset_rows(ds)
    dt = xr.open_datatree(store, engine="zarr", consolidated=True, chunks=None)
    root = dt.to_dataset(inherit=False)
    out = ["One group per part, read with `xarray.open_datatree`.", "", "### Root group", "",
           f"Dimensions: {', '.join(f'`{k}` = {v}' for k, v in root.sizes.items()) or 'none'}", ""]
    out += _dataset_rows(root) if root.variables else ["(no variables)"]
    groups = [node for node in dt.subtree if node.path != "/"]
    union: dict[str, tuple] = {}
    out += ["", f"### Groups ({len(groups)})", "", "| group | dims | variables | bytes (uncompressed) |",
            "|---|---|---|---|"]
    for i, node in enumerate(groups):
        ds = node.to_dataset(inherit=False)
        for k in ds.variables:
            union.setdefault(str(k), (ds.variables[k], "coordinate" if k in ds.coords else "data", []))[2].append(node.path)
        if i < MAX_GROUP_ROWS:
            dims = ", ".join(f"{k}={v}" for k, v in ds.sizes.items()) or "-"
            out.append(f"| `{_md(node.path)}` | {dims} | {len(ds.variables)} | {_size(int(ds.nbytes))} |")
    if len(groups) > MAX_GROUP_ROWS:
        out.append(f"| ... | {len(groups) - MAX_GROUP_ROWS} more groups | | |")
    out += ["", "### Variables of the groups", "",
            "Shapes are those of the first group holding the variable.", "",
            "| variable | kind | dims | shape | dtype | units | long_name | groups |",
            "|---|---|---|---|---|---|---|---|"]
    for k in sorted(union):
        var, kind, where = union[k]
        out.append(_var_row(k, var, kind) + f" {len(where)} |")
    return out


def card_metadata(text: str, source: str, strict: bool = True) -> dict:
    """The YAML front matter of a card (``{}`` without one unless ``strict``); :class:`DataFormatError` naming
    ``source`` when it is not a YAML mapping."""
    import yaml

    m = re.match(r"\A---\r?\n(.*?)\r?\n---\r?\n", text, re.S)
    if m is None:
        if strict:
            raise DataFormatError(f"{source}: no YAML front matter; expected the dataset card that `neuroharness "
                                  "datasets publish` writes (starting with '---')")
        return {}
    try:
        meta = yaml.safe_load(m.group(1))
    except yaml.YAMLError as e:
        raise DataFormatError(f"{source}: front matter is not valid YAML ({_first_line(e)})") from None
    if not isinstance(meta, dict):
        raise DataFormatError(f"{source}: front matter is a {type(meta).__name__}, expected a YAML mapping")
    return meta


# -- installing a published store --------------------------------------------------------------------------
def prepare_from_hub(name: str, repo: str, force: bool = False) -> Path:
    """Install the store of dataset ``name`` published in ``repo`` (``ORG/NAME[@REVISION]`` or
    ``hf://datasets/ORG/NAME[@REVISION]``); return the store path in the cache.

    The revision (default ``main``) is resolved to its commit first and every
    file is read at that commit. The downloaded store must be dataset ``name``
    at the version this harness reads, and its content checksum, recomputed from
    the data, must equal both the ``content_sha256`` (and ``parts_sha256``) of the
    published card and those the store records; otherwise nothing is installed
    (:class:`ChecksumError`, :class:`DataFormatError`). The store appears
    atomically. Like :func:`~neuroharness.loaders.prepare`, an existing store is
    reused unless ``force``, and one built from another source is an error.
    """
    from . import get_loader

    repo_id, revision, _ = parse_repo(repo, "--from-hub")
    argument = f"hf://datasets/{repo_id}@{revision or 'main'}"
    loader = get_loader(name)
    path = loader.store_path()
    if path.exists() and not force:
        _check_reuse(path, argument)
        return path
    with cache.writable(), cache.lock(f"{name}-{loader.version}"):
        if path.exists() and not force:
            _check_reuse(path, argument)
            return path
        cache.remove_stale_temps(path)
        tmp = io.temp_sibling(path)
        try:
            store = _download(loader, repo_id, revision or "main", tmp)
            io.replace_dir(store, path)
        finally:
            io.remove(tmp)
    status(f"[{name}] installed {path}")
    return path


def _check_reuse(path: Path, argument: str) -> None:
    from .base import root_attrs

    recorded = root_attrs(path).get("source_argument")
    if recorded != argument:
        raise NeuroharnessError(f"{path} was built from {recorded or 'the default source'}, not {argument}; pass "
                                "force=True (--force) to replace it")


def _download(loader, repo_id: str, revision: str, tmp: Path) -> Path:
    """Download, verify and re-stamp the store of ``loader`` under ``tmp``; return the finished store folder."""
    import zarr
    from huggingface_hub import hf_hub_download, snapshot_download

    name, version = loader.name, loader.version
    folder = f"{version}.zarr"
    api = hub_api()
    where = f"datasets/{repo_id}@{revision}"
    with quiet_bars(), hub_errors(f"{name} from {where}", repo_id):
        info = api.repo_info(repo_id, repo_type=REPO_TYPE, revision=revision)
        sha = info.sha  # the pin: every file below is read at this commit, even if the branch moves meanwhile
        where = f"datasets/{repo_id}@{sha}"
        remote = [s.rfilename for s in (info.siblings or [])]
        if CARD_FILE not in remote:
            raise DataFormatError(f"{where}: no {CARD_FILE}; expected a repository written by `neuroharness datasets "
                                  f"publish {name}` (its card holds the checksums checked here)")
        status(f"[{name}] reading {where}")
        card_path = hf_hub_download(repo_id, CARD_FILE, repo_type=REPO_TYPE, revision=sha,
                                    endpoint=hub_endpoint(), local_dir=str(tmp))
        meta = card_metadata(Path(card_path).read_text(encoding="utf-8"), f"{where}/{CARD_FILE}")
        block = meta.get("neuroharness")
        if not isinstance(block, dict) or not isinstance(block.get("content_sha256"), str):
            raise DataFormatError(f"{where}/{CARD_FILE}: front matter lacks neuroharness.content_sha256; expected "
                                  f"the card that `neuroharness datasets publish {name}` writes")
        published = {str(p[: -len("/.zgroup")]) for p in remote if p.endswith(".zarr/.zgroup") and p.count("/") == 1}
        if block.get("dataset") != name:
            raise DataFormatError(f"{where} holds dataset {block.get('dataset')!r} (its {CARD_FILE} says so), not "
                                  f"{name}; expected a repository of {name}")
        if folder not in published:
            have = ", ".join(sorted(published)) or "none"
            raise DataFormatError(f"{where} has no store {folder} (stores there: {have}); this neuroharness reads "
                                  f"{name} version {version}: use a revision published for that version")
        status(f"[{name}] downloading {folder}")
        snapshot_download(repo_id, repo_type=REPO_TYPE, revision=sha, allow_patterns=[f"{folder}/*"],
                          local_dir=str(tmp), endpoint=hub_endpoint())
    store = tmp / folder
    attrs = _store_attrs(store, name, version, f"{where}/{folder}")
    expected = {"content_sha256": block["content_sha256"]}
    if "parts_sha256" in block:
        expected["parts_sha256"] = block["parts_sha256"]
    for key, value in expected.items():
        recorded = json.loads(attrs[key]) if key == "parts_sha256" and key in attrs else attrs.get(key)
        if recorded != value:
            raise ChecksumError(f"{where}/{folder}: {key} in the store's attributes is {recorded!r}, but the "
                                f"published card says {value!r}; the repository was changed after publishing. "
                                f"Nothing was installed; prepare {name} locally instead (`neuroharness datasets "
                                f"prepare {name}`)")
    status(f"[{name}] checking the content checksum")
    _verify(loader, store, {**attrs, **{k: (json.dumps(v, sort_keys=True) if k == "parts_sha256" else v)
                                        for k, v in expected.items()}},
            f"{where}/{folder}", recorded="the published card",
            hint=f"a file was changed after publishing or damaged in transit. Nothing was installed; prepare "
                 f"{name} locally instead (`neuroharness datasets prepare {name}`)")
    group = zarr.open_group(str(store), mode="r+", zarr_format=2)
    group.attrs.update(source=f"huggingface {where}", source_argument=f"hf://datasets/{repo_id}@{revision}",
                       upstream_source=attrs.get("source"), upstream_source_argument=attrs.get("source_argument"))
    # rebuilt from the per-array metadata, which the checksum read: a tampered .zmetadata is not kept
    zarr.consolidate_metadata(str(store), zarr_format=2)
    return store


def _store_attrs(store: Path, name: str, version: str, where: str) -> dict:
    """Root attributes of a store that must be dataset ``name`` at ``version`` with a content checksum."""
    from .base import root_attrs

    if not (store / ".zmetadata").is_file():
        raise DataFormatError(f"{where}: no consolidated metadata (.zmetadata); expected a store written by "
                              "`neuroharness datasets prepare`")
    attrs = root_attrs(store)
    found = (attrs.get("dataset"), attrs.get("dataset_version"))
    if found != (name, version):
        raise DataFormatError(f"{where}: the store is dataset {found[0]!r} version {found[1]!r} (root attributes "
                              f"dataset, dataset_version), expected {name!r} version {version!r}")
    if not isinstance(attrs.get("content_sha256"), str):
        raise DataFormatError(f"{where}: root attributes lack content_sha256; expected a store written by "
                              "`neuroharness datasets prepare`")
    return attrs


def _verify(loader, store: Path, attrs: dict, where: str, recorded: str, hint: str) -> None:
    """Recompute the checksums of ``store`` with the loader's own code; :class:`ChecksumError` unless they equal
    ``attrs`` (``content_sha256``, and ``parts_sha256`` when present). A store that cannot be read is a
    :class:`DataFormatError`."""
    try:
        got = loader._check_and_checksum(store)
    except NeuroharnessError:
        raise
    except Exception as e:  # noqa: BLE001 -- any decoding error of a damaged store
        raise DataFormatError(f"{where}: the store cannot be read ({type(e).__name__}: {_first_line(e)}); {hint}") from None
    want_parts = json.loads(attrs["parts_sha256"]) if "parts_sha256" in attrs else None
    have_parts = json.loads(got["parts_sha256"]) if "parts_sha256" in got else None
    bad = []
    if want_parts is not None and have_parts is not None:
        bad = sorted(p for p in set(want_parts) | set(have_parts) if want_parts.get(p) != have_parts.get(p))
    if got["content_sha256"] != attrs["content_sha256"] or bad:
        which = f" (differing parts: {', '.join(bad)})" if bad else ""
        raise ChecksumError(f"{where}: sha256 of the content is {got['content_sha256']}{which}, but {recorded} says "
                            f"{attrs['content_sha256']}; {hint}")
