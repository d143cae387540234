"""FISBe as a Hugging Face ``DatasetDict``: splits ``train``, ``validation``, ``test``, one row per sample.

Per sample: ``sample``, ``subset`` (``ClassLabel`` completely/partly), ``size_z``/``size_y``/``size_x``,
``voxel_size_um``, ``raw`` (channel, z, y, x) uint16, ``labels`` (label image, z, y, x) uint8 and the
instance table: ``instance`` (int32 ids 1..N), ``instance_label_image`` (which row of ``labels`` holds
each instance), ``n_voxels``; plus ``empty_instances``, ``overlap_voxels`` and ``overlap_pairs``.

The neurons are exported as the store holds them since version 1.1: NGFF label images, one per group of
neurons that share no voxel, label value = instance id. Neuron ``k``'s mask is
``labels[instance_label_image[i]] == k`` for ``k = instance[i]``, exactly the release's GT channel
``k - 1`` (neurons overlap, so one label image cannot hold them all). A (neuron, z, y, x) boolean stack
would be larger in memory and, at real size (about 400 x 700 x 700 voxels), exceeds Arrow's 2**31
values per list for samples with 12 or more neurons. The pyramid levels of the store are not exported
(they are derived from level 0).

Where every exported sample has the same (z, y, x), ``raw`` is ``Array4D((3, Z, Y, X), uint16)`` and
``labels`` ``Array4D((None, Z, Y, X), uint8)``; otherwise (the real release: sizes differ by sample)
both are nested variable-length ``List``s, whose numpy reading is slower (about 20 s per real sample
with ``with_format("numpy", dtype=None)``). Memory: one sample at a time, its raw volume and label images
held once (the Arrow arrays share their memory): about 1.7 GB for a real sample with 3 label images.
"""
from __future__ import annotations

import numpy as np

from neuroharness.errors import DataFormatError

from ._common import Table, array_feature, class_codes, class_label, feature_id, store_plan

SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}
Z_SLAB = 64  # planes read at a time (the store's chunk edge)


def _read_into(var, out: np.ndarray, axis: int) -> np.ndarray:
    """Read the lazy ``var`` into ``out`` a slab of ``Z_SLAB`` planes along ``axis`` at a time, so that a
    volume is held once (reading it whole through dask holds it twice while the chunks are assembled)."""
    n = out.shape[axis]
    for z0 in range(0, n, Z_SLAB):
        index = (slice(None),) * axis + (slice(z0, min(n, z0 + Z_SLAB)),)
        out[index] = np.asarray(var[index].values)
    return out


def _label_stack(node, shape, where: str):
    """``(names, (G, Z, Y, X) uint8 array)`` of the sample's level-0 label images, in ``labels`` order."""
    try:
        labels = node["labels"]
        names = [str(n) for n in labels.attrs["labels"]]
        images = [labels[n].to_dataset(inherit=False)["0"] for n in names]
    except KeyError as e:
        raise DataFormatError(f"{where}: no NGFF label images (labels/ group, its 'labels' attribute or a level 0 "
                              f"is missing: {e}); expected a fisbe store of version 1.1 or later "
                              "(`neuroharness datasets prepare fisbe --force`)") from None
    if not images:
        raise DataFormatError(f"{where}: labels/ lists no label image; expected at least one")
    bad = [(n, im.shape, im.dtype) for n, im in zip(names, images) if im.shape != shape or im.dtype != np.uint8]
    if bad:
        raise DataFormatError(f"{where}: label image labels/{bad[0][0]} has shape {bad[0][1]} and dtype {bad[0][2]}; "
                              f"expected {shape} uint8 as in the sample index")
    out = np.empty((len(images), *shape), dtype=np.uint8)
    for g, im in enumerate(images):
        _read_into(im, out[g], 0)
    return names, out


