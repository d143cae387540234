"""Ridge regression of every vertex at once, each with its own penalty chosen by K-fold cross-validation.

The encoding baselines regress ``V`` responses (about 40,000 vertices per subject) on ``p`` image features
(100 principal components). Per vertex, the penalty ``alpha`` is the grid value with the best mean
validation score over the folds, the score of a fold being minus the mean squared error of its validation
rows (himalaya's ``RidgeCV`` criterion, with its tie-break towards larger alphas); then every vertex is
refitted on all rows with its alpha. An intercept is always fitted: features and responses are centred by
the training rows of each fold (and by all rows for the refit), which is the same as not penalising it.

How (:func:`ridge_cv`): nothing per alpha or per vertex is a prediction matrix. For a fold with centred
training features ``Xt = U S Vᵀ`` (``S``, ``V`` from the ``p × p`` matrix ``Xtᵀ Xt``) and centred
validation features ``Xv``, the coefficients of vertex ``j`` for ``alpha`` are ``V c`` with
``c = Vᵀ Xtᵀ yt / (s² + alpha)``, and its validation error is
``|yv|² - 2 (Vᵀ Xvᵀ yv)·c + cᵀ (Vᵀ Xvᵀ Xv V) c``: one ``p × V`` product ``Xvᵀ Yv`` per fold (the training
one is the total minus it) and one ``p × p`` by ``p × (alphas · V)`` product per fold. Vertices go in column
blocks of ``block``; memory is the responses plus a few blocks. Scores are summed in float64.

Why our own code and not ``himalaya.ridge.RidgeCV`` (kept as :func:`himalaya_ridge_cv`, the reference the
tests and the benchmark compare against): per fold, himalaya predicts every validation row for every alpha
and vertex (an ``alphas × validation × training rows`` matrix, then times the training responses), which
suits a GPU; on a CPU it is far slower. Measured at the real size of one subject (9,841 images × 100
features, 39,548 vertices, float32 responses, 5 folds, the 21 default alphas, 2 BLAS threads, on a shared
2-core machine with other jobs running; ``tests/benchmarks/test_bench_nsd_ridge.py``): :func:`ridge_cv`
fit + predict 5.3 s (min of 3; median 7.6 s, up to 15 s under heavier load), peak RSS 2.1 GB of which
1.6 GB are the inputs; himalaya ``RidgeCV`` (numpy backend, float32, ``n_targets_batch=2000``) about
1,300-1,400 s (extrapolated from runs on 2,000 and 4,000 vertices), about 180 times slower. The two
choose the same alpha for 99.9-100 % of the vertices in float32 (near-ties apart) and for all of them in
float64, where predictions agree to 1e-5 relative
(``tests/test_nsd_baselines.py::test_ridge_cv_agrees_with_himalaya``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Default penalty grid: 10^-2 .. 10^8, half a decade apart. The top matters: the principal components of
#: standardised AlexNet features (total variance 205,672) have variances of order 10^4, so n·var reaches
#: ~10^8 on 9,841 images, and a
#: noisy vertex wants alpha of that order before its weights shrink.
ALPHA_MIN, ALPHA_MAX, N_ALPHAS = 1e-2, 1e8, 21
#: Vertices per column block in :func:`ridge_cv` (2048 × n float32 responses: 80 MB at 9,841 images).
BLOCK = 2048


def alpha_grid(alpha_min: float = ALPHA_MIN, alpha_max: float = ALPHA_MAX, n_alphas: int = N_ALPHAS) -> np.ndarray:
    """``n_alphas`` penalties spaced evenly in log between ``alpha_min`` and ``alpha_max`` (both > 0)."""
    if not (alpha_min > 0 and alpha_max >= alpha_min and np.isfinite(alpha_max)):
        raise ValueError(f"alpha grid: need 0 < alpha_min <= alpha_max < inf, got alpha_min={alpha_min}, "
                         f"alpha_max={alpha_max}")
    if int(n_alphas) < 1 or (int(n_alphas) == 1 and alpha_min != alpha_max):
        raise ValueError(f"alpha grid: n_alphas={n_alphas}: need at least 1 (and 1 only when alpha_min == alpha_max)")
    return np.logspace(np.log10(alpha_min), np.log10(alpha_max), int(n_alphas))


def kfold(n: int, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, validation)`` row indices of ``folds`` shuffled folds (scikit-learn's ``KFold`` with
    ``shuffle=True, random_state=seed``, so himalaya and scikit-learn can be given the same folds)."""
    from sklearn.model_selection import KFold

    if folds < 2 or folds > n:
        raise ValueError(f"cross-validation: {folds} folds need 2 <= folds <= the {n} training rows")
    return list(KFold(folds, shuffle=True, random_state=seed).split(np.arange(n)))


