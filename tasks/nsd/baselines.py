"""Baselines of ``nsd-encoding``: predict each vertex's response to an image from image features.

Model protocol (:class:`~neuroharness.tasks.nsd.data.EncodingSet` in, float32 arrays out)::

    model.fit(train: EncodingSet, seed: int) -> None     # train.fmri (n, V) float32
    model.predict(data: EncodingSet) -> (n, V) float32    # data.fmri is None for a scored split

Images (``EncodingSet.images``, uint8 ``(n, y, x, rgb)``, lazy) are read ``batch_size`` at a time.

- :class:`MeanResponse` (``mean-response``): every image gets each vertex's training mean; the floor.
- :class:`PixelsPcaRidge` (``pixels-pca-ridge``): images shrunk to ``size`` × ``size`` by area averaging
  (optionally grey), standardised, PCA to ``n_components``, ridge.
- :class:`AlexnetPcaRidge` (``alexnet-pca-ridge``): the devkit's recipe (:mod:`.alexnet`): AlexNet layers
  maxpool1 ... fc8 (205,672 values per image), ``StandardScaler``, ``PCA(100, random_state=20200220)``, both
  fitted on the training images only; then ridge instead of the devkit's unpenalised per-vertex
  ``LinearRegression``.
- :class:`FeaturesRidge` (``features-ridge``): the user's own features per NSD image (a file mapping
  ``nsd_id`` to a vector; CLIP/DINO-style comparisons), standardised, optionally PCA, ridge.

Every ridge is :func:`~neuroharness.tasks.nsd.ridge.ridge_cv`: all vertices at once, each with its own
penalty from the grid ``alpha_min .. alpha_max`` (``n_alphas`` values, log-spaced), chosen by
``cv_folds``-fold cross-validation on the training images, folds shuffled with the run's seed. What the fit
chose is recorded (``fitted``): ``alpha_median``, ``alpha_low_share`` / ``alpha_high_share`` (the share of
vertices at either end of the grid: a large share says the grid is too narrow), and per model the
feature facts (``n_features``, ``pca_components``, the sha256 of the weights or features file).
The PCA's ``random_state`` is fixed (``pca_random_state``, the devkit's 20200220), not the run's seed.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from neuroharness.loaders.fetch import sha256_file

from .ridge import ALPHA_MAX, ALPHA_MIN, N_ALPHAS, alpha_grid, ridge_cv

logger = logging.getLogger("neuroharness")

#: The devkit's PCA seed (``01_extract_image_features.py``).
PCA_RANDOM_STATE = 20200220
#: NSD's images are numbered 0 .. 72,999.
N_NSD_IMAGES = 73_000


def _responses(train) -> np.ndarray:
    fmri = train.fmri
    if fmri is None:
        raise ValueError(f"{train.subject}: fit needs the training responses (EncodingSet.fmri), got None")
    if fmri.ndim != 2 or fmri.shape != (len(train), train.n_vertices):
        raise ValueError(f"{train.subject}: training responses of shape {fmri.shape}, expected "
                         f"({len(train)} images, {train.n_vertices} vertices)")
    return fmri


@functools.lru_cache(maxsize=8)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def _sha256(path: Path) -> str:
    """sha256 of a file, computed once per unchanged file (weights are 233 MB; one model is fitted per subject)."""
    st = path.stat()
    return _sha256_of(str(path.resolve()), st.st_size, st.st_mtime_ns)


def image_batches(images, batch_size: int):
    """``(start, batch)`` over a lazy ``(n, y, x, 3)`` uint8 array, ``batch_size`` images at a time."""
    n = len(images)
    for i in range(0, n, batch_size):
        batch = np.asarray(images[i: i + batch_size])
        if batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype != np.uint8:
            raise ValueError(f"images {i}..{i + len(batch) - 1}: shape {batch.shape} dtype {batch.dtype}, "
                             "expected (n, y, x, 3) uint8 RGB")
        yield i, batch


class MeanResponse:
    """Each vertex's mean training response, for every image (the floor every model must beat)."""

    def __init__(self):
        self.n_parameters = 0

    def fit(self, train, seed: int) -> None:
        self._mean = _responses(train).mean(axis=0, dtype=np.float64).astype(np.float32)
        self.n_parameters = int(self._mean.size)

    def predict(self, data) -> np.ndarray:
        if data.n_vertices != self._mean.size:
            raise ValueError(f"{data.subject}: {data.n_vertices} vertices to predict, the model was fitted on "
                             f"{self._mean.size}")
        return np.tile(self._mean, (len(data), 1))


