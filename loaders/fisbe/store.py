"""Writing the FISBe store: finding the samples of a source, cross-checking the splits, and
streaming each sample into its own Zarr v2 group (layout: see :mod:`neuroharness.loaders.fisbe`)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numcodecs
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from neuroharness.errors import DataFormatError
from neuroharness.progress import status

from .. import io
from . import ngff
from .release import (
    GT_KEY,
    MAX_RAW,
    RAW_KEY,
    SPLIT_FILE,
    SPLITS,
    SUBSETS,
    SampleRef,
    check_arrays,
    official_assignment,
    parse_split_list,
    samples_in_tree,
    samples_in_zip,
)

VOXEL_SIZE_UM = 0.44  # isotropic (FISBe datasheet)
CHUNK = 64  # spatial chunk edge of the store: patch reads for training
Z_SLAB = 64  # z planes copied at a time (one chunk row): a real-size sample never sits in memory whole
SLAB_BYTES = 1 << 30  # fewer planes at a time where 64 of them would hold more than this
RAW_COMPRESSOR = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.BITSHUFFLE)
# label images: zstd without shuffle is 2.3x smaller and 3x faster to decode than lz4 + bitshuffle on FISBe-like labels
LABEL_COMPRESSOR = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.NOSHUFFLE)
SPARSE_BYTES = 1 << 28  # instance voxel indices kept between the two passes of a sample (64 M voxels)
OFFICIAL_COUNTS = {("completely", "train"): 18, ("completely", "val"): 5, ("completely", "test"): 7,
                   ("partly", "train"): 43, ("partly", "val"): 12, ("partly", "test"): 16}
CHANNEL_COLOURS = ("FF0000", "00FF00", "0000FF")  # display only: the release does not name its MCFO channels


# -- source discovery -------------------------------------------------------------------
def local_release(source: Path) -> dict[str, Path]:
    """Raw files of a local copy: ``{key: path}`` (``<subset>/<split>/<sample>.zarr`` dirs, or zips; plus the split list)."""
    if not source.exists():
        raise DataFormatError(f"FISBe source {source} does not exist; expected a release directory "
                              "({completely,partly}/{train,val,test}/<sample>.zarr), a directory of its zips or one zip")
    files: dict[str, Path] = {}
    folder = source.parent if source.is_file() else source
    if source.is_file():
        if source.suffix.lower() != ".zip":
            raise DataFormatError(f"FISBe source {source} is a file but not a zip archive; expected a .zip or a release directory")
        files[source.name] = source
    elif any((source / s).is_dir() for s in SUBSETS):
        for ref in samples_in_tree(source):
            files[f"{ref.subset}/{ref.split}/{ref.name}.zarr"] = ref.path
    else:
        for z in sorted(source.glob("*.zip")):
            if "mip" not in z.name.lower():
                files[z.name] = z
    if (folder / SPLIT_FILE).is_file():
        files[SPLIT_FILE] = folder / SPLIT_FILE
    if not any(k != SPLIT_FILE for k in files):
        raise DataFormatError(f"FISBe source {source}: no samples found; expected {{completely,partly}}/{{train,val,test}}/"
                              "<sample>.zarr directories or zip archives with those members")
    return files


def sample_refs(files: dict[str, Path]) -> list[SampleRef]:
    """Every sample in the raw files, sorted by subset, split, name; duplicates are an error."""
    refs = []
    for key, path in files.items():
        if key == SPLIT_FILE:
            continue
        if path.is_dir():
            subset, split, leaf = key.split("/")
            refs.append(SampleRef(leaf[: -len(".zarr")], subset, split, path))
        else:
            refs += samples_in_zip(path)
    seen: dict[str, SampleRef] = {}
    for r in refs:
        if r.name in seen:
            raise DataFormatError(f"sample {r.name}: appears twice, in {seen[r.name].where} and {r.where}; expected once")
        seen[r.name] = r
    if not refs:
        raise DataFormatError(f"no samples in {', '.join(map(str, files.values()))}; expected members "
                              "{completely,partly}/{train,val,test}/<sample>.zarr/")
    return sorted(refs, key=lambda r: (SUBSETS.index(r.subset), SPLITS.index(r.split), r.name))


def check_splits(refs: list[SampleRef], split_file: Path | None) -> dict:
    """Cross-check sample locations with the split list and the official split; return release attrs."""
    if split_file is not None:
        try:
            text = split_file.read_bytes().decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            raise DataFormatError(f"{split_file}: not a readable text file ({e}); expected the official "
                                  f"{SPLIT_FILE}") from None
        listed = parse_split_list(text, str(split_file))
        for r in refs:
            if r.name not in listed:
                raise DataFormatError(f"sample {r.name}: in {r.subset}/{r.split} but not listed in {split_file}")
            if listed[r.name] != (r.subset, r.split):
                raise DataFormatError(f"sample {r.name}: in {r.subset}/{r.split} but {split_file} lists it under "
                                      f"{'/'.join(listed[r.name])}")
    official = official_assignment()
    for r in refs:
        if r.name in official and official[r.name] != (r.subset, r.split):
            raise DataFormatError(f"sample {r.name}: in {r.subset}/{r.split}, but the official FISBe split puts it in "
                                  f"{'/'.join(official[r.name])}")
    names = {r.name for r in refs}
    n_official = len(names & set(official))
    complete = n_official == len(official)
    if complete:
        counts = {k: sum(1 for r in refs if (r.subset, r.split) == k and r.name in official) for k in OFFICIAL_COUNTS}
        if counts != OFFICIAL_COUNTS:  # cannot differ when every name is in its official place; kept as a guard
            raise DataFormatError(f"FISBe release: samples per subset/split {counts}, expected {OFFICIAL_COUNTS}")
        note = f"the full official FISBe v1.0 release ({len(official)} samples)"
        if len(names) > n_official:
            note += f" plus {len(names) - n_official} other samples"
    else:
        note = (f"{len(names)} samples, {n_official} of the {len(official)} official ones: the store holds whatever "
                "samples the prepared source held, not the full release")
    return {"n_samples": len(names), "n_official_samples": n_official, "complete_release": complete, "release_note": note}


# -- writing ----------------------------------------------------------------------------------
def _array(group, name, shape, chunks, dtype, dims, attrs, compressor=None):
    attrs = dict(attrs)
    return io.create_array(
        group, name, dims=dims, units=attrs.pop("units"), long_name=attrs.pop("long_name"), attrs=attrs,
        shape=shape, chunks=chunks, dtype=dtype, compressor=compressor,
        chunk_key_encoding={"name": "v2", "separator": "/"},  # OME-NGFF v0.4 wants "/" in zarr v2 arrays
    )


def omero_metadata(name: str) -> dict:
    """OME-NGFF 0.4 ``omero`` display settings of the three raw channels of a sample group."""
    return {
        "name": name,
        "version": "0.4",
        "channels": [{"label": f"channel {c}", "color": CHANNEL_COLOURS[c], "active": True, "coefficient": 1.0,
                      "family": "linear", "inverted": False,
                      "window": {"min": 0, "max": MAX_RAW, "start": 0, "end": 1500}} for c in range(3)],
        "rdefs": {"model": "color", "defaultZ": 0, "defaultT": 0},
    }


class _SlabMasks:
    """The instance masks of each z-slab as voxel indices, kept from the first pass for the second.

    FISBe neurons fill 0.1-1 % of a volume (a few MB of indices); past ``budget`` bytes (a damaged
    or unusually dense sample) nothing is kept and the second pass reads the source again.
    """

    def __init__(self, budget: int):
        self.budget, self.used, self.slabs = budget, 0, {}

    @property
    def kept(self) -> bool:
        return self.slabs is not None

    def add(self, z0: int, masks: np.ndarray) -> list[np.ndarray]:
        """Voxel indices (flat within the slab) of each instance of ``masks`` (N, dz, Y, X) bool."""
        idx = [np.flatnonzero(m) for m in masks]
        if self.slabs is not None:
            self.used += sum(i.size for i in idx) * 4
            if self.used > self.budget:
                self.slabs = None
            else:
                self.slabs[z0] = [i.astype(np.int32) for i in idx]  # a slab holds < 2**31 voxels
        return idx


def _slab_step(Z: int, Y: int, X: int, n: int, multiple: int) -> int:
    """z-planes per slab: at most :data:`Z_SLAB` and :data:`SLAB_BYTES`, a multiple of ``multiple`` (the
    pyramid's accumulated z factor, so that every level's slab starts on a whole plane)."""
    step = max(1, min(Z_SLAB, SLAB_BYTES // (Y * X * (6 + n))))
    return max(multiple, step - step % multiple)


def _coord(g, dim: str, values: np.ndarray, long_name: str) -> None:
    _array(g, dim, values.shape, values.shape, "float64", (dim,), {"units": "micrometer", "long_name": long_name})[:] = values


def copy_sample(root: zarr.Group, ref: SampleRef, raw_in, gt_in) -> dict:
    """Write one validated sample as the OME-NGFF image group ``/<sample>``; return its index row.

    Two passes over z-slabs (a real-size sample never sits in memory whole): the first copies
    ``raw`` and writes its pyramid (:mod:`.ngff`) while counting each instance's voxels and the
    voxels each pair of instances shares; the second writes the label images of the groups of
    instances that share no voxel (:func:`.ngff.instance_groups`), from the masks kept by the
    first pass (or the source again where they were too many). Checks values on the way
    (raw <= 4095, some instance non-empty) and raises :class:`DataFormatError` naming the sample
    and array.
    """
    n, (Z, Y, X) = int(gt_in.shape[0]), (int(s) for s in raw_in.shape[1:])
    levels = ngff.pyramid_levels((Z, Y, X), (VOXEL_SIZE_UM,) * 3)
    g = root.create_group(ref.name)

    def spatial(shape):
        return tuple(min(CHUNK, s) for s in shape)

    raws = [_array(g, ngff.raw_path(k), (3, *lv.shape), (3, *spatial(lv.shape)), "uint16",
                   ("channel", *ngff.level_dims(k)),
                   {"units": "1", "long_name": "fluorescence intensity (12-bit camera counts)",
                    "description": "the three MCFO signal channels of volumes/raw" if k == 0 else
                    f"pyramid level {k}: block mean of level {k - 1}, voxels {lv.scale} um"}, RAW_COMPRESSOR)
            for k, lv in enumerate(levels)]
    z_mult = int(np.prod([lv.factors[0] for lv in levels]))
    step = _slab_step(Z, Y, X, n, z_mult)
    counts = np.zeros(n, dtype=np.int64)
    shared = np.zeros((n, n), dtype=np.int64)  # voxels in both instance i+1 and j+1
    in_overlap = np.zeros(n, dtype=np.int64)  # voxels of the instance that another instance shares
    n_overlap = 0  # voxels in two or more instances
    masks = _SlabMasks(SPARSE_BYTES)
    for z0 in range(0, Z, step):  # pass 1: raw and its pyramid; instance statistics
        zs = slice(z0, min(Z, z0 + step))
        block = _read_slab(ref, RAW_KEY, raw_in, zs)
        vmax = int(block.max())
        if vmax > MAX_RAW:
            raise DataFormatError(f"sample {ref.name}: array {RAW_KEY} has maximum {vmax} (z {zs.start}..{zs.stop - 1}), "
                                  f"expected 12-bit values <= {MAX_RAW}")
        _write_levels(raws, levels, block, z0, lambda b, f: ngff.downsample_mean(b, f, MAX_RAW), channel=True)
        labels = _read_slab(ref, GT_KEY, gt_in, zs) != 0
        counts += [i.size for i in masks.add(z0, labels)]
        multi = labels.sum(0, dtype=np.uint8) >= 2
        if multi.any():
            sub = labels[:, multi]
            in_overlap += sub.sum(1)
            n_overlap += sub.shape[1]
            for a in range(0, sub.shape[1], 1 << 20):  # float32 products are exact below 2**24
                piece = sub[:, a : a + (1 << 20)].astype(np.float32)
                shared += np.rint(piece @ piece.T).astype(np.int64)
    if not counts.any():
        raise DataFormatError(f"sample {ref.name}: array {GT_KEY} is empty (all {n} channels are 0), "
                              "expected at least one labeled neuron")
    empty = [int(k) + 1 for k in np.flatnonzero(counts == 0)]
    if empty:
        warnings.warn(f"sample {ref.name}: GT channel(s) for instance(s) {empty} of {GT_KEY} are empty; kept, "
                      "the metrics ignore empty instances", stacklevel=3)

    groups = ngff.instance_groups(shared)
    labels_group = g.create_group(ngff.LABELS)
    images = []
    for gi, members in enumerate(groups):
        lg = labels_group.create_group(f"{ngff.LABEL_PREFIX}{gi}")
        images.append([_array(lg, str(k), lv.shape, spatial(lv.shape), "uint8", ngff.level_dims(k),
                              {"units": "1", "long_name": "neuron id (instance) of the voxel, 0 = none",
                               "description": f"instances {list(members)}, which share no voxel"
                               + ("" if k == 0 else f"; level {k}: block maximum of level {k - 1}")},
                              LABEL_COMPRESSOR)
                       for k, lv in enumerate(levels)])
    for z0 in range(0, Z, step):  # pass 2: the label images
        zs = slice(z0, min(Z, z0 + step))
        idx = masks.slabs[z0] if masks.kept else [np.flatnonzero(m) for m in _read_slab(ref, GT_KEY, gt_in, zs) != 0]
        for members, arrays in zip(groups, images):
            img = np.zeros((zs.stop - zs.start, Y, X), np.uint8)
            flat = img.reshape(-1)
            for k in members:
                flat[idx[k - 1]] = k
            _write_levels(arrays, levels, img, z0, ngff.downsample_max, channel=False)

    for k, lv in enumerate(levels):
        for axis, dim, size, scale, shift in zip("zyx", ngff.level_dims(k), lv.shape, lv.scale, lv.translation):
            _coord(g, dim, shift + np.arange(size) * scale,
                   f"{axis} position of the voxel centre" + (f" (pyramid level {k})" if k else ""))
    _array(g, "channel", (3,), (3,), "int64", ("channel",), {"units": "1", "long_name": "colour channel of volumes/raw"})[:] = np.arange(3)
    _array(g, "instance", (n,), (n,), "int32", ("instance",),
           {"units": "1", "long_name": "neuron id (the release's channel value)"})[:] = np.arange(1, n + 1, dtype=np.int32)
    _array(g, "n_voxels", (n,), (n,), "int64", ("instance",),
           {"units": "1", "long_name": "voxels of the neuron"})[:] = counts
    image_of = np.zeros(n, np.int32)
    for gi, members in enumerate(groups):
        image_of[[m - 1 for m in members]] = gi
    _array(g, "label_image", (n,), (n,), "int32", ("instance",), {
        "units": "1", "long_name": f"label image holding the neuron (g in {ngff.LABELS}/{ngff.LABEL_PREFIX}<g>)"})[:] = image_of
    g.attrs.update({"sample": ref.name, "subset": ref.subset, "split": ref.split,
                    "voxel_size_um": [VOXEL_SIZE_UM] * 3, "empty_instances": empty,
                    "overlap_voxels": n_overlap,
                    "label_images": {f"{ngff.LABEL_PREFIX}{gi}": list(m) for gi, m in enumerate(groups)},
                    "overlap_pairs": [[i + 1, j + 1, int(shared[i, j])] for i in range(n) for j in range(i + 1, n)
                                      if shared[i, j]]})
    ngff.write_image_metadata(g, ref.name, levels, omero_metadata(ref.name))
    for gi, members in enumerate(groups):
        ngff.write_label_metadata(labels_group, f"{ngff.LABEL_PREFIX}{gi}", levels, [
            {"label-value": k, "instance": k, "release_channel": k - 1, "voxels": int(counts[k - 1]),
             "voxels_shared": int(in_overlap[k - 1])} for k in members])
    return {"sample": ref.name, "subset": ref.subset, "split": ref.split, "n_instances": n, "size_z": Z, "size_y": Y, "size_x": X}


def _write_levels(arrays, levels, block: np.ndarray, z0: int, reduce, channel: bool) -> None:
    """Write ``block`` (a slab starting at plane ``z0`` of level 0) and, reduced level by level
    with ``reduce``, its part of every coarser level."""
    for k, (arr, lv) in enumerate(zip(arrays, levels)):
        if k:
            block = reduce(block, lv.factors)
            z0 //= lv.factors[0]
        arr[(slice(None),) * channel + (slice(z0, z0 + block.shape[-3]),)] = block


def _read_slab(ref: SampleRef, key: str, array, zs: slice) -> np.ndarray:
    """``array[:, zs]``; a chunk that cannot be read or decoded is a :class:`DataFormatError`."""
    try:
        return np.asarray(array[:, zs])
    except Exception as e:  # noqa: BLE001 -- zarr, numcodecs, zlib and zipfile raise many types for damaged chunks
        raise DataFormatError(f"sample {ref.name}: array {key}, z {zs.start}..{zs.stop - 1}: a chunk in {ref.where} "
                              f"cannot be read ({type(e).__name__}: {e}); the sample is damaged: download or copy "
                              "it again") from None


def write_sample(target: str, ref: SampleRef, progress=None) -> dict:
    """Stream one sample into its group of the (existing) store at ``target``; return its index row.

    One part of :func:`write_store`, which may run on a dask worker (so it opens the store itself)."""
    root = zarr.open_group(target, mode="r+", zarr_format=2)
    with ref.opened() as group:
        raw_in, gt_in = check_arrays(ref, group)
        row = copy_sample(root, ref, raw_in, gt_in)
    if progress is not None:
        progress.update(1)
    return row


def write_store(files: dict[str, Path], target: Path, write_parts) -> int:
    """Stream every sample of the raw files into the store at ``target``; return the sample count.

    ``write_parts``: the loader's :meth:`~neuroharness.loaders.base.DatasetLoader.write_parts`, which
    writes the samples in this process with a progress bar, or one dask task each."""
    refs = sample_refs(files)
    release = check_splits(refs, files.get(SPLIT_FILE))
    if not release["complete_release"]:
        status(f"[fisbe] {release['release_note']}")
    zarr.open_group(str(target), mode="w", zarr_format=2)
    rows = write_parts(write_sample, [(str(target), ref) for ref in refs], desc="fisbe", unit="sample",
                       shared=[target, *sorted({str(r.path) for r in refs})])
    df = pd.DataFrame(rows)
    index = xr.Dataset(coords={
        "sample": ("sample", df["sample"].to_numpy(str), {"long_name": "sample id (release file name without .zarr)"}),
        "subset": ("sample", df["subset"].to_numpy(str), {"long_name": "completely or partly labeled"}),
        "split": ("sample", df["split"].to_numpy(str), {"long_name": "official split: train, val or test"}),
        "n_instances": ("sample", df["n_instances"].to_numpy(np.int64), {"units": "1", "long_name": "GT instance channels"}),
        **{f"size_{a}": ("sample", df[f"size_{a}"].to_numpy(np.int64), {"units": "1", "long_name": f"volume size along {a}, voxels"})
           for a in "zyx"},
    })
    index.to_zarr(target, mode="a", consolidated=False, zarr_format=2)
    zarr.open_group(str(target), mode="r+", zarr_format=2).attrs.update({"voxel_size_um": [VOXEL_SIZE_UM] * 3, **release})
    return len(refs)
