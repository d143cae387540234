"""Where a store lives: a local folder or any fsspec URL, read the same way.

>>> from neuroharness.loaders.location import StoreLocation
>>> loc = StoreLocation("s3://bucket/cache/datasets/celegans-connectome/1.0.zarr")
>>> loc.exists(), loc.read_attrs()["content_sha256"]
>>> ds = loc.open_dataset()                       # lazy xarray.Dataset (consolidated metadata)

A :class:`StoreLocation` wraps a local path (``/x``, ``~/x``, ``file:///x``) or
a URL of any fsspec filesystem (``s3://``, ``gs://`` with gcsfs, ``hf://``,
``http(s)://``, ...). Stores are read through their consolidated metadata
(``.zmetadata``), so a read-only HTTP server that cannot list folders serves
them as well as S3. Nothing here writes: remote stores are read-only (publish
one by preparing it locally and uploading the folder, e.g. ``aws s3 sync``).

Access options (:func:`storage_options`): ``s3://`` is anonymous unless AWS
credentials are configured (environment, ``~/.aws`` files, a profile), at
``$NEUROHARNESS_S3_ENDPOINT`` when set (a local or non-AWS S3 server); ``hf://``
at ``$HF_ENDPOINT`` when set (a Hub mirror);
``$NEUROHARNESS_STORAGE_OPTIONS``, a JSON object ``{protocol: {option: value}}``
(e.g. ``{"s3": {"anon": false}}`` for an instance role, ``{"gs": {"token":
"anon"}}``), is merged on top; explicit ``storage_options`` win over both.

Standard library only at import time (fsspec, zarr and xarray are imported
when a remote or array read needs them).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

from neuroharness.errors import DataFormatError, NeuroharnessError

S3_ENDPOINT_ENV = "NEUROHARNESS_S3_ENDPOINT"
OPTIONS_ENV = "NEUROHARNESS_STORAGE_OPTIONS"
# a zarr v2 store's root metadata (consolidated first), and a zarr v3 group's
_ROOT_KEYS = (".zmetadata", ".zgroup", "zarr.json")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def is_url(where: Any) -> bool:
    """Whether ``where`` is a URL of a remote filesystem (``file://`` URLs are local paths)."""
    if not isinstance(where, str):
        return False
    m = _SCHEME.match(where)
    return m is not None and m.group(1).lower() not in ("file", "local")


def local_path(where: os.PathLike | str) -> Path:
    """``where`` (a path or a ``file://`` URL) as a local :class:`~pathlib.Path` (``~`` expanded)."""
    text = os.fspath(where)
    m = _SCHEME.match(text)
    if m is not None and m.group(1).lower() in ("file", "local"):
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise NeuroharnessError(f"{text}: a file:// URL with host {parts.netloc!r}; expected file:///absolute/path "
                                    "(a folder on this machine)")
        text = unquote(parts.path)
    return Path(text).expanduser()


def protocol(url: str) -> str:
    """The scheme of ``url`` in lower case (``"s3"``, ``"https"``...)."""
    m = _SCHEME.match(url)
    return m.group(1).lower() if m else "file"


def storage_options(url: str, given: Mapping | None = None) -> dict:
    """fsspec options for ``url``: the defaults (see the module docstring), then
    ``$NEUROHARNESS_STORAGE_OPTIONS`` for its protocol, then ``given``."""
    proto = protocol(url)
    options: dict = {}
    if proto in ("s3", "s3a"):
        options["anon"] = not _aws_credentials_configured()
        endpoint = os.environ.get(S3_ENDPOINT_ENV)
        if endpoint:
            options["client_kwargs"] = {"endpoint_url": endpoint}
    elif proto == "hf" and os.environ.get("HF_ENDPOINT"):
        # read per call: huggingface_hub reads it once, at import, so a mirror set later would be missed
        options["endpoint"] = os.environ["HF_ENDPOINT"]
    text = os.environ.get(OPTIONS_ENV, "").strip()
    if text:
        try:
            table = json.loads(text)
            if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
                raise ValueError("not an object of objects")
        except ValueError as e:
            raise NeuroharnessError(f"${OPTIONS_ENV} is {text!r}: {e}; expected a JSON object "
                                    '{protocol: {option: value}}, e.g. {"s3": {"anon": false}}') from None
        extra = table.get(proto) or (table.get("s3") if proto == "s3a" else None) or {}
        options.update(extra)
    options.update(given or {})
    return options


_CRED_MEMO: dict[str, bool] = {}


def _aws_credentials_configured() -> bool:
    """Whether botocore finds AWS credentials without asking the network (environment, shared files,
    profiles, SSO); instance and container roles are not probed (a network timeout off AWS), so
    they need ``$NEUROHARNESS_STORAGE_OPTIONS='{"s3": {"anon": false}}'``."""
    # keyed by a digest of the AWS_* variables: a change of profile or keys is seen, no secret is kept
    import hashlib

    key = hashlib.sha256(repr(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))).encode()).hexdigest()
    if key not in _CRED_MEMO:
        try:
            import botocore.session

            session = botocore.session.Session()
            resolver = session.get_component("credential_provider")
            for name in ("container-role", "iam-role"):
                try:
                    resolver.remove(name)
                except Exception:  # noqa: BLE001 -- absent in some botocore versions
                    pass
            found = resolver.load_credentials() is not None
        except Exception:  # noqa: BLE001 -- no botocore, or a broken profile: read anonymously
            found = False
        _CRED_MEMO[key] = found
    return _CRED_MEMO[key]


