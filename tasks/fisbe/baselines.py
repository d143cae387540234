"""Baselines of ``fisbe-instance-segmentation``: colour clustering and a small 3-D U-Net.

Both models follow one interface::

    model.fit(data, train, val, seed) -> model     # data: FisbeData, train/val: sample ids
    model.predict(raw) -> (Z, Y, X) label image    # raw: (3, Z, Y, X) uint16, one volume

and share the last steps (:func:`instances_from_features`): cluster the
feature vectors of the foreground voxels (k-means with ``k0`` centres on a
voxel sample, then centres closer than ``merge_distance`` merged by average
linkage), connected components of each cluster (26-connectivity), and removal
of components of ``min_size`` = 800 voxels or fewer (the benchmark preset
drops such predictions anyway).

- :class:`ThresholdClusterModel` (``threshold-cluster``, no learning, CPU):
  per-channel normalisation (median -> 0, 99.9th percentile -> 1, after a
  Gaussian blur of ``sigma`` voxels), foreground = max over channels above a
  threshold, features = chromaticity (each channel's share of the summed
  normalised signal, r + g + b = 1). The threshold maximises the voxel Dice
  with the GT foreground and ``merge_distance`` maximises S on (up to
  ``max_tune_samples``) training volumes.
- :class:`UNetEmbeddingModel` (``unet-embedding``): a small 3-D U-Net
  predicting a foreground logit and an ``emb_dim``-dimensional embedding,
  trained on random patches (:mod:`.patches`) with Dice + BCE on the
  foreground and the discriminative loss of De Brabandere et al. 2017
  (arXiv 1708.02551) on the embeddings of single-neuron voxels; whole
  volumes are predicted by sliding window.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from scipy import ndimage as ndi

from neuroharness.loaders.location import StoreLocation

from .patches import channel_percentiles, normalize

MIN_SIZE = 800  # the benchmark preset removes predicted instances of <= 800 voxels
_STRUCT26 = np.ones((3, 3, 3), dtype=bool)


class FisbeData(Protocol):
    """What a model may read: volumes of the prepared store by sample id."""

    location: StoreLocation  # the store (local or remote), for readers of their own (e.g. PatchDataset)

    def raw(self, sample: str) -> np.ndarray:  # (3, Z, Y, X) uint16
        ...

    def gt(self, sample: str) -> np.ndarray:  # (N, Z, Y, X) bool
        ...

    def subset(self, sample: str) -> str:  # "completely" or "partly"
        ...


# -- shared steps ----------------------------------------------------------------
def normalized_channels(raw: np.ndarray, sigma: float = 0.0) -> np.ndarray:
    """(C, Z, Y, X) float32: each channel blurred by ``sigma`` voxels, then median -> 0, 99.9th pct -> 1."""
    lo, hi = channel_percentiles(raw).T
    out = np.empty(raw.shape, np.float32)
    for c in range(raw.shape[0]):
        normalize(raw[c : c + 1], lo[c : c + 1], hi[c : c + 1], out=out[c : c + 1])
        if sigma > 0:
            ndi.gaussian_filter(out[c], sigma, output=out[c], truncate=3.0)
    return out


def cluster_features(feats: np.ndarray, k0: int, merge_distance: float, seed: int,
                     max_fit: int = 20_000) -> np.ndarray:
    """Cluster ids (n,) int32 >= 1 of feature vectors ``feats`` (n, d).

    k-means with ``k0`` centres fitted on at most ``max_fit`` random rows
    (seeded), then centres within ``merge_distance`` (average linkage,
    Euclidean) merged; every row goes to its nearest centre's group.
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from sklearn.cluster import KMeans

    n = len(feats)
    if n == 0:
        return np.zeros(0, np.int32)
    rng = np.random.default_rng(seed)
    fit = feats if n <= max_fit else feats[rng.choice(n, max_fit, replace=False)]
    k = int(min(k0, len(np.unique(fit, axis=0))))
    if k <= 1:
        return np.ones(n, np.int32)
    km = KMeans(n_clusters=k, n_init=2, random_state=int(rng.integers(2**31))).fit(fit)
    centres = km.cluster_centers_
    group = fcluster(linkage(centres, "average"), t=merge_distance, criterion="distance").astype(np.int32)
    nearest = np.empty(n, np.int64)
    c2 = (centres**2).sum(1)
    for a in range(0, n, 1 << 18):  # nearest centre in blocks: (block, k) distances only
        f = feats[a : a + (1 << 18)]
        nearest[a : a + len(f)] = np.argmin(c2[None] - 2 * f @ centres.T, axis=1)
    return group[nearest]


