"""FISBe instance-segmentation metrics on small synthetic tube volumes.

Expected values are closed forms (see the module docstring of
``neuroharness.metrics.instance_segmentation``): perfect -> S = 1; merging k
disjoint GTs -> FM = k-1, C = 1/k over them; splitting into m pieces -> FS = m-1,
C unchanged; no partly mode -> F1_th = 2TP / (N_gt + N_pred).
Tubes are curved / diagonal (a straight even-width rod has an empty Lee skeleton).
"""
from __future__ import annotations

import numpy as np
import pytest
from neuroharness.metrics.instance_segmentation import (
    as_instances,
    combine,
    evaluate_instances,
    summarize,
)
from scipy import ndimage as ndi

SHAPE = (32, 48, 48)


def tube(p0, p1, bend=(0, 0, 0), r=1, shape=SHAPE):
    """Tube of radius ``r`` around the curve p0 + (p1-p0) t + bend sin(pi t), t in [0, 1]."""
    t = np.linspace(0, 1, 400)[:, None]
    p0, p1, b = (np.asarray(v, float) for v in (p0, p1, bend))
    pts = np.round(p0 + (p1 - p0) * t + b * np.sin(np.pi * t)).astype(int)
    cl = np.zeros(shape, bool)
    cl[tuple(pts.T)] = True
    return ndi.distance_transform_edt(~cl) <= r


A = tube((5, 4, 4), (26, 40, 20), (0, 0, 8))            # y runs monotonically 4..40
B = tube((5, 4, 30), (26, 20, 44), (3, 6, 0), r=2)
C = tube((8, 30, 4), (24, 44, 30), (0, -4, 4))
BLOB = tube((26, 4, 44), (30, 12, 36), (0, 2, 0))       # away from A, B, C
SMALL = tube((2, 44, 36), (8, 36, 44), (0, 1, 1))          # ~100 voxels, non-empty skeleton


def labels(*masks, dtype=np.uint16):
    lab = np.zeros(SHAPE, dtype)
    for k, m in enumerate(masks, start=1):
        lab[m] = k
    return lab


def stack(*masks):
    return np.stack([m.astype(np.uint8) for m in masks])


def ev(gt, pred, **kw):
    kw.setdefault("remove_small", None)
    return evaluate_instances(gt, pred, **kw)


def f1s(r):
    return [2 * tp / (2 * tp + fp + fn) for tp, fp, fn in zip(r["tp"], r["fp"], r["fn"])]


def test_fixture_tubes_are_disjoint_and_separated():
    masks = [A, B, C, BLOB, SMALL]
    for i, a in enumerate(masks):
        grown = ndi.binary_dilation(a, iterations=2)
        for b in masks[i + 1:]:
            assert not (grown & b).any()
    assert 20 < SMALL.sum() < 150 and A.sum() > 200


# -- perfect -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["labels", "stack"])
def test_perfect_prediction(kind):
    gt = labels(A, B, C) if kind == "labels" else stack(A, B, C)
    r = ev(gt, gt.copy())
    assert r["tp"] == [3] * 9 and r["fp"] == [0] * 9 and r["fn"] == [0] * 9
    assert r["coverage"] == [1.0, 1.0, 1.0]
    s = summarize([r])
    assert s["avF1"] == 1.0 and s["C"] == 1.0 and s["S"] == 1.0
    assert s["FS"] == 0 and s["FM"] == 0 and s["tp"] == 1.0 and s["clDice_TP"] == 1.0


def test_label_image_and_stack_agree():
    r1 = ev(labels(A, B, C), stack(A, B, C))
    assert summarize([r1])["S"] == 1.0


# -- merge / split ------------------------------------------------------------
def test_merge_two():
    r = ev(labels(A, B, C), labels(A | B, C))
    assert r["fm"] == 1 and r["fs"] == 0
    assert sorted(r["coverage"][:2]) == [0.0, 1.0] and r["coverage"][2] == 1.0
    assert np.mean(r["coverage"][:2]) == pytest.approx(1 / 2)
    # one of A, B matched at every threshold where the merged clDice is high enough
    assert r["fn"][0] == 1 and r["fp"][0] == 0