class _RidgeModel:
    """Features (the subclass's ``_fit_features`` / ``_features``) -> per-vertex CV ridge."""

    def __init__(self, alpha_min: float = ALPHA_MIN, alpha_max: float = ALPHA_MAX, n_alphas: int = N_ALPHAS,
                 cv_folds: int = 5):
        self.alpha_min, self.alpha_max, self.n_alphas, self.cv_folds = float(alpha_min), float(alpha_max), \
            int(n_alphas), int(cv_folds)
        from neuroharness.errors import UsageError

        try:
            alpha_grid(self.alpha_min, self.alpha_max, self.n_alphas)  # refuse a bad grid when the model is built
        except ValueError as e:
            raise UsageError(str(e)) from None
        if self.cv_folds < 2:
            raise UsageError(f"cv_folds={cv_folds}: need at least 2 folds")
        self.n_parameters = 0

    def _fit_features(self, train, seed: int) -> np.ndarray:
        raise NotImplementedError

    def _features(self, data) -> np.ndarray:
        raise NotImplementedError

    def fit(self, train, seed: int) -> None:
        Y = _responses(train)
        X = self._fit_features(train, seed)
        grid = alpha_grid(self.alpha_min, self.alpha_max, self.n_alphas)
        self._ridge = ridge_cv(X, Y, grid, folds=self.cv_folds, seed=int(seed))
        chosen = self._ridge.alphas
        self.alpha_median = float(np.median(chosen))
        self.alpha_low_share = float(np.mean(chosen == grid[0]))
        self.alpha_high_share = float(np.mean(chosen == grid[-1]))
        self.n_parameters = self._ridge.n_parameters

    def predict(self, data) -> np.ndarray:
        if data.n_vertices != self._ridge.coef.shape[1]:
            raise ValueError(f"{data.subject}: {data.n_vertices} vertices to predict, the model was fitted on "
                             f"{self._ridge.coef.shape[1]}")
        return self._ridge.predict(self._features(data))


def _scratch_array(stack: contextlib.ExitStack, shape: tuple, scratch_dir: str | None, subject: str) -> np.ndarray:
    """A float32 array in a temporary file (removed when ``stack`` closes), its disk space reserved up front:
    a memory map whose disk fills up kills the process (SIGBUS) instead of raising."""
    from neuroharness.progress import status

    size = int(np.prod(shape)) * 4
    try:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="neuroharness-alexnet-", dir=scratch_dir)))
        path = tmp / "features.f32"
        with open(path, "wb") as f:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(f.fileno(), 0, size)
            else:
                f.truncate(size)
    except OSError as e:
        from neuroharness.errors import NeuroharnessError

        raise NeuroharnessError(f"{subject}: cannot reserve {size / 1e9:.1f} GB for the AlexNet features of the "
                                f"training images in {scratch_dir or tempfile.gettempdir()} ({e}); pass "
                                f"scratch_dir=A_FOLDER_WITH_SPACE, or "
                                f"memory_gb={size / 1024**3 + 0.5:.0f} to keep them in memory") from None
    status(f"{subject}: AlexNet features of {shape[0]} training images ({size / 1e9:.1f} GB) go to {path}")
    return np.memmap(path, dtype=np.float32, mode="r+", shape=shape)


