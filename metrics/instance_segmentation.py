"""Instance-segmentation metrics of the FISBe neuron benchmark (clDice-based).

Reference: Mais, Hirsch, Managan, Kandarpa, Rumberger, Reinke, Maier-Hein,
Ihrke, Kainmueller, "FISBe: A real-world benchmark dataset for instance
segmentation of long-range thin filamentous structures", CVPR 2024,
arXiv 2404.00130.  The official evaluator is ``evalinstseg``
(github.com/Kainmueller-Lab/evaluate-instance-segmentation); this module is an
independent re-implementation of the metric definitions (no code copied), with
the deviations listed below.

Definitions (G_i a ground-truth instance, P_j a predicted one, S(.) the Lee
3-D skeleton of ``skimage.morphology.skeletonize``, computed by the
voxel-for-voxel identical, faster ``neuroharness.metrics._skeleton``):

* clRecall    R_ij = |S(G_i) & P_j| / |S(G_i)|
* clPrecision P_ij = |S(P_j) & G_i| / |S(P_j)|; the background row holds the
  fraction of S(P_j) lying on voxels that belong to no GT instance.
* clDice_ij = 2 P_ij R_ij / (P_ij + R_ij)
* avF1: for each threshold th, greedy one-to-one matching of the pairs with
  clDice > th (strictly), sorted by clDice descending, ties by GT index then
  prediction index; TP = #matches, FP = N_pred - TP, FN = N_gt - TP.
  F1_th = 2 sum TP / (2 sum TP + sum FP + sum FN), counts pooled over volumes;
  avF1 = mean of F1_th over the thresholds.
* Coverage C: every prediction j is assigned to argmax over
  {background, G_1..G_N} of its clPrecision (ties go to the lower row, i.e.
  background first); C_i = |S(G_i) & union of P_j assigned to i| / |S(G_i)|;
  C = mean of C_i over all GT instances (pooled over volumes).
* S = 0.5 avF1 + 0.5 C.
* clDice_TP = mean clDice of the TP matches at th = 0.5 (0 without any TP, as the
  reference reports it); tp = sum TP_0.5 / sum N_gt.
* FS / FM: many-to-many matching on clRecall (thresholds t = 0.05 for FS
  and 0.1 for FM), FS = sum_i max(0, #matches of G_i - 1), FM = sum_j
  max(0, #matches of P_j - 1), as ``compute.get_m2m_metrics`` of the
  reference evaluator computes them.  Without any voxel shared by two GT
  instances or by two predicted instances, the matches are all pairs with
  R_ij > t.  Otherwise greedy with consumption: the pairs with R_ij > t
  enter a queue ordered by R descending (ties in (i, j) order); the popped
  pair (i, j) is matched, P_j's voxels leave G_i's available skeleton and
  G_i's voxels leave P_j's available mask; then every pair (i, o) with
  R_io > t is re-scored as |available S(G_i) & P_o| / |S(G_i)| and every
  pair (o, j) with R_oj > t as |S(G_o) & available P_j| / |S(G_o)|, each
  pushed back if still > t and dropped otherwise (a dropped pair can come
  back through a later re-score).  Row re-scores come before column
  re-scores, each in index order.
* Numbers as stored by the reference: clRecall and clPrecision are float32,
  clDice is computed in float32 as ((2 P) R) / (P + R), and every threshold
  and tie (avF1 matching, FS/FM queue) is decided on those float32 values
  (thresholds cast to float32): a ratio just above a threshold that rounds
  to it is not above it, and ratios that round alike tie, as there.
* Partly-labelled volumes: FP counts only unmatched predictions whose argmax
  clPrecision row is a GT instance (predictions lying mainly on unlabelled
  background are ignored).
* ``remove_small``: predicted instances with <= remove_small voxels are dropped
  before everything else (800 in the official ``--app flylight`` preset); GT
  is never filtered.

Deviations from the published evaluator:

* Coverage uses the true union of the assigned predictions, so C_i <= 1.  The
  published code takes the union only when both GT and prediction contain
  overlaps and otherwise sums R_ij over the assigned predictions, which can
  exceed 1 (two identical predicted copies of one GT give C = 2.0 there,
  1.0 here).
* A (N,Z,Y,X) stack is one instance per non-empty channel.  The reference
  reads a stack whose channels hold several ids as several instances, and
  applies ``remove_small`` to ids counted over all channels, so a stack of
  binary masks (every channel holds 1) is not filtered there; here every
  channel is filtered by its own size.
* Implementation, not a change of result: instances are held as sorted
  raveled voxel-index lists (one pass over each input, no full-volume
  temporaries); each skeleton is the Lee skeleton of the instance's bounding
  box padded by one voxel (the same as on the full volume); pairwise overlaps
  are sorted-list intersections.  Time and memory after the input pass scale
  with the foreground (a real-size 385x685x686 volume: ~0.3 s, ~0.1 GB).
* Shapes of GT and prediction must match exactly (the published evaluator
  centre-crops the larger one).
* Empty channels of a stack, and absent label ids, are not instances.  A GT
  instance with an empty skeleton has R = 0 with everything (C_i = 0); a
  prediction with an empty skeleton has clPrecision 0 everywhere and is
  assigned to background.

Input arrays are either a (Z, Y, X) integer label image (0 = background) or a
(N, Z, Y, X) per-instance stack (nonzero = member; instances may overlap);
integer or bool dtype.
"""
from __future__ import annotations

