"""metrics/encoding.py: the Algonauts 2023 noise-normalized squared correlation, per vertex and pooled.

- against the devkit's own ``03_test_encoding.py``, run unchanged by
  ``scripts/run_algonauts_official_metric.py`` on hard cases (tests/data/nsd_official_metric.json);
- small cases computed by hand;
- hypothesis properties (scipy's pearsonr column by column, invariances, ranges, pooling).
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import neuroharness.metrics.encoding as enc
from neuroharness.metrics.encoding import (
    DEFAULT_POOLING,
    NC_ZERO,
    POOLINGS,
    VertexScores,
    noise_normalized,
    pearson_r,
    summarize,
    vertex_scores,
)

ORACLE = Path(__file__).parent / "data" / "nsd_official_metric.json"


def _array(values, dtype) -> np.ndarray:
    """JSON numbers (null = NaN) back to an array of ``dtype`` (float32 values were stored exactly)."""
    def conv(v):
        return [conv(x) for x in v] if isinstance(v, list) else (np.nan if v is None else v)

    return np.array(conv(values), dtype=np.float64).astype(dtype)


def _oracle_cases():
    doc = json.loads(ORACLE.read_text())
    return [pytest.param(c, id=f"subj{c['subject']}-{c['hemisphere']}-{c['compare']}") for c in doc["cases"]]


# -- the devkit's own outputs ----------------------------------------------------------------------
def test_oracle_file_says_how_it_was_made():
    doc = json.loads(ORACLE.read_text())
    assert doc["generated_by"].startswith("python scripts/run_algonauts_official_metric.py")
    assert doc["devkit"]["script"] == "code/02_baseline_encoding_model/03_test_encoding.py"
    assert len(doc["devkit"]["commit"]) == 40 and len(doc["devkit"]["script_sha256"]) == 64
    assert all("--sub" in c and "--project_dir" in c for c in doc["commands"])
    assert {"numpy", "scipy", "tqdm", "python"} <= set(doc["versions"])
    kinds = {(c["compare"], c["dtype"]["fmri"], c["dtype"]["pred"], c["dtype"]["noise_ceiling"]) for c in doc["cases"]}
    assert ("float32", "float32", "float32", "float32") in kinds  # float32 inputs
    assert ("exact", "float64", "float64", "float32") in kinds  # float32 NC: its own 1e-14
    assert len({c["subject"] for c in doc["cases"]}) >= 3  # several subjects
    every = np.concatenate([_array(c["official"]["noise_normalized_encoding"], np.float64) for c in doc["cases"]])
    assert np.isnan(every).any() and (every == 100).any() and (every == 0).any()  # NaN, capped, negative r
    assert any(c["official"]["idx_nc_zero"] for c in doc["cases"])  # NC exactly 0


@pytest.mark.parametrize("case", _oracle_cases())
def test_equals_official_devkit(case):
    d = case["dtype"]
    fmri, pred = _array(case["fmri"], d["fmri"]), _array(case["pred"], d["pred"])
    nc = _array(case["noise_ceiling_in"], d["noise_ceiling"])
    off = case["official"]
    ours = vertex_scores(pred, fmri, nc)
    assert ours.r2.dtype == ours.nc_score.dtype == np.float64
    # the devkit's NC after its 0 -> 1e-14, in the NC's own dtype
    assert np.array_equal(enc._noise_ceiling(nc, len(nc)), _array(off["noise_ceiling"], off["dtypes"]["noise_ceiling"]))
    assert off["idx_nc_zero"] == np.flatnonzero(nc == 0).tolist()
    for name, mine in (("r2", ours.r2), ("noise_normalized_encoding", ours.nc_score)):
        ref = _array(off[name], np.float64)
        assert np.array_equal(np.isnan(mine), np.isnan(ref)), name  # same NaN positions
        ok = ~np.isnan(ref)
        if case["compare"] == "exact":
            np.testing.assert_allclose(mine[ok], ref[ok], rtol=1e-12, atol=0, err_msg=name)
        else:  # the devkit ran Pearson r in float32 (SciPy 1.17 + NumPy 2); we define it in float64
            atol = 1e-6 if name == "r2" else 1e-4  # scores are r2 x 100 / NC, NC <= 1
            np.testing.assert_allclose(mine[ok], ref[ok], rtol=1e-5, atol=atol, err_msg=name)


def test_float32_nc_zero_uses_float32_replacement():
    """A float32 NC of 0 becomes float32(1e-14), as the devkit's in-place assignment makes it: with
    r² = 2.5e-15 the score is 25.000001, not 25 (what a float64 1e-14 would give)."""
    y = np.zeros(6)
    x = np.zeros(6)
    y[:2] = (1, -1)
    x[:4] = (5e-8, -5e-8, 1, -1)
    r = pearson_r(x[:, None], y[:, None])
    _, s32 = noise_normalized(r, np.zeros(1, np.float32))
    _, s64 = noise_normalized(r, np.zeros(1, np.float64))
    assert s32[0] == pytest.approx(25 * 1e-14 / float(np.float32(1e-14)), rel=1e-12)
    assert s64[0] == pytest.approx(25.0, rel=1e-12) and s32[0] != s64[0]


# -- by hand ----------------------------------------------------------------------------------------
def test_hand_computed_vertices():
    # centred x = [-1.5, -.5, .5, 1.5], y = [-1.5, .5, -.5, 1.5]: sxy = 4, sxx = syy = 5 -> r = 0.8
    x = np.array([1.0, 2, 3, 4])
    y = np.array([1.0, 3, 2, 4])
    pred = np.stack([x, x, x, x, -x, np.full(4, 2.0), x], axis=1)
    target = np.stack([y, y, y, y, y, y, np.full(4, 3.0)], axis=1)
    nc = np.array([0.8, 0.64, 0.32, 0.0, 0.5, 0.5, 0.5])
    v = vertex_scores(pred, target, nc)
    np.testing.assert_allclose(v.r[:5], [0.8, 0.8, 0.8, 0.8, -0.8], rtol=1e-15)
    np.testing.assert_allclose(v.r2[:5], [0.64, 0.64, 0.64, 0.64, 0.0], rtol=1e-15)
    np.testing.assert_allclose(v.nc_score[:5], [80.0, 100.0, 100.0, 100.0, 0.0], rtol=1e-14)
    assert np.isnan(v.r[5:]).all() and np.isnan(v.r2[5:]).all() and np.isnan(v.nc_score[5:]).all()
    assert v.n_undefined == 2
    perfect = vertex_scores(target[:, :5], target[:, :5], np.array([0.25, 0.5, 1.0, 0.0, 0.8]))
    np.testing.assert_allclose(perfect.r, 1.0, rtol=1e-15)
    np.testing.assert_allclose(perfect.nc_score, [100.0, 100.0, 100.0, 100.0, 100.0], rtol=1e-14)
    r2, score = noise_normalized(np.array([0.5, 0.5]), np.array([0.5, 0.25]))
    np.testing.assert_allclose(score, [50.0, 100.0])
    assert vertex_scores(pred[:, :1], target[:, :1]).nc_score is None


def test_pooling_by_hand():
    nan = np.nan
    groups = {
        ("subj01", "lh"): VertexScores(np.array([0.1, 0.5, nan]), np.array([0.01, 0.25, nan]),
                                       np.array([10.0, 50.0, nan])),
        ("subj01", "rh"): VertexScores(np.array([0.9]), np.array([0.81]), np.array([100.0])),
        ("subj02", "lh"): VertexScores(np.array([-0.2, 0.3]), np.array([0.0, 0.09]), np.array([0.0, 30.0])),
    }
    a = summarize(groups, "all-vertices").metrics
    r_all = [0.1, 0.5, 0.0, 0.9, -0.2, 0.3]
    assert a["mean_pearson_r"] == pytest.approx(np.mean(r_all)) and a["median_pearson_r"] == pytest.approx(0.2)
    assert a["median_nc_score"] == pytest.approx(20.0) and a["mean_nc_score"] == pytest.approx(190 / 6)
    assert a["median_r2"] == pytest.approx(0.05) and a["n_vertices"] == 6 and a["n_undefined_r"] == 1
    assert a["lh/median_pearson_r"] == pytest.approx(0.1) and a["rh/mean_pearson_r"] == pytest.approx(0.9)
    assert a["subj01/median_nc_score"] == pytest.approx(30.0) and a["subj02/n_vertices"] == 2
    assert a["subj01/lh/mean_pearson_r"] == pytest.approx(0.2) and a["subj01/lh/n_undefined_r"] == 1
    assert "subj02/rh/mean_pearson_r" not in a
    p = summarize(groups, "per-subject-hemisphere").metrics
    # medians per group: lh1 0.1 (of 0.1, 0.5, 0), rh1 0.9, lh2 0.05; then their mean
    assert p["median_pearson_r"] == pytest.approx((0.1 + 0.9 + 0.05) / 3)
    assert p["mean_pearson_r"] == pytest.approx((0.2 + 0.9 + 0.05) / 3)
    assert p["median_nc_score"] == pytest.approx((10 + 100 + 15) / 3)
    assert p["lh/median_pearson_r"] == pytest.approx((0.1 + 0.05) / 2)
    assert p["subj01/median_nc_score"] == pytest.approx((10 + 100) / 2)
    assert p["subj01/lh/median_pearson_r"] == a["subj01/lh/median_pearson_r"]
    assert DEFAULT_POOLING in POOLINGS
    with pytest.raises(ValueError, match="pooling 'mean'"):
        summarize(groups, "mean")


def test_rois_and_notes():
    nan = np.nan
    groups = {("subj01", "lh"): VertexScores(np.array([0.1, 0.5, nan, 0.4]), np.array([0.01, 0.25, nan, 0.16]),
                                             np.array([10.0, 50.0, nan, 40.0])),
              ("subj01", "rh"): VertexScores(np.array([0.9, 0.2]), np.array([0.81, 0.04]), np.array([100.0, 20.0]))}
    rois = {("subj01", "lh"): {"prf-visualrois": (np.array([1, 1, 2, 0]), {1: "V1v", 2: "V1d", 3: "hV4"})},
            ("subj01", "rh"): {"prf-visualrois": (np.array([2, 1]), {1: "V1v", 2: "V1d", 3: "hV4"})}}
    s = summarize(groups, "all-vertices", rois)
    m = s.metrics
    assert m["roi/prf-visualrois/V1v/median_nc_score"] == pytest.approx(20.0)  # 10, 50, 20
    assert m["roi/prf-visualrois/V1v/n_vertices"] == 3
    assert m["roi/prf-visualrois/V1d/median_pearson_r"] == pytest.approx(0.45)  # undefined r (0) and 0.9
    assert not any("hV4" in k for k in m)  # no vertex
    p = summarize(groups, "per-subject-hemisphere", rois).metrics
    assert p["roi/prf-visualrois/V1v/median_nc_score"] == pytest.approx((30 + 20) / 2)
    assert any("undefined Pearson r" in n and "1 of 6" in n for n in s.notes)
    assert not any("unavailable" in n for n in s.notes)
    bare = summarize({k: VertexScores(g.r, g.r2) for k, g in groups.items()}, "all-vertices", rois)
    assert not any("nc_score" in k for k in bare.metrics) and "mean_r2" in bare.metrics
    assert any("noise-normalized score" in n and "unavailable" in n for n in bare.notes)
    assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in bare.metrics.values())


def test_bad_inputs():
    good = np.ones((3, 2)) * np.arange(3)[:, None]
    with pytest.raises(ValueError, match=r"pred: 1 value\(s\) are NaN or infinite, first at row 1, column 0"):
        bad = good.copy()
        bad[1, 0] = np.nan
        pearson_r(bad, good)
    with pytest.raises(ValueError, match=r"target: .*first at row 2, column 1"):
        bad = good.copy()
        bad[2, 1] = np.inf
        pearson_r(good, bad)
    with pytest.raises(ValueError, match="expected equal"):
        pearson_r(good, good[:, :1])
    with pytest.raises(ValueError, match="at least 2 stimuli"):
        pearson_r(good[:1], good[:1])
    with pytest.raises(ValueError, match="2-D"):
        pearson_r(good[0], good[0])
    with pytest.raises(ValueError, match=r"outside \[0, 1\].*vertex 1"):
        noise_normalized(np.array([0.5, 0.5]), np.array([0.5, 1.5]))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        noise_normalized(np.array([0.5, 0.5]), np.array([0.5, 0.5, 0.5]))


# -- properties -------------------------------------------------------------------------------------
def _matrix(rows=st.integers(2, 16), cols=st.integers(1, 6)):
    return st.tuples(rows, cols).flatmap(lambda s: st.tuples(*(hnp.arrays(np.float64, s, elements=st.floats(
        -1e3, 1e3, allow_nan=False, width=64) | st.sampled_from([0.0, 1.0, -2.5])) for _ in range(2))))


def _scipy_r(x, y) -> np.ndarray:
    from scipy.stats import pearsonr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array([pearsonr(x[:, j], y[:, j])[0] for j in range(x.shape[1])], dtype=np.float64)


@given(_matrix())
def test_matches_scipy_pearsonr(xy):
    x, y = xy
    ours, ref = pearson_r(x, y), _scipy_r(x, y)
    assert np.array_equal(np.isnan(ours), np.isnan(ref))
    ok = ~np.isnan(ref)
    # near-degenerate columns (two distinct values among many equal ones) lose digits in both
    np.testing.assert_allclose(ours[ok], ref[ok], rtol=1e-9, atol=1e-9)
    assert np.all((ours[ok] >= -1) & (ours[ok] <= 1))


@given(_matrix(), st.floats(1e-2, 1e2), st.floats(-10, 10))
def test_affine_invariance(xy, a, b):
    x, y = xy
    r = pearson_r(x, y)
    moved = pearson_r(a * x + b, y)
    live = np.ptp(x, axis=0) > 1e-2  # a * x + b keeps enough digits of x
    assert np.array_equal(np.isnan(r[live]), np.isnan(moved[live]))
    ok = live & ~np.isnan(r)
    np.testing.assert_allclose(moved[ok], r[ok], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(pearson_r(-x, y)[~np.isnan(r)], -r[~np.isnan(r)], rtol=1e-12, atol=1e-15)


@given(_matrix(), st.data())
def test_score_definition(xy, data):
    x, y = xy
    nc = data.draw(hnp.arrays(np.float64, x.shape[1], elements=st.floats(0, 1) | st.just(0.0)))
    v = vertex_scores(x, y, nc)
    ok = ~np.isnan(v.r)
    assert np.array_equal(np.isnan(v.nc_score), ~ok) and np.array_equal(np.isnan(v.r2), ~ok)
    assert np.all((v.nc_score[ok] >= 0) & (v.nc_score[ok] <= 100))
    with np.errstate(over="ignore"):
        want = np.minimum(100.0, np.maximum(v.r[ok], 0) ** 2 / np.where(nc[ok] == 0, NC_ZERO, nc[ok]) * 100)
    np.testing.assert_allclose(v.nc_score[ok], want, rtol=1e-12)
    # a perfect prediction of a non-constant column: r = 1, score = min(100, 100 / NC)
    live = np.ptp(y, axis=0) > 0
    p = vertex_scores(y[:, live], y[:, live], nc[live])
    np.testing.assert_allclose(p.r, 1.0, rtol=1e-12)
    want = np.minimum(100.0, 100.0 / np.where(nc[live] == 0, NC_ZERO, nc[live]))
    np.testing.assert_allclose(p.nc_score, want, rtol=1e-12)


@given(_matrix(cols=st.integers(2, 40)), st.integers(0, 2**32 - 1), st.sampled_from([16, 64, 1 << 20]))
def test_columns_independent(xy, seed, block):
    x, y = xy
    perm = np.random.default_rng(seed).permutation(x.shape[1])
    old = enc._BLOCK_BYTES
    try:
        enc._BLOCK_BYTES = block  # columns in blocks of any size: the same r
        r = pearson_r(x, y)
    finally:
        enc._BLOCK_BYTES = old
    ref = pearson_r(x, y)
    np.testing.assert_allclose(r, ref, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(pearson_r(x[:, perm], y[:, perm]), ref[perm], rtol=1e-14, atol=1e-15)


@given(st.lists(st.tuples(st.sampled_from(["subj01", "subj02", "subj03"]), st.sampled_from(["lh", "rh"])),
                min_size=1, max_size=6, unique=True), st.integers(0, 2**32 - 1))
def test_pooling_properties(keys, seed):
    rng = np.random.default_rng(seed)
    groups = {}
    for k in keys:
        r = rng.uniform(-1, 1, rng.integers(1, 30))
        r[rng.random(len(r)) < 0.1] = np.nan
        r2, score = noise_normalized(r, rng.uniform(0, 1, len(r)))
        groups[k] = VertexScores(r, r2, score)
    zero = {k: np.nan_to_num(g.nc_score) for k, g in groups.items()}
    a = summarize(groups, "all-vertices").metrics
    assert a["median_nc_score"] == pytest.approx(float(np.median(np.concatenate(list(zero.values())))))
    p = summarize(groups, "per-subject-hemisphere").metrics
    assert p["median_nc_score"] == pytest.approx(float(np.mean([np.median(v) for v in zero.values()])))
    for m in (a, p):
        assert 0 <= m["median_nc_score"] <= 100 and -1 <= m["mean_pearson_r"] <= 1
        assert m["n_undefined_r"] == sum(int(np.isnan(g.r).sum()) for g in groups.values())
    if len(groups) == 1:
        assert {k: v for k, v in a.items()} == {k: v for k, v in p.items()}


def test_speed_one_subject_real_size():
    """A real subject (395 stimuli, 19,004 + 20,544 vertices) in well under the 2 s the issue allows for
    eight (the eight-subject timing is tests/benchmarks/test_bench_encoding_metric.py)."""
    import time

    rng = np.random.default_rng(0)
    groups = {}
    data = [(rng.standard_normal((395, v), dtype=np.float32), rng.standard_normal((395, v), dtype=np.float32),
             rng.random(v, dtype=np.float32)) for v in (19004, 20544)]
    t0 = time.perf_counter()
    for h, (p, t, nc) in zip(("lh", "rh"), data):
        groups[("subj04", h)] = vertex_scores(p, t, nc)
    summarize(groups)
    assert time.perf_counter() - t0 < 2.0
