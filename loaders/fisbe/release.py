"""The FISBe release layout: split lists, finding samples in a tree or in zips, reading and checking them.

A release holds ``{completely,partly}/{train,val,test}/<sample>.zarr`` (zarr v2
groups with ``volumes/raw`` (3, Z, Y, X) uint16, 12-bit values, and
``volumes/gt_instances`` (N, Z, Y, X) uint8, channel k holding k+1) and
``sample_list_per_split.txt``. Zenodo ships the trees as zip archives whose
members are ``completely/<split>/<sample>.zarr/...``; those are read in place
with :class:`zarr.storage.ZipStore`, never extracted.

Samples larger than the documented limits (:data:`MAX_EDGE` voxels along an
axis, :data:`MAX_INSTANCES` GT channels, :data:`MAX_SAMPLE_BYTES` per sample,
:data:`MAX_CHUNK_BYTES` per chunk) are refused from their array headers, before
any data is read.
"""
from __future__ import annotations

import contextlib
import dataclasses
import re
import zipfile
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import zarr

from neuroharness.errors import DataFormatError

from .. import io

SUBSETS = ("completely", "partly")
SPLITS = ("train", "val", "test")
SPLIT_FILE = "sample_list_per_split.txt"
RAW_KEY, GT_KEY = "volumes/raw", "volumes/gt_instances"
N_COLOURS = 3
MAX_RAW = 4095  # 12-bit camera values stored in uint16
# Size limits, checked from the array headers before anything is read (a damaged header can declare
# terabytes of fill values). A real sample is about 400 x 700 x 700 voxels with a handful of neurons.
MAX_EDGE = 4096  # voxels along z, y or x
MAX_INSTANCES = 255  # GT channel k holds the value k + 1 in uint8
MAX_SAMPLE_BYTES = 16 << 30  # raw (3 x 2 bytes) plus GT (1 byte per channel) per voxel
MAX_CHUNK_BYTES = 1 << 30  # one decoded chunk (the release's are 250 kB)
_MEMBER = re.compile(r"(completely|partly)/(train|val|test)/([^/]+)\.zarr/")