import heapq

import numpy as np

from ._skeleton import thin_indices as _thin_indices

__all__ = ["as_instances", "combine", "evaluate_instances", "summarize"]

DEFAULT_THRESHOLDS = np.arange(0.1, 0.91, 0.1).round(2)


# -- input normalisation -------------------------------------------------------
def _check_array(name: str, x) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim not in (3, 4):
        raise ValueError(
            f"{name}: expected a (Z,Y,X) label image or a (N,Z,Y,X) instance stack, "
            f"got {a.ndim}-D shape {a.shape}")
    if a.dtype.kind not in "biu":
        raise ValueError(f"{name}: expected an integer or bool dtype, got {a.dtype}")
    if a.ndim == 3 and a.dtype.kind == "i" and a.size and a.min() < 0:
        raise ValueError(f"{name}: label image has negative labels")
    return a


def _nonzero(vol: np.ndarray) -> np.ndarray:
    """Ascending raveled indices (int64) of the nonzero voxels of a 3-D integer/bool array.

    Neuron volumes are sparse: a per-block maximum over ~1 KiB blocks (one
    vectorised pass) finds the few blocks with foreground, and only those are
    searched.  No full-volume temporaries (a non-contiguous input is copied once).
    """
    flat = np.ascontiguousarray(vol).reshape(-1)
    flat = flat.view(f"u{flat.dtype.itemsize}")  # same nonzero-ness; max() == 0 means empty
    b = max(8, 1024 // flat.itemsize)
    nb = flat.size // b
    head = flat[: nb * b].reshape(nb, b)
    blocks = np.flatnonzero(head.max(axis=1)) if nb else np.zeros(0, np.intp)
    r, c = np.nonzero(head[blocks])
    tail = np.flatnonzero(flat[nb * b:]) + nb * b
    return np.concatenate([blocks[r].astype(np.int64) * b + c, tail.astype(np.int64)])


def _instance_voxels(a: np.ndarray) -> list[np.ndarray]:
    """Ascending raveled (Z,Y,X) voxel indices of every instance of a checked array.

    Label image: one instance per present nonzero label, ascending; stack: one
    per non-empty channel, in channel order.  Cost: one pass over the input.
    """
    if a.ndim == 4:
        out = [_nonzero(a[c]) for c in range(a.shape[0])]
        return [v for v in out if v.size]
    idx = _nonzero(a)
    if idx.size == 0:
        return []
    vals = a.reshape(-1)[idx]  # a view unless the input is not contiguous
    order = np.argsort(vals, kind="stable")  # stable: indices stay ascending per label
    vals = vals[order]
    idx = idx[order]
    cuts = np.flatnonzero(vals[1:] != vals[:-1]) + 1
    return np.split(idx, cuts)


def _box(idx: np.ndarray, shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lo, hi, local idx): bounding box of raveled indices and the indices raveled in it."""
    zyx = np.unravel_index(idx, shape)
    lo = np.array([c.min() for c in zyx], dtype=np.int64)
    hi = np.array([c.max() + 1 for c in zyx], dtype=np.int64)
    box = hi - lo
    local = ((zyx[0] - lo[0]) * box[1] + (zyx[1] - lo[1])) * box[2] + (zyx[2] - lo[2])
    return lo, hi, local


def as_instances(x, *, name: str = "x") -> list[tuple[tuple[slice, ...], np.ndarray]]:
    """Instances of ``x`` as ``[(bbox, mask), ...]``.

    ``x`` is a (Z,Y,X) integer label image (0 = background; one instance per
    present label, ascending) or a (N,Z,Y,X) stack (channel k nonzero = member of
    instance k; empty channels are skipped).  ``bbox`` is a tuple of three
    slices into the (Z,Y,X) volume and ``mask`` the boolean membership within it.
    """
    a = _check_array(name, x)
    out = []
    for idx in _instance_voxels(a):
        lo, hi, local = _box(idx, a.shape[-3:])
        mask = np.zeros(tuple(hi - lo), dtype=bool)
        mask.reshape(-1)[local] = True
        out.append((tuple(slice(int(l), int(h)) for l, h in zip(lo, hi)), mask))
    return out


# -- per-instance geometry -----------------------------------------------------
def _member(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Boolean mask: which entries of ascending ``a`` occur in ascending ``b``."""
    if a.size == 0 or b.size == 0:
        return np.zeros(a.size, dtype=bool)
    pos = np.searchsorted(b, a)
    pos[pos == b.size] = 0
    return b[pos] == a


class _Inst:
    """One instance as ascending raveled voxel indices ``vox`` into the (Z,Y,X)
    volume, its skeleton ``skel`` (same form), and its bounding box [lo, hi)."""

    __slots__ = ("hi", "lo", "n_skel", "n_vox", "skel", "vox")

    def __init__(self, vox, shape):
        self.vox = vox
        self.lo, self.hi, local = _box(vox, shape)
        box = tuple(int(n) for n in self.hi - self.lo)
        # n_borders=6: the Lee skeleton of the box padded by one voxel (a
        # single-slice box would otherwise get scikit-image's 2-D border cycle)
        sk = np.unravel_index(_thin_indices(local, box, n_borders=6), box)
        self.skel = np.ravel_multi_index(tuple(c + o for c, o in zip(sk, self.lo)), shape)
        self.n_skel = int(self.skel.size)
        self.n_vox = int(vox.size)


def _boxes_meet(a: _Inst, b: _Inst) -> bool:
    return bool(np.all(np.maximum(a.lo, b.lo) < np.minimum(a.hi, b.hi)))


def _localize(gts: list[_Inst], preds: list[_Inst]):
    """clRecall R (N_gt, N_pred), clPrecision P (N_gt+1, N_pred; row 0 background),
    and the dict of bbox-intersecting pairs -> which voxels of S(G_i) lie in P_j."""
    ng, npr = len(gts), len(preds)
    rec = np.zeros((ng, npr))
    prec = np.zeros((ng + 1, npr))
    pairs = {}
    fg = np.unique(np.concatenate([g.vox for g in gts])) if gts else np.zeros(0, np.int64)
    for j, p in enumerate(preds):
        if p.n_skel:
            prec[0, j] = int(np.count_nonzero(~_member(p.skel, fg))) / p.n_skel
    for i, g in enumerate(gts):
        for j, p in enumerate(preds):
            if not _boxes_meet(g, p):
                continue
            hit = _member(g.skel, p.vox)
            pairs[(i, j)] = hit
            if g.n_skel:
                rec[i, j] = int(np.count_nonzero(hit)) / g.n_skel
            if p.n_skel:
                prec[i + 1, j] = int(np.count_nonzero(_member(p.skel, g.vox))) / p.n_skel
    return rec, prec, pairs


def _cldice32(rec32: np.ndarray, prec32: np.ndarray) -> np.ndarray:
    """clDice = 2 P R / (P + R) in float32 arithmetic, in the reference's order ((2 P) R) / (P + R); 0 where P + R = 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(np.float32(2) * prec32 * rec32 / (prec32 + rec32))


def _overlapping(insts: list) -> bool:
    """Whether any voxel belongs to two or more of the instances."""
    n = sum(x.n_vox for x in insts)
    return bool(insts) and n != np.unique(np.concatenate([x.vox for x in insts])).size


def _greedy_one_to_one(score: np.ndarray, th: float) -> list[tuple[int, int]]:
    """Greedy one-to-one matching of the pairs with float32 ``score`` > ``th`` (compared in float32),
    by score descending, ties by GT then prediction index."""
    ii, jj = np.nonzero(score > np.float32(th))
    order = sorted(zip(ii.tolist(), jj.tolist()), key=lambda t: (-score[t], t[0], t[1]))
    used_g, used_p, out = set(), set(), []
    for i, j in order:
        if i in used_g or j in used_p:
            continue
        used_g.add(i)
        used_p.add(j)
        out.append((i, j))
    return out


class _LazyHeap:
    """Max-priority queue of (GT, prediction) pairs keyed by pair, with versioned entries.

    ``push`` re-inserts a pair with a new priority (the old entry goes stale);
    ``drop`` invalidates the pair's live entry; ties pop in insertion order.
    A dropped pair can be pushed again later (its version restarts), as in the
    reference evaluator's queue.
    """

    def __init__(self):
        self._heap: list = []
        self._version: dict = {}
        self._counter = 0

    def push(self, key, priority: float) -> None:
        v = self._version.get(key, 0) + 1
        self._version[key] = v
        self._counter += 1
        heapq.heappush(self._heap, (-priority, self._counter, v, key))

    def drop(self, key) -> None:
        if key in self._version:
            self._version[key] = -1

    def pop(self):
        """The live pair of highest priority, or None when there is none."""
        while self._heap:
            _, _, v, key = heapq.heappop(self._heap)
            if self._version.get(key) == v:
                del self._version[key]
                return key
        return None


def _many_to_many(gts, preds, rec32: np.ndarray, t: float, overlaps: bool) -> list[tuple[int, int]]:
    """Many-to-many matches on clRecall for FS/FM, as the reference evaluator computes them.

    Without overlapping instances: every pair with R_ij > t (float32, as stored).
    With overlaps, greedy with consumption: pairs with R_ij > t enter a queue by
    R descending (ties in (i, j) order); the popped pair (i, j) is matched, P_j's
    voxels leave G_i's available skeleton and G_i's voxels leave P_j's available
    mask; then every pair (i, o) with R_io > t is re-scored as
    |available S(G_i) & P_o| / |S(G_i)| and every pair (o, j) with R_oj > t as
    |S(G_o) & available P_j| / |S(G_o)|, pushed again if > t (float64), else
    dropped.  Row updates come before column updates, each in index order.
    """
    t32 = np.float32(t)
    if not overlaps:
        ii, jj = np.nonzero(rec32 > t32)
        return [(int(i), int(j)) for i, j in zip(ii, jj)]
    cand = rec32 > t32
    heap = _LazyHeap()
    for i, j in zip(*np.nonzero(cand)):
        heap.push((int(i), int(j)), float(rec32[i, j]))
    avail_skel: dict[int, np.ndarray] = {}  # i -> still-available skeleton voxels of G_i
    avail_pred: dict[int, np.ndarray] = {}  # j -> still-available voxels of P_j
    matched = []
    while (pair := heap.pop()) is not None:
        i, j = pair
        matched.append(pair)
        g, p = gts[i], preds[j]
        ask = avail_skel.get(i, g.skel)
        avail_skel[i] = ask[~_member(ask, p.vox)]
        apr = avail_pred.get(j, p.vox)
        avail_pred[j] = apr[~_member(apr, g.vox)]
        denom = float(g.n_skel) or 1.0
        for o in np.flatnonzero(cand[i]):
            r = int(np.count_nonzero(_member(avail_skel[i], preds[o].vox))) / denom
            heap.push((i, int(o)), r) if r > t else heap.drop((i, int(o)))
        for o in np.flatnonzero(cand[:, j]):
            go = gts[o]
            r = int(np.count_nonzero(_member(go.skel, avail_pred[j]))) / (float(go.n_skel) or 1.0)
            heap.push((int(o), j), r) if r > t else heap.drop((int(o), j))
    return matched


def _coverage(gts, preds, prec, pairs) -> list[float]:
    assign = np.argmax(prec, axis=0) if prec.shape[1] else np.zeros(0, int)
    cov = []
    for i, g in enumerate(gts):
        if g.n_skel == 0:
            cov.append(0.0)
            continue
        hit = np.zeros(g.n_skel, dtype=bool)
        for j in np.flatnonzero(assign == i + 1):
            h = pairs.get((i, int(j)))
            if h is not None:
                hit |= h
        cov.append(int(np.count_nonzero(hit)) / g.n_skel)
    return cov


# -- public API ----------------------------------------------------------------
def evaluate_instances(gt, pred, *, partly: bool = False, remove_small: int | None = 800,
                       thresholds=DEFAULT_THRESHOLDS, fs_threshold: float = 0.05,
                       fm_threshold: float = 0.1) -> dict:
    """FISBe counts for one volume, to be pooled with :func:`summarize`.

    ``gt`` and ``pred``: (Z,Y,X) label images or (N,Z,Y,X) stacks (see module
    doc), same spatial shape.  Returns a dict with

    * ``thresholds`` (list), ``tp``, ``fp``, ``fn`` (lists of ints, one per threshold)
    * ``n_gt``, ``n_pred`` (after ``remove_small``), ``n_removed``
    * ``coverage``: C_i per GT instance (list of floats, each in [0, 1])
    * ``tp_05``: TP at th = 0.5; ``cldice_tp``: clDice of those matches (list)
    * ``fs``, ``fm``: false splits / false merges (ints)
    * ``partly``: the mode used.
    """
    g = _check_array("gt", gt)
    p = _check_array("pred", pred)
    if g.shape[-3:] != p.shape[-3:]:
        raise ValueError(f"gt and pred differ in (Z,Y,X) shape: {g.shape[-3:]} vs {p.shape[-3:]}")
    ths = np.asarray(thresholds, dtype=float)
    if ths.ndim != 1 or ths.size == 0 or not np.all((ths >= 0) & (ths < 1)):
        raise ValueError(f"thresholds: expected a non-empty 1-D array in [0, 1), got {thresholds!r}")
    for nm, v in (("fs_threshold", fs_threshold), ("fm_threshold", fm_threshold)):
        if not 0 <= v < 1:
            raise ValueError(f"{nm}: expected a value in [0, 1), got {v}")
    if remove_small is not None and remove_small < 0:
        raise ValueError(f"remove_small: expected None or >= 0, got {remove_small}")
    shape = g.shape[-3:]
    gt_vox = _instance_voxels(g)
    if not gt_vox:
        raise ValueError("gt: contains no instance")
    pr_vox = _instance_voxels(p)
    n_before = len(pr_vox)
    if remove_small is not None:
        pr_vox = [v for v in pr_vox if v.size > remove_small]
    gts = [_Inst(v, shape) for v in gt_vox]
    preds = [_Inst(v, shape) for v in pr_vox]
    del gt_vox, pr_vox

    rec, prec, pairs = _localize(gts, preds)
    # the reference evaluator stores clRecall/clPrecision as float32 and computes clDice in
    # float32; thresholds and ties are decided on those values, so they are decided here too
    rec32, prec32 = rec.astype(np.float32), prec.astype(np.float32)
    dice = _cldice32(rec32, prec32[1:])
    ng, npr = len(gts), len(preds)
    on_gt = (np.argmax(prec32, axis=0) > 0) if npr else np.zeros(0, bool)
    overlaps = _overlapping(gts) or _overlapping(preds)

    tp, fp, fn = [], [], []
    for th in ths:
        m = _greedy_one_to_one(dice, float(th))
        matched_p = {j for _, j in m}
        tp.append(len(m))
        fn.append(ng - len(m))
        if partly:
            fp.append(int(sum(1 for j in range(npr) if j not in matched_p and on_gt[j])))
        else:
            fp.append(npr - len(m))
    m05 = _greedy_one_to_one(dice, 0.5)

    m_fs = _many_to_many(gts, preds, rec32, fs_threshold, overlaps)
    m_fm = _many_to_many(gts, preds, rec32, fm_threshold, overlaps)
    per_g = np.bincount([i for i, _ in m_fs], minlength=ng)
    per_p = np.bincount([j for _, j in m_fm], minlength=npr)
    return {
        "thresholds": [float(t) for t in ths],
        "tp": tp, "fp": fp, "fn": fn,
        "n_gt": ng, "n_pred": npr, "n_removed": n_before - npr,
        "coverage": [float(c) for c in _coverage(gts, preds, prec, pairs)],
        "tp_05": len(m05),
        "cldice_tp": [float(dice[i, j]) for i, j in m05],
        "fs": int(np.maximum(per_g - 1, 0).sum()),
        "fm": int(np.maximum(per_p - 1, 0).sum()),
        "partly": bool(partly),
    }


def summarize(per_volume: list[dict]) -> dict:
    """Pool :func:`evaluate_instances` results over a dataset.

    Returns ``avF1``, ``C``, ``S``, ``clDice_TP`` (0 when there is no TP at
    0.5, as the reference reports it), ``tp``, ``FS``, ``FM``, ``F1`` (per threshold, list), ``thresholds``,
    and the raw sums ``n_gt``, ``n_pred``, ``tp_count`` (sum TP_0.5),
    ``cldice_sum``, ``n_volumes`` needed by :func:`combine`.
    """
    vols = list(per_volume)
    if not vols:
        raise ValueError("per_volume: empty")
    ths = vols[0]["thresholds"]
    for v in vols[1:]:
        if list(v["thresholds"]) != list(ths):
            raise ValueError("per_volume: results use different thresholds")
    tp = np.sum([v["tp"] for v in vols], axis=0).astype(float)
    fp = np.sum([v["fp"] for v in vols], axis=0).astype(float)
    fn = np.sum([v["fn"] for v in vols], axis=0).astype(float)
    den = 2 * tp + fp + fn
    f1 = np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), 0.0)
    cov = [c for v in vols for c in v["coverage"]]
    n_gt = int(sum(v["n_gt"] for v in vols))
    if n_gt == 0 or not cov:
        raise ValueError("per_volume: no GT instances")
    tp_count = int(sum(v["tp_05"] for v in vols))
    cldice_sum = float(sum(sum(v["cldice_tp"]) for v in vols))
    av_f1 = float(f1.mean())
    c = float(np.mean(cov))
    return {
        "avF1": av_f1, "C": c, "S": 0.5 * av_f1 + 0.5 * c,
        "clDice_TP": cldice_sum / tp_count if tp_count else 0.0,
        "tp": tp_count / n_gt,
        "FS": int(sum(v["fs"] for v in vols)), "FM": int(sum(v["fm"] for v in vols)),
        "F1": [float(x) for x in f1], "thresholds": list(ths),
        "n_gt": n_gt, "n_pred": int(sum(v["n_pred"] for v in vols)),
        "tp_count": tp_count, "cldice_sum": cldice_sum, "n_volumes": len(vols),
    }


def combine(completely: dict, partly: dict) -> dict:
    """FISBe combined score of two :func:`summarize` outputs.

    S, avF1 and C: unweighted mean of the two sets; FS and FM: summed; tp and
    clDice_TP: pooled from the raw sums (``tp_count``/``n_gt`` and
    ``cldice_sum``/``tp_count``).
    """
    for nm, d in (("completely", completely), ("partly", partly)):
        missing = {"S", "avF1", "C", "FS", "FM", "n_gt", "tp_count", "cldice_sum"} - set(d)
        if missing:
            raise ValueError(f"{nm}: missing keys {sorted(missing)}")
    a, b = completely, partly
    n_gt = a["n_gt"] + b["n_gt"]
    tpc = a["tp_count"] + b["tp_count"]
    cls = a["cldice_sum"] + b["cldice_sum"]
    return {
        "S": (a["S"] + b["S"]) / 2, "avF1": (a["avF1"] + b["avF1"]) / 2,
        "C": (a["C"] + b["C"]) / 2,
        "FS": a["FS"] + b["FS"], "FM": a["FM"] + b["FM"],
        "tp": tpc / n_gt if n_gt else float("nan"),
        "clDice_TP": cls / tpc if tpc else 0.0,
        "n_gt": n_gt, "tp_count": tpc, "cldice_sum": cls,
    }
