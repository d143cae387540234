"""Synthetic FISBe-like volumes in the exact release layout (fixtures for tests and demos).

Release layout written by :func:`write_release`::

    <root>/completely/{train,val,test}/<sample>.zarr    zarr v2 group per sample
    <root>/partly/{train,val,test}/<sample>.zarr
    <root>/sample_list_per_split.txt                  official text format
    <root>/zips/fisbe_v1.0_{completely,partly}.zip     with zip=True (members completely/<split>/<sample>.zarr/...)
    <root>/zips/sample_list_per_split.txt

Each sample group holds ``volumes/raw`` (3, Z, Y, X) uint16 with 12-bit values
(<= 4095; chunks (2, 25, 50, 50), gzip level 1, as the real crop) and
``volumes/gt_instances`` (N, Z, Y, X) uint8 where channel k holds k+1 and 0
elsewhere (chunks (2, 50, 50, 50), gzip level 1); neurons overlap where they cross.

Neurons are branching random walks with momentum (unit steps, reflected at the
borders), rasterized sparsely as tubes of radius 1-2 voxels by stamping a ball
around every centreline point. Every neuron after the first starts on the
centreline of an earlier one, so GT channels overlap (forced crossings). Raw
signal: per-neuron MCFO colour (channel weights from {0, 0.3, 1}, not all 0) x
brightness, Gaussian blur (sigma 0.8 voxel) x 1500 x a smooth illumination
field in [0.5, 1.5], Poisson shot noise, plus background 100 with Gaussian
noise (sd 10), clipped to 4095. The blur and the noise on the signal are
computed only in 32^3 blocks near neurons, so a real-size volume
(385, 685, 686) with 7 neurons takes a few seconds and no memory beyond the
two output arrays (about 1.1 GB raw; GT pages that stay zero are never touched).

Usage::

    python scripts/make_fisbe_fixture.py OUT [--shape Z Y X] [--per-split N] [--neurons N]
                                             [--seed S] [--zip] [--official-names]

API: :func:`synthetic_sample`, :func:`write_sample`, :func:`write_release`,
:func:`write_split_list`.
"""
from __future__ import annotations

import argparse
import os
import zipfile
from pathlib import Path

import numcodecs
import numpy as np
import zarr
from scipy import ndimage, special

SUBSETS = ("completely", "partly")
SPLITS = ("train", "val", "test")
RAW_CHUNKS = (2, 25, 50, 50)  # as the real crop's volumes/raw
GT_CHUNKS = (2, 50, 50, 50)  # as the real crop's volumes/gt_instances
MCFO_LEVELS = (0.0, 0.3, 1.0)
SIGMA = 0.8  # blur of the tube mask, voxels
PEAK = 1500.0  # signal of a fully lit, unblurred tube voxel before illumination
BACKGROUND, BACKGROUND_SD = 100.0, 10.0
MAX_VALUE = 4095  # 12-bit
BLOCK = 32  # edge of the blocks in which signal is rendered
MIN_VOXELS = 1000  # every labeled neuron exceeds the evaluator preset's 800-voxel filter with margin


# -- morphology ----------------------------------------------------------------
def _walk(rng, start, direction, n_steps, shape, lo, momentum=0.85):
    """Centreline points (n, 3) float of a random walk with momentum, reflected at the borders."""
    hi = np.asarray(shape, float) - 1 - lo
    pos, d = np.asarray(start, float).copy(), np.asarray(direction, float)
    d /= np.linalg.norm(d)
    kicks = rng.normal(size=(n_steps, 3))
    pts = np.empty((n_steps, 3))
    for i in range(n_steps):
        d = momentum * d + (1 - momentum) * 1.5 * kicks[i]
        d /= np.linalg.norm(d)
        nxt = pos + d
        out = (nxt < lo) | (nxt > hi)
        if out.any():  # reflect off the wall
            d[out] = -d[out]
            nxt = np.clip(pos + d, lo, hi)
        pos = nxt
        pts[i] = pos
    return pts