# -- split lists -----------------------------------------------------------------
@lru_cache(maxsize=1)
def _official_rows() -> tuple[tuple[str, str, str], ...]:
    text = resources.files(__package__).joinpath("splits.tsv").read_text()
    rows = [ln.split("\t") for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert rows[0] == ["sample", "subset", "split"], rows[0]
    return tuple(tuple(r) for r in rows[1:])


def official_split() -> dict[tuple[str, str], list[str]]:
    """``{(subset, split): [sample, ...]}`` of the official FISBe v1.0 split (101 samples)."""
    out = {(s, p): [] for s in SUBSETS for p in SPLITS}
    for name, subset, split in _official_rows():
        out[(subset, split)].append(name)
    return out


def official_assignment() -> dict[str, tuple[str, str]]:
    """``{sample: (subset, split)}`` of the official split."""
    return {name: (subset, split) for name, subset, split in _official_rows()}


def parse_split_list(text: str, source: str = SPLIT_FILE) -> dict[str, tuple[str, str]]:
    """Parse the official ``sample_list_per_split.txt`` text into ``{sample: (subset, split)}``.

    Format: a header ``(1) samples for FlyLight completely:`` (or ``partly``),
    then ``train:``/``val:``/``test:`` lines each followed by one name per line.
    """
    out: dict[str, tuple[str, str]] = {}
    subset = split = None
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        m = re.fullmatch(r"\(\d+\)\s*samples for FlyLight (\w+):", line)
        if m:
            subset, split = m.group(1), None
            if subset not in SUBSETS:
                raise DataFormatError(f"{source} line {i}: subset {subset!r}, expected one of {SUBSETS}")
            continue
        if line.endswith(":"):
            split = line[:-1]
            if split not in SPLITS:
                raise DataFormatError(f"{source} line {i}: split {split!r}, expected one of {SPLITS}")
            continue
        if subset is None or split is None:
            raise DataFormatError(f"{source} line {i}: sample {line!r} before a subset and split header")
        if line in out and out[line] != (subset, split):
            raise DataFormatError(f"{source} line {i}: sample {line!r} is listed under both {out[line]} and {(subset, split)}")
        out[line] = (subset, split)
    return out


# -- locating samples --------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SampleRef:
    """Where one sample lives: a ``.zarr`` directory, or a prefix inside a zip archive."""

    name: str
    subset: str
    split: str
    path: Path  # the .zarr directory, or the zip file
    member: str | None = None  # "completely/train/<name>.zarr" inside the zip, or None for a directory

    @property
    def where(self) -> str:
        return f"{self.path}:{self.member}" if self.member else str(self.path)

    @contextlib.contextmanager
    def opened(self):
        """The sample's root group, read-only (zarr v2); a zip is read in place and closed afterwards."""
        store = None
        try:
            if self.member is None:
                group = zarr.open_group(str(self.path), mode="r", zarr_format=2)
            else:
                store = zarr.storage.ZipStore(self.path, mode="r")
                group = zarr.open_group(store, mode="r", path=self.member, zarr_format=2)
        except Exception as e:  # zarr raises several types for a missing or invalid group
            if store is not None:
                store.close()
            raise DataFormatError(f"sample {self.name}: {self.where} is not a readable zarr v2 group ({e})") from e
        try:
            yield group
        finally:
            if store is not None:
                store.close()


def safe_member(name: str, archive: Path) -> str:
    """``name`` as a POSIX path; zip member names that would escape a directory if extracted are an error."""
    return io.safe_member(name, archive, "relative paths like completely/train/<sample>.zarr/...")


def samples_in_tree(root: Path) -> list[SampleRef]:
    """Samples of a release directory ``root/{completely,partly}/{train,val,test}/*.zarr``."""
    refs = []
    for subset in SUBSETS:
        for split in SPLITS:
            d = root / subset / split
            if d.is_dir():
                refs += [SampleRef(p.name[: -len(".zarr")], subset, split, p) for p in sorted(d.glob("*.zarr")) if p.is_dir()]
    return refs


def samples_in_zip(archive: Path) -> list[SampleRef]:
    """Samples inside one zip archive (members ``<subset>/<split>/<sample>.zarr/...``), checked for traversal."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:  # ValueError: e.g. a negative offset
        raise DataFormatError(f"{archive}: not a readable zip archive ({type(e).__name__}: {e})") from None
    found = {}
    for n in names:
        n = safe_member(n, archive)
        m = _MEMBER.search(n)  # search, not match: tolerate one wrapping folder (e.g. fisbe_v1.0/completely/...)
        if m and (m.start() == 0 or n[m.start() - 1] == "/") and n[: m.start()].count("/") <= 1:
            prefix = n[: m.end() - 1]
            found[prefix] = SampleRef(m.group(3), m.group(1), m.group(2), archive, prefix)
    return [found[k] for k in sorted(found)]


# -- reading and validation ------------------------------------------------------------
def check_arrays(ref: SampleRef, group: zarr.Group) -> tuple[zarr.Array, zarr.Array]:
    """Return ``(raw, gt)`` after checking presence, dims, dtypes and shapes (no values read).

    raw must be (3, Z, Y, X) uint16; gt (N, Z, Y, X) uint8 or bool with N >= 1 and
    the same (Z, Y, X). Values (raw <= 4095, a non-empty label image) are checked
    while copying, so a real-size sample is read once. Errors name sample and array.
    """
    name = ref.name
    arrays = {}
    for key, expect in ((RAW_KEY, "(3, Z, Y, X) uint16"), (GT_KEY, "(N, Z, Y, X) uint8")):
        try:
            a = group[key]
        except KeyError:
            a = None
        except Exception as e:  # noqa: BLE001 -- zarr and numcodecs raise many types for damaged metadata
            raise DataFormatError(f"sample {name}: array {key} in {ref.where} has unreadable metadata "
                                  f"({type(e).__name__}: {e}); expected a zarr v2 array {expect}") from None
        if not isinstance(a, zarr.Array):
            raise DataFormatError(f"sample {name}: array {key} is missing in {ref.where}; expected {expect}")
        arrays[key] = a
    raw, gt = arrays[RAW_KEY], arrays[GT_KEY]
    if raw.ndim != 4 or raw.shape[0] != N_COLOURS:
        raise DataFormatError(f"sample {name}: array {RAW_KEY} has shape {raw.shape}, expected (3, Z, Y, X) (3 colour channels)")
    if raw.dtype != np.uint16:
        raise DataFormatError(f"sample {name}: array {RAW_KEY} has dtype {raw.dtype}, expected uint16")
    if gt.ndim != 4:
        raise DataFormatError(f"sample {name}: array {GT_KEY} has shape {gt.shape}, expected 4-D (N, Z, Y, X), one channel per neuron")
    if gt.dtype not in (np.uint8, np.bool_):
        raise DataFormatError(f"sample {name}: array {GT_KEY} has dtype {gt.dtype}, expected uint8 (or bool)")
    if tuple(raw.shape[1:]) != tuple(gt.shape[1:]):
        raise DataFormatError(f"sample {name}: arrays {RAW_KEY} {raw.shape} and {GT_KEY} {gt.shape} differ in "
                              f"(Z, Y, X): {tuple(raw.shape[1:])} vs {tuple(gt.shape[1:])}, expected equal")
    if gt.shape[0] == 0 or 0 in raw.shape:
        raise DataFormatError(f"sample {name}: array {GT_KEY} has shape {gt.shape} and {RAW_KEY} {raw.shape}, "
                              "expected at least one instance channel and a non-empty volume")
    check_sizes(ref, raw, gt)
    return raw, gt


def check_sizes(ref: SampleRef, raw: zarr.Array, gt: zarr.Array) -> None:
    """Refuse, from the headers alone, samples beyond the documented limits (:data:`MAX_EDGE`,
    :data:`MAX_INSTANCES`, :data:`MAX_SAMPLE_BYTES`, :data:`MAX_CHUNK_BYTES`)."""
    name, (Z, Y, X), n = ref.name, raw.shape[1:], gt.shape[0]
    real = "a FISBe sample is about 400 x 700 x 700 voxels"
    if max(Z, Y, X) > MAX_EDGE:
        raise DataFormatError(f"sample {name}: array {RAW_KEY} has shape {raw.shape}, more than the limit of {MAX_EDGE} "
                              f"voxels along z, y or x ({real}); the header is damaged or this is not a FISBe sample")
    if n > MAX_INSTANCES:
        raise DataFormatError(f"sample {name}: array {GT_KEY} has {n} instance channels, more than {MAX_INSTANCES} "
                              "(channel k holds the uint8 value k + 1)")
    total = Z * Y * X * (3 * raw.dtype.itemsize + n * gt.dtype.itemsize)
    if total > MAX_SAMPLE_BYTES:
        raise DataFormatError(f"sample {name}: arrays {RAW_KEY} {raw.shape} and {GT_KEY} {gt.shape} hold "
                              f"{total / 2**30:.1f} GiB, more than the limit of {MAX_SAMPLE_BYTES >> 30} GiB per sample ({real})")
    for key, a in ((RAW_KEY, raw), (GT_KEY, gt)):
        chunk = int(np.prod(a.chunks, dtype=np.int64)) * a.dtype.itemsize
        if chunk > MAX_CHUNK_BYTES:
            raise DataFormatError(f"sample {name}: array {key} has chunks {a.chunks} of {chunk / 2**20:.0f} MiB, more "
                                  f"than the limit of {MAX_CHUNK_BYTES >> 20} MiB per chunk; the header is damaged")