def _pca(n_components: int, n_rows: int, n_cols: int, random_state: int):
    """A PCA with ``n_components`` capped by the data (logged when capped)."""
    from sklearn.decomposition import PCA

    k = min(int(n_components), n_rows, n_cols)
    if k < n_components:
        logger.warning("PCA: %d components asked, only %d possible on %d images x %d features; using %d",
                       n_components, k, n_rows, n_cols, k)
    return PCA(n_components=k, random_state=random_state, copy=False)


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` averaging matrix of area resampling: output pixel ``i`` is the mean of the input over
    ``[i, i + 1) · n_in / n_out``, boundary pixels weighted by their overlap (OpenCV's INTER_AREA)."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    k = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, k + 1) - np.maximum(lo, k), 0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


class PixelsPcaRidge(_RidgeModel):
    """Pixels: images area-averaged to ``size`` × ``size`` (RGB, or grey with ``grayscale``), standardised,
    PCA to ``n_components``, per-vertex CV ridge."""

    def __init__(self, size: int = 32, grayscale: bool = False, n_components: int = 100,
                 pca_random_state: int = PCA_RANDOM_STATE, batch_size: int = 64, **ridge):
        super().__init__(**ridge)
        if int(size) < 1:
            from neuroharness.errors import UsageError

            raise UsageError(f"size={size}: need at least 1 pixel")
        self.size, self.grayscale, self.n_components = int(size), bool(grayscale), int(n_components)
        self.pca_random_state, self.batch_size = int(pca_random_state), int(batch_size)

    def _pixels(self, data) -> np.ndarray:
        out = None
        for i, batch in image_batches(data.images, self.batch_size):
            ry = area_weights(batch.shape[1], self.size).astype(np.float32)
            rx = area_weights(batch.shape[2], self.size).astype(np.float32)
            small = np.einsum("yh,bhwc,xw->byxc", ry, batch.astype(np.float32), rx, optimize=True)
            if self.grayscale:
                small = small @ np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma, as PIL's "L"
            small = small.reshape(len(batch), -1)
            if out is None:
                out = np.empty((len(data), small.shape[1]), np.float32)
            out[i: i + len(batch)] = small
        return out

    def _fit_features(self, train, seed):
        from sklearn.preprocessing import StandardScaler

        X = self._pixels(train)
        self._scaler = StandardScaler().fit(X)
        self._pca = _pca(self.n_components, *X.shape, self.pca_random_state)
        out = self._pca.fit_transform(self._scaler.transform(X))
        self.n_features, self.pca_components = int(X.shape[1]), int(self._pca.n_components_)
        return out

    def _features(self, data):
        return self._pca.transform(self._scaler.transform(self._pixels(data)))


class AlexnetPcaRidge(_RidgeModel):
    """The devkit baseline: AlexNet layers maxpool1..fc8 (205,672 values) -> StandardScaler -> PCA(100,
    random_state=20200220), fitted on the training images, -> per-vertex CV ridge.

    ``weights``: torchvision's ``alexnet-owt-7be5be79.pth``; unset, the copy in the torch hub cache
    (never downloaded; see :mod:`.alexnet`). ``batch_size`` images go through the network at a time.
    ``torch_threads``: torch's CPU threads during the forward passes (0: leave torch's setting). Features
    are bit-identical from run to run at a fixed thread count and ``batch_size`` (another batch size changes
    their last bits).

    The training features (n × 205,672 float32: 8.1 GB for 9,841 images) are held in memory when they take
    at most ``memory_gb``, else in a temporary file under ``scratch_dir`` (default: the system's temporary
    folder; its space is reserved before the network runs, and the fit stops with an error if it is not
    there), removed when the fit ends: the standardisation and the randomized PCA (sklearn's, with the
    devkit's settings) then read it through a memory map, some 20 passes; keep it on a fast disk."""

    def __init__(self, weights: str | None = None, batch_size: int = 32, n_components: int = 100,
                 pca_random_state: int = PCA_RANDOM_STATE, torch_threads: int = 0, memory_gb: float = 2.0,
                 scratch_dir: str | None = None, **ridge):
        super().__init__(**ridge)
        self.weights = None if weights in (None, "") else str(weights)
        self.batch_size, self.n_components, self.pca_random_state = int(batch_size), int(n_components), \
            int(pca_random_state)
        self.torch_threads, self.memory_gb = int(torch_threads), float(memory_gb)
        self.scratch_dir = None if scratch_dir in (None, "") else str(scratch_dir)

    def _network(self):
        from . import alexnet

        path = alexnet.resolve_weights(self.weights)
        digest = _sha256(path)
        if self.weights is None and not digest.startswith(alexnet.WEIGHTS_SHA256_PREFIX):
            from neuroharness.errors import ChecksumError

            raise ChecksumError(f"AlexNet weights {path}: sha256 {digest} does not start with "
                                f"{alexnet.WEIGHTS_SHA256_PREFIX} as its name says (a damaged download?); delete "
                                f"it and fetch it again: {alexnet.HOW_TO_GET}")
        if getattr(self, "weights_sha256", digest) != digest:
            raise ValueError(f"AlexNet weights {path} changed since the fit (sha256 {self.weights_sha256} then, "
                             f"{digest} now)")
        self.weights_sha256 = digest
        return alexnet.network(path)

    def _extract(self, data, net, sink) -> None:
        """Features of every image of ``data``, in batches, handed to ``sink(start, features)``."""
        import torch

        from neuroharness.progress import progress_bar

        from .alexnet import image_features

        threads = torch.get_num_threads()
        if self.torch_threads > 0:
            torch.set_num_threads(self.torch_threads)
        try:
            with progress_bar(total=len(data), desc=f"{data.subject} AlexNet features", unit="image") as bar:
                for i, batch in image_batches(data.images, self.batch_size):
                    sink(i, image_features(net, batch))
                    bar.update(len(batch))
        finally:
            torch.set_num_threads(threads)

    def _fit_features(self, train, seed):
        from sklearn.preprocessing import StandardScaler

        from neuroharness.progress import status

        from .alexnet import N_FEATURES

        net = self._network()
        n = len(train)
        scaler = StandardScaler()
        with contextlib.ExitStack() as stack:
            if n * N_FEATURES * 4 <= self.memory_gb * 1024**3:
                feats = np.empty((n, N_FEATURES), np.float32)
            else:
                feats = _scratch_array(stack, (n, N_FEATURES), self.scratch_dir, train.subject)

            def sink(i, f):
                feats[i: i + len(f)] = f
                scaler.partial_fit(f)

            self._extract(train, net, sink)
            for i in range(0, n, 1024):  # standardise in place, a slab at a time
                feats[i: i + 1024] = scaler.transform(feats[i: i + 1024])
            pca = _pca(self.n_components, n, N_FEATURES, self.pca_random_state)
            status(f"{train.subject}: PCA({pca.n_components}) of {n} x {N_FEATURES:,} AlexNet features")
            X = pca.fit_transform(feats)  # copy=False: the randomized solver centres `feats` in place
            del feats, sink
        self._scaler, self._pca = scaler, pca
        self.n_features, self.pca_components = N_FEATURES, int(pca.n_components_)
        return X

    def _features(self, data):
        net = self._network()
        out = np.empty((len(data), self.pca_components), np.float32)

        def sink(i, f):
            out[i: i + len(f)] = self._pca.transform(self._scaler.transform(f))

        self._extract(data, net, sink)
        return out


class FeaturesRidge(_RidgeModel):
    """Your own image features -> StandardScaler -> (PCA to ``n_components`` if > 0) -> per-vertex CV ridge.

    ``features``: an ``.npz`` with arrays ``nsd_id`` (m,) integer and ``features`` (m, d) numbers, or a
    ``.parquet`` table with an integer column ``nsd_id`` and one numeric column per feature. One row per NSD
    image (0-based NSD index, 0..72,999; a row per image of every subject you run is enough). Read with the
    checks applied to submissions (no pickles whatever the name, size limit from the headers before
    anything is loaded); ids must be unique and values finite; every training image and every image to
    predict must have a row. The file is read at fit and again at predict (its sha256 is recorded and
    must not change in between)."""

    def __init__(self, features: str | None = None, n_components: int = 0,
                 pca_random_state: int = PCA_RANDOM_STATE, **ridge):
        super().__init__(**ridge)
        self.features = None if features in (None, "") else str(features)
        self.n_components, self.pca_random_state = int(n_components), int(pca_random_state)

    def _rows(self, data, what: str) -> np.ndarray:
        from neuroharness.errors import UsageError

        if self.features is None:
            # refused at fit, not when built, so that listing or building every model of the card works
            raise UsageError("features-ridge needs `features`: the path of your features file (.npz with arrays "
                             "nsd_id (m,) and features (m, d), or .parquet with a column nsd_id and one column "
                             "per feature); e.g. --hyperparameter features=/path/clip_features.npz")
        path = Path(self.features).expanduser()
        ids, values = read_features(path)
        digest = _sha256(path)
        if getattr(self, "features_sha256", digest) != digest:
            raise ValueError(f"features file {path} changed since the fit (sha256 {self.features_sha256} then, "
                             f"{digest} now)")
        self.features_sha256 = digest
        order = np.argsort(ids, kind="stable")
        wanted = np.asarray(data.nsd_id, dtype=np.int64)
        pos = np.searchsorted(ids[order], wanted).clip(0, len(ids) - 1)
        found = ids[order][pos] == wanted
        if not found.all():
            missing = np.unique(wanted[~found])
            from neuroharness.errors import DataFormatError

            raise DataFormatError(f"features file {path}: no row for {len(missing)} of the {len(wanted)} {what} of "
                                  f"{data.subject} (nsd_id {', '.join(map(str, missing[:10]))}"
                                  f"{', ...' if len(missing) > 10 else ''}); add their features")
        return values[order[pos]]

    def _fit_features(self, train, seed):
        from sklearn.preprocessing import StandardScaler

        X = self._rows(train, "training images")
        self._scaler = StandardScaler().fit(X)
        X = self._scaler.transform(X)
        self._pca = None
        if self.n_components > 0:
            self._pca = _pca(self.n_components, *X.shape, self.pca_random_state)
            X = self._pca.fit_transform(X)
        self.n_features = int(self._scaler.n_features_in_)
        self.pca_components = int(self._pca.n_components_) if self._pca is not None else 0
        return X

    def _features(self, data):
        X = self._scaler.transform(self._rows(data, "images to predict"))
        return X if self._pca is None else self._pca.transform(X)


def read_features(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(nsd_id (m,) int64, features (m, d) float32)`` of a features file, checked (see :class:`FeaturesRidge`).

    Every problem is a :class:`~neuroharness.errors.DataFormatError` naming the file and what is wrong."""
    from neuroharness.errors import DataFormatError, SubmissionError

    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"features file {path}: not found (the `features` hyperparameter of features-ridge)")
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".parquet"):
        raise DataFormatError(f"features file {path}: unsupported format {suffix!r}; use .npz (arrays nsd_id and "
                              "features) or .parquet (column nsd_id and one column per feature)")
    try:
        ids, values = _read_npz(path) if suffix == ".npz" else _read_parquet(path)
    except SubmissionError as e:
        raise DataFormatError(f"features file: {e}") from None
    if ids.dtype.kind not in "iu":
        raise DataFormatError(f"features file {path}: nsd_id has dtype {ids.dtype}, expected integers (0-based NSD "
                              "image indices)")
    if values.dtype.kind not in "iuf":
        raise DataFormatError(f"features file {path}: features have dtype {values.dtype}, expected numbers")
    if ids.ndim != 1 or values.ndim != 2 or len(ids) != len(values) or values.shape[1] == 0 or len(ids) == 0:
        raise DataFormatError(f"features file {path}: nsd_id of shape {ids.shape} and features of shape "
                              f"{values.shape}; expected (m,) and (m, d) with m, d >= 1")
    ids = ids.astype(np.int64)
    bad = np.flatnonzero((ids < 0) | (ids >= N_NSD_IMAGES))
    if bad.size:
        raise DataFormatError(f"features file {path}: row {bad[0]} has nsd_id {ids[bad[0]]}, outside 0..72999 "
                              "(0-based NSD image indices)")
    order = np.argsort(ids, kind="stable")
    dup = np.flatnonzero(np.diff(ids[order]) == 0)
    if dup.size:
        a, b = sorted(order[dup[0]: dup[0] + 2])
        raise DataFormatError(f"features file {path}: nsd_id {ids[a]} appears twice (rows {a} and {b}); expected "
                              "one row per image")
    values = values.astype(np.float32)
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        r = int(np.flatnonzero(~finite)[0])
        raise DataFormatError(f"features file {path}: row {r} (nsd_id {ids[r]}) holds NaN or infinite values; "
                              "expected finite features")
    return ids, values


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import zipfile

    from neuroharness.errors import DataFormatError

    from ..submission import npz_headers, read_npy_member, refuse_pickle

    refuse_pickle(path)
    try:
        with zipfile.ZipFile(path) as zf:
            headers = npz_headers(path, zf, what="array")
            missing = [k for k in ("nsd_id", "features") if k not in headers]
            if missing:
                raise DataFormatError(f"features file {path}: no array {' or '.join(map(repr, missing))}; found "
                                      f"{sorted(headers)}; expected nsd_id (m,) and features (m, d)")
            for k in ("nsd_id", "features"):
                if headers[k][2].hasobject:
                    raise DataFormatError(f"features file {path}: array {k!r} has dtype object (a pickle); "
                                          "expected numbers")
            return tuple(read_npy_member(path, zf, headers[k][0], k) for k in ("nsd_id", "features"))
    except zipfile.BadZipFile as e:
        raise DataFormatError(f"features file {path}: not an .npz (zip) archive ({e})") from None


def _read_parquet(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from neuroharness.errors import DataFormatError

    from ..submission import read_table

    table = read_table(path)
    if "nsd_id" not in table.columns:
        raise DataFormatError(f"features file {path}: no column 'nsd_id'; found {list(table.columns)[:10]}")
    cols = [c for c in table.columns if c != "nsd_id"]
    if not cols:
        raise DataFormatError(f"features file {path}: no feature columns besides nsd_id")
    bad = [c for c in cols if table[c].dtype.kind not in "iuf"]
    if bad:
        raise DataFormatError(f"features file {path}: column {bad[0]!r} has dtype {table[bad[0]].dtype}, expected "
                              "numbers (one numeric column per feature)")
    return table["nsd_id"].to_numpy(), table[cols].to_numpy()
