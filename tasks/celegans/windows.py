"""Training windows read straight from a ragged activity store.

:class:`RaggedActivity` reads one worm at a time from the Zarr arrays of
``celegans-activity`` (no xarray/dask in the hot path). :class:`WindowDataset`
is a torch ``IterableDataset`` that visits worms in a seeded order, loads one
worm, cuts batches of (context, target, mask) windows out of it, and moves
on, so each worker holds at most one worm. With ``num_workers > 0`` the worms
are dealt round-robin to workers; the windows of a worm depend only on the
seed, the epoch and the worm, so the set of windows does not depend on the
number of workers.

Importing this module does not import torch: :class:`WindowDataset` (a torch
class) is built on first access, so the forecast task can read and score
windows without it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import zarr


class RaggedActivity:
    """Per-worm reads from a ``celegans-activity`` store at ``path``: a local folder, an fsspec URL or a
    :class:`~neuroharness.loaders.location.StoreLocation` (``path`` keeps it as a str)."""

    def __init__(self, path):
        from neuroharness.loaders.location import StoreLocation

        self.location = StoreLocation(path)
        self.path = str(self.location)
        self._open()

    def _open(self):
        g = zarr.open_group(self.location.zarr_store(), mode="r", zarr_format=2)
        self._calcium = g["calcium"]
        self._chunks = _ChunkReader.for_array(self.location / "calcium")
        self.start = g["worm_start"][:]
        self.length = g["row_size"][:]
        self.labeled = g["labeled"][:]
        self.source = np.asarray(g["source_dataset"][:]).astype(str)
        self.worm_ids = np.asarray(g["worm"][:]).astype(str)
        self.n_neurons = self._calcium.shape[1]

    def __getstate__(self):  # reopen in each DataLoader worker instead of pickling zarr handles
        return {"location": self.location}

    def __setstate__(self, state):
        self.location = state["location"]
        self.path = str(self.location)
        self._open()

    def __len__(self) -> int:
        return len(self.start)

    def worm(self, w: int, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Samples ``lo:hi`` of worm ``w`` as (T, neuron) float32 with NaN where unlabeled."""
        T = int(self.length[w])
        hi = T if hi is None else min(hi, T)
        s = int(self.start[w])
        if self._chunks is not None:
            return self._chunks.rows(s + lo, s + hi)
        return np.asarray(self._calcium[s + lo : s + hi])