class StoreLocation:
    """A Zarr store (or any folder of one) on the local disk or behind an fsspec URL.

    ``where``: a path, a ``file://`` URL or a remote URL; ``storage_options``
    for the remote filesystem (on top of :func:`storage_options`' defaults).
    Picklable (the filesystem is reopened on first use), so it can travel to
    worker processes.
    """

    def __init__(self, where: "StoreLocation | os.PathLike | str", storage_options: Mapping | None = None):
        if isinstance(where, StoreLocation):
            self.url, self.path = where.url, where.path
            self._given = {**where._given, **(storage_options or {})}
        elif is_url(where):
            self.url, self.path = str(where).rstrip("/"), None
            self._given = dict(storage_options or {})
        else:
            self.url, self.path = None, local_path(where)
            self._given = {}
        self._fs = None

    # -- identity ----------------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return self.path is not None

    def __str__(self) -> str:
        return self.url if self.url is not None else str(self.path)

    def __repr__(self) -> str:
        return f"StoreLocation({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, StoreLocation) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __getstate__(self):
        return {"url": self.url, "path": self.path, "_given": self._given, "_fs": None}

    def __truediv__(self, key: str) -> "StoreLocation":
        """The location of ``key`` (``"a/b"``) below this one."""
        key = str(key).strip("/")
        if self.path is not None:
            return StoreLocation(self.path / key)
        return StoreLocation(f"{self.url}/{key}", self._given)

    @property
    def name(self) -> str:
        """The last component (``1.0.zarr``)."""
        return self.path.name if self.path is not None else self.url.rsplit("/", 1)[-1]

    # -- the filesystem ----------------------------------------------------------------------------
    def options(self) -> dict:
        """The fsspec options this location is read with ({} for a local path)."""
        return {} if self.url is None else storage_options(self.url, self._given)

    def filesystem(self):
        """``(fsspec filesystem, root path in it)``; opened once. Errors name the URL and what to install."""
        if self._fs is None:
            try:
                import fsspec

                self._fs = fsspec.core.url_to_fs(self.url, **self.options())
            except ImportError as e:
                raise NeuroharnessError(f"{self.url}: cannot read {protocol(self.url)}:// URLs here ({e}); install "
                                        "the fsspec filesystem for it (gcsfs for gs://, s3fs for s3://, "
                                        "huggingface_hub for hf://, aiohttp for http(s)://)") from None
            except ValueError as e:
                raise NeuroharnessError(f"{self.url}: fsspec does not read this URL ({e}); expected a path or a "
                                        "URL such as s3://bucket/prefix, gs://..., hf://datasets/ORG/NAME, "
                                        "https://...") from None
        return self._fs

    def _remote(self, key: str) -> str:
        fs, root = self.filesystem()
        return f"{root.rstrip('/')}/{key}" if key else root

    def _call(self, what: str, fn):
        """Run a remote read; a failure other than a missing file (network, permission, the client library's
        own errors) becomes an error naming the URL."""
        try:
            return fn()
        except (FileNotFoundError, NeuroharnessError):
            raise
        except PermissionError as e:
            raise NeuroharnessError(
                f"{self.url}: access denied ({e}); give credentials for it (the AWS environment or ~/.aws for "
                f"s3://, or ${OPTIONS_ENV}, e.g. '{{\"s3\": {{\"anon\": false}}}}')") from None
        except Exception as e:  # noqa: BLE001 -- botocore, aiohttp, huggingface_hub errors are not OSErrors
            raise NeuroharnessError(f"{self.url}: cannot {what} ({type(e).__name__}: {e}); check the URL, the "
                                    "network and the storage options") from None

    # -- reading -----------------------------------------------------------------------------------
    def exists(self) -> bool:
        """Whether a store is there: the folder for a local path (a cache's stores appear whole, by a
        rename), root Zarr metadata for a URL (object stores and web servers have no folders)."""
        if self.path is not None:
            return self.path.exists()
        return self.is_store()

    def is_store(self) -> bool:
        """Whether root Zarr metadata (``.zmetadata``, ``.zgroup`` or ``zarr.json``) is there."""
        if self.path is not None:
            return any((self.path / k).is_file() for k in _ROOT_KEYS)
        fs, _ = self.filesystem()
        return any(self._call("read", lambda k=k: _exists(fs, self._remote(k))) for k in _ROOT_KEYS)

    def read_bytes(self, key: str) -> bytes:
        """The bytes of file ``key`` below this location; ``FileNotFoundError`` if there is none."""
        if self.path is not None:
            return (self.path / key).read_bytes()
        fs, _ = self.filesystem()
        return self._call(f"read {key}", lambda: fs.cat_file(self._remote(key)))

    def _json(self, key: str):
        try:
            data = self.read_bytes(key)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        try:
            return json.loads(data)
        except ValueError as e:
            raise DataFormatError(f"{self}/{key}: not valid JSON ({e}); expected Zarr metadata") from None

    def consolidated(self) -> dict | None:
        """The ``metadata`` mapping of the consolidated ``.zmetadata`` (Zarr v2), or None without one."""
        meta = self._json(".zmetadata")
        if meta is None:
            return None
        if not isinstance(meta, dict) or not isinstance(meta.get("metadata"), dict):
            raise DataFormatError(f"{self}/.zmetadata: no 'metadata' object; expected Zarr v2 consolidated metadata")
        return meta["metadata"]

    def read_attrs(self) -> dict:
        """The root group's attributes, from the consolidated metadata (else ``.zattrs``, or a Zarr v3
        ``zarr.json``); ``{}`` where there is no store. No array is opened."""
        meta = self.consolidated()
        if meta is not None:
            attrs = meta.get(".zattrs", {})
        else:
            attrs = self._json(".zattrs")
            if attrs is None:
                v3 = self._json("zarr.json")
                attrs = v3.get("attributes", {}) if isinstance(v3, dict) else {}
        if not isinstance(attrs, dict):
            raise DataFormatError(f"{self}: the root attributes are {type(attrs).__name__}, expected a JSON object")
        return dict(attrs)

    def groups(self) -> list[str]:
        """Names of the root's child groups (sorted), from the consolidated metadata; a local store
        without it is listed on disk."""
        meta = self.consolidated()
        if meta is not None:
            return sorted({k.split("/")[0] for k in meta if k.count("/") == 1 and k.endswith("/.zgroup")})
        if self.path is not None and self.path.is_dir():
            return sorted(p.name for p in self.path.iterdir()
                          if (p / ".zgroup").is_file() or (p / "zarr.json").is_file())
        return []

    # -- opening with zarr and xarray ----------------------------------------------------------------
    def zarr_store(self):
        """What zarr and xarray open: the path (as a str) of a local store, a read-only
        ``zarr.storage.FsspecStore`` of a remote one."""
        if self.path is not None:
            return str(self.path)
        from zarr.storage import FsspecStore

        try:
            return FsspecStore.from_url(self.url, storage_options=self.options(), read_only=True)
        except ImportError as e:
            raise NeuroharnessError(f"{self.url}: cannot read {protocol(self.url)}:// URLs here ({e}); install the "
                                    "fsspec filesystem for it") from None

    def open_group(self, path: str | None = None):
        """The root (or ``path``) as a read-only ``zarr.Group``."""
        import zarr

        return zarr.open_group(self.zarr_store(), mode="r", path=path)

    def open_dataset(self, group: str | None = None, **kw):
        """The store (or its ``group``) as a lazy ``xarray.Dataset`` through the consolidated metadata;
        ``kw`` go to ``xarray.open_zarr`` (default ``chunks={}``: dask arrays of the store's chunks;
        ``chunks=None``: lazily indexed arrays)."""
        import xarray as xr

        kw.setdefault("chunks", {})
        return xr.open_zarr(self.zarr_store(), group=group, consolidated=True, **kw)

    def open_datatree(self, **kw):
        """The store as a lazy ``xarray.DataTree`` through the consolidated metadata; ``kw`` go to
        ``xarray.open_datatree`` (default ``chunks={}``: dask arrays; ``chunks=None``: lazily indexed)."""
        import xarray as xr

        kw.setdefault("chunks", {})
        return xr.open_datatree(self.zarr_store(), engine="zarr", consolidated=True, **kw)

    def missing_error(self, what: str = "store", dataset: str = "NAME") -> DataFormatError:
        """The error for a store that is not at this location (``dataset``: for the command in the hint)."""
        return DataFormatError(f"no {what} at {self} (no .zmetadata, .zgroup or zarr.json there); expected a Zarr "
                               "store written by "
                               f"`neuroharness datasets prepare {dataset}`")


def _exists(fs, path: str) -> bool:
    # not fs.exists: some filesystems (HTTP) answer False for any error, so a server that cannot be
    # reached would read as a missing store
    try:
        fs.info(path)
    except FileNotFoundError as e:
        # fsspec's HTTP filesystem turns every failure into FileNotFoundError; the cause tells them apart
        cause = e.__cause__
        if isinstance(cause, OSError) and not isinstance(cause, FileNotFoundError):
            raise cause from None
        return False
    return True


def as_location(where: "StoreLocation | os.PathLike | str", storage_options: Mapping | None = None) -> StoreLocation:
    """``where`` as a :class:`StoreLocation` (itself if it already is one and no options are given)."""
    if isinstance(where, StoreLocation) and not storage_options:
        return where
    return StoreLocation(where, storage_options)
