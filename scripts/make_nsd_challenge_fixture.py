"""Synthetic subjects in the exact layout of the Algonauts 2023 challenge release (fixtures for tests, demos, benchmarks).

NSD's terms forbid redistributing any of its data, so every file here is made
up; only the names, layout and dtypes follow the release (and the devkit's
``challenge_data_preparation.py`` that wrote it)::

    <root>/subjXX/training_split/training_fmri/{lh,rh}_training_fmri.npy   float32 (n_train, n_h)
    <root>/subjXX/training_split/training_images/train-NNNN_nsd-IIIII.png  RGB PNG
    <root>/subjXX/test_split/test_images/test-NNNN_nsd-IIIII.png
    <root>/subjXX/test_split/test_fmri/{lh,rh}_test_fmri.npy               float32 (n_test, n_h), --with-test-fmri
    <root>/subjXX/test_split/noise_ceiling/{lh,rh}_noise_ceiling.npy       float64 (n_h,), --with-test-fmri
    <root>/subjXX/roi_masks/{lh,rh}.all-vertices_fsaverage_space.npy       int64 (surface,), nonzero on the vertices
    <root>/subjXX/roi_masks/{lh,rh}.<class>_fsaverage_space.npy            int64 (surface,) ROI labels
    <root>/subjXX/roi_masks/{lh,rh}.<class>_challenge_space.npy            int64 (n_h,) ROI labels
    <root>/subjXX/roi_masks/mapping_<class>.npy                            np.save'd dict {label: name}, 0: Unknown

NSD ids are distinct random draws from 0..72,999, sorted within each split
(the devkit numbers ``np.unique`` conditions); ``NNNN`` is 1-based.

Images are an 8 x 8 (``grid``) random RGB grid blown up to ``image_size``
(blocks, so PNGs encode fast). Responses depend on the images: vertex v's
signal is a random linear map of the standardized grid values (which
block-means of the image recover exactly), scaled to variance ``snr_v`` in
0.05..0.6, plus noise of variance ``(1 - snr_v) / 3`` (a per-trial variance of
``1 - snr_v`` averaged over 3 repeats). A model of the pixels therefore beats
the mean response, and the noise ceiling is known: with
``ncsnr^2 = snr_v / (1 - snr_v)``, ``NC = ncsnr^2 / (ncsnr^2 + 1/3)``, the
devkit's formula for 3 repeats per test image.

Usage::

    python scripts/make_nsd_challenge_fixture.py OUT [--subjects subj01 subj02] [--n-train 40] [--n-test 10]
        [--vertices 30 40] [--image-size 32] [--surface 200] [--with-test-fmri] [--seed 0]
    python scripts/make_nsd_challenge_fixture.py OUT --real-size [--subjects subj01]   # release sizes, for benchmarks

``--real-size`` uses each subject's release counts (e.g. subj01: 9,841 train, 159 test, 19,004 + 20,544
vertices), 425 x 425 images and the fsaverage surface (163,842 vertices); it writes about 2 GB per subject.

API: :func:`write_subject`, :func:`write_release`, :func:`grid_features`, :data:`ROI_NAMES`, :data:`REAL_COUNTS`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HEMISPHERES = ("lh", "rh")
N_NSD_IMAGES = 73000
FSAVERAGE_VERTICES = 163842
REAL_IMAGE_SIZE = 425
REPEATS = 3
ROI_NAMES = {
    "prf-visualrois": ["V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4"],
    "floc-bodies": ["EBA", "FBA-1", "FBA-2", "mTL-bodies"],
    "floc-faces": ["OFA", "FFA-1", "FFA-2", "mTL-faces", "aTL-faces"],
    "floc-places": ["OPA", "PPA", "RSC"],
    "floc-words": ["OWFA", "VWFA-1", "VWFA-2", "mfs-words", "mTL-words"],
    "streams": ["early", "midventral", "midlateral", "midparietal", "ventral", "lateral", "parietal"],
}
# subject: (train images, test images, lh vertices, rh vertices) of the release
REAL_COUNTS = {
    "subj01": (9841, 159, 19004, 20544), "subj02": (9841, 159, 19004, 20544),
    "subj03": (9082, 293, 19004, 20544), "subj04": (8779, 395, 19004, 20544),
    "subj05": (9841, 159, 19004, 20544), "subj06": (9082, 293, 18978, 20220),
    "subj07": (9841, 159, 19004, 20544), "subj08": (8779, 395, 18981, 20530),
}
ROW_BLOCK = 1024  # fMRI rows computed and written at a time (real sizes never sit in memory whole)


def mapping_of(roi_class: str) -> dict[int, str]:
    """The ``{label: name}`` dict of an ROI class, as the devkit builds it from the NSD ``.ctab`` (0: Unknown)."""
    return {0: "Unknown", **{i + 1: n for i, n in enumerate(ROI_NAMES[roi_class])}}


def grid_image(grid: np.ndarray, size: int) -> np.ndarray:
    """``(g, g, 3)`` uint8 grid blown up to ``(size, size, 3)``: pixel (y, x) takes cell (y*g//size, x*g//size)."""
    cells = np.arange(size) * grid.shape[0] // size
    return grid[cells][:, cells]


def grid_features(images: np.ndarray, grid: int = 8) -> np.ndarray:
    """Block means of ``(n, y, x, 3)`` images over a ``grid`` x ``grid`` partition, flattened ``(n, grid*grid*3)``:
    for images made by :func:`grid_image` these are exactly the grid values (what the responses depend on)."""
    n, y, x, _ = images.shape
    rows = np.arange(y) * grid // y
    cols = np.arange(x) * grid // x
    out = np.zeros((n, grid, grid, 3))
    for i in range(grid):
        for j in range(grid):
            out[:, i, j] = images[:, rows == i][:, :, cols == j].reshape(n, -1, 3).mean(1)
    return out.reshape(n, -1)


def _responses(rng, feats: np.ndarray, n_vertices: int):
    """Signal map: ``(W, scale, snr)`` such that ``scale * (z @ W)`` has variance ``snr`` per vertex."""
    w = rng.normal(size=(feats.shape[1], n_vertices)).astype(np.float32)
    cov = np.cov(feats, rowvar=False)
    var = np.einsum("fv,fv->v", w, cov @ w)
    snr = rng.uniform(0.05, 0.6, n_vertices)
    return w, np.sqrt(snr / var).astype(np.float32), snr


def _write_fmri(path: Path, rng, z: np.ndarray, w, scale, snr) -> np.ndarray:
    """Averaged-over-3-repeats responses of the rows of ``z`` written block by block to a float32 .npy; returns a memmap."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(z), w.shape[1]))
    noise_sd = np.sqrt((1 - snr) / REPEATS).astype(np.float32)
    for start in range(0, len(z), ROW_BLOCK):
        block = z[start : start + ROW_BLOCK].astype(np.float32) @ w * scale
        block += rng.normal(size=block.shape).astype(np.float32) * noise_sd
        out[start : start + len(block)] = block
    out.flush()
    return out


def write_subject(root: Path, subject: str = "subj01", *, n_train: int = 20, n_test: int = 6,
                  vertices: tuple[int, int] = (30, 40), image_size: int = 32, surface: int = 200,
                  with_test_fmri: bool = False, seed: int = 0, grid: int = 8, compress_level: int = 1) -> dict:
    """Write ``root/<subject>/`` in the challenge layout; return what was written (for tests).

    Returns ``{"folder", "nsd_train", "nsd_test", "fsaverage_index": {h}, "mask": {h}, "rois": {class: {h: labels}},
    "mappings": {class: dict}, "noise_ceiling": {h} or None, "snr": {h}, "grids": (n, g, g, 3)}``.
    """
    from PIL import Image

    if max(vertices) > surface:
        raise ValueError(f"vertices {vertices} do not fit a surface of {surface}")
    rng = np.random.default_rng([seed, int(subject[-2:])])
    folder = Path(root) / subject
    ids = rng.choice(N_NSD_IMAGES, n_train + n_test, replace=False)
    nsd_train, nsd_test = np.sort(ids[:n_train]), np.sort(ids[n_train:])
    grids = rng.integers(0, 256, size=(n_train + n_test, grid, grid, 3), dtype=np.uint8)
    feats = grids.reshape(len(grids), -1).astype(np.float64)
    z = (feats - feats.mean(0)) / feats.std(0)

    for split, names, offset in (("train", nsd_train, 0), ("test", nsd_test, n_train)):
        d = folder / ("training_split/training_images" if split == "train" else "test_split/test_images")
        d.mkdir(parents=True, exist_ok=True)
        for i, nsd in enumerate(names):
            Image.fromarray(grid_image(grids[offset + i], image_size), "RGB").save(
                d / f"{split}-{i + 1:04d}_nsd-{nsd:05d}.png", format="png", compress_level=compress_level)

    info = {"folder": folder, "nsd_train": nsd_train, "nsd_test": nsd_test, "fsaverage_index": {}, "mask": {},
            "rois": {c: {} for c in ROI_NAMES}, "mappings": {c: mapping_of(c) for c in ROI_NAMES},
            "noise_ceiling": {} if with_test_fmri else None, "snr": {}, "grids": grids}
    masks = folder / "roi_masks"
    masks.mkdir(parents=True, exist_ok=True)
    (folder / "training_split/training_fmri").mkdir(parents=True, exist_ok=True)
    for h, n_h in zip(HEMISPHERES, vertices):
        idx = np.sort(rng.choice(surface, n_h, replace=False))
        mask = np.zeros(surface, dtype=np.int64)
        mask[idx] = 1 + (rng.random(n_h) < 0.1)  # nsdgeneral + RSC: 2 where both labels cover a vertex
        np.save(masks / f"{h}.all-vertices_fsaverage_space.npy", mask)
        info["fsaverage_index"][h], info["mask"][h] = idx, mask
        for cls, names in ROI_NAMES.items():
            labels = np.where(rng.random(n_h) < 0.5, rng.integers(1, len(names) + 1, n_h), 0).astype(np.int64)
            full = np.zeros(surface, dtype=np.int64)
            full[idx] = labels
            np.save(masks / f"{h}.{cls}_fsaverage_space.npy", full)
            np.save(masks / f"{h}.{cls}_challenge_space.npy", labels)
            info["rois"][cls][h] = labels
        w, scale, snr = _responses(rng, z, n_h)
        info["snr"][h] = snr
        _write_fmri(folder / f"training_split/training_fmri/{h}_training_fmri.npy", rng, z[:n_train], w, scale, snr)
        if with_test_fmri:
            (folder / "test_split/test_fmri").mkdir(parents=True, exist_ok=True)
            (folder / "test_split/noise_ceiling").mkdir(parents=True, exist_ok=True)
            _write_fmri(folder / f"test_split/test_fmri/{h}_test_fmri.npy", rng, z[n_train:], w, scale, snr)
            ncsnr2 = snr / (1 - snr)
            nc = ncsnr2 / (ncsnr2 + 1 / REPEATS)
            np.save(folder / f"test_split/noise_ceiling/{h}_noise_ceiling.npy", nc)
            info["noise_ceiling"][h] = nc
    for cls in ROI_NAMES:
        np.save(masks / f"mapping_{cls}.npy", mapping_of(cls))  # a pickled dict, as the devkit saves it
    return info


def write_release(root: Path, subjects=("subj01",), *, real_size: bool = False, **kw) -> dict[str, dict]:
    """:func:`write_subject` for each subject (``real_size``: the release's counts, 425 px, fsaverage surface)."""
    out = {}
    for s in subjects:
        args = dict(kw)
        if real_size:
            n_train, n_test, lh, rh = REAL_COUNTS[s]
            args.update(n_train=n_train, n_test=n_test, vertices=(lh, rh), image_size=REAL_IMAGE_SIZE,
                        surface=FSAVERAGE_VERTICES)
        out[s] = write_subject(root, s, **args)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--subjects", nargs="+", default=["subj01"], choices=sorted(REAL_COUNTS))
    p.add_argument("--n-train", type=int, default=40)
    p.add_argument("--n-test", type=int, default=10)
    p.add_argument("--vertices", type=int, nargs=2, default=(30, 40), metavar=("LH", "RH"))
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--surface", type=int, default=200, help="vertices per hemisphere of the (fake) fsaverage surface")
    p.add_argument("--real-size", action="store_true", help="the release's counts, 425 x 425 images, 163,842-vertex surface")
    p.add_argument("--with-test-fmri", action="store_true", help="also test_split/test_fmri and noise_ceiling")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    infos = write_release(a.out, a.subjects, real_size=a.real_size, n_train=a.n_train, n_test=a.n_test,
                          vertices=tuple(a.vertices), image_size=a.image_size, surface=a.surface,
                          with_test_fmri=a.with_test_fmri, seed=a.seed)
    for s, info in infos.items():
        print(f"{info['folder']}: {len(info['nsd_train'])} train + {len(info['nsd_test'])} test images, "
              f"{len(info['fsaverage_index']['lh'])} + {len(info['fsaverage_index']['rh'])} vertices"
              + (", test fMRI and noise ceiling" if info["noise_ceiling"] is not None else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
