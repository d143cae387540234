"""``neuroharness.metrics._skeleton``: voxel-for-voxel equality with scikit-image's Lee thinning.

The reference is ``skimage.morphology.skeletonize`` (scikit-image 0.26.0, Lee 1994 via
ImageJ's Skeletonize3D).  Inputs: hypothesis-drawn random blobs, tubes, crossings, thick
boxes/balls and scattered single voxels, all free to touch the array border, plus fixed
cases (empty, a straight 4-voxel-wide rod that skimage thins to nothing, single slices).
"""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from neuroharness.metrics._skeleton import _EULER, _OCT, skeletonize_3d, thin_indices
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def same(mask):
    ref = skeletonize(mask)
    got = skeletonize_3d(mask)
    assert got.dtype == bool and got.shape == mask.shape
    np.testing.assert_array_equal(got, ref)
    return ref


shapes = st.tuples(st.integers(1, 14), st.integers(1, 14), st.integers(1, 14))


# -- random inputs -------------------------------------------------------------------
@SETTINGS
@given(shape=shapes, density=st.floats(0.05, 0.95), smooth=st.floats(0.0, 1.5), seed=st.integers(0, 2**32 - 1))
def test_random_blobs(shape, density, smooth, seed):
    rng = np.random.default_rng(seed)
    noise = rng.random(shape)
    if smooth > 0:
        noise = ndi.gaussian_filter(noise, smooth)
    same(noise < np.quantile(noise, density))


def _tubes(rng, shape, n, radius):
    """``n`` random polyline tubes of the given radius (voxels), clipped by the array border."""
    cl = np.zeros(shape, bool)
    for _ in range(n):
        pts = rng.uniform(-1, np.asarray(shape), size=(int(rng.integers(2, 5)), 3))
        for a, b in itertools.pairwise(pts):
            t = np.linspace(0, 1, 4 * int(np.abs(b - a).max() + 2))[:, None]
            p = np.rint(a + (b - a) * t).astype(int)
            p = p[((p >= 0) & (p < np.asarray(shape))).all(1)]
            cl[tuple(p.T)] = True
    if radius == 0:
        return cl
    return ndi.distance_transform_edt(~cl) <= radius


@SETTINGS
@given(shape=st.tuples(st.integers(3, 24), st.integers(3, 24), st.integers(3, 24)),
       n=st.integers(1, 3), radius=st.sampled_from([0, 1, 1.5, 2, 2.5, 3]), seed=st.integers(0, 2**32 - 1))