def components(flat: np.ndarray, shape: Sequence[int], cluster: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components (26-connectivity) of sparse voxels, within each cluster.

    ``flat``: (n,) sorted flat indices into ``shape`` of the foreground
    voxels; ``cluster``: (n,) their cluster ids. Two voxels are connected
    if they are 26-neighbours with the same cluster id. Returns (component
    id per voxel (n,) int64 from 0, number of components). Neighbours are
    found by binary search in ``flat``, so the cost grows with the number of
    foreground voxels, not with the volume.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(flat)
    if n == 0:
        return np.zeros(0, np.int64), 0
    shape = np.asarray(shape, np.int64)
    coords = np.unravel_index(flat, tuple(shape))
    strides = np.array([shape[1] * shape[2], shape[2], 1], np.int64)
    rows, cols = [], []
    # the 13 "forward" offsets of the 26-neighbourhood; edges are symmetric
    for off in np.argwhere(np.ones((3, 3, 3))) - 1:
        if tuple(off) <= (0, 0, 0):
            continue
        ok = np.ones(n, bool)
        for ax in range(3):
            if off[ax]:
                c = coords[ax] + off[ax]
                ok &= (c >= 0) & (c < shape[ax])
        src = np.flatnonzero(ok)
        tgt = flat[src] + int(off @ strides)
        pos = np.minimum(np.searchsorted(flat, tgt), n - 1)
        hit = (flat[pos] == tgt) & (cluster[pos] == cluster[src])
        rows.append(src[hit])
        cols.append(pos[hit])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(n, n)).tocsr()
    k, comp = connected_components(graph, directed=False)
    return comp.astype(np.int64), int(k)


def instances_from_clusters(flat: np.ndarray, cluster: np.ndarray, shape: Sequence[int],
                            min_size: int = MIN_SIZE) -> np.ndarray:
    """Label image (Z, Y, X) from foreground voxels ``flat`` (n,) sorted flat indices and cluster ids (n,).

    Connected components (26-connectivity) within each cluster; components
    of ``min_size`` voxels or fewer are dropped; labels are consecutive from
    1 in order of first voxel (uint16, or uint32 if needed).
    """
    shape = tuple(int(s) for s in shape)
    comp, k = components(flat, shape, cluster)
    sizes = np.bincount(comp, minlength=k)
    keep = sizes > min_size
    new = np.zeros(k, np.int64)
    new[keep] = np.arange(1, int(keep.sum()) + 1)
    dtype = np.uint16 if keep.sum() < 2**16 else np.uint32
    out = np.zeros(shape, dtype)
    out.reshape(-1)[flat] = new[comp].astype(dtype)
    return out


def instances_from_features(fg: np.ndarray, feats_of, k0: int, merge_distance: float, seed: int,
                            min_size: int = MIN_SIZE) -> np.ndarray:
    """Label image from a foreground mask (Z, Y, X) bool and ``feats_of(flat) -> (n, d)`` features
    of the voxels at sorted flat indices ``flat``."""
    flat = np.flatnonzero(fg)
    if len(flat) == 0:
        return np.zeros(fg.shape, np.uint16)
    cluster = cluster_features(feats_of(flat), k0, merge_distance, seed)
    return instances_from_clusters(flat, cluster, fg.shape, min_size)