def test_merge_three():
    r = ev(labels(A, B, C), labels(A | B | C))
    assert r["fm"] == 2 and r["fs"] == 0
    assert sorted(r["coverage"]) == [0.0, 0.0, 1.0]
    assert summarize([r])["C"] == pytest.approx(1 / 3)


def _split(mask, m):
    cuts = {2: [22], 3: [16, 28]}[m]
    y = np.arange(SHAPE[1])[None, :, None]
    bins = np.digitize(np.broadcast_to(y, SHAPE), cuts)
    return [mask & (bins == k) for k in range(m)]


@pytest.mark.parametrize("m", [2, 3])
def test_split(m):
    pieces = _split(A, m)
    r = ev(labels(A, B), labels(*pieces, B))
    assert r["fs"] == m - 1 and r["fm"] == 0
    assert r["coverage"] == [1.0, 1.0]
    # every piece covers well over 5% of A's skeleton
    rr = ev(labels(A), labels(*pieces), fs_threshold=0.2)
    assert rr["fs"] == m - 1
    # the unmatched pieces lie on GT, so partly mode still counts them as FP
    rp = ev(labels(A, B), labels(*pieces, B), partly=True)
    assert rp["fp"] == r["fp"] and r["fp"][0] == m - 1


# -- missing / extra ------------------------------------------------------------
def test_missing_gt():
    r = ev(labels(A, B, C), labels(A, C))
    assert r["tp"] == [2] * 9 and r["fn"] == [1] * 9 and r["fp"] == [0] * 9
    assert f1s(r) == pytest.approx([2 * 2 / (3 + 2)] * 9)
    assert r["coverage"] == [1.0, 0.0, 1.0]
    s = summarize([r])
    assert s["avF1"] == pytest.approx(0.8) and s["C"] == pytest.approx(2 / 3)
    assert s["tp"] == pytest.approx(2 / 3)


def test_extra_background_blob_partly():
    gt, pred = labels(A, B, C), labels(A, B, C, BLOB)
    r = ev(gt, pred)
    assert r["fp"] == [1] * 9 and r["tp"] == [3] * 9
    assert f1s(r) == pytest.approx([2 * 3 / (3 + 4)] * 9)
    rp = ev(gt, pred, partly=True)
    assert rp["fp"] == [0] * 9 and rp["tp"] == [3] * 9 and rp["partly"] is True
    assert summarize([rp])["avF1"] == 1.0 and r["coverage"] == rp["coverage"] == [1.0] * 3


# -- remove_small ----------------------------------------------------------------
def test_remove_small_filters_predictions_only():
    gt = labels(A, SMALL)
    pred = labels(A, SMALL, BLOB)
    keep = ev(gt, pred)
    assert keep["n_pred"] == 3 and keep["tp"][0] == 2 and keep["fp"][0] == 1
    thr = int(max(SMALL.sum(), BLOB.sum()))
    assert thr < A.sum()
    r = evaluate_instances(gt, pred, remove_small=thr)
    assert r["n_removed"] == 2 and r["n_pred"] == 1 and r["n_gt"] == 2
    assert r["tp"] == [1] * 9 and r["fp"] == [0] * 9 and r["fn"] == [1] * 9
    assert r["coverage"] == [1.0, 0.0]
    # <= is removed: an instance of exactly remove_small voxels goes too
    assert evaluate_instances(gt, labels(A), remove_small=int(A.sum()))["n_pred"] == 0
    assert evaluate_instances(gt, labels(A), remove_small=int(A.sum()) - 1)["n_pred"] == 1
    # the default 800 removes every predicted tube here but keeps both GTs
    d = evaluate_instances(gt, pred)
    assert d["n_pred"] == 0 and d["n_gt"] == 2 and d["fn"] == [2] * 9


# -- overlaps ---------------------------------------------------------------------
def test_duplicate_predictions_coverage_capped():
    # The published evaluator sums R_ij here (GT has no overlaps) and reports C = 2.0;
    # with the true union C stays 1.0.
    r = ev(labels(A), stack(A, A))
    assert r["coverage"] == [1.0]
    assert r["fs"] == 0 and r["fm"] == 0        # second copy consumed
    assert r["tp"] == [1] * 9 and r["fp"] == [1] * 9
    assert summarize([r])["C"] == 1.0


