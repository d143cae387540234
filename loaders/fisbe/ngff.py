"""OME-NGFF 0.4 layout of one FISBe sample group: a raw pyramid and the neurons as label images.

Each sample group ``/<sample>`` of the store is an NGFF image (Zarr v2, "/" chunk keys) that
napari (with napari-ome-zarr) and neuroglancer (``zarr://<store URL>/<sample>``) open::

    raw, raw_1, ..., raw_L      (channel, z, y, x) uint16: ``raw`` is the release's volumes/raw,
                                ``raw_k`` the block mean of level k-1
    labels/                     attribute "labels": ["neurons_0", "neurons_1", ...]
    labels/neurons_<g>/0 .. L   (z, y, x) uint8 label image of group g: value k on the voxels of
                                instance k (release GT channel k-1), 0 elsewhere; level k the
                                block maximum of level k-1

**Pyramid** (:func:`pyramid_levels`). Each level halves every spatial axis whose voxel is within
1.5 times the finest voxel of the level (so an anisotropic stack is first halved along its fine
axes) and whose halved size stays at least :data:`MIN_SIDE` = 64 voxels; levels are added until
no axis can be halved, so the smallest side of the last level lies between 64 and 128 voxels
(or is the volume's own size when that is smaller). FISBe voxels are isotropic (0.44 um), so a
400 x 700 x 700 volume gets (400, 700, 700), (200, 350, 350), (100, 175, 175) and (100, 88, 88).
Raw intensities are averaged (:func:`downsample_mean`: the mean of each 2 x 2 x 2 block, or
2 x 2 x 1 ..., rounded half up to uint16; an odd last plane, row or column is averaged with a
copy of itself). Label images take the block maximum (:func:`downsample_max`): neurons are 2-4
voxels thick, and the maximum keeps them continuous at coarse levels where nearest-neighbour
subsampling would break them into dashes. The NGFF ``scale`` of level k is the voxel size in
micrometer times the factor accumulated so far; its ``translation`` ((scale_k - scale_0) / 2)
places each coarse voxel at the centre of the fine voxels it summarizes.

**Label images** (:func:`instance_groups`). Neurons overlap where they cross, so one label image
cannot hold them all. Instances that share no voxel go into one label image: a greedy colouring
of the overlap graph in instance order (instance k joins the first label image holding no
instance that overlaps it). Label values are the instance ids (unique across the label images),
so a viewer's label value names the neuron, and each voxel of an instance has its value in
exactly one label image; voxels shared by two neurons are set in both neurons' label images.
Why groups rather than one label image per instance: the number of label images a viewer shows
is the chromatic number of the overlap graph, never more than the number of neurons. On the real
50^3 crop of the release all 3 neuron pairs overlap (168, 262 and 2025 voxels; 2,315 of 21,819
labeled voxels lie in two or more neurons), which needs 3 label images either way; where neurons
cross more sparsely (each synthetic neuron crosses one earlier one) two label images hold them
all, and the task readers read fewer arrays per patch. ``image-label`` metadata gives every label
value a fixed colour and its properties (instance id, release channel, voxel counts).

The ome-zarr writers (``write_multiscales_metadata``, ``write_label_metadata``, format
``FormatV04``) write the metadata; the arrays are written slab by slab by
:func:`~neuroharness.loaders.fisbe.store.copy_sample`, as a real-size sample does not fit in
memory several times over. Readers: :func:`label_images`.
"""
from __future__ import annotations

import colorsys
import dataclasses
import warnings

import numpy as np

MIN_SIDE = 64  # a level is halved along an axis only while that axis keeps at least this many voxels
ANISOTROPY = 1.5  # axes whose voxel is within this factor of the finest one are halved together
LABELS = "labels"
LABEL_PREFIX = "neurons_"
RAW = "raw"
UNIT = "micrometer"
AXES_IMAGE = ({"name": "c", "type": "channel"},
              *({"name": a, "type": "space", "unit": UNIT} for a in "zyx"))
AXES_LABELS = AXES_IMAGE[1:]


@dataclasses.dataclass(frozen=True)
class Level:
    """One pyramid level: ``shape`` (z, y, x) voxels, ``factors`` from the previous level (1 or 2
    per axis), ``scale`` micrometer per voxel and ``translation`` micrometer of its first voxel's
    centre relative to the first voxel centre of level 0."""

    shape: tuple[int, int, int]
    factors: tuple[int, int, int]
    scale: tuple[float, float, float]
    translation: tuple[float, float, float]