@dataclass
class RidgeFit:
    """A fitted multi-target ridge: ``predict(X) = X @ coef + intercept``.

    ``alphas`` (V,) is each target's penalty; ``cv_scores`` (V,) its mean validation score (minus the mean
    squared error) at that penalty, NaN when the penalty was given rather than chosen."""

    coef: np.ndarray        # (p, V) float32
    intercept: np.ndarray   # (V,) float32
    alphas: np.ndarray      # (V,) float64
    cv_scores: np.ndarray   # (V,) float64

    def predict(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.coef.shape[0]:
            raise ValueError(f"ridge predict: features of shape {X.shape}, expected (n, {self.coef.shape[0]})")
        out = X @ self.coef
        out += self.intercept
        return out

    @property
    def n_parameters(self) -> int:
        return int(self.coef.size + self.intercept.size)


def _check(X, Y) -> tuple[np.ndarray, object]:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or getattr(Y, "ndim", 0) != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"ridge: features {X.shape} and responses {getattr(Y, 'shape', None)} must be 2-D with "
                         "one row per image")
    if X.shape[0] < 2:
        raise ValueError(f"ridge: {X.shape[0]} training row(s); need at least 2")
    if not np.isfinite(X).all():
        raise ValueError("ridge: the features hold NaN or infinite values")
    return X, Y


def _block(Y, j0: int, j1: int, rows, out: np.ndarray) -> np.ndarray:
    """Columns ``j0:j1`` of ``Y``, rows ``rows`` in that order, written into ``out`` (a reused
    ``(n, >= j1 - j0)`` buffer whose dtype is the working precision)."""
    out = out[:, : j1 - j0]
    part = Y[:, j0:j1]
    if isinstance(part, np.ndarray) and part.dtype == out.dtype:
        np.take(part, rows, axis=0, out=out)
    else:
        np.copyto(out, np.asarray(part)[rows])
    if not np.isfinite(out).all():
        raise ValueError(f"ridge: the responses of columns {j0}..{j1 - 1} hold NaN or infinite values")
    return out