def test_crossing_tubes_channels():
    x1 = tube((16, 4, 4), (16, 44, 44), (0, 4, -4), r=2)     # both pass (16, 28, 20)
    x2 = tube((4, 44, 4), (28, 4, 44), (0, 4, -4), r=2)
    assert (x1 & x2).sum() > 10
    gt = stack(x1, x2)
    r = ev(gt, gt.copy())
    s = summarize([r])
    assert s["S"] == 1.0 and s["FS"] == 0 and s["FM"] == 0 and r["coverage"] == [1.0, 1.0]
    # both tubes in one label: merge
    rm = ev(gt, labels(x1 | x2))
    assert rm["fm"] == 1 and sorted(rm["coverage"]) == [0.0, 1.0]


# -- pooling --------------------------------------------------------------------------
V1 = {"thresholds": [0.1, 0.5], "tp": [2, 1], "fp": [1, 2], "fn": [0, 1], "n_gt": 2,
      "n_pred": 3, "coverage": [1.0, 0.5], "tp_05": 1, "cldice_tp": [0.8], "fs": 1, "fm": 0}
V2 = {"thresholds": [0.1, 0.5], "tp": [1, 1], "fp": [0, 0], "fn": [2, 2], "n_gt": 3,
      "n_pred": 1, "coverage": [0.9, 0.0, 0.3], "tp_05": 1, "cldice_tp": [0.6], "fs": 0, "fm": 2}


def test_summarize_by_hand():
    s = summarize([V1, V2])
    # th 0.1: TP 3, FP 1, FN 2 -> 6/9; th 0.5: TP 2, FP 2, FN 3 -> 4/9
    assert s["F1"] == pytest.approx([6 / 9, 4 / 9])
    assert s["avF1"] == pytest.approx(5 / 9)
    assert s["C"] == pytest.approx(2.7 / 5)
    assert s["S"] == pytest.approx(0.5 * 5 / 9 + 0.5 * 0.54)
    assert s["clDice_TP"] == pytest.approx(0.7) and s["tp"] == pytest.approx(2 / 5)
    assert (s["FS"], s["FM"], s["n_gt"], s["tp_count"]) == (1, 2, 5, 2)
    assert s["cldice_sum"] == pytest.approx(1.4)


def test_combine_by_hand():
    comp = summarize([V1, V2])
    part = {"S": 0.3, "avF1": 0.4, "C": 0.2, "FS": 3, "FM": 1, "n_gt": 5,
            "tp_count": 3, "cldice_sum": 1.5}
    c = combine(comp, part)
    assert c["S"] == pytest.approx((comp["S"] + 0.3) / 2)
    assert c["avF1"] == pytest.approx((5 / 9 + 0.4) / 2)
    assert c["C"] == pytest.approx((0.54 + 0.2) / 2)
    assert (c["FS"], c["FM"]) == (4, 3)
    assert c["tp"] == pytest.approx(5 / 10)
    assert c["clDice_TP"] == pytest.approx(2.9 / 5)
    with pytest.raises(ValueError, match="missing"):
        combine(comp, {"S": 1.0})


def test_summarize_rejects_mixed_thresholds():
    with pytest.raises(ValueError, match="thresholds"):
        summarize([V1, dict(V2, thresholds=[0.1, 0.6])])
    with pytest.raises(ValueError, match="empty"):
        summarize([])


# -- input normalisation and validation -----------------------------------------------
def test_as_instances_forms():
    lab = labels(A, B)
    lab[lab == 1] = 5                         # non-contiguous ids: 2 and 5
    inst = as_instances(lab)
    assert len(inst) == 2
    sl, m = inst[1]
    full = np.zeros(SHAPE, bool)
    full[sl] = m
    assert (full == A).all()
    st = stack(A, np.zeros(SHAPE, bool), B)   # empty channel skipped
    assert len(as_instances(st)) == 2


