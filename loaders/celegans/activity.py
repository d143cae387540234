"""Homogenized C. elegans whole-brain calcium activity -> dataset ``celegans-activity``.

Source: the HuggingFace dataset ``qsimeon/celegans_neural_data`` (Simeon et
al. 2024, MIT licence): about 900 worms from 12 imaging studies, resampled to
dt = 0.333 s, one parquet row per (worm, neuron) holding the full trace. The
raw layout is handled by :mod:`.activity_parquet`.

Store layout (a CF "contiguous ragged array", so worms of different lengths
are not padded to the longest one):

- ``calcium`` (sample, neuron) float32: normalized trace (z-scored per
  neuron over the recording, as published); NaN where the neuron is not
  labeled in that worm. ``calcium_smooth``: the smoothed, resampled trace
  before normalization, when the source has it.
- ``time`` (sample) float64 seconds since the worm's first sample;
  ``worm_index`` (sample) int32, the worm each sample belongs to.
- ``row_size`` (worm) int64, samples per worm (CF ``sample_dimension``), and
  ``worm_start`` (worm) int64, its first sample; worm *w* is
  ``calcium[worm_start[w] : worm_start[w] + row_size[w]]``.
- ``labeled`` (worm, neuron) bool mask; ``source_dataset``, ``raw_worm``
  (the id within its source, e.g. ``worm0``), ``dt`` (worm) seconds.
- ``worm`` ids are ``<source_dataset>/<raw_worm>``, unique across sources;
  ``neuron`` is the canonical list shared with ``celegans-connectome``.
- Chunks of 4096 samples x all neurons (about 23 min of one worm), Blosc-zstd
  compressed: reading one worm touches one to three chunks.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numcodecs
import numpy as np
import xarray as xr
import zarr

from neuroharness.errors import ChecksumError, DataFormatError, DownloadError
from neuroharness.progress import progress_bar

from .. import cache, fetch, io
from ..base import DatasetLoader
from . import activity_parquet, cards, neuron_names

SAMPLE_CHUNK = 1024
HF_REVISION_ENV = "NEUROHARNESS_CELEGANS_ACTIVITY_REVISION"
# The hub cannot be reached from where this was written, so no commit SHA could be
# verified; the default follows the branch and the store records the commit it got.
HF_REVISION_DEFAULT = "main"


def hf_revision() -> str:
    """The HuggingFace revision to download: ``$NEUROHARNESS_CELEGANS_ACTIVITY_REVISION`` or ``main``."""
    return os.environ.get(HF_REVISION_ENV, HF_REVISION_DEFAULT)


def download_hf(revision: str | None = None) -> tuple[dict[str, Path], str]:
    """Download the parquet files through ``huggingface_hub`` (honours ``HF_ENDPOINT``).

    Each file is checked against the sha256 that the hub serves as the ETag
    of large (LFS) files; a mismatch raises :class:`ChecksumError`.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    revision = revision or hf_revision()
    endpoint = os.environ.get("HF_ENDPOINT")
    files, commit = {}, None
    # huggingface_hub cannot resume another process's partial download; drop those a killed run left (the
    # caller holds this dataset's lock, and only this loader uses this cache folder)
    blobs = cache.home() / "huggingface" / f"datasets--{activity_parquet.HF_REPO.replace('/', '--')}" / "blobs"
    if blobs.is_dir():
        for partial in blobs.glob("*.incomplete"):
            io.remove(partial)
    for name in activity_parquet.HF_FILES:
        url = hf_hub_url(activity_parquet.HF_REPO, name, repo_type="dataset", revision=revision, endpoint=endpoint)
        try:
            meta = get_hf_file_metadata(url, endpoint=endpoint)
            if meta.commit_hash and revision != meta.commit_hash:
                revision = meta.commit_hash  # every file from the same commit, even if the branch moves meanwhile
            # HF_ENDPOINT is read per call (huggingface_hub reads it once, at import) so mirrors can be set late
            path = Path(hf_hub_download(activity_parquet.HF_REPO, name, repo_type="dataset", revision=revision,
                                        cache_dir=str(cache.home() / "huggingface"), endpoint=endpoint))
        except Exception as e:  # noqa: BLE001 -- narrowed to network errors by _network_error
            if not _network_error(e):
                raise
            raise DownloadError(f"could not download {url}: {type(e).__name__}: {_first_line(e)}") from None
        m = re.search(r"/snapshots/([0-9a-f]{40})/", str(path))
        commit = m.group(1) if m else commit
        etag = (meta.etag or "").strip('"').lower()
        if re.fullmatch(r"[0-9a-f]{64}", etag):
            got = fetch.sha256_file(path)
            if got != etag:
                raise ChecksumError(f"{path}: sha256 is {got}, but the hub's ETag for {name} at {revision} is {etag}")
        files[name] = path
    return files, f"huggingface datasets/{activity_parquet.HF_REPO}@{commit or revision}"


