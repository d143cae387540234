"""Training windows read straight from a ragged activity store.

:class:`RaggedActivity` reads one worm at a time from the Zarr arrays of
``celegans-activity`` (no xarray/dask in the hot path). :class:`WindowDataset`
is a torch ``IterableDataset`` that visits worms in a seeded order, loads one
worm, cuts batches of (context, target, mask) windows out of it, and moves
on, so each worker holds at most one worm. With ``num_workers > 0`` the worms
are dealt round-robin to workers; the windows of a worm depend only on the
seed, the epoch and the worm, so the set of windows does not depend on the
number of workers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch.utils.data as tud
import zarr


class RaggedActivity:
    """Per-worm reads from a ``celegans-activity`` store at ``path``."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._open()

    def _open(self):
        g = zarr.open_group(self.path, mode="r", zarr_format=2)
        self._calcium = g["calcium"]
        self.start = g["worm_start"][:]
        self.length = g["row_size"][:]
        self.labeled = g["labeled"][:]
        self.source = np.asarray(g["source_dataset"][:]).astype(str)
        self.worm_ids = np.asarray(g["worm"][:]).astype(str)
        self.n_neurons = self._calcium.shape[1]

    def __getstate__(self):  # reopen in each DataLoader worker instead of pickling zarr handles
        return {"path": self.path}

    def __setstate__(self, state):
        self.path = state["path"]
        self._open()

    def __len__(self) -> int:
        return len(self.start)

    def worm(self, w: int, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Samples ``lo:hi`` of worm ``w`` as (T, neuron) float32 with NaN where unlabeled."""
        T = int(self.length[w])
        hi = T if hi is None else min(hi, T)
        s = int(self.start[w])
        return np.asarray(self._calcium[s + lo : s + hi])


@dataclass(frozen=True)
class Segment:
    """A stretch of one worm that windows may be cut from: samples [lo, hi)."""

    worm: int
    lo: int
    hi: int


def windows_of(trace: np.ndarray, starts: np.ndarray, context: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut (B, context, N) contexts and (B, horizon, N) targets at ``starts`` (NaN -> 0)."""
    x = np.nan_to_num(trace, copy=False)
    idx = starts[:, None] + np.arange(context + horizon)[None, :]
    win = x[idx]
    return win[:, :context], win[:, context:]


class WindowDataset(tud.IterableDataset):
    """Seeded batches of training windows, as a torch ``IterableDataset``.

    Each item is ``(context, target, mask)``: float32 (B, context, N),
    float32 (B, horizon, N) and bool (B, N) (labeled neurons of the worm),
    all windows of a batch from one worm. ``windows_per_step`` sets how many
    windows a worm yields per sample of its usable length per epoch.
    """

    def __init__(self, store: RaggedActivity | str | Path, segments: Sequence[Segment], context: int, horizon: int,
                 batch_size: int = 64, windows_per_step: float = 0.05, seed: int = 0):
        super().__init__()
        self.store = store if isinstance(store, RaggedActivity) else RaggedActivity(store)
        span = context + horizon
        self.segments = [s for s in segments if s.hi - s.lo >= span]
        self.context, self.horizon, self.batch_size = context, horizon, batch_size
        self.windows_per_step, self.seed, self.epoch = windows_per_step, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def n_windows(self, seg: Segment) -> int:
        usable = seg.hi - seg.lo - self.context - self.horizon + 1
        return max(1, int(math.ceil(usable * self.windows_per_step)))

    def __len__(self) -> int:
        return sum(math.ceil(self.n_windows(s) / self.batch_size) for s in self.segments)

    def _order(self) -> list[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        return rng.permutation(len(self.segments)).tolist()

    def __iter__(self) -> Iterator[tuple]:
        order = self._order()
        info = tud.get_worker_info()
        if info is not None:
            order = order[info.id :: info.num_workers]
        for k in order:
            seg = self.segments[k]
            rng = np.random.default_rng([self.seed, self.epoch, k])
            trace = self.store.worm(seg.worm, seg.lo, seg.hi)
            mask = self.store.labeled[seg.worm]
            usable = seg.hi - seg.lo - self.context - self.horizon + 1
            starts = np.sort(rng.integers(0, usable, size=self.n_windows(seg)))
            for b in range(0, len(starts), self.batch_size):
                ctx, tgt = windows_of(trace, starts[b : b + self.batch_size], self.context, self.horizon)
                yield ctx, tgt, np.broadcast_to(mask, (len(ctx), mask.size)).copy()

