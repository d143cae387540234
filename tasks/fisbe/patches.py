"""Random 3-D training patches read straight from the ``fisbe`` store.

:class:`PatchDataset` is a torch ``IterableDataset`` over the samples of a
split. Each item is a dict of numpy arrays (a ``DataLoader`` with
``batch_size=B`` stacks them into tensors):

- ``raw``: (3, pz, py, px) float32, per-volume normalised intensities
  (see :func:`normalize`: 0 = the volume's median, 1 = its 99.9th percentile,
  per channel);
- ``foreground``: (pz, py, px) bool, voxel of at least one neuron;
- ``labels``: (pz, py, px) int32, k >= 1 where only neuron k (the store's
  ``instance`` value, channel k-1) is present, 0 background, -1 where two or
  more neurons overlap;
- ``sample``: int, index into ``samples``; ``offset``: (3,) int64 (z, y, x)
  of the patch's first voxel (negative or past the end where the volume is
  smaller than the patch and the patch is padded: raw with 0, labels with 0).

Patches are read with ``zarr`` (not xarray/dask, whose graph building costs
more than a 64^3 read) from ``<store>/<sample>/raw`` (3, Z, Y, X) uint16 and
the sample's NGFF label images ``<store>/<sample>/labels/neurons_<g>/0``
(Z, Y, X) uint8, each holding instance ids of neurons that share no voxel
(:mod:`neuroharness.loaders.fisbe.ngff`), so a patch needs one small read per
label image rather than one per neuron. With probability
``foreground_p`` a patch is centred on a random foreground voxel, drawn from
per-sample coordinate lists computed once at construction (subsampled to
``max_fg_coords``); otherwise its corner is uniform over the volume.

Reproducibility: patch i of epoch e is drawn with
``numpy.random.default_rng([seed, e, i])``; with ``num_workers = W`` worker w
yields patches w, w + W, ..., so the set of patches of an epoch depends only
on the seed and the epoch, not on the number of workers (their order does).
Zarr handles are opened lazily in each process (never shared across fork).
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch.utils.data as tud

from neuroharness.errors import DataFormatError
from neuroharness.loaders.fisbe.ngff import label_images, labels_of_images
from neuroharness.loaders.location import StoreLocation, as_location

PERCENTILES = (50.0, 99.9)  # background level and bright-signal level used by normalize()
_SLAB = 32  # z-planes per read when scanning a whole volume (bounds the temporary memory)


def channel_percentiles(raw, percentiles: Sequence[float] = PERCENTILES) -> np.ndarray:
    """Per-channel percentiles of an integer volume, (C, len(percentiles)) float64.

    ``raw``: (C, Z, Y, X) unsigned integers (numpy or zarr array). Exact
    (lower-value) percentiles from a histogram accumulated over z-slabs, so
    a real-size volume (3 x 385 x 685 x 686) needs no sort and no int64 copy.
    """
    C, Z = raw.shape[0], raw.shape[1]
    counts = [np.zeros(1, np.int64) for _ in range(C)]
    for z in range(0, Z, _SLAB):
        block = np.asarray(raw[:, z : z + _SLAB])
        if block.dtype.kind != "u":
            raise DataFormatError(f"raw: expected unsigned integers, got {block.dtype}")
        for c in range(C):
            h = np.bincount(block[c].ravel())
            if len(h) > len(counts[c]):
                h[: len(counts[c])] += counts[c]
                counts[c] = h
            else:
                counts[c][: len(h)] += h
    out = np.zeros((C, len(percentiles)))
    for c in range(C):
        cdf = np.cumsum(counts[c])
        for k, p in enumerate(percentiles):
            out[c, k] = np.searchsorted(cdf, p / 100 * (cdf[-1] - 1), side="right")
    return out


def normalize(raw: np.ndarray, lo: np.ndarray, hi: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(raw - lo) / (hi - lo) per channel as float32; ``raw`` (C, ...), ``lo``/``hi`` (C,)."""
    lo = np.asarray(lo, np.float32).reshape((-1,) + (1,) * (raw.ndim - 1))
    scale = np.maximum(np.asarray(hi, np.float32).reshape(lo.shape) - lo, 1.0)
    out = np.empty(raw.shape, np.float32) if out is None else out
    np.subtract(raw, lo, out=out, dtype=np.float32)
    out /= scale
    return out