def _network_error(e: BaseException) -> bool:
    """True for what the Hub client raises when a host cannot be reached or answers with an error."""
    from huggingface_hub import errors as hf_errors

    if isinstance(e, OSError) and e.filename is not None:
        return False  # a local file (e.g. the cache cannot be written): reported as such by the caller
    module = type(e).__module__.split(".")[0]
    return (isinstance(e, (OSError, TimeoutError, hf_errors.HfHubHTTPError))
            or module in {"httpx", "httpx2", "httpcore", "requests", "urllib3", "huggingface_hub"})


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else repr(e)


def local_parquet(source: Path) -> dict[str, Path]:
    """The parquet files of a local copy: the published paths under ``source``, or any ``*.parquet``."""
    if source.is_file():
        return {source.name: source}
    if not source.is_dir():
        raise DataFormatError(f"{source}: source path does not exist; expected a folder with the parquet files of {activity_parquet.HF_REPO}")
    published = {name: source / name for name in activity_parquet.HF_FILES if (source / name).is_file()}
    if published:
        return published
    found = sorted(source.rglob("*.parquet"))
    if not found:
        raise DataFormatError(f"{source}: no parquet files; expected {', '.join(activity_parquet.HF_FILES)}")
    return {str(p.relative_to(source)): p for p in found}


def _array(group, name, shape, chunks, dtype, fill, dims, attrs):
    attrs = dict(attrs)
    return io.create_array(
        group, name, dims=dims, units=attrs.pop("units"), long_name=attrs.pop("long_name"), attrs=attrs,
        shape=shape, chunks=chunks, dtype=dtype, fill_value=fill,
        compressor=numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE),
    )