def _chromaticity(norm: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """(n, C) share of each channel in the summed (non-negative) normalised signal at flat indices ``flat``."""
    v = np.stack([np.maximum(norm[c].reshape(-1)[flat], 0) for c in range(norm.shape[0])], 1)
    return v / np.maximum(v.sum(1, keepdims=True), 1e-6)


def _score_volumes(pairs) -> float:
    """S of [(gt, pred, partly), ...]: combined (mean of the subsets) if both kinds are present."""
    from neuroharness.metrics.instance_segmentation import (
        combine,
        evaluate_instances,
        summarize,
    )

    res = {False: [], True: []}
    for gt, pred, partly in pairs:
        res[partly].append(evaluate_instances(gt, pred, partly=partly, remove_small=MIN_SIZE))
    if res[False] and res[True]:
        return combine(summarize(res[False]), summarize(res[True]))["S"]
    return summarize(res[False] or res[True])["S"]


def _tuning_samples(data: FisbeData, train: Sequence[str], k: int | None, seed: int) -> list[str]:
    """Up to ``k`` training samples, completely and partly alternating, seeded."""
    train = list(train)
    if k is None or len(train) <= k:
        return train
    rng = np.random.default_rng([seed, 7])
    by = {s: [x for x in train if data.subset(x) == s] for s in ("completely", "partly")}
    for v in by.values():
        rng.shuffle(v)
    out = []
    while len(out) < k and (by["completely"] or by["partly"]):
        for s in ("completely", "partly"):
            if by[s] and len(out) < k:
                out.append(by[s].pop())
    return sorted(out)


# -- threshold-cluster -------------------------------------------------------------
class ThresholdClusterModel:
    """Foreground threshold + chromaticity clustering + connected components (no learning).

    ``threshold``/``merge_distance`` of None are tuned in :meth:`fit`
    (threshold on a grid of ``threshold_grid`` values by pooled voxel Dice
    with the GT foreground of the completely labeled tuning volumes, or all
    of them if there are none; ``merge_distance`` from ``merge_grid`` by S).
    """

    n_parameters = 2  # the tuned threshold and merge distance

    def __init__(self, sigma: float = 1.0, k0: int = 12, threshold: float | None = None,
                 merge_distance: float | None = None, merge_grid: Sequence[float] = (0.05, 0.1, 0.15, 0.2, 0.3),
                 threshold_grid: Sequence[float] = tuple(round(0.05 + 0.025 * i, 3) for i in range(38)),
                 max_tune_samples: int | None = 6, min_size: int = MIN_SIZE):
        self.sigma, self.k0, self.threshold, self.merge_distance = sigma, k0, threshold, merge_distance
        self.merge_grid, self.threshold_grid = tuple(merge_grid), tuple(threshold_grid)
        self.max_tune_samples, self.min_size = max_tune_samples, min_size
        self.seed = 0

    def _features(self, raw):
        norm = normalized_channels(raw, self.sigma)
        inten = norm[0].copy()
        for c in range(1, len(norm)):
            np.maximum(inten, norm[c], out=inten)
        return norm, inten

    def fit(self, data: FisbeData, train: Sequence[str], val: Sequence[str], seed: int):
        self.seed = int(seed)
        if self.threshold is not None and self.merge_distance is not None:
            return self
        tune = _tuning_samples(data, train, self.max_tune_samples, seed)
        grid = np.asarray(self.threshold_grid, float)
        tp, fp, fn = (np.zeros(len(grid)) for _ in range(3))
        cached = []
        complete = [s for s in tune if data.subset(s) == "completely"] or tune
        for s in tune:
            gt = data.gt(s)
            norm, inten = self._features(data.raw(s))
            if s in complete:
                fg_gt = gt.any(axis=0)
                # pooled counts for every threshold at once from sorted intensities
                on, off = np.sort(inten[fg_gt]), np.sort(inten[~fg_gt])
                tp += len(on) - np.searchsorted(on, grid, side="right")
                fp += len(off) - np.searchsorted(off, grid, side="right")
                fn += np.searchsorted(on, grid, side="right")
            cached.append((s, gt, norm, inten))
        if self.threshold is None:
            dice = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
            self.threshold = float(grid[int(np.argmax(dice))])
        if self.merge_distance is None:
            best = None
            for d in self.merge_grid:
                pairs = [(gt, self._segment(norm, inten, self.threshold, d), data.subset(s) == "partly")
                         for s, gt, norm, inten in cached]
                score = _score_volumes(pairs)
                if best is None or score > best[0] + 1e-12:
                    best = (score, d)
            self.merge_distance = float(best[1])
            self.train_S = float(best[0])
        return self

    def _segment(self, norm, inten, threshold, merge_distance):
        fg = inten > threshold
        return instances_from_features(fg, lambda flat: _chromaticity(norm, flat), self.k0, merge_distance,
                                       self.seed, self.min_size)

    def predict(self, raw: np.ndarray) -> np.ndarray:
        norm, inten = self._features(raw)
        return self._segment(norm, inten, self.threshold, self.merge_distance)


# -- unet-embedding ------------------------------------------------------------------
def _unet(in_ch: int, base: int, depth: int, out_ch: int):
    import torch
    from torch import nn

    def block(a, b):
        return nn.Sequential(nn.Conv3d(a, b, 3, padding=1), nn.GroupNorm(1, b), nn.ReLU(inplace=True),
                             nn.Conv3d(b, b, 3, padding=1), nn.GroupNorm(1, b), nn.ReLU(inplace=True))

    class UNet3d(nn.Module):
        """U-Net with ``depth`` poolings; widths base * 2**level; spatial sizes divisible by 2**depth."""

        def __init__(self):
            super().__init__()
            widths = [base * 2**i for i in range(depth + 1)]
            self.down = nn.ModuleList([block(in_ch, widths[0])] + [block(widths[i], widths[i + 1]) for i in range(depth)])
            self.up = nn.ModuleList([nn.ConvTranspose3d(widths[i + 1], widths[i], 2, stride=2) for i in range(depth)])
            self.dec = nn.ModuleList([block(2 * widths[i], widths[i]) for i in range(depth)])
            self.head = nn.Conv3d(widths[0], out_ch, 1)

        def forward(self, x):
            skips = []
            for i, b in enumerate(self.down):
                x = b(x if i == 0 else torch.nn.functional.max_pool3d(x, 2))
                skips.append(x)
            for i in reversed(range(depth)):
                x = self.dec[i](torch.cat([skips[i], self.up[i](x)], dim=1))
            return self.head(x)

    return UNet3d()


def _with_chromaticity(x):
    """Network input: (B, 3, ...) normalised channels + their chromaticity, (B, 6, ...).

    Chromaticity = each channel's share of the summed positive signal, with
    0.1 (a tenth of a bright voxel) added to the sum so that background
    voxels get chromaticity near 0 instead of the colour of their noise.
    """
    import torch

    pos = torch.clamp(x, min=0)
    return torch.cat([x, pos / (pos.sum(dim=1, keepdim=True) + 0.1)], dim=1)


def discriminative_loss(emb, labels, delta_v: float = 0.5, delta_d: float = 1.5, gamma: float = 1e-3):
    """Push/pull loss of De Brabandere et al. (2017) averaged over the batch.

    ``emb`` (B, D, *S) float; ``labels`` (B, *S) int, k >= 1 a neuron, 0
    background and -1 overlap (both ignored). Pull: hinge at ``delta_v`` on
    the distance of each voxel to its neuron's mean; push: hinge at
    2 ``delta_d`` between the means of different neurons; plus ``gamma`` x
    the mean norm of the means.
    """
    import torch

    total = emb.new_zeros(())
    for e, lab in zip(emb, labels):
        e = e.reshape(e.shape[0], -1)
        lab = lab.reshape(-1)
        ids = torch.unique(lab[lab > 0])
        if len(ids) == 0:
            continue
        means, pull = [], e.new_zeros(())
        for k in ids:
            ek = e[:, lab == k]
            mu = ek.mean(dim=1, keepdim=True)
            means.append(mu[:, 0])
            pull = pull + (torch.clamp((ek - mu).norm(dim=0) - delta_v, min=0) ** 2).mean()
        mu = torch.stack(means)
        push = e.new_zeros(())
        if len(ids) > 1:
            d = torch.cdist(mu, mu)
            off = ~torch.eye(len(ids), dtype=torch.bool, device=e.device)
            push = (torch.clamp(2 * delta_d - d[off], min=0) ** 2).mean()
        total = total + pull / len(ids) + push + gamma * mu.norm(dim=1).mean()
    return total / len(emb)


class UNetEmbeddingModel:
    """Small 3-D U-Net: foreground logit + ``emb_dim`` embedding, clustered into instances.

    Defaults train in well under a minute on 2 CPU cores on small synthetic
    volumes. For the real release use e.g. ``steps=20000, patch=64,
    batch_size=4, base=16`` on a GPU (``hyperparameters=`` of
    :meth:`~neuroharness.tasks.base.Task.run_model`).
    """

    def __init__(self, base: int = 8, depth: int = 2, emb_dim: int = 4, patch: int = 32, batch_size: int = 2,
                 steps: int = 200, lr: float = 3e-3, foreground_p: float = 0.9, delta_v: float = 0.5,
                 delta_d: float = 1.5, emb_weight: float = 0.2, tile: int = 64, k0: int = 12,
                 merge_distance: float | None = None, fg_threshold: float = 0.5, num_workers: int = 0,
                 min_size: int = MIN_SIZE):
        self.base, self.depth, self.emb_dim, self.patch, self.batch_size = base, depth, emb_dim, patch, batch_size
        self.steps, self.lr, self.foreground_p, self.delta_v, self.delta_d = steps, lr, foreground_p, delta_v, delta_d
        self.emb_weight, self.tile, self.k0, self.fg_threshold = emb_weight, tile, k0, fg_threshold
        self.merge_distance = delta_d if merge_distance is None else merge_distance
        self.num_workers, self.min_size = num_workers, min_size
        self.n_parameters, self.seed = 0, 0
        self._net = None

    @staticmethod
    def _device():
        import torch

        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def fit(self, data: FisbeData, train: Sequence[str], val: Sequence[str], seed: int):
        import torch

        from neuroharness.progress import progress_bar

        from .patches import PatchDataset

        self.seed = int(seed)
        torch.manual_seed(seed)
        dev = self._device()
        net = _unet(6, self.base, self.depth, 1 + self.emb_dim).to(dev)
        self.n_parameters = int(sum(p.numel() for p in net.parameters()))
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=max(self.steps, 1), pct_start=0.1)
        ds = PatchDataset(data.location, list(train), patch=self.patch, n_patches=self.steps * self.batch_size,
                          foreground_p=self.foreground_p, seed=seed)
        loader = torch.utils.data.DataLoader(ds, batch_size=self.batch_size, num_workers=self.num_workers)
        net.train()
        t0 = time.perf_counter()
        with progress_bar(total=self.steps, desc="unet", unit="step") as bar:
            for batch in loader:
                x = batch["raw"].to(dev)
                fg = batch["foreground"].to(dev).float()
                out = net(_with_chromaticity(x))
                logit = out[:, 0]
                p = torch.sigmoid(logit)
                dice = 1 - (2 * (p * fg).sum() + 1) / (p.sum() + fg.sum() + 1)
                seg = dice + torch.nn.functional.binary_cross_entropy_with_logits(logit, fg)
                disc = discriminative_loss(out[:, 1:], batch["labels"].to(dev), self.delta_v, self.delta_d)
                loss = seg + self.emb_weight * disc
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                bar.update(1)
        self.train_seconds = time.perf_counter() - t0
        self._net = net.eval()
        return self

    def forward_volume(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sliding-window outputs: foreground probability (Z, Y, X) float32 and embedding (D, Z, Y, X) float32.

        Tiles of ``tile``^3 voxels; each keeps its centre and drops a margin of
        ``tile // 8`` voxels on sides that touch a neighbouring tile.
        """
        import torch

        x = normalized_channels(raw)
        shape = np.array(raw.shape[1:])
        m = 2**self.depth
        tile = np.minimum(self.tile, -(-shape // m) * m)  # never larger than the (rounded-up) volume
        margin = tile // 8
        step = tile - 2 * margin
        prob = np.zeros(tuple(shape), np.float32)
        emb = np.zeros((self.emb_dim, *shape), np.float32)
        dev = next(self._net.parameters()).device
        starts = [list(range(0, max(int(n - t), 0) + 1, int(s))) for n, t, s in zip(shape, tile, step)]
        for ax in range(3):  # the last tile ends at the border
            if starts[ax][-1] + tile[ax] < shape[ax]:
                starts[ax].append(int(shape[ax] - tile[ax]))
        with torch.no_grad():
            for z in starts[0]:
                for y in starts[1]:
                    for xx in starts[2]:
                        lo = np.array([z, y, xx])
                        hi = np.minimum(lo + tile, shape)
                        patch = x[(slice(None),) + tuple(slice(a, b) for a, b in zip(lo, hi))]
                        pad = [(0, int(t - (b - a))) for a, b, t in zip(lo, hi, tile)]
                        if any(p[1] for p in pad):
                            patch = np.pad(patch, [(0, 0)] + pad)
                        inp = _with_chromaticity(torch.from_numpy(np.ascontiguousarray(patch))[None].to(dev))
                        out = self._net(inp)[0].cpu().numpy()
                        # keep the centre; at the volume border keep up to the border
                        keep_lo = np.where(lo == 0, 0, margin)
                        keep_hi = np.where(hi >= shape, hi - lo, tile - margin)
                        src = tuple(slice(int(a), int(b)) for a, b in zip(keep_lo, keep_hi))
                        dst = tuple(slice(int(l + a), int(l + b)) for l, a, b in zip(lo, keep_lo, keep_hi))
                        prob[dst] = 1 / (1 + np.exp(-out[(0,) + src]))
                        emb[(slice(None),) + dst] = out[(slice(1, None),) + src]
        return prob, emb

    def predict(self, raw: np.ndarray) -> np.ndarray:
        if self._net is None:
            raise RuntimeError("unet-embedding: call fit() before predict()")
        prob, emb = self.forward_volume(raw)
        fg = prob > self.fg_threshold
        return instances_from_features(fg, lambda flat: np.stack([e.reshape(-1)[flat] for e in emb], 1),
                                       self.k0, self.merge_distance, self.seed, self.min_size)