class _ChunkReader:
    """Row ranges of a 2-D Zarr v2 array chunked along rows only, read chunk file by chunk file.

    zarr-python's async machinery costs about 2 ms per read, more than
    decompressing the one to three chunks a worm spans; this plain reader
    makes a worm read about 1 ms. It is used only for the layout the
    activity loader writes (C order, '.' separator, one chunk across
    columns, Blosc, no filters); anything else goes through zarr. Chunk
    files are read through the array's location (a local folder or a URL).
    """

    def __init__(self, location, meta: dict):
        import numcodecs

        self.location, self.rows_per_chunk = location, meta["chunks"][0]
        self.shape, self.dtype = tuple(meta["shape"]), np.dtype(meta["dtype"])
        self.codec = numcodecs.get_codec(meta["compressor"])
        self.fill = np.nan if meta["fill_value"] in ("NaN", None) else meta["fill_value"]

    @classmethod
    def for_array(cls, location) -> "_ChunkReader | None":
        import json

        from neuroharness.errors import NeuroharnessError

        try:
            meta = json.loads(location.read_bytes(".zarray"))
        except (OSError, ValueError, NeuroharnessError):
            return None
        simple = (meta.get("order") == "C" and not meta.get("filters") and meta.get("dimension_separator", ".") == "."
                  and len(meta["shape"]) == 2 and meta["chunks"][1] == meta["shape"][1]
                  and (meta.get("compressor") or {}).get("id") == "blosc")
        return cls(location, meta) if simple else None

    def rows(self, lo: int, hi: int) -> np.ndarray:
        out = np.empty((hi - lo, self.shape[1]), dtype=self.dtype)
        step = self.rows_per_chunk
        for c in range(lo // step, (hi - 1) // step + 1):
            c0 = c * step
            try:
                raw = self.location.read_bytes(f"{c}.0")
                block = np.frombuffer(self.codec.decode(raw), dtype=self.dtype).reshape(-1, self.shape[1])
            except FileNotFoundError:  # a chunk never written holds the fill value
                block = np.full((min(step, self.shape[0] - c0), self.shape[1]), self.fill, dtype=self.dtype)
            a, b = max(lo, c0), min(hi, c0 + step)
            out[a - lo : b - lo] = block[a - c0 : b - c0]
        return out


@dataclass(frozen=True)
class Segment:
    """A stretch of one worm that windows may be cut from: samples [lo, hi)."""

    worm: int
    lo: int
    hi: int


def windows_of(trace: np.ndarray, starts: np.ndarray, context: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut (B, context, N) contexts and (B, horizon, N) targets at ``starts`` (NaN -> 0).

    ``trace`` (T, N) is zero-filled in place. Windows are gathered from a
    strided view whose rows are whole windows, which copies each window as
    one contiguous block (about twice as fast as fancy-indexing time steps).
    """
    x = np.nan_to_num(trace, copy=False)
    span = context + horizon
    view = np.lib.stride_tricks.sliding_window_view(x, (span, x.shape[1]))[:, 0]  # (T - span + 1, span, N)
    win = view[starts]
    return win[:, :context], win[:, context:]


def _window_dataset_class() -> type:
    import torch.utils.data as tud

    class WindowDataset(tud.IterableDataset):
        """Seeded batches of training windows, as a torch ``IterableDataset``.

        Each item is ``(context, target, mask)``: float32 (B, context, N),
        float32 (B, horizon, N) and bool (B, N) (labeled neurons of the worm),
        all windows of a batch from one worm. With ``compact=True`` only the
        worm's labeled neurons are cut: ``(context (B, context, n), target
        (B, horizon, n), neuron_index (n,))``, ``n`` the worm's labeled count
        (8-190 against 302), which is what makes high window rates possible.
        ``windows_per_step`` sets how many windows a worm yields per sample of
        its usable length per epoch.
        """

        def __init__(self, store: RaggedActivity | str | Path, segments: Sequence[Segment], context: int, horizon: int,
                     batch_size: int = 64, windows_per_step: float = 0.05, seed: int = 0, compact: bool = False):
            super().__init__()
            self.store = store if isinstance(store, RaggedActivity) else RaggedActivity(store)
            span = context + horizon
            self.segments = [s for s in segments if s.hi - s.lo >= span]
            self.context, self.horizon, self.batch_size = context, horizon, batch_size
            self.windows_per_step, self.seed, self.epoch = windows_per_step, seed, 0
            self.compact = compact

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
                if self.compact:
                    trace = np.ascontiguousarray(trace[:, mask])
                    neurons = np.flatnonzero(mask)
                usable = seg.hi - seg.lo - self.context - self.horizon + 1
                starts = np.sort(rng.integers(0, usable, size=self.n_windows(seg)))
                for b in range(0, len(starts), self.batch_size):
                    ctx, tgt = windows_of(trace, starts[b : b + self.batch_size], self.context, self.horizon)
                    if self.compact:
                        yield ctx, tgt, neurons
                    else:
                        yield ctx, tgt, np.broadcast_to(mask, (len(ctx), mask.size)).copy()

    WindowDataset.__module__, WindowDataset.__qualname__ = __name__, "WindowDataset"  # pickled by name (spawn workers)
    return WindowDataset


def __getattr__(name: str):
    """``WindowDataset`` is defined (and torch imported) on first access."""
    if name == "WindowDataset":
        cls = _window_dataset_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