def _neuron_centreline(rng, shape, through, length, lo):
    """A trunk through point ``through`` (two opposite walks) plus up to 3 side branches."""
    d = rng.normal(size=3)
    d /= np.linalg.norm(d)
    half = max(4, length // 2)
    a = _walk(rng, through, d, half, shape, lo)
    b = _walk(rng, through, -d, half, shape, lo)
    trunk = np.concatenate([a[::-1], np.asarray(through, float)[None], b])
    parts = [trunk]
    n_branches = 0
    for i in range(len(trunk)):  # branch probability ~0.02 per step, at most 3 branches
        if n_branches < 3 and rng.random() < 0.02:
            n_branches += 1
            parts.append(_walk(rng, trunk[i], rng.normal(size=3), int(rng.integers(length // 6, length // 3 + 2)), shape, lo))
    return np.concatenate(parts)


def _ball_offsets(radius: float) -> np.ndarray:
    r = int(np.floor(radius))
    g = np.mgrid[-r : r + 1, -r : r + 1, -r : r + 1].reshape(3, -1).T
    return g[(g**2).sum(1) <= radius**2 + 1e-9]


def _tube_voxels(points, radius, shape) -> np.ndarray:
    """Sorted unique flat indices of the voxels within ``radius`` of the rounded centreline points."""
    centres = np.unique(np.rint(points).astype(np.int64), axis=0)
    vox = (centres[:, None, :] + _ball_offsets(radius)[None]).reshape(-1, 3)
    vox = vox[((vox >= 0) & (vox < np.asarray(shape))).all(1)]
    return np.unique(np.ravel_multi_index(vox.T, shape))


# -- intensity -----------------------------------------------------------------
def _background_lut() -> np.ndarray:
    """uint16 table mapping a uniform 16-bit word to N(BACKGROUND, BACKGROUND_SD) by its quantile."""
    q = (np.arange(1 << 16) + 0.5) / (1 << 16)
    return np.clip(np.rint(BACKGROUND + BACKGROUND_SD * special.ndtri(q)), 0, MAX_VALUE).astype(np.uint16)


def _mcfo_colour(rng) -> np.ndarray:
    while True:
        w = rng.choice(MCFO_LEVELS, size=3)
        if w.any():
            return w


def _illumination(rng, shape):
    """Separable-sum smooth field in [0.5, 1.5]: returns per-axis 1-D terms f_z, f_y, f_x (sum + 1)."""
    terms = []
    for n in shape:
        cycles, phase = rng.uniform(0.3, 1.0), rng.uniform(0, 2 * np.pi)
        terms.append(0.5 / 3 * np.cos(2 * np.pi * cycles * np.arange(n) / max(n, 1) + phase))
    return terms


def _active_blocks(flat, shape, margin) -> np.ndarray:
    """(n, 3) indices of BLOCK^3 blocks within ``margin`` voxels of any voxel in ``flat``."""
    coords = np.stack(np.unravel_index(flat, shape), 1)
    nb = -(-np.asarray(shape) // BLOCK)
    ids = []
    for corner in np.array(np.meshgrid(*[(-margin, margin)] * 3, indexing="ij")).reshape(3, -1).T:
        b = np.clip((coords + corner) // BLOCK, 0, nb - 1)
        ids.append(np.ravel_multi_index(b.T, nb))
    return np.stack(np.unravel_index(np.unique(np.concatenate(ids)), nb), 1)


def synthetic_sample(shape=(64, 128, 128), n_neurons=4, seed=0, *, radius=(1, 2), overlap=True, unlabeled=0):
    """One synthetic FISBe-like sample.

    Args:
        shape: (Z, Y, X) in voxels (0.44 um isotropic in the real data).
        n_neurons: labeled neurons N (GT channels).
        seed: everything is determined by it.
        radius: (min, max) tube radius in voxels, drawn per neuron.
        overlap: start every neuron after the first on an earlier one's centreline (forced crossing).
        unlabeled: extra neurons drawn in raw but absent from GT (as in the partly labeled subset).

    Returns:
        ``(raw, gt)``: raw (3, Z, Y, X) uint16 in [0, 4095]; gt (N, Z, Y, X) uint8, channel k
        holds k+1 on neuron k and 0 elsewhere. Each labeled neuron has more than 1000 voxels
        when the volume allows it.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"shape must be (Z, Y, X) with every size >= 8, got {shape}")
    rng = np.random.Generator(np.random.SFC64(seed))  # SFC64: fast raw words for the background noise
    total = n_neurons + unlabeled
    length = int(1.6 * max(shape))  # trunk steps: crosses the volume about once or twice
    neurons, lines = [], []
    for k in range(total):
        r = float(rng.uniform(*radius))
        lo = np.ceil(r)
        if overlap and lines:  # cross an earlier neuron at a random point of its centreline
            prev = lines[int(rng.integers(len(lines)))]
            through = prev[int(rng.integers(len(prev)))]
        else:
            through = rng.uniform(lo, np.asarray(shape) - 1 - lo)
        pts = _neuron_centreline(rng, shape, through, length, lo)
        vox = _tube_voxels(pts, r, shape)
        for _ in range(20):  # short walks (small volumes, folded trunks): add branches until big enough
            if vox.size > MIN_VOXELS or vox.size * 8 > np.prod(shape):
                break
            extra = _walk(rng, pts[int(rng.integers(len(pts)))], rng.normal(size=3), length // 2, shape, lo)
            pts = np.concatenate([pts, extra])
            vox = np.union1d(vox, _tube_voxels(extra, r, shape))
        lines.append(pts)
        neurons.append(vox)

    gt = np.zeros((n_neurons, *shape), dtype=np.uint8)
    flat_gt = gt.reshape(n_neurons, -1)
    for k in range(n_neurons):
        flat_gt[k, neurons[k]] = k + 1
    # weights (3, total): MCFO colour x brightness (some neurons dim)
    weights = np.stack([_mcfo_colour(rng) * rng.uniform(0.4, 1.0) for _ in range(total)], 1).astype(np.float32)
    field = _illumination(rng, shape)

    raw = np.empty((3, *shape), dtype=np.uint16)
    lut = _background_lut()
    plane = shape[1] * shape[2]
    slab = max(1, (16 << 20) // plane)
    for c in range(3):  # background in slabs: 16-bit uniforms through an inverse-CDF table (fast, exact quantiles)
        for z in range(0, shape[0], slab):
            n = min(slab, shape[0] - z) * plane
            words = rng.bit_generator.random_raw(-(-n // 4)).view(np.uint16)[:n]
            np.take(lut, words, out=raw[c, z : z + slab].reshape(-1), mode="clip")  # clip: unbuffered

    margin = int(4 * SIGMA + 0.5)  # scipy's kernel radius at truncate=4
    all_vox = np.concatenate(neurons)
    for bz, by, bx in _active_blocks(all_vox, shape, margin):
        core = [slice(b * BLOCK, min((b + 1) * BLOCK, n)) for b, n in zip((bz, by, bx), shape)]
        outer = [slice(max(0, s.start - margin), min(n, s.stop + margin)) for s, n in zip(core, shape)]
        inner = tuple(slice(s.start - o.start, s.stop - o.start) for s, o in zip(core, outer))
        oshape = tuple(o.stop - o.start for o in outer)
        masks = np.zeros((total, *oshape), dtype=np.float32)
        for k in range(total):
            vz, vy, vx = np.unravel_index(neurons[k], shape)
            sel = ((vz >= outer[0].start) & (vz < outer[0].stop) & (vy >= outer[1].start) & (vy < outer[1].stop)
                   & (vx >= outer[2].start) & (vx < outer[2].stop))
            if sel.any():
                masks[k, vz[sel] - outer[0].start, vy[sel] - outer[1].start, vx[sel] - outer[2].start] = 1
        sig = np.tensordot(weights, masks, axes=1)  # (3, *oshape)
        sig = ndimage.gaussian_filter(sig, sigma=(0, SIGMA, SIGMA, SIGMA), truncate=4.0)[(slice(None), *inner)]
        illum = (1 + field[0][core[0], None, None] + field[1][None, core[1], None] + field[2][None, None, core[2]])
        sig *= PEAK * illum
        hot = sig > 0.05
        if not hot.any():
            continue
        view = raw[(slice(None), *core)]
        vals = view[hot].astype(np.float64) + rng.poisson(sig[hot])
        view[hot] = np.minimum(vals, MAX_VALUE).astype(np.uint16)
    return raw, gt


# -- writing -------------------------------------------------------------------
def write_sample(path, raw: np.ndarray, gt: np.ndarray) -> Path:
    """Write one ``<sample>.zarr`` group (zarr v2) with ``volumes/raw`` and ``volumes/gt_instances``."""
    path = Path(path)
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    vol = root.create_group("volumes")
    for name, arr, chunks in (("raw", raw, RAW_CHUNKS), ("gt_instances", gt, GT_CHUNKS)):
        a = vol.create_array(name, shape=arr.shape, dtype=arr.dtype, chunks=tuple(min(c, s) for c, s in zip(chunks, arr.shape)),
                             compressors=numcodecs.GZip(level=1), fill_value=0)
        a[...] = arr
    return path


def write_split_list(path, samples: dict) -> Path:
    """Write ``sample_list_per_split.txt`` in the official format from ``{name: {"subset", "split"}}``."""
    lines = []
    for i, subset in enumerate(SUBSETS, 1):
        lines += [f"({i}) samples for FlyLight {subset}:", ""]
        for split in SPLITS:
            lines.append(f"{split}:")
            lines += [n for n, s in samples.items() if s["subset"] == subset and s["split"] == split]
            lines.append("")
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def official_names() -> dict[tuple[str, str], list[str]]:
    """{(subset, split): sample names} of the official split (from the harness's splits.tsv)."""
    from neuroharness.loaders.fisbe import official_split

    return official_split()


def write_release(root, n_per_split=1, shape=(64, 128, 128), n_neurons=4, seed=0, zip=False, *, official=False) -> dict:
    """Write a synthetic release tree at ``root`` (see the module docstring).

    ``n_per_split`` samples per subset and split (6 * n_per_split samples); with
    ``official=True`` they take the first names of the official split list
    (``n_per_split=None``: all 101) instead of synthetic ``SYN...`` names.
    Partly-labeled samples also carry one unlabeled neuron in raw only.

    Returns ``{"root": Path, "split_file": Path, "zips": [Path, ...],
    "samples": {name: {"subset", "split", "path", "shape", "n_instances", "seed"}}}``
    (samples ordered by subset, split, name).
    """
    root = Path(root)
    names = official_names() if official else None
    samples = {}
    i = 0
    for subset in SUBSETS:
        for split in SPLITS:
            if names is not None:
                chosen = names[(subset, split)] if n_per_split is None else names[(subset, split)][:n_per_split]
            else:
                chosen = [f"SYN{(SUBSETS.index(subset) * 3 + SPLITS.index(split)) * 100 + j:04d}-20240101_{j % 100:02d}_A1"
                          for j in range(n_per_split)]
            for name in sorted(chosen):
                s = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
                i += 1
                raw, gt = synthetic_sample(shape, n_neurons, s, unlabeled=1 if subset == "partly" else 0)
                p = write_sample(root / subset / split / f"{name}.zarr", raw, gt)
                samples[name] = {"subset": subset, "split": split, "path": p, "shape": tuple(shape), "n_instances": n_neurons, "seed": s}
    split_file = write_split_list(root / "sample_list_per_split.txt", samples)
    zips = []
    if zip:
        zdir = root / "zips"
        zdir.mkdir(parents=True, exist_ok=True)
        for subset in SUBSETS:
            zp = zdir / f"fisbe_v1.0_{subset}.zip"
            with zipfile.ZipFile(zp, "w", compression=zipfile.ZIP_STORED) as zf:  # chunks are gzip already
                for dirpath, _, filenames in sorted(os.walk(root / subset)):
                    for fn in sorted(filenames):
                        full = Path(dirpath) / fn
                        zf.write(full, full.relative_to(root).as_posix())
            zips.append(zp)
        (zdir / "sample_list_per_split.txt").write_bytes(split_file.read_bytes())
    return {"root": root, "split_file": split_file, "zips": zips, "samples": samples}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="release root to create")
    p.add_argument("--shape", type=int, nargs=3, default=(64, 128, 128), metavar=("Z", "Y", "X"))
    p.add_argument("--per-split", type=int, default=1, help="samples per subset and split")
    p.add_argument("--neurons", type=int, default=4, help="labeled neurons per sample")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--zip", action="store_true", help="also write the zip archives under OUT/zips/")
    p.add_argument("--official-names", action="store_true", help="use the official sample names (first N per split)")
    a = p.parse_args(argv)
    info = write_release(a.out, a.per_split, tuple(a.shape), a.neurons, a.seed, a.zip, official=a.official_names)
    for name, s in info["samples"].items():
        print(f"{s['subset']:<10} {s['split']:<5} {name}  {s['path']}")
    for z in info["zips"]:
        print(z)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
