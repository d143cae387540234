"""What the ``eeg-schizophrenia`` task reads and what its models see: windows per subject.

:class:`EegData` is the data view: the scored subjects (label, fold, window count), their
windows (:class:`~.windows.Windows`, arrays read once per recording), for cross-site the
training site's windows, the folds, and :class:`EegInfo` (rate, channel names).
:class:`EegTrainingView` gives a model exactly one fold's training windows.
Kept apart from the task module so that baselines import it without the task.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .windows import Windows

__all__ = ["EegInfo", "Fold", "EegData", "FoldTraining", "EegTrainingView"]


@dataclass(frozen=True)
class EegInfo:
    """The windows' sampling rate (Hz) and channel names (canonical 10-20, in the order of X's channel axis)."""

    sfreq: float
    ch_names: tuple[str, ...]


@dataclass(frozen=True)
class Fold:
    """One fold: its model trains on the windows of ``train`` subjects and predicts ``test`` subjects.

    Cross-site training subjects are named ``<dataset>:<subject>`` (the other site's people)."""

    index: int
    train: tuple[str, ...]
    test: tuple[str, ...]


@dataclass
class EegData:
    """The data view of one option set.

    ``subjects``: DataFrame indexed by subject (the scored site), columns ``group``
    ("patient"/"control"), ``label`` (1/0), ``fold`` (int), ``n_windows``, ``n_recordings``.
    ``windows``: the scored site's windows. ``train_windows``: cross-site, the other site's
    windows (subjects named ``<dataset>:<subject>``); None within a site.
    ``datasets``: the datasets read (the scored one first); ``options``: the resolved options.
    """

    options: dict
    dataset: str
    protocol: str
    condition: str
    info: EegInfo
    subjects: pd.DataFrame
    windows: Windows
    folds: tuple[Fold, ...]
    train_windows: Windows | None = None
    datasets: tuple[str, ...] = ()
    recordings: dict = field(default_factory=dict)  # dataset -> recording ids read

    @property
    def training_source(self) -> Windows:
        """Where fold training windows come from: the other site (cross-site) or the scored site."""
        return self.windows if self.train_windows is None else self.train_windows

    def fold(self, k: int) -> Fold:
        for f in self.folds:
            if f.index == k:
                return f
        raise KeyError(f"no fold {k}; folds are {[f.index for f in self.folds]}")

    def subject_windows(self, subject: str) -> np.ndarray:
        """Positions in ``windows`` of ``subject``'s windows."""
        return self.windows.of_subjects([subject])


@dataclass
class FoldTraining:
    """What a model is fitted on for one fold: its training windows only."""

    fold: int
    X: np.ndarray        # (n_windows, n_channels, n_times) float32 volts
    y: np.ndarray        # (n_windows,) int64, 1 = patient
    groups: np.ndarray   # (n_windows,) str subject of each window
    info: EegInfo


class EegTrainingView:
    """The training side of every fold: ``folds`` (indices) and :meth:`fold` (a :class:`FoldTraining`, built on
    demand). The test subjects of a fold are never reachable through it, and there is no test label in it."""

    def __init__(self, data: EegData):
        self._data = data
        self.folds = tuple(f.index for f in data.folds)
        self.info = data.info

    def train_index(self, k: int) -> np.ndarray:
        return self._data.training_source.of_subjects(self._data.fold(k).train)

    def fold(self, k: int) -> FoldTraining:
        src = self._data.training_source
        idx = self.train_index(k)
        return FoldTraining(k, src.batch(idx), src.labels[idx], src.subjects[idx].astype(str), self.info)