def pyramid_levels(shape, voxel_um=(0.44, 0.44, 0.44), min_side: int | None = None) -> list[Level]:
    """The levels of a (Z, Y, X) volume with voxels ``voxel_um`` (z, y, x) micrometer (module doc);
    ``min_side`` defaults to :data:`MIN_SIDE`."""
    min_side = MIN_SIDE if min_side is None else int(min_side)
    shape = tuple(int(s) for s in shape)
    scale = tuple(float(v) for v in voxel_um)
    levels = [Level(shape, (1, 1, 1), scale, (0.0, 0.0, 0.0))]
    while True:
        cur = levels[-1]
        finest = min(cur.scale)
        factors = tuple(2 if s <= ANISOTROPY * finest and -(-n // 2) >= min_side else 1
                        for n, s in zip(cur.shape, cur.scale))
        if factors == (1, 1, 1):
            return levels
        levels.append(Level(
            tuple(-(-n // f) for n, f in zip(cur.shape, factors)), factors,
            tuple(s * f for s, f in zip(cur.scale, factors)),
            tuple(t + (f - 1) * s / 2 for t, s, f in zip(cur.translation, cur.scale, factors))))


def raw_path(level: int) -> str:
    """Array name of raw pyramid level ``level`` in the sample group."""
    return RAW if level == 0 else f"{RAW}_{level}"


def level_dims(level: int) -> tuple[str, str, str]:
    """xarray dimension names of level ``level`` (each level has its own sizes)."""
    return ("z", "y", "x") if level == 0 else (f"z_{level}", f"y_{level}", f"x_{level}")


def _pairs(a: np.ndarray, axis: int, op, dtype=None) -> np.ndarray:
    """``op`` of neighbouring pairs along ``axis`` (elements 0 and 1, 2 and 3, ...); an odd last
    element is paired with itself (edge replication). Strided slices, not a block reshape: numpy
    reduces a 7-D block view about ten times slower."""
    n = a.shape[axis]
    lo = [slice(None)] * a.ndim
    hi = [slice(None)] * a.ndim
    lo[axis], hi[axis] = slice(0, n - n % 2, 2), slice(1, n, 2)
    out = op(a[tuple(lo)], a[tuple(hi)], dtype=dtype)
    if n % 2:
        last = [slice(None)] * a.ndim
        last[axis] = slice(n - 1, n)
        tail = a[tuple(last)]
        out = np.concatenate([out, op(tail, tail, dtype=dtype)], axis=axis)
    return out


def downsample_mean(a: np.ndarray, factors, max_value: int | None = None) -> np.ndarray:
    """Block means of unsigned integers ``a`` (..., z, y, x) over blocks ``factors`` (z, y, x; each 1
    or 2), rounded half up, in ``a``'s dtype; odd trailing planes/rows/columns are edge-replicated.

    ``max_value``: a bound on ``a``'s values, if known; 12-bit data (<= 4095) is then summed in
    16 bits, twice as fast as the 32 bits needed for any 16-bit values."""
    if tuple(factors) == (1, 1, 1):
        return a
    count = int(np.prod(factors))
    small = max_value is not None and a.dtype.itemsize <= 2 and int(max_value) * count + count // 2 < 1 << 16
    total, wide = a, (np.uint16 if small else np.uint32)
    for i, f in enumerate(factors):
        if f == 2:
            total = _pairs(total, a.ndim - 3 + i, np.add, wide)
    total += count // 2
    total //= count
    return total.astype(a.dtype)


def downsample_max(a: np.ndarray, factors) -> np.ndarray:
    """Block maxima of ``a`` (..., z, y, x) over blocks ``factors`` (z, y, x; each 1 or 2), edge-replicated."""
    out = a
    for i, f in enumerate(factors):
        if f == 2:
            out = _pairs(out, a.ndim - 3 + i, np.maximum)
    return out


def instance_groups(overlap: np.ndarray) -> list[tuple[int, ...]]:
    """Instances (ids 1..N) in groups that share no voxel: greedy colouring in id order.

    ``overlap``: (N, N) voxel counts shared by instances i+1 and j+1 (the diagonal is ignored).
    Instance k joins the first group none of whose members overlaps it.
    """
    n = len(overlap)
    touches = (np.asarray(overlap) > 0) & ~np.eye(n, dtype=bool)
    groups: list[list[int]] = []
    for k in range(n):
        for g in groups:
            if not touches[k, [m - 1 for m in g]].any():
                g.append(k + 1)
                break
        else:
            groups.append([k + 1])
    return [tuple(g) for g in groups]


def instance_colour(k: int) -> list[int]:
    """RGBA (0-255) of label value ``k``: hues spaced by the golden angle, so neighbouring ids differ."""
    r, g, b = colorsys.hsv_to_rgb((k * 0.618033988749895) % 1.0, 0.8, 1.0)
    return [round(r * 255), round(g * 255), round(b * 255), 255]


def _transforms(level: Level, channel: bool) -> list[dict]:
    lead = [1.0] if channel else []
    out = [{"type": "scale", "scale": lead + [float(s) for s in level.scale]}]
    if any(level.translation):
        out.append({"type": "translation", "translation": [0.0] * len(lead) + [float(t) for t in level.translation]})
    return out


def _writer():
    # ome_zarr.writer builds a deprecated Scaler as a default argument when imported
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from ome_zarr import writer
        from ome_zarr.format import FormatV04
    return writer, FormatV04()


def _set_type(group, kind: str) -> None:
    """Add the multiscale ``type`` (the downsampling method), which the ome-zarr writer leaves out."""
    ms = list(group.attrs["multiscales"])
    ms[0] = {**ms[0], "type": kind}
    group.attrs["multiscales"] = ms


def write_image_metadata(group, name: str, levels: list[Level], omero: dict) -> None:
    """OME-NGFF 0.4 ``multiscales`` (levels ``raw``, ``raw_1``, ...) and ``omero`` of a sample group."""
    writer, fmt = _writer()
    datasets = [{"path": raw_path(k), "coordinateTransformations": _transforms(lv, True)} for k, lv in enumerate(levels)]
    writer.write_multiscales_metadata(group, datasets, fmt=fmt, axes=[dict(a) for a in AXES_IMAGE], name=name, metadata={
        "description": "raw MCFO channels as released (raw) and block means (raw_k)",
        "method": "block mean of the previous level over 2 (or 1) voxels per axis, rounded half up to uint16",
        "omero": omero})
    _set_type(group, "mean")


def write_label_metadata(labels_group, name: str, levels: list[Level], instances: list[dict]) -> None:
    """``multiscales`` (levels ``0``, ``1``, ...) and ``image-label`` of label image ``labels/<name>``.

    ``instances``: one dict per label value in the image, with key ``label-value`` and the
    properties to list (instance id, release channel, voxel counts)."""
    writer, fmt = _writer()
    group = labels_group[name]
    datasets = [{"path": str(k), "coordinateTransformations": _transforms(lv, False)} for k, lv in enumerate(levels)]
    writer.write_multiscales_metadata(group, datasets, fmt=fmt, axes=[dict(a) for a in AXES_LABELS], name=name, metadata={
        "description": "neurons that share no voxel; label value = instance id",
        "method": "block maximum of the previous level over 2 (or 1) voxels per axis"})
    _set_type(group, "max")
    colours = [{"label-value": int(p["label-value"]), "rgba": instance_colour(int(p["label-value"]))} for p in instances]
    writer.write_label_metadata(labels_group, name, colors=colours, properties=[dict(p) for p in instances], fmt=fmt,
                                source={"image": "../../"})


# -- reading -------------------------------------------------------------------------------
def label_images(sample_group, where: str = "") -> list[tuple[str, object]]:
    """``[(name, level-0 zarr array), ...]`` of the label images of a sample group, in the order of
    its ``labels`` attribute. Raises :class:`~neuroharness.errors.DataFormatError` naming ``where``
    (e.g. the store and sample) when the labels group or one of its images is missing."""
    from neuroharness.errors import DataFormatError

    try:
        labels = sample_group[LABELS]
        names = list(labels.attrs[LABELS])
    except KeyError as e:
        raise DataFormatError(f"{where}: no NGFF label images ({LABELS}/ group or its {LABELS!r} attribute is "
                              f"missing: {e}); expected a store written by `neuroharness datasets prepare fisbe`") from None
    out = []
    for name in names:
        try:
            group = labels[name]
            out.append((name, group[group.attrs["multiscales"][0]["datasets"][0]["path"]]))
        except (KeyError, IndexError, TypeError) as e:
            raise DataFormatError(f"{where}: label image {LABELS}/{name} is missing or has no multiscales level 0 "
                                  f"({type(e).__name__}: {e})") from None
    if not out:
        raise DataFormatError(f"{where}: {LABELS}/ lists no label image; expected at least one")
    return out


def labels_of_images(images: list[np.ndarray]) -> np.ndarray:
    """int32 label image from label images of disjoint instance groups (same shape): k where only
    instance k is present, 0 where none, -1 where two or more overlap."""
    lab = np.asarray(images[0]).astype(np.int32)
    if len(images) == 1:
        return lab
    count = (lab != 0).astype(np.uint8)
    for im in images[1:]:
        im = np.asarray(im)
        count += im != 0
        np.maximum(lab, im, out=lab)
    lab[count > 1] = -1
    return lab
