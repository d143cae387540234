"""Deterministic hard cases for the FISBe instance-segmentation metrics (oracle inputs).

Every case is a ground truth, a prediction and a partly-labeled flag:

* ``gt``: (C, Z, Y, X) uint8 stack, channel k holds k+1 on neuron k and 0 elsewhere
  (the FISBe release layout; channels overlap where neurons cross), or a (Z, Y, X) label
  image (case ``crop_gtlabel_perfect_stack``);
* ``pred``: a (Z, Y, X) integer label image (0 = background) or a (N, Z, Y, X)
  stack in which channel k holds k+1 (unique ids per channel; channels may overlap);
* ``partly``: evaluate in partly-labeled mode (unmatched predictions lying mainly
  on unlabeled background are not false positives).

Cases come from the real crop ``../shared/data/fisbe/JRC_SS05008-20160318_24_B2_crop.zarr``
(3 overlapping neurons in 50^3 voxels, sizes 3765 / 6193 / 14246, all above the
flylight preset's 800-voxel filter) and from the synthetic generator
``scripts/make_fisbe_fixture.py`` (:func:`synthetic_sample`, 64x128x128, seeded; one
volume with forced crossings, one without any GT overlap).  Nothing here is random except the seeded generator.

Folder layout written by :func:`write_cases` (what the official CLI reads)::

    OUT/gt/<case>.zarr          zarr v2 group, ``volumes/gt_instances`` (C, Z, Y, X) uint8
    OUT/pred/<case>.hdf         HDF5, dataset ``volumes/pred_instances`` (label image or stack)
    OUT/cases.json              per case: partly flag, description, shapes, instance sizes

The official evaluator is then run as (one case)::

    evalinstseg --app flylight --res_file OUT/pred/<case>.hdf --res_key volumes/pred_instances \\
        --gt_file OUT/gt/<case>.zarr --gt_key volumes/gt_instances --out_dir RESULTS [--partly]

(see ``scripts/run_fisbe_official_evaluator.py``).

API: :func:`load_crop`, :func:`crop_cases`, :func:`synthetic_cases`, :func:`nooverlap_cases`, :func:`build_cases`,
:func:`write_cases`, :func:`paint`; each case is a :class:`Case`.

Usage::

    python scripts/make_fisbe_metric_cases.py OUT [--crop PATH] [--no-crop] [--no-synthetic]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import ndimage

HERE = Path(__file__).resolve().parent
CROP = HERE.parents[1] / "shared" / "data" / "fisbe" / "JRC_SS05008-20160318_24_B2_crop.zarr"
GT_KEY = "volumes/gt_instances"
PRED_KEY = "volumes/pred_instances"
SYN_SHAPE = (64, 128, 128)
SYN_NEURONS = 5  # the last one is the "unlabeled" neuron of the partly cases
SYN_SEED = 7
SYN_NOOVERLAP_SEED = 0  # synthetic_sample(SYN_SHAPE, 4, 0, overlap=False) has no overlapping voxels


class Case:
    """One case: ``name``, ``gt``, ``pred``, ``partly``, ``source`` ("crop" or "synthetic"),
    ``description``, ``meta`` (extra JSON-able facts).  A plain class, not a dataclass: the module
    is loaded by path (tests/helpers.load_script) without a sys.modules entry."""

    __slots__ = ("name", "gt", "pred", "partly", "source", "description", "meta")

    def __init__(self, name, gt, pred, partly, source, description, meta=None):
        self.name, self.gt, self.pred, self.partly = name, gt, pred, bool(partly)
        self.source, self.description, self.meta = source, description, dict(meta or {})

    def __repr__(self):
        return f"Case({self.name!r}, gt{self.gt.shape}, pred{self.pred.shape}, partly={self.partly})"

    def info(self) -> dict:
        """JSON-able description (no arrays)."""
        return {
            "source": self.source, "partly": self.partly, "description": self.description,
            "gt_shape": list(self.gt.shape), "gt_dtype": str(self.gt.dtype),
            "pred_shape": list(self.pred.shape), "pred_dtype": str(self.pred.dtype),
            "pred_kind": "stack" if self.pred.ndim == 4 else "label_image",
            "gt_sizes": instance_sizes(self.gt), "pred_sizes": instance_sizes(self.pred),
            **self.meta,
        }


# -- helpers -------------------------------------------------------------------
def instance_sizes(a: np.ndarray) -> dict:
    """{id: voxel count} over the whole array (a stack counts every channel)."""
    ids, counts = np.unique(a[a > 0], return_counts=True)
    return {int(i): int(c) for i, c in zip(ids, counts)}


def masks_of(gt: np.ndarray) -> list[np.ndarray]:
    """Boolean mask per GT channel."""
    return [gt[k] > 0 for k in range(gt.shape[0])]


def paint(masks, labels=None, dtype=np.uint16) -> np.ndarray:
    """Label image from boolean masks; the LOWEST index wins where masks overlap.

    ``labels[k]`` is the id given to mask k (default k+1); an id of 0 drops the mask.
    """
    masks = list(masks)
    labels = list(range(1, len(masks) + 1)) if labels is None else list(labels)
    out = np.zeros(masks[0].shape, dtype=dtype)
    for k in reversed(range(len(masks))):  # paint the highest first, lower ones overwrite
        if labels[k]:
            out[masks[k]] = labels[k]
    return out


def stack(masks, dtype=np.uint8) -> np.ndarray:
    """(N, Z, Y, X) stack, channel k holds k+1 on mask k."""
    masks = list(masks)
    out = np.zeros((len(masks), *masks[0].shape), dtype=dtype)
    for k, m in enumerate(masks):
        out[k][m] = k + 1
    return out


def split_mask(mask: np.ndarray, parts: int = 2) -> list[np.ndarray]:
    """Cut a mask into ``parts`` pieces of (nearly) equal voxel count by planes normal to its
    principal axis (ties in the projection are broken by voxel order: deterministic)."""
    idx = np.argwhere(mask)
    c = idx - idx.mean(0)
    _, _, vt = np.linalg.svd(c, full_matrices=False)
    axis = vt[0] * np.sign(vt[0][np.argmax(np.abs(vt[0]))])  # sign fixed: deterministic
    order = np.argsort(c @ axis, kind="stable")
    out = []
    for chunk in np.array_split(order, parts):
        m = np.zeros_like(mask, dtype=bool)
        m[tuple(idx[chunk].T)] = True
        out.append(m)
    return out


def dilate(m):
    return ndimage.binary_dilation(m)  # 6-connected, one voxel


def erode(m):
    return ndimage.binary_erosion(m)  # 6-connected, one voxel; voxels on the volume border are eroded too (border_value=0)


def background_blob(gt: np.ndarray, semi_axes=(9, 5, 5), clearance=3.0) -> np.ndarray:
    """An ellipsoid blob in unlabeled background: centred at the interior voxel farthest from
    any GT voxel, restricted to voxels more than ``clearance`` voxels from GT."""
    fg = (gt > 0).any(0)
    dist = ndimage.distance_transform_edt(~fg)
    r = max(semi_axes)
    inner = np.full(fg.shape, -1.0)
    sl = tuple(slice(r, s - r) for s in fg.shape)
    inner[sl] = dist[sl]
    centre = np.unravel_index(int(np.argmax(inner)), fg.shape)
    g = np.ogrid[tuple(slice(0, s) for s in fg.shape)]
    ell = sum(((gi - ci) / a) ** 2 for gi, ci, a in zip(g, centre, semi_axes)) <= 1.0
    return ell & (dist > clearance)


# -- cases ---------------------------------------------------------------------
def load_crop(path=None) -> np.ndarray:
    """GT stack (3, 50, 50, 50) uint8 of the real crop (channel k holds k+1)."""
    import zarr

    g = zarr.open_group(str(path or CROP), mode="r")
    return np.asarray(g[GT_KEY][...])


def crop_cases(gt: np.ndarray | None = None) -> list[Case]:
    """Cases (a)-(i) built from the real crop's GT."""
    gt = load_crop() if gt is None else gt
    m = masks_of(gt)
    n = len(m)
    assert n == 3, "the crop cases assume the 3-neuron crop"
    painted = paint(m)
    cases = []

    def add(name, pred, desc, partly=False, **meta):
        cases.append(Case(name, gt, pred, partly, "crop", desc, meta))

    add("crop_perfect_stack", gt.copy(), "(a) perfect prediction as a stack: the GT channels themselves")
    add("crop_painted", painted, "(b) the three GT channels painted into one label image, lowest channel wins on overlaps")
    merged = painted.copy()
    merged[merged == 2] = 1
    add("crop_merge12", merged, "(c) as crop_painted with neurons 1 and 2 (ids 1, 2) merged into label 1")
    a, b = split_mask(m[2], 2)
    add("crop_split3", paint([m[0], m[1], a, b]),
        "(d) neuron 3 (largest, overlaps neuron 2) split into two labels (3, 4) by a plane normal to its principal axis; painted, lowest wins")
    add("crop_split1_three", paint([m[1], m[2], *split_mask(m[0], 3)]),
        "(d') neuron 1 split into three labels (3, 4, 5) by planes normal to its principal axis; neurons 2, 3 as labels 1, 2; painted, lowest wins")
    frag = paint([m[0], m[2], *split_mask(m[1], 8)])
    fs = instance_sizes(frag)
    add("crop_split2_fragments", frag,
        f"(d'') neuron 2 cut into eight fragments (labels 3-10, {min(fs[k] for k in range(3, 11))}-{max(fs[k] for k in range(3, 11))} voxels "
        "after painting, all <= 800: the flylight preset removes them); neurons 1, 3 as labels 1, 2; painted, lowest wins")
    add("crop_drop2", paint([m[0], m[1], m[2]], labels=[1, 0, 3]),
        "(e) neuron 2 dropped (its voxels that also belong to neuron 1 or 3 keep those labels); label image with ids 1, 3")
    add("crop_duplicate_stack", stack([m[0], m[1], m[2], m[0]]),
        "(f) stack prediction with neuron 1 predicted twice (channels 1 and 4 identical)")
    add("crop_cover23_stack", stack([m[1] | m[2], m[0]]),
        "(g) stack: channel 1 = one prediction covering the two overlapping neurons 2 and 3; channel 2 = neuron 1 (overlaps channel 1 where they cross)")
    blob = background_blob(gt)
    with_blob = painted.copy()
    with_blob[blob] = 4
    add("crop_bgblob", with_blob,
        f"(h, completely mode) crop_painted plus an ellipsoid blob of {int(blob.sum())} voxels (label 4) in unlabeled background", blob_voxels=int(blob.sum()))
    add("crop_bgblob_partly", with_blob,
        f"(h) partly-labeled mode: crop_painted plus an ellipsoid blob of {int(blob.sum())} voxels (label 4) in unlabeled background", partly=True,
        blob_voxels=int(blob.sum()))
    add("crop_dilate", paint([dilate(x) for x in m]),
        "(i) every neuron dilated by one voxel (6-connectivity), painted into a label image, lowest wins")
    add("crop_erode", paint([erode(x) for x in m]),
        "(i) every neuron eroded by one voxel (6-connectivity; pieces stay one label each), painted, lowest wins; instances shrink to ~900-4600 voxels (near the 800 filter)")
    add("crop_dilate_stack", stack([dilate(x) for x in m]),
        "(i) every neuron dilated by one voxel (6-connectivity) as a stack (channels overlap more than the GT)")
    cases.append(Case("crop_gtlabel_perfect_stack", painted.astype(np.uint8), gt.copy(), False, "crop",
                      "(q) GT given as a label image (the crop painted, lowest channel wins: no GT overlaps) and the "
                      "original overlapping GT channels as a stack prediction: overlaps in the prediction only"))
    return cases