def test_random_tubes_and_crossings(shape, n, radius, seed):
    same(_tubes(np.random.default_rng(seed), shape, n, radius))


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["box", "ball", "voxels"]))
def test_thick_objects_and_single_voxels(shape, seed, kind):
    rng = np.random.default_rng(seed)
    m = np.zeros(shape, bool)
    if kind == "voxels":  # isolated and touching single voxels
        m[tuple(rng.integers(0, shape, size=(int(rng.integers(1, 12)), 3)).T)] = True
    else:
        for _ in range(int(rng.integers(1, 3))):
            lo = rng.integers(0, shape)
            hi = lo + rng.integers(1, 11, size=3)
            if kind == "box":
                m[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
            else:
                c = (lo + hi) / 2
                g = np.indices(shape).reshape(3, -1).T
                m.reshape(-1)[((g - c) ** 2).sum(1) <= ((hi - lo) ** 2).sum() / 12] = True
    same(m)


# -- fixed cases -------------------------------------------------------------------
def test_empty_and_full():
    for shape in [(0, 4, 4), (1, 1, 1), (3, 4, 5), (6, 6, 6)]:
        assert not skeletonize_3d(np.zeros(shape, bool)).any()
        same(np.zeros(shape, bool))
        same(np.ones(shape, bool))  # the whole array touches its border


def test_single_voxel_and_short_line():
    m = np.zeros((5, 5, 5), bool)
    m[2, 2, 2] = True
    assert (same(m) == m).all()
    m[2, 2, :] = True  # a 1-voxel-wide line is its own skeleton
    assert (same(m) == m).all()


def test_straight_even_rod_thins_to_nothing():
    rod = np.zeros((8, 8, 30), bool)
    rod[2:6, 2:6, 2:28] = True  # 4 x 4 cross-section
    assert not same(rod).any()
    rod5 = np.zeros((9, 9, 30), bool)
    rod5[2:7, 2:7, 2:28] = True  # width 5 keeps a centreline
    assert same(rod5).sum() > 10


def test_single_slice_uses_skimage_2d_cycle():
    rng = np.random.default_rng(3)
    for _ in range(20):
        m = ndi.gaussian_filter(rng.random((1, 16, 16)), 1) > 0.5
        same(m)
        # the metric always thins with all six directions (its boxes are padded)
        np.testing.assert_array_equal(skeletonize_3d(m, n_borders=6)[0],
                                      skeletonize(np.pad(m, 1))[1:-1, 1:-1, 1:-1][0])


def test_thin_indices_matches_dense():
    rng = np.random.default_rng(7)
    m = _tubes(rng, (20, 30, 25), 3, 1.5)
    idx = thin_indices(np.flatnonzero(m), m.shape)
    assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(idx, np.flatnonzero(skeletonize(m)))
    assert thin_indices(np.zeros(0, np.int64), (3, 3, 3)).size == 0
    with pytest.raises(ValueError, match="n_borders"):
        thin_indices(idx, m.shape, n_borders=5)
    with pytest.raises(ValueError, match="3-D"):
        skeletonize_3d(np.ones((4, 4), bool))


def test_non_bool_input():
    m = np.zeros((6, 7, 8), np.uint16)
    m[1:5, 2:6, 1:7] = 7
    np.testing.assert_array_equal(skeletonize_3d(m), skeletonize(m > 0))


# -- the derived Euler table ----------------------------------------------------------
def test_euler_table_equals_lee_table_2():
    """Our geometry-derived table, read through scikit-image's octant indexing, is its table."""
    from skimage.morphology._skeletonize_lee_cy import fill_Euler_LUT

    ref = fill_Euler_LUT()
    # scikit-image numbers neighbour (dz, dy, dx) as 9 (dz+1) + 3 (dx+1) + (dy+1)
    sk_octants = [[2, 1, 11, 10, 5, 4, 14], [0, 9, 3, 12, 1, 10, 4], [8, 7, 17, 16, 5, 4, 14],
                  [6, 15, 7, 16, 3, 12, 4], [20, 23, 19, 22, 11, 14, 10], [18, 21, 9, 12, 19, 22, 10],
                  [26, 23, 17, 14, 25, 22, 16], [24, 25, 15, 16, 21, 22, 12]]

    def ours(k):  # scikit-image neighbour number -> ours (9 dz + 3 dy + dx, shifted)
        dz, rest = divmod(k, 9)
        dx, dy = divmod(rest, 3)
        return 9 * dz + 3 * dy + dx

    for members in sk_octants:
        mine = [ours(k) for k in members]
        row = next(r for r in _OCT if set(r) == set(mine))
        for n in range(128):
            present = {mine[j] for j in range(7) if n >> (6 - j) & 1}
            config = sum(1 << j for j, k in enumerate(row) if k in present)
            assert _EULER[config] == ref[(n << 1) | 1]


# -- numba cache fallback ---------------------------------------------------------------
def test_works_without_writable_numba_cache(tmp_path):
    """numba raises at decoration when ``cache=True`` finds no writable cache locator;
    the module must then compile uncached.  Forced by allowing only the user-provided
    locator while NUMBA_CACHE_DIR is unset."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["NUMBA_CACHE_LOCATOR_CLASSES"] = "UserProvidedCacheLocator"
    code = textwrap.dedent("""
        import numpy as np
        from neuroharness.metrics._skeleton import skeletonize_3d
        m = np.zeros((5, 5, 5), bool); m[2, 2, :] = True; m[2, :, 2] = True
        assert (skeletonize_3d(m) == m).all()
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
