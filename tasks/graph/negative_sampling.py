"""Negative node pairs for link prediction: spatial (VesselGraph) and uniform random.

Spatial strategy (VesselGraph ``vessap_utils.negative_sampling``): with
``delta`` = mean + 2 std of the edge ``distance`` column, each sample picks a
node that has an edge uniformly at random, then a target uniformly among the
*other* nodes that have an edge and lie in the closed axis-aligned cube of
half-width ``delta`` around it (a source alone in its cube yields nothing).
Pairs are then put in ``u < v`` order, pairs that are edges (in either
direction) are dropped, repeats are dropped keeping the first, and the first
``n`` are returned. The reference scans every node per sample; here a
uniform grid of cell size ``delta`` (a hair more, so rounding never puts a
cube member outside) means the cube meets only the 3 x 3 x 3 cells around
the source's cell: a uniform draw among the nodes of those 27 cells,
rejected when it is outside the cube or the source itself and redrawn for
the same source, is exactly uniform over the cube's other nodes.

Determinism: samples are drawn in blocks of :data:`BLOCK` with block ``b``
using ``SeedSequence(seed, spawn_key=(b,))``, blocks are concatenated in
order, and rounds draw further blocks until ``n`` pairs survive. So the
result depends on ``seed`` only, never on ``n_workers`` (threads that take
blocks), and the result for ``n`` is a prefix of the result for any larger
``n``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np

from neuroharness.errors import NeuroharnessError

BLOCK = 1 << 16  #: raw samples per block (fixed: changing it changes every result)
MAX_TRIES = 32  #: rejection draws per source before its cube is enumerated exactly
MAX_ROUNDS = 64  #: rounds of blocks before giving up


def spatial_delta(distance) -> float:
    """Cube half-width of the spatial strategy: mean + 2 * sample std (ddof 1, as pandas) of edge distances."""
    d = np.asarray(distance, dtype=np.float64)
    if d.ndim != 1 or len(d) < 2:
        raise ValueError(f"distance: expected a 1-D array of >= 2 edge distances, got shape {d.shape}")
    if not np.isfinite(d).all():
        raise ValueError(f"distance: {int((~np.isfinite(d)).sum())} value(s) are NaN or infinite")
    return float(d.mean() + 2.0 * d.std(ddof=1))


def _edges(edge_index, num_nodes: int) -> np.ndarray:
    """``edge_index`` (E, 2) as int64, ids checked against ``num_nodes``, self-loops dropped (they exclude no pair)."""
    e = np.asarray(edge_index)
    if e.ndim != 2 or e.shape[1] != 2:
        raise ValueError(f"edge_index: expected shape (E, 2) (one row per edge, as the store's edge_index), got {e.shape}")
    if e.dtype.kind not in "iu":
        raise ValueError(f"edge_index: expected integer node ids, got dtype {e.dtype}")
    e = e.astype(np.int64, copy=False)
    if len(e) and (e.min() < 0 or e.max() >= num_nodes):
        raise ValueError(f"edge_index: node ids must lie in [0, {num_nodes}), found [{e.min()}, {e.max()}]")
    return e[e[:, 0] != e[:, 1]]


def _unique_sorted(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, first index) of the runs of the sorted array ``a`` (np.unique without its sort)."""
    first = np.flatnonzero(np.concatenate([[True], a[1:] != a[:-1]])) if len(a) else np.empty(0, dtype=np.int64)
    return a[first], first