def synthetic_volume(shape=SYN_SHAPE, n_neurons=SYN_NEURONS, seed=SYN_SEED, overlap=True) -> np.ndarray:
    """GT stack of ``make_fisbe_fixture.synthetic_sample`` (forced crossings unless ``overlap=False``)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_fisbe_fixture", HERE / "make_fisbe_fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    _, gt = mod.synthetic_sample(shape, n_neurons, seed, overlap=overlap)
    return gt


def crossing_pairs(masks) -> list[tuple[int, int, int]]:
    """(overlap voxels, i, j) for every pair of masks that share voxels, largest overlap first."""
    out = []
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            o = int((masks[i] & masks[j]).sum())
            if o:
                out.append((o, i, j))
    return sorted(out, key=lambda t: (-t[0], t[1], t[2]))


def synthetic_cases(full: np.ndarray | None = None) -> list[Case]:
    """Cases (j)-(m) (and partly cases) from the synthetic generator.

    ``full`` is the SYN_NEURONS-channel stack; the labeled GT is its first SYN_NEURONS - 1
    channels, the last neuron is "unlabeled" (only used by the partly cases).
    """
    full = synthetic_volume() if full is None else full
    n_all = full.shape[0]
    gt = np.ascontiguousarray(full[: n_all - 1])
    m = masks_of(gt)
    n = len(m)
    extra = full[n_all - 1] > 0
    cases = []

    def add(name, pred, desc, partly=False, **meta):
        cases.append(Case(name, gt, pred, partly, "synthetic", desc,
                          {"generator": f"make_fisbe_fixture.synthetic_sample({tuple(full.shape[1:])}, {n_all}, {SYN_SEED}), GT = first {n} channels", **meta}))

    add("syn_perfect_stack", gt.copy(), "(j) perfect prediction as a stack (the GT channels)")
    add("syn_perfect_painted", paint(m), "(j') perfect prediction painted into a label image, lowest wins on overlaps")
    pairs = crossing_pairs(m)
    used, chosen = set(), []
    for o, i, j in pairs:  # disjoint crossing pairs, largest overlap first
        if i not in used and j not in used:
            chosen.append((i, j))
            used |= {i, j}
    labels = list(range(1, n + 1))
    for i, j in chosen:
        labels[j] = labels[i]
    add("syn_merge_crossing", paint(m, labels),
        f"(k) crossing neurons merged pairwise (0-based pairs {chosen}), label image, lowest wins", merged_pairs=[list(p) for p in chosen])
    pieces = [*split_mask(m[0], 2), m[1], *split_mask(m[2], 3), *m[3:]]
    add("syn_split", paint(pieces),
        "(l) neuron 1 split in two and neuron 3 in three pieces (planes normal to the principal axis), label image, lowest wins")
    add("syn_dilate_stack", stack([dilate(x) for x in m]),
        "(m) stack prediction with overlapping channels: every neuron dilated by one voxel")
    i, j = chosen[0]
    others = [k for k in range(n) if k not in (i, j)]
    add("syn_stack_merge_plus_single", stack([m[i] | m[j], m[i], *[m[k] for k in others]]),
        f"(m') stack: channel 1 = union of crossing neurons {i + 1} and {j + 1}, channel 2 = neuron {i + 1} again, then the other neurons; neuron {j + 1} only inside the union")
    with_extra = paint([*m, extra])
    add("syn_unlabeled_neuron", with_extra,
        f"(n, completely mode) perfect painted prediction plus the generator's unlabeled neuron ({int(extra.sum())} voxels, crosses labeled ones) as label {n + 1}")
    add("syn_unlabeled_neuron_partly", with_extra,
        f"(n) partly-labeled mode: perfect painted prediction plus the unlabeled neuron ({int(extra.sum())} voxels, crosses labeled ones) as label {n + 1}",
        partly=True)
    return cases


def nooverlap_cases(gt: np.ndarray | None = None) -> list[Case]:
    """Cases without any overlap in the GT (synthetic, ``overlap=False``, seed SYN_NOOVERLAP_SEED:
    4 neurons that do not touch): the official evaluator takes its no-overlap shortcuts there
    (FS/FM from thresholded clRecall when the prediction has no overlaps either; C as a sum of
    clRecall unless both GT and prediction overlap)."""
    gt = synthetic_volume(SYN_SHAPE, 4, SYN_NOOVERLAP_SEED, overlap=False) if gt is None else gt
    m = masks_of(gt)
    assert not ((gt > 0).sum(0) > 1).any(), "expected a GT without overlaps"
    gen = f"make_fisbe_fixture.synthetic_sample({SYN_SHAPE}, 4, {SYN_NOOVERLAP_SEED}, overlap=False)"
    cases = []

    def add(name, pred, desc, partly=False, **meta):
        cases.append(Case(name, gt, pred, partly, "synthetic", desc, {"generator": gen, **meta}))

    add("syn_nooverlap_merge_split", paint([m[0], m[1], *split_mask(m[2], 2), m[3]], labels=[1, 1, 2, 3, 4]),
        "(o) GT without overlaps; label image with neurons 1 and 2 merged (label 1) and neuron 3 split in two (labels 2, 3): no overlap anywhere")
    add("syn_nooverlap_duplicate_stack", stack([*m, m[0]]),
        "(p) GT without overlaps; stack prediction with neuron 1 predicted twice (channels 1 and 5): overlaps in the prediction only")
    return cases


def build_cases(crop=None, *, use_crop: bool = True, use_synthetic: bool = True) -> list[Case]:
    """All cases, crop first (``crop``: a path or a GT stack; default the shared crop)."""
    cases = []
    if use_crop:
        gt = crop if isinstance(crop, np.ndarray) else load_crop(crop)
        cases += crop_cases(gt)
    if use_synthetic:
        cases += synthetic_cases()
        cases += nooverlap_cases()
    return cases


# -- writing -------------------------------------------------------------------
def write_cases(cases, out) -> dict:
    """Write GT zarrs, prediction HDF5 files and ``cases.json`` under ``out`` (layout in the module doc).

    Returns ``{name: {"gt_file", "pred_file", **case.info()}}``.
    """
    import h5py
    import numcodecs
    import zarr

    out = Path(out)
    (out / "gt").mkdir(parents=True, exist_ok=True)
    (out / "pred").mkdir(parents=True, exist_ok=True)
    index = {}
    for c in cases:
        gpath = out / "gt" / f"{c.name}.zarr"
        root = zarr.open_group(str(gpath), mode="w", zarr_format=2)
        vol = root.create_group("volumes")
        a = vol.create_array("gt_instances", shape=c.gt.shape, dtype=c.gt.dtype,
                             chunks=c.gt.shape, compressors=numcodecs.GZip(level=1), fill_value=0)
        a[...] = c.gt
        ppath = out / "pred" / f"{c.name}.hdf"
        with h5py.File(ppath, "w") as f:
            f.create_dataset(PRED_KEY, data=c.pred, compression="gzip", compression_opts=1)
        index[c.name] = {"gt_file": str(gpath), "pred_file": str(ppath), **c.info()}
    (out / "cases.json").write_text(json.dumps(index, indent=1) + "\n")
    return index


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--crop", type=Path, default=CROP, help="the real crop zarr (default: %(default)s)")
    p.add_argument("--no-crop", action="store_true")
    p.add_argument("--no-synthetic", action="store_true")
    a = p.parse_args(argv)
    cases = build_cases(a.crop, use_crop=not a.no_crop, use_synthetic=not a.no_synthetic)
    index = write_cases(cases, a.out)
    for name, info in index.items():
        print(f"{name:<32} partly={info['partly']!s:<5} pred {info['pred_kind']:<11} sizes {info['pred_sizes']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