def test_nonzero_scan_matches_flatnonzero():
    """The block-skipping foreground scan behind as_instances / evaluate_instances."""
    import neuroharness.metrics.instance_segmentation as ism

    rng = np.random.default_rng(0)
    for dtype in (bool, np.uint8, np.int16, np.uint32, np.int64):
        for shape in [(7, 11, 13), (3, 40, 50), (0, 4, 4), (1, 1, 1)]:
            a = np.zeros(shape, dtype)
            a.reshape(-1)[rng.integers(0, max(a.size, 1), size=min(a.size, 9))] = 1
            if np.issubdtype(dtype, np.signedinteger) and a.size:
                a.reshape(-1)[-1] = -3          # negative values are members in a stack channel
            for view in (a, a[:, ::2, 1:]):    # contiguous and strided
                got = ism._nonzero(view)
                assert got.dtype == np.int64
                np.testing.assert_array_equal(got, np.flatnonzero(view))


def test_validation_errors():
    gt = labels(A)
    with pytest.raises(ValueError, match="shape"):
        evaluate_instances(gt, gt[:, :, :-1])
    with pytest.raises(ValueError, match="dtype"):
        evaluate_instances(gt, gt.astype(float))
    with pytest.raises(ValueError, match="2-D"):
        evaluate_instances(gt[0], gt[0])
    with pytest.raises(ValueError, match="no instance"):
        evaluate_instances(np.zeros(SHAPE, np.uint8), gt)
    with pytest.raises(ValueError, match="negative"):
        evaluate_instances(-gt.astype(np.int32), gt)
    with pytest.raises(ValueError, match="thresholds"):
        evaluate_instances(gt, gt, thresholds=[0.5, 1.2])


# -- fast skeleton path == skimage reference, end to end ---------------------------------
def derive_prediction(gt_stack, seed=0, n_spurious=(3, 1)):
    """A (Z,Y,X) uint16 label image from a (N,Z,Y,X) GT stack (N >= 6), with known errors.

    Neuron 0 and 6.. kept; 1 and 2 merged into one label; 3 split in 2 and 4 in 3
    pieces along its longest extent; 5 dropped; plus ``n_spurious[0]`` small balls
    (radius 3, 123 voxels, below remove_small=800) and ``n_spurious[1]`` larger ones
    (radius 7, 1419 voxels) at random places.  Later labels overwrite earlier ones
    where neurons cross.
    """
    rng = np.random.default_rng(seed)
    shape = gt_stack.shape[1:]
    pred = np.zeros(shape, np.uint16)
    flat = pred.reshape(-1)
    vox = [np.flatnonzero(gt_stack[k]) for k in range(gt_stack.shape[0])]
    nxt = 1

    def put(idx):
        nonlocal nxt
        flat[idx] = nxt
        nxt += 1

    def pieces(idx, m):
        zyx = np.stack(np.unravel_index(idx, shape))
        ax = int(np.argmax(np.ptp(zyx, axis=1)))
        cuts = np.quantile(zyx[ax], np.arange(1, m) / m)
        part = np.digitize(zyx[ax], cuts)
        return [idx[part == k] for k in range(m)]

    put(vox[0])
    put(np.union1d(vox[1], vox[2]))
    for k, m in ((3, 2), (4, 3)):
        for piece in pieces(vox[k], m):
            put(piece)
    for k in range(6, len(vox)):
        put(vox[k])
    for r, count in zip((3, 7), n_spurious):
        ball = np.stack(np.nonzero(ndi.distance_transform_edt(
            np.pad([[[0]]], r, constant_values=1)) <= r), 1) - r
        for _ in range(count):
            c = rng.integers(r, np.asarray(shape) - r)
            put(np.ravel_multi_index(tuple((ball + c).T), shape))
    return pred


@pytest.fixture(scope="module")
def fisbe_fixture():
    from helpers import load_script

    return load_script("make_fisbe_fixture")