def _member(sorted_keys: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Whether each ``key`` is in the sorted unique array ``sorted_keys`` (fastest with sorted ``key``)."""
    if not len(sorted_keys):
        return np.zeros(len(key), dtype=bool)
    at = np.searchsorted(sorted_keys, key).clip(max=len(sorted_keys) - 1)
    return sorted_keys[at] == key


def _keys(u: np.ndarray, v: np.ndarray, num_nodes: int) -> np.ndarray:
    """Unordered pair keys min * N + max (int64; exact for N < 3e9)."""
    return np.minimum(u, v) * np.int64(num_nodes) + np.maximum(u, v)


@dataclass
class _Grid:
    """Nodes bucketed into cubic cells of side ``h`` (> delta), with each occupied cell's 27 neighbours.

    Nodes are addressed by their *slot*, their position in cell order, so a
    cell's nodes and their coordinates are contiguous in memory.
    """

    nodes: np.ndarray  # (M,) int64 node id of each slot (sorted by cell; ties by id)
    spos: np.ndarray  # (M, 3) float64 coordinates of each slot
    cell: np.ndarray  # (M,) int32 occupied-cell index of each slot
    start: np.ndarray  # (C, 27) int32 first slot of each neighbour cell (0 if empty)
    cum: np.ndarray  # (C, 28) int32 cumulative node counts over the 27 neighbour cells

    @classmethod
    def build(cls, pos: np.ndarray, members: np.ndarray, delta: float) -> _Grid:
        h = delta * (1 + 1e-6)  # a member at exactly +-delta can never round into a 4th cell
        p = pos[members]
        lo = p.min(0)
        ijk = np.floor((p - lo) / h).astype(np.int64) + 1  # +1: neighbours of a border cell stay >= 0
        dims = ijk.max(0) + 2
        if float(dims[0]) * float(dims[1]) * float(dims[2]) >= 2.0**62:
            raise ValueError(f"delta = {delta} is too small for the extent of the positions: the grid would "
                             "need more than 2**62 cells")
        stride = np.array([dims[1] * dims[2], dims[2], 1], dtype=np.int64)
        key = ijk[:, 0] * stride[0] + ijk[:, 1] * stride[1] + ijk[:, 2]  # (integer matmul has no fast path)
        del ijk
        order = np.argsort(key, kind="stable")
        key = key[order]
        ukey, first = _unique_sorted(key)
        count = np.diff(np.append(first, len(key))).astype(np.int32)
        first = first.astype(np.int32)
        del key
        start = np.zeros((len(ukey), 27), dtype=np.int32)
        cum = np.zeros((len(ukey), 28), dtype=np.int32)
        offsets = np.stack(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1], indexing="ij"), -1).reshape(27, 3) @ stride
        for k, off in enumerate(offsets):  # one sorted query per offset: cache friendly, small temporaries
            nkey = ukey + off
            at = np.searchsorted(ukey, nkey).clip(max=len(ukey) - 1)
            found = ukey[at] == nkey
            start[:, k] = np.where(found, first[at], 0)
            cum[:, k + 1] = np.where(found, count[at], 0)
        np.cumsum(cum, axis=1, out=cum)
        cell = np.repeat(np.arange(len(ukey), dtype=np.int32), count)
        return cls(members[order], np.ascontiguousarray(p[order]), cell, start, cum)


@numba.njit(nogil=True, cache=True)
def _inside(spos, a, b, delta):
    """Slot ``b`` in the closed cube around slot ``a``, tested as the reference does (c - d <= x <= c + d)."""
    for ax in range(3):
        c = spos[a, ax]
        x = spos[b, ax]
        if x < c - delta or x > c + delta:
            return False
    return True


@numba.njit(nogil=True, cache=True)
def _spatial_kernel(rng, spos, cell, start, cum, delta, max_tries, src, tgt):
    """Fill ``src``/``tgt`` (slots) with spatial samples in draw order; ``tgt`` = -1 for a source alone in its cube.

    Sources are drawn first, then served in slot order (neighbouring cells
    are neighbours in memory); the order only changes which random numbers a
    source gets, not their distribution.
    """
    n = len(src)
    for i in range(n):
        src[i] = rng.integers(0, len(cell))
    for i in np.argsort(src, kind="mergesort"):
        s = src[i]
        c = cell[s]
        t = -1
        for _ in range(max_tries):
            r = rng.integers(0, cum[c, 27])  # uniform over the nodes of the 27 cells
            j = 0
            while r >= cum[c, j + 1]:
                j += 1
            q = start[c, j] + r - cum[c, j]
            if q != s and _inside(spos, s, q, delta):
                t = q
                break
        if t < 0:  # rare (sparse cube): draw among the enumerated members, the same distribution
            m = 0
            for j in range(27):
                for q in range(start[c, j], start[c, j] + cum[c, j + 1] - cum[c, j]):
                    if q != s and _inside(spos, s, q, delta):
                        m += 1
            if m > 0:
                k = rng.integers(0, m)
                for j in range(27):
                    for q in range(start[c, j], start[c, j] + cum[c, j + 1] - cum[c, j]):
                        if q != s and _inside(spos, s, q, delta):
                            if k == 0:
                                t = q
                            k -= 1
        tgt[i] = t


@numba.njit(nogil=True, cache=True)
def _count_cube_pairs(spos, cell, start, cum, delta):
    """Distinct slot pairs {u, v} with v in u's cube or u in v's cube."""
    total = 0
    for u in range(len(cell)):
        c = cell[u]
        for j in range(27):
            for v in range(start[c, j], start[c, j] + cum[c, j + 1] - cum[c, j]):
                if v > u and (_inside(spos, u, v, delta) or _inside(spos, v, u, delta)):
                    total += 1
    return total


def _in_cube(pos: np.ndarray, a: np.ndarray, b: np.ndarray, delta: float) -> np.ndarray:
    """Vectorized :func:`_inside`: (len(a),) bool."""
    pa, pb = pos[a], pos[b]
    return ((pb >= pa - delta) & (pb <= pa + delta)).all(1)


def _spatial_block(b: int, seed, grid: _Grid, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Raw spatial samples of block ``b``: (sources, targets) node ids in draw order, lone sources dropped."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(b,)))
    src = np.empty(BLOCK, dtype=np.int64)
    tgt = np.empty(BLOCK, dtype=np.int64)
    _spatial_kernel(rng, grid.spos, grid.cell, grid.start, grid.cum, delta, MAX_TRIES, src, tgt)
    keep = tgt >= 0
    return grid.nodes[src[keep]], grid.nodes[tgt[keep]]


def _random_block(b: int, seed, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(b,)))
    u = rng.integers(num_nodes, size=BLOCK)
    v = rng.integers(num_nodes, size=BLOCK)
    keep = u != v
    return u[keep], v[keep]


def _collect(draw: Callable[[int], tuple[np.ndarray, np.ndarray]], n: int, num_nodes: int, edge_keys: np.ndarray,
             n_workers: int, pool_size: Callable[[], int], what: str, expected_yield: float) -> np.ndarray:
    """First ``n`` distinct non-edge pairs of the block sequence ``draw(0), draw(1), ...`` as (n, 2), u < v."""
    if n_workers < 1:
        raise ValueError(f"n_workers: expected >= 1, got {n_workers}")
    kept: list[np.ndarray] = []
    seen = np.empty(0, dtype=np.int64)  # sorted keys kept so far
    have, next_block, rate, pool = 0, 0, expected_yield, None
    with ThreadPoolExecutor(n_workers) as ex:
        for rnd in range(MAX_ROUNDS):
            want = n - have
            n_blocks = max(1, math.ceil(1.1 * want / max(rate, 1e-3) / BLOCK))
            ids = range(next_block, next_block + n_blocks)
            next_block += n_blocks
            blocks = list(ex.map(draw, ids)) if n_workers > 1 and n_blocks > 1 else [draw(b) for b in ids]
            key = np.concatenate([_keys(u, v, num_nodes) for u, v in blocks])
            n_raw = len(key)
            del blocks
            # sorted once: first occurrences are run starts, and membership tests on sorted keys are fast
            order = np.argsort(key, kind="stable")
            ukey, first = _unique_sorted(key[order])
            fresh = ~_member(edge_keys, ukey) & ~_member(seen, ukey)
            at = np.sort(order[first[fresh]])[:want]  # draw positions of the kept first occurrences
            key = key[at]
            del order, ukey, first, fresh, at
            kept.append(key)
            have += len(key)
            if have >= n:
                break
            seen = np.sort(np.concatenate([seen, key]))
            rate = max(len(key) / max(n_raw, 1), 1e-3)
            if rnd >= 2 and pool is None:
                pool = pool_size()
                if pool < n:
                    raise NeuroharnessError(f"{what}: only {pool} distinct non-edge pairs exist, {n} negatives requested")
        else:
            raise NeuroharnessError(f"{what}: found {have} of {n} negatives after {MAX_ROUNDS} rounds "
                                    f"({next_block} blocks of {BLOCK} samples); too few candidate pairs")
    key = np.concatenate(kept)
    return np.stack([key // num_nodes, key % num_nodes], axis=1)


def _check_n(n) -> int:
    if int(n) != n or n < 0:
        raise ValueError(f"n: expected a non-negative integer, got {n!r}")
    return int(n)


def spatial_negatives(pos, edge_index, n: int, *, delta: float | None = None, seed: int | Sequence[int],
                      n_workers: int = 1) -> np.ndarray:
    """``n`` spatial negative pairs (n, 2) int64, each row ``u < v``, in draw order.

    ``pos`` (N, 3) node coordinates (any unit, the same as ``delta``);
    ``edge_index`` (E, 2) node ids in [0, N), the graph's edges (pairs that
    are edges in either direction are never returned); ``delta`` the cube
    half-width, by default :func:`spatial_delta` of the Euclidean edge lengths
    (pass the store's ``distance`` column through :func:`spatial_delta`, as
    the reference does); ``seed`` an int or a sequence of ints (entropy of a
    ``numpy.random.SeedSequence``). Only nodes with at least one edge take
    part. Raises :class:`NeuroharnessError` when fewer than ``n`` distinct
    candidate pairs exist.
    """
    n = _check_n(n)
    p = np.asarray(pos, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"pos: expected shape (N, 3), got {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError(f"pos: {int((~np.isfinite(p)).any(1).sum())} node(s) have NaN or infinite coordinates")
    e = _edges(edge_index, len(p))
    if delta is None:
        delta = spatial_delta(np.linalg.norm(p[e[:, 0]] - p[e[:, 1]], axis=1))
    delta = float(delta)
    if not (math.isfinite(delta) and delta > 0):
        raise ValueError(f"delta: expected a finite positive cube half-width, got {delta}")
    if n == 0:
        return np.empty((0, 2), dtype=np.int64)
    has_edge = np.zeros(len(p), dtype=bool)
    has_edge[e.ravel()] = True
    eligible = np.flatnonzero(has_edge)
    if len(eligible) < 2:
        raise NeuroharnessError(f"spatial negatives: {len(eligible)} node(s) have an edge; need at least 2")
    grid = _Grid.build(p, eligible, delta)
    edge_keys = _unique_sorted(np.sort(_keys(e[:, 0], e[:, 1], len(p))))[0]

    def pool() -> int:
        return _spatial_pool(p, grid, delta, np.stack([edge_keys // len(p), edge_keys % len(p)], 1))

    return _collect(lambda b: _spatial_block(b, seed, grid, delta), n, len(p), edge_keys, n_workers,
                    pool, f"spatial negatives (delta = {delta:.6g})", expected_yield=0.8)


def _spatial_pool(pos, grid: _Grid, delta: float, edges: np.ndarray) -> int:
    """Number of distinct non-edge pairs {u, v} with v in the cube of u or u in the cube of v (exact)."""
    pairs = _count_cube_pairs(grid.spos, grid.cell, grid.start, grid.cum, delta)
    a, b = edges[:, 0], edges[:, 1]
    return int(pairs - np.count_nonzero(_in_cube(pos, a, b, delta) | _in_cube(pos, b, a, delta)))


def random_negatives(num_nodes: int, edge_index, n: int, *, seed: int | Sequence[int], n_workers: int = 1) -> np.ndarray:
    """``n`` uniformly random non-edge pairs (n, 2) int64 over nodes [0, num_nodes), each row ``u < v``.

    Each sample draws two node ids uniformly (self-pairs dropped); then as
    :func:`spatial_negatives`: edges (either direction) and repeats dropped,
    the first ``n`` kept. Raises :class:`NeuroharnessError` when the graph has
    fewer than ``n`` non-edge pairs.
    """
    n = _check_n(n)
    num_nodes = int(num_nodes)
    e = _edges(edge_index, num_nodes)
    edge_keys = _unique_sorted(np.sort(_keys(e[:, 0], e[:, 1], num_nodes)))[0]
    pool = num_nodes * (num_nodes - 1) // 2 - len(edge_keys)
    if pool < n:
        raise NeuroharnessError(f"random negatives: only {pool} distinct non-edge pairs exist among {num_nodes} nodes "
                                f"and {len(e)} edges, {n} negatives requested")
    if n == 0:
        return np.empty((0, 2), dtype=np.int64)
    return _collect(lambda b: _random_block(b, seed, num_nodes), n, num_nodes, edge_keys, n_workers,
                    lambda: pool, "random negatives", expected_yield=0.99)