def write_activity_store(files: dict[str, Path], target: Path) -> int:
    """Stream worms from the parquet files into a ragged Zarr v2 store; return the worm count."""
    names = neuron_names()
    n = len(names)
    root = zarr.open_group(str(target), mode="w", zarr_format=2)
    trace_attrs = {"units": "1", "long_name": "calcium activity, z-scored per neuron over the recording",
                   "description": "calcium_data of the source: normalize(resample(smooth(raw))); NaN where the neuron is not labeled in that worm"}
    calcium = _array(root, "calcium", (0, n), (SAMPLE_CHUNK, n), "float32", np.nan, ("sample", "neuron"), trace_attrs)
    smooth = None
    time = _array(root, "time", (0,), (SAMPLE_CHUNK * 16,), "float64", None, ("sample",),
                  {"units": "s", "long_name": "time since the worm's first sample"})
    windex = _array(root, "worm_index", (0,), (SAMPLE_CHUNK * 16,), "int32", None, ("sample",),
                    {"units": "1", "long_name": "index of the worm each sample belongs to"})
    meta = {k: [] for k in ("source_dataset", "raw_worm", "raw_data_file", "dt", "row_size", "n_unlabeled")}
    labeled = []
    index = {name: i for i, name in enumerate(names)}
    seen_ids = set()
    with progress_bar(desc="celegans-activity", unit="worm") as bar:
        for w, rec in enumerate(activity_parquet.iter_worms(list(files.values()), names)):
            wid = f"{rec.source_dataset}/{rec.worm}"
            if wid in seen_ids:
                raise DataFormatError(f"worm {wid}: appears twice in {', '.join(map(str, files.values()))}")
            seen_ids.add(wid)
            T = len(rec.time)
            cols = np.array([index[nm] for nm in rec.neurons])
            block = np.full((T, n), np.nan, dtype=np.float32)
            block[:, cols] = rec.calcium
            calcium.append(block, axis=0)
            if rec.smooth is not None:
                if smooth is None:
                    if w > 0:
                        raise DataFormatError(f"worm {wid} in {', '.join(map(str, files.values()))}: has column "
                                              "smooth_calcium_data but earlier worms do not; expected it in every "
                                              "file or in none")
                    smooth = _array(root, "calcium_smooth", (0, n), (SAMPLE_CHUNK, n), "float32", np.nan, ("sample", "neuron"), {
                        "units": "1", "long_name": "smoothed, resampled calcium trace before normalization",
                        "description": "smooth_calcium_data of the source (not normalized); NaN where not labeled"})
                block[:, cols] = rec.smooth
                smooth.append(block, axis=0)
            elif smooth is not None:
                raise DataFormatError(f"worm {wid}: has no smooth_calcium_data but earlier worms do")
            time.append(rec.time.astype(np.float64))
            windex.append(np.full(T, w, dtype=np.int32))
            mask = np.zeros(n, dtype=bool)
            mask[cols] = True
            labeled.append(mask)
            for k, v in (("source_dataset", rec.source_dataset), ("raw_worm", rec.worm), ("raw_data_file", rec.raw_data_file),
                         ("dt", rec.dt), ("row_size", T), ("n_unlabeled", rec.n_unlabeled)):
                meta[k].append(v)
            bar.update(1)
    if not labeled:
        raise DataFormatError(f"no worms found in {', '.join(map(str, files.values()))}")
    row_size = np.asarray(meta["row_size"], dtype=np.int64)
    ids = [f"{s}/{w}" for s, w in zip(meta["source_dataset"], meta["raw_worm"])]
    worm_vars = xr.Dataset(
        {
            "row_size": ("worm", row_size, {"units": "1", "long_name": "number of samples of the worm", "sample_dimension": "sample"}),
            "worm_start": ("worm", np.concatenate([[0], np.cumsum(row_size)[:-1]]).astype(np.int64),
                           {"units": "1", "long_name": "index of the worm's first sample"}),
            "labeled": (("worm", "neuron"), np.stack(labeled), {"units": "1", "long_name": "neuron is labeled (identified) in the worm"}),
            "dt": ("worm", np.asarray(meta["dt"], dtype=np.float64), {"units": "s", "long_name": "sampling interval"}),
            "n_unlabeled": ("worm", np.asarray(meta["n_unlabeled"], dtype=np.int32),
                            {"units": "1", "long_name": "recorded but unidentified neurons (not stored)"}),
        },
        coords={
            "worm": ids,
            "neuron": names,
            "source_dataset": ("worm", np.asarray(meta["source_dataset"], dtype=str)),
            "raw_worm": ("worm", np.asarray(meta["raw_worm"], dtype=str)),
            "raw_data_file": ("worm", np.asarray(meta["raw_data_file"], dtype=str)),
        },
    )
    worm_vars.to_zarr(target, mode="a", consolidated=False, zarr_format=2)
    return len(ids)


class CelegansActivity(DatasetLoader):
    card = cards.ACTIVITY

    def fetch(self, source, only=None):
        if source is not None:
            return local_parquet(Path(source)), f"local copy {source}"
        return download_hf()

    def write(self, files, target):
        write_activity_store(files, target)

    def summary(self, ds):
        src = ds.source_dataset.values.astype(str)
        rows = ds.row_size.values
        dt = ds.dt.values
        nlab = ds.labeled.values.sum(1)
        lines = [f"{'source':<20} {'worms':>5}  {'labeled neurons per worm':>24}  {'hours':>7}",
                 f"{'':<20} {'':>5}  {'min':>6} {'median':>8} {'max':>8}  {'':>7}"]
        for s in sorted(set(src)):
            m = src == s
            lines.append(f"{s:<20} {int(m.sum()):>5}  {int(nlab[m].min()):>6} {float(np.median(nlab[m])):>8.1f} "
                         f"{int(nlab[m].max()):>8}  {float((rows[m] * dt[m]).sum() / 3600):>7.2f}")
        lines.append(f"{'total':<20} {len(src):>5}  {int(nlab.min()):>6} {float(np.median(nlab)):>8.1f} "
                     f"{int(nlab.max()):>8}  {float((rows * dt).sum() / 3600):>7.2f}")
        return lines