def _skimage_thin(idx, shape, *, n_borders=6):
    """Slow reference for ``thin_indices``: skimage on the dense box padded by one voxel."""
    assert n_borders == 6
    m = np.zeros(shape, bool)
    m.reshape(-1)[idx] = True
    from skimage.morphology import skeletonize

    return np.flatnonzero(skeletonize(np.pad(m, 1))[1:-1, 1:-1, 1:-1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_path_equals_skimage_reference(seed, fisbe_fixture, monkeypatch):
    import neuroharness.metrics.instance_segmentation as ism

    _, gt = fisbe_fixture.synthetic_sample((40, 80, 80), n_neurons=7, seed=seed)
    pred = derive_prediction(gt, seed=seed)
    runs = [{"remove_small": None}, {"remove_small": 200}, {"partly": True, "remove_small": 200},
            {}]  # the default 800 drops most split pieces of these small neurons
    fast = [evaluate_instances(gt, pred, **kw) for kw in runs]
    fast_lab = evaluate_instances(pred, gt)  # roles swapped: label-image GT, stack prediction
    calls = []
    monkeypatch.setattr(ism, "_thin_indices", lambda *a, **k: calls.append(1) or _skimage_thin(*a, **k))
    assert [evaluate_instances(gt, pred, **kw) for kw in runs] == fast
    assert len(calls) > 40
    assert evaluate_instances(pred, gt) == fast_lab
    # 1 merge, pieces of two neurons and three small balls (FS/FM against the official evaluator:
    # tests/test_fisbe_official_metrics.py)
    assert fast[0]["n_pred"] == 12 and fast[0]["fm"] >= 1 and fast[0]["fs"] >= 3
    assert fast[1]["n_removed"] == 3 and fast[3]["n_removed"] > 3


def test_localize_matches_dense_definition(fisbe_fixture):
    """clRecall / clPrecision from the sparse bookkeeping equal the dense definitions
    (full-volume masks and skimage skeletons of them)."""
    import neuroharness.metrics.instance_segmentation as ism
    from skimage.morphology import skeletonize

    _, gt = fisbe_fixture.synthetic_sample((32, 64, 64), n_neurons=6, seed=5)
    pred = derive_prediction(gt, seed=5)
    shape = pred.shape
    gts = [ism._Inst(v, shape) for v in ism._instance_voxels(gt)]
    preds = [ism._Inst(v, shape) for v in ism._instance_voxels(pred)]
    rec, prec, _ = ism._localize(gts, preds)
    gm = [gt[k] != 0 for k in range(gt.shape[0])]
    pm = [pred == v for v in np.unique(pred)[1:]]
    gs = [skeletonize(m) for m in gm]
    ps = [skeletonize(m) for m in pm]
    anygt = np.any(gm, axis=0)
    for j in range(len(pm)):
        assert prec[0, j] == (ps[j] & ~anygt).sum() / ps[j].sum()
        for i in range(len(gm)):
            assert rec[i, j] == (gs[i] & pm[j]).sum() / gs[i].sum()
            assert prec[i + 1, j] == (ps[j] & gm[i]).sum() / ps[j].sum()
    assert rec.max() > 0.9 and (rec > 0).sum() >= len(gm) - 1


def test_thresholds_and_ties_are_decided_in_float32_like_the_reference():
    from neuroharness.metrics.instance_segmentation import _cldice32, _greedy_one_to_one

    # 0.3 + 1e-9 is above 0.3 in float64 but rounds to float32(0.3): not above the threshold there
    score = np.array([[0.3 + 1e-9]], dtype=np.float64).astype(np.float32)
    assert _greedy_one_to_one(score, 0.3) == []
    assert _greedy_one_to_one(score, 0.29) == [(0, 0)]
    # 0.6 and 0.6 + 1e-9 tie in float32: the lower GT index wins, not the larger float64 value
    score = np.array([[0.6], [0.6 + 1e-9]]).astype(np.float32)
    assert _greedy_one_to_one(score, 0.5) == [(0, 0)]
    # clDice in float32 as ((2 P) R) / (P + R); 0 where P + R = 0
    p = np.array([[0.1, 0.0]], np.float32)
    r = np.array([[0.7, 0.0]], np.float32)
    d = _cldice32(r, p)
    assert d.dtype == np.float32 and d[0, 1] == 0
    assert d[0, 0] == (np.float32(2) * np.float32(0.1) * np.float32(0.7)) / (np.float32(0.1) + np.float32(0.7))
