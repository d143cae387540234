"""Baselines of ``eeg-schizophrenia`` (:class:`~neuroharness.tasks.protocols.WindowClassifier`): window in,
probability of "patient" out; the task averages them per subject.

- :class:`Majority`: the floor, the training share of patient subjects for every window.
- :class:`BandpowerLogreg`: relative band power per channel (Welch, MNE) -> log10 -> standardize ->
  logistic regression.
- :class:`TangentSpaceLogreg`: spatial covariance (OAS shrinkage) -> Riemannian tangent space
  (pyriemann) -> logistic regression.

The convolutional network is in :mod:`.shallow`. Imports of MNE, pyriemann and scikit-learn happen
inside the methods, so building a model (``tasks info``, protocol checks) stays light.
"""
from __future__ import annotations

import numpy as np

from .data import EegInfo

__all__ = ["Majority", "BandpowerLogreg", "TangentSpaceLogreg", "BANDS", "band_power_features"]

#: Frequency bands (Hz, lower edge included, upper excluded) and the total band they are relative to.
BANDS = {"delta": (1.0, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0), "gamma": (30.0, 45.0)}
TOTAL = (1.0, 45.0)
#: Volts -> microvolts before covariance estimation (keeps eigenvalues far from float64's floor).
MICROVOLTS = 1e6


def _check_fit(X, y, groups) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X)
    y = np.asarray(y).astype(np.int64)
    if X.ndim != 3 or len(X) != len(y) or len(groups) != len(y):
        raise ValueError(f"expected X (n, channels, times), y (n,), groups (n,); got {X.shape}, {y.shape}, "
                         f"{np.shape(groups)}")
    if set(np.unique(y)) != {0, 1}:
        raise ValueError(f"the training windows need both labels 0 and 1; got {sorted(set(np.unique(y).tolist()))}")
    return X, y


class Majority:
    """Every window gets the share of patients among the training SUBJECTS (not windows), so every subject is
    called the training majority: balanced accuracy 0.5, ROC-AUC 0.5."""

    def __init__(self):
        self.n_parameters = 1

    def fit(self, X, y, groups, info: EegInfo, seed: int):
        y = np.asarray(y).astype(np.int64)
        subjects = np.asarray(groups).astype(str)
        _, first = np.unique(subjects, return_index=True)
        self.prevalence_ = float(y[first].mean())
        return self

    def predict_proba(self, X) -> np.ndarray:
        return np.full(len(X), self.prevalence_, dtype=np.float64)


def band_power_features(X: np.ndarray, sfreq: float, segment_s: float = 2.0) -> np.ndarray:
    """(n, n_channels * 5) log10 relative band power (delta..gamma over 1-45 Hz), channel-major.

    Welch's PSD (``mne.time_frequency.psd_array_welch``): segments of ``segment_s`` (at most the window),
    half overlapping, Hann window; band power = sum of the PSD bins in [low, high)."""
    from mne.time_frequency import psd_array_welch

    X = np.asarray(X)
    n_per_seg = int(min(X.shape[-1], round(segment_s * sfreq)))
    psd, freqs = psd_array_welch(X, sfreq, fmin=TOTAL[0], fmax=TOTAL[1], n_fft=n_per_seg, n_per_seg=n_per_seg,
                                 n_overlap=n_per_seg // 2, n_jobs=1, verbose=False)
    total_mask = (freqs >= TOTAL[0]) & (freqs < TOTAL[1])
    total = psd[..., total_mask].sum(axis=-1)
    tiny = np.finfo(np.float64).tiny
    bands = [psd[..., (freqs >= lo) & (freqs < hi)].sum(axis=-1) for lo, hi in BANDS.values()]
    rel = np.stack(bands, axis=-1) / np.maximum(total, tiny)[..., None]
    return np.log10(np.maximum(rel, tiny)).reshape(len(X), -1)


class _Logreg:
    """Shared fit/predict: features(X) -> StandardScaler -> LogisticRegression(C, lbfgs)."""

    def __init__(self, C: float = 1.0, max_iter: int = 1000):
        self.C = float(C)
        self.max_iter = int(max_iter)

    def _features(self, X: np.ndarray, fit: bool) -> np.ndarray:
        raise NotImplementedError

    def fit(self, X, y, groups, info: EegInfo, seed: int):
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        X, y = _check_fit(X, y, groups)
        self._sfreq = float(info.sfreq)
        F = self._features(X, fit=True)
        self.scaler_ = StandardScaler().fit(F)
        self.clf_ = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=int(seed))
        self.clf_.fit(self.scaler_.transform(F), y)
        self.n_parameters = int(self.clf_.coef_.size + self.clf_.intercept_.size)
        return self

    def predict_proba(self, X) -> np.ndarray:
        F = self.scaler_.transform(self._features(np.asarray(X), fit=False))
        return self.clf_.predict_proba(F)[:, list(self.clf_.classes_).index(1)].astype(np.float64)


class BandpowerLogreg(_Logreg):
    """log10 relative band power (delta, theta, alpha, beta, gamma) per channel -> standardize -> logistic
    regression. ``segment_s``: Welch segment length in seconds."""

    def __init__(self, C: float = 1.0, segment_s: float = 2.0, max_iter: int = 1000):
        super().__init__(C, max_iter)
        self.segment_s = float(segment_s)

    def _features(self, X, fit):
        return band_power_features(X, self._sfreq, self.segment_s)


class TangentSpaceLogreg(_Logreg):
    """Spatial covariance per window (``pyriemann.estimation.Covariances("oas")``, in microvolts) -> tangent
    space at the Riemannian mean of the training covariances (``pyriemann.tangentspace.TangentSpace("riemann")``)
    -> standardize -> logistic regression."""

    def __init__(self, C: float = 1.0, estimator: str = "oas", metric: str = "riemann", max_iter: int = 1000):
        super().__init__(C, max_iter)
        self.estimator = str(estimator)
        self.metric = str(metric)

    def _features(self, X, fit):
        from pyriemann.estimation import Covariances
        from pyriemann.tangentspace import TangentSpace

        covs = Covariances(estimator=self.estimator).transform(np.asarray(X, dtype=np.float64) * MICROVOLTS)
        if fit:
            self.tangent_ = TangentSpace(metric=self.metric).fit(covs)
        return self.tangent_.transform(covs)
