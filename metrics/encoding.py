"""Encoding-model metrics of the Algonauts 2023 challenge (NSD fMRI), per vertex and pooled.

Reference: Gifford et al., "The Algonauts Project 2023 Challenge", arXiv:2301.03198, and the
devkit's ``code/02_baseline_encoding_model/03_test_encoding.py`` (github.com/gifale95/algonauts_2023).
This module is an independent, vectorized implementation of the definitions (no code copied);
``scripts/run_algonauts_official_metric.py`` runs the devkit script itself on hard cases and
``tests/test_encoding_metric.py`` checks this module against its stored outputs.

Per vertex (one column of a (stimulus, vertex) array), over the test stimuli:

1. Pearson r between predicted and measured responses (:func:`pearson_r`; ``scipy.stats.pearsonr``
   in the devkit). r is undefined (NaN) when either column is constant, exactly as scipy decides it
   (every value equal to the first).
2. Negative r -> 0, then squared: ``r2`` (:func:`noise_normalized`).
3. A noise ceiling (NC, a fraction 0..1) of exactly 0 is replaced by 1e-14, in the NC array's own
   precision (the devkit assigns 1e-14 into the array it loaded, so a float32 NC holds
   float32(1e-14) = 9.99999982e-15).
4. ``nc_score = r2 / NC * 100`` (float64), capped at 100: the "noise-normalized squared
   correlation", in percent.

Precision: everything is computed in float64. The SciPy of 2023, when the challenge ran, computed
``pearsonr`` in ``type(1.0 + x[0] + y[0])``, "at least 64 bit floating point" under NumPy 1.x, so
float32 inputs were computed in float64; SciPy 1.17 with NumPy 2 keeps two float32 inputs in
float32. This module follows the float64 definition whatever the input dtype; it equals the devkit
to float rounding (rtol 1e-12) wherever the devkit computes in float64.

Undefined r (a constant prediction or a constant response column): the per-vertex output keeps
NaN in ``r``, ``r2`` and ``nc_score`` (what the devkit returns). Every aggregate counts such a
vertex as r = 0 (so r2 = 0 and nc_score = 0), and reports how many there were
(``n_undefined_r``): a model cannot gain or lose anything by predicting a constant.

Pooling (:func:`summarize`, parameter ``pooling``), the one point the devkit leaves open (it stops
at per-vertex values; the leaderboard number is a median, but over what is not documented):

- ``"all-vertices"`` (default, :data:`DEFAULT_POOLING`): one statistic over every vertex of every
  subject and hemisphere scored, the literal reading of "the median noise-normalized squared
  correlation" of the challenge;
- ``"per-subject-hemisphere"``: the statistic within each (subject, hemisphere), then the
  unweighted mean of those.

The same pooling applies to every pooled statistic (medians and means, overall, per hemisphere,
per subject and per ROI), so a record states exactly one way of aggregating.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

#: What replaces a noise ceiling of exactly 0 (as in the devkit), in the NC array's own dtype.
NC_ZERO = 1e-14
#: Ways to pool per-vertex values into one number (see the module docstring).
POOLINGS = ("all-vertices", "per-subject-hemisphere")
DEFAULT_POOLING = "all-vertices"
#: Statistics of every scope, without and with a noise ceiling.
R_STATS = ("mean_pearson_r", "median_pearson_r", "mean_r2", "median_r2")
NC_STATS = ("median_nc_score", "mean_nc_score")
#: Statistics of an ROI scope.
ROI_STATS = ("median_nc_score", "median_pearson_r", "mean_pearson_r")

NO_NOISE_CEILING = ("the noise-normalized score (median_nc_score, mean_nc_score) is unavailable: there is no "
                    "noise ceiling for these responses (it exists only for the official challenge test images, "
                    "rebuilt from the NSD files); r and r2 are reported instead")


# -- per vertex ------------------------------------------------------------------------------------
def _as_2d(name: str, values) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (stimulus, vertex) array, got shape {a.shape}")
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected numbers, got dtype {a.dtype}")
    return a


def _first_bad(a: np.ndarray) -> str:
    bad = ~np.isfinite(a)
    i, j = (int(x[0]) for x in np.nonzero(bad))
    return f"{int(bad.sum())} value(s) are NaN or infinite, first at row {i}, column {j}"


def pearson_r(pred, target) -> np.ndarray:
    """Pearson r of every column of ``pred`` with the same column of ``target``, (n, V) -> (V,).

    float64 whatever the input dtype; clipped to [-1, 1]; NaN where either column is constant
    (all values equal: what ``scipy.stats.pearsonr`` calls undefined). Inputs must be finite, with
    n >= 2 rows. Columns are processed in blocks that fit in the CPU cache (a real subject, 395 x
    40k, takes a few tens of ms); a block whose values are huge or tiny (beyond 1e+-100) is first divided
    by each column's largest absolute value, so neither its mean nor its sums of squares overflow
    or underflow.
    """
    x = _as_2d("pred", pred)
    y = _as_2d("target", target)
    if x.shape != y.shape:
        raise ValueError(f"pred has shape {x.shape} but target has {y.shape}; expected equal (stimulus, vertex) shapes")
    n, v = x.shape
    if n < 2:
        raise ValueError(f"pred and target have {n} row(s); Pearson r needs at least 2 stimuli")
    r = np.empty(v, dtype=np.float64)
    step = max(1, _BLOCK_BYTES // (8 * n))
    for lo in range(0, v, step):
        cols = slice(lo, min(v, lo + step))
        r[cols] = _pearson_block(x[:, cols], y[:, cols], lo, (x, y))
    return r


#: Bytes of one float64 column block of :func:`pearson_r` (two such blocks stay in cache).
_BLOCK_BYTES = 1 << 20


def _pearson_block(xb: np.ndarray, yb: np.ndarray, lo: int, whole) -> np.ndarray:
    sums = []
    constant = np.zeros(xb.shape[1], dtype=bool)
    blocks = []
    for name, b, full in (("pred", xb, whole[0]), ("target", yb, whole[1])):
        a = b.astype(np.float64)  # a contiguous copy, centred in place
        high, low = a.max(axis=0), a.min(axis=0)
        if not (np.isfinite(high).all() and np.isfinite(low).all()):
            raise ValueError(f"{name}: {_first_bad(np.asarray(full))}")
        constant |= high == low
        scale = np.maximum(np.abs(high), np.abs(low))
        if ((scale > 1e100) | ((scale < 1e-100) & (scale > 0))).any():  # before the mean, which could overflow
            scale[scale == 0] = 1.0
            a /= scale
        a -= a.mean(axis=0)
        blocks.append(a)
    a, b = blocks
    sums = np.einsum("ij,ij->j", a, b), np.einsum("ij,ij->j", a, a), np.einsum("ij,ij->j", b, b)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        r = sums[0] / (np.sqrt(sums[1]) * np.sqrt(sums[2]))
    r = np.clip(r, -1.0, 1.0)
    r[constant | ~np.isfinite(r)] = np.nan
    return r


def _noise_ceiling(noise_ceiling, n_vertices: int) -> np.ndarray:
    nc = np.asarray(noise_ceiling)
    if nc.shape != (n_vertices,):
        raise ValueError(f"noise_ceiling has shape {nc.shape}; expected ({n_vertices},), one value per vertex")
    if nc.dtype.kind not in "biuf":
        raise ValueError(f"noise_ceiling: expected numbers, got dtype {nc.dtype}")
    if nc.dtype.kind != "f":
        nc = nc.astype(np.float64)
    if not np.isfinite(nc).all():
        bad = ~np.isfinite(nc)
        raise ValueError(f"noise_ceiling: {int(bad.sum())} value(s) are NaN or infinite, first at vertex "
                         f"{int(np.flatnonzero(bad)[0])}")
    out = (nc < 0) | (nc > 1)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise ValueError(f"noise_ceiling: {int(out.sum())} value(s) outside [0, 1], first at vertex {i} "
                         f"({float(nc[i])!r}); expected the devkit's NC, a fraction (not a percentage)")
    # the devkit assigns 1e-14 into the array it loaded: the replacement has the NC's own precision
    return np.where(nc == 0, nc.dtype.type(NC_ZERO), nc)


def noise_normalized(r, noise_ceiling) -> tuple[np.ndarray, np.ndarray]:
    """``(r2, nc_score)`` per vertex from Pearson ``r`` and the noise ceiling (fraction 0..1).

    r2 = max(r, 0)²; nc_score = min(100, r2 / NC * 100) with NC = 0 replaced by 1e-14 (in the
    NC's dtype), both float64; NaN where r is NaN (as in the devkit)."""
    r = np.asarray(r, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"r: expected a 1-D array (one value per vertex), got shape {r.shape}")
    nc = _noise_ceiling(noise_ceiling, len(r))
    r2 = np.where(r < 0, 0.0, r) ** 2
    with np.errstate(over="ignore"):  # a tiny NC gives inf, capped at 100 below (as in the devkit)
        score = np.divide(r2, nc) * 100  # float64 / (float32 or float64): float64, the devkit's order of operations
    score = np.where(score > 100, 100.0, score)
    return r2, score


@dataclass(frozen=True)
class VertexScores:
    """Per-vertex results of one (subject, hemisphere), float64 arrays of shape (V,).

    ``r``: Pearson r (NaN where undefined); ``r2``: max(r, 0)² (NaN where r is); ``nc_score``: the
    noise-normalized squared correlation in percent (NaN where r is), None without a noise ceiling."""

    r: np.ndarray
    r2: np.ndarray
    nc_score: np.ndarray | None = None

    @property
    def n_undefined(self) -> int:
        """Vertices whose r is undefined (a constant prediction or response column)."""
        return int(np.isnan(self.r).sum())


def vertex_scores(pred, target, noise_ceiling=None) -> VertexScores:
    """:class:`VertexScores` of ``pred`` against ``target`` (both (stimulus, vertex)); ``nc_score``
    only with a ``noise_ceiling`` (V,)."""
    r = pearson_r(pred, target)
    if noise_ceiling is None:
        return VertexScores(r, np.where(r < 0, 0.0, r) ** 2, None)
    r2, score = noise_normalized(r, noise_ceiling)
    return VertexScores(r, r2, score)


# -- pooled ---------------------------------------------------------------------------------------
@dataclass
class EncodingSummary:
    """Pooled metrics (finite numbers, flat ``scope/statistic`` keys) and notes (text) about them."""

    metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _zeroed(a: np.ndarray) -> np.ndarray:
    """NaN (undefined r) counted as 0."""
    return np.where(np.isnan(a), 0.0, a)


def _pool(parts: list[np.ndarray], stat: str, pooling: str) -> float:
    parts = [p for p in parts if p.size]
    if pooling == "all-vertices":
        values = np.concatenate(parts)
        return float(np.median(values) if stat == "median" else values.mean())
    return float(np.mean([np.median(p) if stat == "median" else p.mean() for p in parts]))


def _scope(values: dict[str, list[np.ndarray]], stats, pooling: str) -> dict[str, float]:
    out = {}
    for name in stats:
        stat, _, what = name.partition("_")
        key = {"pearson_r": "r", "r2": "r2", "nc_score": "nc"}[what]
        if key in values:
            out[name] = _pool(values[key], stat, pooling)
    return out


def summarize(groups: Mapping[tuple[str, str], VertexScores], pooling: str = DEFAULT_POOLING,
              rois: Mapping[tuple[str, str], Mapping[str, tuple[np.ndarray, Mapping[int, str]]]] | None = None,
              ) -> EncodingSummary:
    """Pooled metrics of per-vertex scores ``groups`` ``{(subject, hemisphere): VertexScores}``.

    Keys, each the ``pooling`` of the per-vertex values (NaN r counted as 0):
    ``mean_pearson_r, median_pearson_r, mean_r2, median_r2`` and, when every group has a noise
    ceiling, ``median_nc_score, mean_nc_score``; plus ``n_vertices`` and ``n_undefined_r``. Scopes:
    overall (no prefix), ``<hemisphere>/``, ``<subject>/``, ``<subject>/<hemisphere>/`` and, with
    ``rois`` ``{(subject, hemisphere): {roi class: (labels (V,), {label: roi name})}}``,
    ``roi/<class>/<name>/`` with ``median_nc_score`` (with a noise ceiling), ``median_pearson_r``,
    ``mean_pearson_r`` and ``n_vertices`` (label 0 and labels not in the mapping belong to no ROI).
    ``notes`` says when the noise-normalized score is unavailable and how many vertices had an
    undefined r.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling {pooling!r}: expected one of {', '.join(POOLINGS)}")
    if not groups:
        raise ValueError("groups: no (subject, hemisphere) scores to pool")
    keys = list(groups)
    zero = {}
    for k in keys:
        g = groups[k]
        v = {"r": _zeroed(g.r), "r2": _zeroed(g.r2)}
        if g.nc_score is not None:
            v["nc"] = _zeroed(g.nc_score)
        if any(a.shape != v["r"].shape or a.ndim != 1 for a in v.values()):
            raise ValueError(f"group {k}: r, r2 and nc_score must be 1-D arrays of one length")
        if not len(v["r"]):
            raise ValueError(f"group {k}: no vertices")
        zero[k] = v
    has_nc = all("nc" in zero[k] for k in keys)
    stats = R_STATS + (NC_STATS if has_nc else ())

    def scope(members: list, mask=None) -> dict[str, list[np.ndarray]]:
        names = ("r", "r2") + (("nc",) if has_nc else ())
        return {n: [zero[k][n] if mask is None else zero[k][n][mask[k]] for k in members if mask is None or k in mask]
                for n in names}

    summary = EncodingSummary()
    m = summary.metrics

    def add(prefix: str, members: list) -> None:
        m.update({prefix + k: v for k, v in _scope(scope(members), stats, pooling).items()})
        m[prefix + "n_vertices"] = int(sum(len(zero[k]["r"]) for k in members))
        m[prefix + "n_undefined_r"] = int(sum(groups[k].n_undefined for k in members))

    add("", keys)
    subjects = list(dict.fromkeys(s for s, _ in keys))
    hemispheres = list(dict.fromkeys(h for _, h in keys))
    for h in hemispheres:
        add(f"{h}/", [k for k in keys if k[1] == h])
    for s in subjects:
        add(f"{s}/", [k for k in keys if k[0] == s])
        for h in hemispheres:
            if (s, h) in groups:
                add(f"{s}/{h}/", [(s, h)])
    for (cls, name), masks in _roi_masks(rois or {}, groups).items():
        values = scope(list(masks), masks)
        m.update({f"roi/{cls}/{name}/{k}": v for k, v in _scope(values, ROI_STATS, pooling).items()})
        m[f"roi/{cls}/{name}/n_vertices"] = int(sum(int(mask.sum()) for mask in masks.values()))
    if not has_nc:
        summary.notes.append(NO_NOISE_CEILING)
    undefined = m["n_undefined_r"]
    if undefined:
        summary.notes.append(f"{undefined} of {m['n_vertices']} vertices have an undefined Pearson r (a constant "
                             "prediction or a constant response over the scored stimuli): NaN in the per-vertex "
                             "output, counted as r = 0 (r2 = 0, nc_score = 0) in every pooled value")
    return summary


def _roi_masks(rois, groups) -> dict[tuple[str, str], dict]:
    """``{(class, roi name): {(subject, hemisphere): bool mask}}`` for ROIs with at least one vertex,
    in the order classes and labels are first met."""
    out: dict[tuple[str, str], dict] = {}
    for key, classes in rois.items():
        if key not in groups:
            raise ValueError(f"rois: group {key} has no scores")
        n = len(groups[key].r)
        for cls, (labels, names) in classes.items():
            labels = np.asarray(labels)
            if labels.shape != (n,):
                raise ValueError(f"rois {key} {cls}: labels have shape {labels.shape}; expected ({n},)")
            for value, name in names.items():
                if int(value) == 0:
                    continue
                mask = labels == int(value)
                if mask.any():
                    out.setdefault((cls, str(name)), {})[key] = mask
    return out