def foreground_coords(gt, max_coords: int | None, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) int32 (z, y, x) of voxels in any instance, at most ``max_coords``.

    ``gt``: an (N, Z, Y, X) instance stack, or a list of (Z, Y, X) label images (numpy or zarr)."""
    images = gt if isinstance(gt, (list, tuple)) else None
    depth = images[0].shape[0] if images is not None else gt.shape[1]
    parts = []
    for z in range(0, depth, _SLAB):
        if images is None:
            fg = np.asarray(gt[:, z : z + _SLAB]).any(axis=0)
        else:
            fg = np.asarray(images[0][z : z + _SLAB]) != 0
            for im in images[1:]:
                fg |= np.asarray(im[z : z + _SLAB]) != 0
        idx = np.argwhere(fg).astype(np.int32)
        idx[:, 0] += z
        parts.append(idx)
    coords = np.concatenate(parts) if parts else np.zeros((0, 3), np.int32)
    if max_coords is not None and len(coords) > max_coords:
        coords = coords[np.sort(rng.choice(len(coords), max_coords, replace=False))]
    return coords


def labels_of(stack: np.ndarray) -> np.ndarray:
    """(N, ...) bool instance stack -> int32 label image: k for instance k-1 alone, 0 none, -1 overlap."""
    n = stack.sum(axis=0, dtype=np.int16)
    lab = (np.argmax(stack, axis=0) + 1).astype(np.int32) if len(stack) else np.zeros(stack.shape[1:], np.int32)
    lab[n == 0] = 0
    lab[n > 1] = -1
    return lab


class PatchDataset(tud.IterableDataset):
    """Seeded random 3-D patches of ``samples`` in the fisbe store at ``store`` (a path, an fsspec URL or a
    :class:`~neuroharness.loaders.location.StoreLocation`).

    ``patch``: (pz, py, px) voxels (an int means a cube); ``n_patches``:
    patches per epoch; ``stats``: optional ``{sample: (lo (3,), hi (3,))}``
    normalisation levels (computed from each whole volume otherwise, which
    reads every raw volume once). See the module doc for the items.
    """

    def __init__(self, store: StoreLocation | str | os.PathLike, samples: Sequence[str], patch: int | Sequence[int] = 64,
                 n_patches: int = 256, foreground_p: float = 0.5, seed: int = 0,
                 max_fg_coords: int | None = 200_000, stats: dict | None = None):
        super().__init__()
        self.store = as_location(store)  # a path or an fsspec URL; picklable for worker processes
        self.samples = [str(s) for s in samples]
        if not self.samples:
            raise ValueError("samples: empty")
        self.patch = tuple(int(p) for p in (patch,) * 3) if np.isscalar(patch) else tuple(int(p) for p in patch)
        if len(self.patch) != 3 or min(self.patch) < 1:
            raise ValueError(f"patch: expected 3 positive sizes, got {patch!r}")
        if not 0 <= foreground_p <= 1:
            raise ValueError(f"foreground_p: expected a probability, got {foreground_p}")
        self.n_patches, self.foreground_p, self.seed, self.epoch = int(n_patches), float(foreground_p), int(seed), 0
        self._arrays, self._pid = None, None
        arrays = self._open()
        self.shapes, self.lo, self.hi, self.fg_coords = [], [], [], []
        for k, (s, (raw, gt)) in enumerate(zip(self.samples, arrays)):
            for name, im in zip(self._names[k], gt):
                if raw.ndim != 4 or im.ndim != 3 or raw.shape[1:] != im.shape:
                    raise DataFormatError(f"{self.store}/{s}: raw {raw.shape} and labels/{name} {im.shape} "
                                          "are not (3, Z, Y, X) and (Z, Y, X) of one volume")
            self.shapes.append(tuple(raw.shape[1:]))
            lo, hi = stats[s] if stats is not None and s in stats else channel_percentiles(raw).T
            self.lo.append(np.asarray(lo, np.float32))
            self.hi.append(np.asarray(hi, np.float32))
            if self.foreground_p > 0:
                rng = np.random.default_rng([self.seed, 2**31, k])
                self.fg_coords.append(foreground_coords(gt, max_fg_coords, rng))
            else:
                self.fg_coords.append(np.zeros((0, 3), np.int32))

    def _open(self):
        if self._arrays is None or self._pid != os.getpid():
            try:
                root = self.store.open_group()
                groups = [root[s] for s in self.samples]
                raws = [g["raw"] for g in groups]
            except (KeyError, FileNotFoundError) as e:
                raise DataFormatError(f"{self.store}: cannot open raw of the samples ({e})") from None
            found = [label_images(g, f"{self.store}/{s}") for g, s in zip(groups, self.samples)]
            self._names = [[name for name, _ in f] for f in found]
            self._arrays = [(raw, [a for _, a in f]) for raw, f in zip(raws, found)]
            self._pid = os.getpid()
        return self._arrays

    def __getstate__(self):  # zarr handles are reopened in the receiving process
        state = dict(self.__dict__)
        state["_arrays"], state["_pid"] = None, None
        return state

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n_patches

    def offset(self, i: int) -> tuple[int, np.ndarray]:
        """(sample index, (3,) corner) of patch ``i`` of the current epoch."""
        rng = np.random.default_rng([self.seed, self.epoch, i])
        k = int(rng.integers(len(self.samples)))
        shape, p = np.array(self.shapes[k]), np.array(self.patch)
        coords = self.fg_coords[k]
        if len(coords) and rng.random() < self.foreground_p:
            centre = coords[rng.integers(len(coords))].astype(np.int64)
            corner = centre - p // 2
            # keep the patch inside the volume where the volume is large enough
            corner = np.where(shape >= p, np.clip(corner, 0, np.maximum(shape - p, 0)), (shape - p) // 2)
        else:
            corner = np.where(shape >= p, [int(rng.integers(m + 1)) for m in np.maximum(shape - p, 0)], (shape - p) // 2)
        return k, corner.astype(np.int64)

    def read(self, k: int, corner: np.ndarray) -> dict:
        """The item for sample index ``k`` and patch corner ``corner`` (padded where outside)."""
        raw_a, gt_a = self._open()[k]
        shape = np.array(self.shapes[k])
        lo = np.maximum(corner, 0)
        hi = np.minimum(corner + np.array(self.patch), shape)
        sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        raw = np.asarray(raw_a[(slice(None),) + sl])
        x = normalize(raw, self.lo[k], self.hi[k])
        lab = labels_of_images([a[sl] for a in gt_a])
        if tuple(hi - lo) != self.patch:
            pad = [(int(a - c), int(c + p - b)) for a, b, c, p in zip(lo, hi, corner, self.patch)]
            x = np.pad(x, [(0, 0)] + pad)
            lab = np.pad(lab, pad)
        return {"raw": x, "foreground": lab != 0, "labels": lab, "sample": k, "offset": corner}

    def __iter__(self) -> Iterator[dict]:
        info = tud.get_worker_info()
        first, step = (0, 1) if info is None else (info.id, info.num_workers)
        for i in range(first, self.n_patches, step):
            yield self.read(*self.offset(i))


def store_samples(store: StoreLocation | str | os.PathLike, split: str, subsets: Sequence[str] = ("completely", "partly")) -> list[str]:
    """Sample ids of ``split`` (and ``subsets``) from the root index of a fisbe store, read with zarr."""
    root = as_location(store).open_group()
    try:
        ids = np.asarray(root["sample"][:]).astype(str)
        sp = np.asarray(root["split"][:]).astype(str)
        sub = np.asarray(root["subset"][:]).astype(str)
    except KeyError as e:
        raise DataFormatError(f"{store}: sample index array {e} missing (expected sample, split, subset)") from None
    return [str(s) for s, a, b in zip(ids, sp, sub) if a == split and b in subsets]
