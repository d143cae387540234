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
from neuroharness.progress import progress_bar, status

from .. import io
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
GT_COMPRESSOR = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.BITSHUFFLE)
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


def ome_metadata(name: str) -> dict:
    """OME-NGFF v0.4 ``multiscales`` (one level: ``raw``) and ``omero`` attributes of a sample group."""
    axes = [{"name": "c", "type": "channel"}] + [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    return {
        "multiscales": [{
            "version": "0.4",
            "name": name,
            "axes": axes,
            "datasets": [{"path": "raw", "coordinateTransformations": [
                {"type": "scale", "scale": [1.0, VOXEL_SIZE_UM, VOXEL_SIZE_UM, VOXEL_SIZE_UM]}]}],
            "type": "none",
            "metadata": {"description": "single resolution; raw MCFO channels as released"},
        }],
        "omero": {
            "name": name,
            "version": "0.4",
            "channels": [{"label": f"channel {c}", "color": CHANNEL_COLOURS[c], "active": True, "coefficient": 1.0,
                          "family": "linear", "inverted": False,
                          "window": {"min": 0, "max": MAX_RAW, "start": 0, "end": 1500}} for c in range(3)],
            "rdefs": {"model": "color", "defaultZ": 0, "defaultT": 0},
        },
    }


def copy_sample(root: zarr.Group, ref: SampleRef, raw_in, gt_in) -> dict:
    """Copy one validated sample into group ``/<sample>`` slab by slab; return its index row.

    Checks values on the way (raw <= 4095, some instance non-empty) and raises
    :class:`DataFormatError` naming the sample and array.
    """
    n, (Z, Y, X) = int(gt_in.shape[0]), (int(s) for s in raw_in.shape[1:])
    g = root.create_group(ref.name)
    spatial = (min(CHUNK, Z), min(CHUNK, Y), min(CHUNK, X))
    raw = _array(g, "raw", (3, Z, Y, X), (3, *spatial), "uint16", ("channel", "z", "y", "x"),
                 {"units": "1", "long_name": "fluorescence intensity (12-bit camera counts)",
                  "description": "the three MCFO signal channels of volumes/raw"}, RAW_COMPRESSOR)
    gt = _array(g, "gt_instances", (n, Z, Y, X), (n, *spatial), "bool", ("instance", "z", "y", "x"),
                {"units": "1", "long_name": "voxel belongs to the neuron",
                 "description": "channel k of volumes/gt_instances (value k+1) is instance k+1; neurons may overlap"},
                GT_COMPRESSOR)
    counts = np.zeros(n, dtype=np.int64)
    step = max(1, min(Z_SLAB, SLAB_BYTES // (Y * X * (6 + n))))
    for z0 in range(0, Z, step):
        zs = slice(z0, min(Z, z0 + step))
        block = _read_slab(ref, RAW_KEY, raw_in, zs)
        vmax = int(block.max())
        if vmax > MAX_RAW:
            raise DataFormatError(f"sample {ref.name}: array {RAW_KEY} has maximum {vmax} (z {zs.start}..{zs.stop - 1}), "
                                  f"expected 12-bit values <= {MAX_RAW}")
        raw[:, zs] = block
        labels = _read_slab(ref, GT_KEY, gt_in, zs) != 0
        counts += labels.reshape(n, -1).sum(1)
        gt[:, zs] = labels
    if not counts.any():
        raise DataFormatError(f"sample {ref.name}: array {GT_KEY} is empty (all {n} channels are 0), "
                              "expected at least one labeled neuron")
    empty = [int(k) + 1 for k in np.flatnonzero(counts == 0)]
    if empty:
        warnings.warn(f"sample {ref.name}: GT channel(s) for instance(s) {empty} of {GT_KEY} are empty; kept, "
                      "the metrics ignore empty instances", stacklevel=3)
    coord = {"units": "micrometer", "long_name": "position of the voxel centre"}
    for axis, size in zip("zyx", (Z, Y, X)):
        _array(g, axis, (size,), (size,), "float64", (axis,), {**coord, "long_name": f"{axis} position of the voxel centre"})[:] = (
            np.arange(size) * VOXEL_SIZE_UM)
    _array(g, "channel", (3,), (3,), "int64", ("channel",), {"units": "1", "long_name": "colour channel of volumes/raw"})[:] = np.arange(3)
    _array(g, "instance", (n,), (n,), "int32", ("instance",),
           {"units": "1", "long_name": "neuron id (the release's channel value)"})[:] = np.arange(1, n + 1, dtype=np.int32)
    g.attrs.update({"sample": ref.name, "subset": ref.subset, "split": ref.split,
                    "voxel_size_um": [VOXEL_SIZE_UM] * 3, "empty_instances": empty, **ome_metadata(ref.name)})
    return {"sample": ref.name, "subset": ref.subset, "split": ref.split, "n_instances": n, "size_z": Z, "size_y": Y, "size_x": X}


def _read_slab(ref: SampleRef, key: str, array, zs: slice) -> np.ndarray:
    """``array[:, zs]``; a chunk that cannot be read or decoded is a :class:`DataFormatError`."""
    try:
        return np.asarray(array[:, zs])
    except Exception as e:  # noqa: BLE001 -- zarr, numcodecs, zlib and zipfile raise many types for damaged chunks
        raise DataFormatError(f"sample {ref.name}: array {key}, z {zs.start}..{zs.stop - 1}: a chunk in {ref.where} "
                              f"cannot be read ({type(e).__name__}: {e}); the sample is damaged: download or copy "
                              "it again") from None


def write_store(files: dict[str, Path], target: Path) -> int:
    """Stream every sample of the raw files into the store at ``target``; return the sample count."""
    refs = sample_refs(files)
    release = check_splits(refs, files.get(SPLIT_FILE))
    if not release["complete_release"]:
        status(f"[fisbe] {release['release_note']}")
    root = zarr.open_group(str(target), mode="w", zarr_format=2)
    rows = []
    with progress_bar(total=len(refs), desc="fisbe", unit="sample") as bar:
        for ref in refs:
            with ref.opened() as group:
                raw_in, gt_in = check_arrays(ref, group)
                rows.append(copy_sample(root, ref, raw_in, gt_in))
            bar.update(1)
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