def _svd(Xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(s², Vᵀ)``: squared singular values and right singular vectors of a centred design, from the
    eigendecomposition of ``Xcᵀ Xc`` when ``p <= n`` (squaring the condition number is harmless here: every
    alpha > 0 is added to ``s²``, and ``p × p`` is far cheaper than an ``n × p`` SVD), else its thin SVD."""
    n, p = Xc.shape
    if p <= n:
        w, v = np.linalg.eigh(Xc.T @ Xc)
        return np.clip(w[::-1], 0, None), v[:, ::-1].T
    _, s, vt = np.linalg.svd(Xc, full_matrices=False)
    return s * s, vt


def ridge(X, Y, alpha, block: int = BLOCK) -> RidgeFit:
    """Ridge with intercept and a given penalty: ``alpha`` a number or one per target (V,).

    Per target ``j``: ``coef_j = (Xcᵀ Xc + alpha_j I)⁻¹ Xcᵀ (y_j - ȳ_j)`` with ``Xc`` the centred features,
    ``intercept_j = ȳ_j - x̄ · coef_j``."""
    X, Y = _check(X, Y)
    n, p = X.shape
    V = Y.shape[1]
    alphas = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (V,)).copy()
    if not (alphas > 0).all() or not np.isfinite(alphas).all():
        raise ValueError("ridge: every alpha must be a finite number > 0")
    mx = X.mean(0)
    Xc = X - mx
    s2, vt = _svd(Xc)
    coef = np.empty((p, V), np.float32)
    intercept = np.empty(V, np.float32)
    for j0 in range(0, V, block):
        j1 = min(V, j0 + block)
        Yb = np.asarray(Y[:, j0:j1], dtype=np.float64)
        if not np.isfinite(Yb).all():
            raise ValueError(f"ridge: the responses of columns {j0}..{j1 - 1} hold NaN or infinite values")
        my = Yb.mean(0)
        c = (vt @ (Xc.T @ Yb)) / (s2[:, None] + alphas[None, j0:j1])
        w = vt.T @ c
        coef[:, j0:j1] = w
        intercept[j0:j1] = my - mx @ w
    return RidgeFit(coef, intercept, alphas, np.full(V, np.nan))


def ridge_cv(X, Y, alphas=None, folds: int = 5, seed: int = 0, block: int = BLOCK) -> RidgeFit:
    """Ridge with intercept, one penalty per target chosen among ``alphas`` by ``folds``-fold CV (seeded).

    ``X`` (n, p) features, ``Y`` (n, V) responses, read a column block at a time (never copied whole; a
    memmap works). See the module docstring for the criterion and the algebra. The two large products per
    block (``Xvᵀ Yv`` and the penalty-grid product) run in the precision of ``Y``: float32 responses give
    float32 products (half the memory traffic; the chosen penalties then match a float64 fit on all but
    near-ties), everything else is float64."""
    X, Y = _check(X, Y)
    alphas = alpha_grid() if alphas is None else np.asarray(alphas, dtype=np.float64).ravel()
    if alphas.size == 0 or not (alphas > 0).all() or not np.isfinite(alphas).all():
        raise ValueError("ridge_cv: alphas must be finite numbers > 0")
    work = np.float32 if np.dtype(Y.dtype) == np.float32 else np.float64
    n, p = X.shape
    V = Y.shape[1]
    splits = kfold(n, folds, seed)
    # rows ordered fold by fold, so each fold's validation rows are one contiguous slice of a block
    order = np.concatenate([val for _, val in splits])
    bounds = np.cumsum([0] + [len(val) for _, val in splits])
    Xo = X[order]
    prep = []
    for f in range(folds):
        sl = slice(bounds[f], bounds[f + 1])
        tr = np.ones(n, bool)
        tr[sl] = False
        mx_tr = Xo[tr].mean(0)
        s2, vt = _svd(Xo[tr] - mx_tr)
        xv = Xo[sl] - mx_tr
        h = vt @ (xv.T @ xv) @ vt.T
        inv = 1.0 / (s2[:, None] + alphas[None, :])  # (r, n_alphas)
        prep.append((sl, int(tr.sum()), mx_tr, vt, xv.sum(0), h.astype(work), inv, np.ascontiguousarray(Xo[sl].T,
                                                                                                           work)))
    mx = X.mean(0)
    s2_all, vt_all = _svd(X - mx)
    # himalaya's tie-break: among equal mean scores prefer the larger alpha
    tie = np.log(alphas) * 1e-10
    coef = np.empty((p, V), np.float32)
    intercept = np.empty(V, np.float32)
    best = np.empty(V, np.float64)
    best_score = np.empty(V, np.float64)
    buf = np.empty((n, min(block, V)), work)
    for j0 in range(0, V, block):
        j1 = min(V, j0 + block)
        Yb = _block(Y, j0, j1, rows=order, out=buf)
        mu = Yb.mean(0, dtype=np.float64)
        Yb -= mu.astype(work)  # a shift of the responses changes only the intercepts; it avoids cancellation below
        xty_v = [(xvt @ Yb[sl]).astype(np.float64) for sl, *_, xvt in prep]   # Xvᵀ Yv per fold, (p, c)
        xty = np.sum(xty_v, axis=0)
        sy_v = [Yb[f[0]].sum(0, dtype=np.float64) for f in prep]
        sy = np.sum(sy_v, axis=0)
        scores = np.zeros((len(alphas), j1 - j0))
        for (sl, n_tr, mx_tr, vt, sxv, h, inv, _), b_v, s_v in zip(prep, xty_v, sy_v):
            n_v = sl.stop - sl.start
            my_tr = (sy - s_v) / n_tr
            r = vt @ (xty - b_v - np.outer(mx_tr, sy - s_v))                # Vᵀ Xtᵀ Yt (centred)
            g = vt @ (b_v - np.outer(mx_tr, s_v) - np.outer(sxv, my_tr))     # Vᵀ Xvᵀ (Yv - ȳt), Xv centred by x̄t
            yy = np.einsum("ij,ij->j", Yb[sl], Yb[sl], dtype=np.float64) - 2 * my_tr * s_v + n_v * my_tr**2
            # every alpha at once: c[:, a, j] = r[:, j] / (s² + alpha_a); |Yv - ȳt - Xv c|² = yy - 2 g·c + cᵀHc
            c = (r[:, None, :] * inv[:, :, None]).astype(work)
            hc = (h @ c.reshape(len(inv), -1)).reshape(c.shape)
            sse = yy - 2 * (inv.T @ (g * r)) + np.einsum("kaj,kaj->aj", c, hc)
            scores -= sse / n_v
        scores /= len(prep)
        pick = np.argmax(scores + tie[:, None], axis=0)
        cols = np.arange(j1 - j0)
        best[j0:j1] = alphas[pick]
        best_score[j0:j1] = scores[pick, cols]
        c = (vt_all @ (xty - np.outer(mx, sy))) / (s2_all[:, None] + alphas[pick][None, :])
        w = vt_all.T @ c
        coef[:, j0:j1] = w
        intercept[j0:j1] = mu + sy / n - mx @ w
    return RidgeFit(coef, intercept, best, best_score)


def himalaya_ridge_cv(X, Y, alphas=None, folds: int = 5, seed: int = 0, n_targets_batch: int | None = 2000) -> RidgeFit:
    """The same fit through ``himalaya.ridge.RidgeCV`` (numpy backend, the dtype of ``X``), on the folds of
    :func:`kfold`: the reference :func:`ridge_cv` is tested and benchmarked against."""
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV

    set_backend("numpy", on_error="raise")
    X = np.asarray(X)
    alphas = alpha_grid() if alphas is None else np.asarray(alphas, dtype=np.float64).ravel()
    model = RidgeCV(alphas=alphas.astype(X.dtype), fit_intercept=True, cv=kfold(len(X), folds, seed),
                    solver_params={"n_targets_batch": n_targets_batch, "n_targets_batch_refit": n_targets_batch})
    model.fit(X, np.asarray(Y, dtype=X.dtype))
    return RidgeFit(np.asarray(model.coef_, np.float32), np.asarray(model.intercept_, np.float32),
                    np.asarray(model.best_alphas_, np.float64), np.asarray(model.cv_scores_, np.float64))