def samples(card, tree, part=None):
    """The plan of the FISBe store (the DataTree ``tree``): one table per split present."""
    import datasets

    from neuroharness.loaders.fisbe import sample_index
    from neuroharness.loaders.fisbe.release import SUBSETS

    index = sample_index(tree)
    shapes = {tuple(int(r[f"size_{a}"]) for a in "zyx") for _, r in index.iterrows()}
    uniform = len(shapes) == 1
    shape = next(iter(shapes)) if uniform else (0, 0, 0)
    where = f"{card.name} store"
    first = tree[str(index["sample"].iloc[0])].to_dataset(inherit=False) if len(index) else None
    raw_attrs = first["raw"].attrs if first is not None else {}
    f = {
        "sample": datasets.Value("string", id=feature_id(long_name="sample name (FlyLight line, date, slide)", units="1")),
        "subset": class_label(list(SUBSETS), where=f"{where} subset", units="1",
                              long_name="completely or partly labeled (all neurons, or some of them, have masks)"),
        **{f"size_{a}": datasets.Value("int64", id=feature_id(units="1", long_name=f"voxels along {a}")) for a in "zyx"},
        "voxel_size_um": array_feature((3,), "float64", feature_id(units="micrometer", long_name="voxel size (z, y, x)")),
        "raw": (array_feature((3, *shape), "uint16", feature_id(raw_attrs, dims=["channel", "z", "y", "x"]))
                if uniform else array_feature((3, 0, 0, 0), "uint16", feature_id(raw_attrs, dims=[
                    "channel", "z", "y", "x"]), ragged=True)),
        "labels": array_feature((0, *shape), "uint8", feature_id(
            units="1", dims=["label_image", "z", "y", "x"],
            long_name="NGFF label images (level 0): value k on the voxels of instance k, 0 elsewhere; neurons that "
                      "overlap are in different label images"), ragged_first=uniform, ragged=not uniform),
        "label_image_names": array_feature((0,), "string", feature_id(
            units="1", long_name="name of each label image in the store (labels/<name>)"), ragged_first=True),
        "instance": array_feature((0,), "int32", feature_id(
            units="1", long_name="instance id: the value it holds in its label image (= release GT channel + 1)"),
            ragged_first=True),
        "instance_label_image": array_feature((0,), "int32", feature_id(
            units="1", long_name="row of `labels` holding the instance"), ragged_first=True),
        "n_voxels": array_feature((0,), "int64", feature_id(units="1", long_name="voxels of each instance"),
                                  ragged_first=True),
        "empty_instances": array_feature((0,), "int64", feature_id(
            units="1", long_name="instances with no voxel (kept so that ids match the release)"), ragged_first=True),
        "overlap_voxels": datasets.Value("int64", id=feature_id(units="1", long_name="voxels in two or more neurons")),
        "overlap_pairs": array_feature((0, 3), "int64", feature_id(
            units="1", long_name="[instance i, instance j, shared voxels] of each overlapping pair"), ragged=True),
    }
    features = datasets.Features(f)
    subsets = list(SUBSETS)

    def table(split: str) -> Table:
        rows = index[index["split"] == split].reset_index(drop=True)

        def batches():
            for _, r in rows.iterrows():  # one sample per batch: a real sample is over a gigabyte
                name = str(r["sample"])
                node = tree[name]
                ds = node.to_dataset(inherit=False)
                at = f"{where} sample {name}"
                size = tuple(int(r[f"size_{a}"]) for a in "zyx")
                if ds["raw"].shape != (3, *size) or ds["raw"].dtype != np.uint16:
                    raise DataFormatError(f"{at}: raw has shape {ds['raw'].shape} and dtype {ds['raw'].dtype}; "
                                          f"expected (3, {', '.join(map(str, size))}) uint16 as in the sample index")
                raw = _read_into(ds["raw"], np.empty((3, *size), dtype=np.uint16), 1)
                names, labels = _label_stack(node, size, at)
                instance = np.asarray(ds["instance"].values, dtype=np.int32)
                group = np.asarray(ds["label_image"].values).astype(np.int64)
                position = {int(n.rsplit("_", 1)[1]): i for i, n in enumerate(names) if n.rsplit("_", 1)[-1].isdigit()}
                missing = sorted({int(g) for g in group} - set(position))
                if missing:
                    raise DataFormatError(f"{at}: label_image names label image(s) {missing} that labels/ lacks "
                                          f"({', '.join(names)})")
                pairs = np.asarray(ds.attrs.get("overlap_pairs", []), dtype=np.int64).reshape(-1, 3)
                yield {
                    "sample": [name], "subset": class_codes([r["subset"]], subsets, f"{at} subset"),
                    **{f"size_{a}": [np.int64(s)] for a, s in zip("zyx", size)},
                    "voxel_size_um": [np.asarray(ds.attrs.get("voxel_size_um", tree.attrs.get("voxel_size_um")),
                                                 dtype=np.float64)],
                    "raw": [raw], "labels": [labels], "label_image_names": [np.asarray(names)],
                    "instance": [instance],
                    "instance_label_image": [np.asarray([position[int(g)] for g in group], dtype=np.int32)],
                    "n_voxels": [np.asarray(ds["n_voxels"].values, dtype=np.int64)],
                    "empty_instances": [np.asarray(ds.attrs.get("empty_instances", []), dtype=np.int64)],
                    "overlap_voxels": [np.int64(ds.attrs.get("overlap_voxels", 0))],
                    "overlap_pairs": [pairs],
                }

        return Table(features, len(rows), batches, about=f"Split {split} of the store: one row per sample.",
                     row_bytes=int(np.prod(shape)) * 8 if uniform else 0)

    splits = [s for s in ("train", "val", "test") if (index["split"] == s).any()]
    tables = {SPLIT_NAMES[s]: table(s) for s in splits}
    if not tables:
        raise DataFormatError(f"{where}: the sample index lists no sample")
    facts = [f"store {k}: {tree.attrs[k]}" for k in ("voxel_size_um", "n_samples", "complete_release", "release_note")
             if k in tree.attrs]
    facts.append("shapes: " + ("every sample " + " x ".join(map(str, shape)) if uniform else
                               f"{len(shapes)} different (z, y, x) sizes: raw and labels are nested lists"))
    return store_plan(card, tree.attrs, tables, provenance=facts)

