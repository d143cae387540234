"""Fixed-length windows over EEG recordings, without copying a window until a batch is asked for.

Each recording's ``(n_channels, n_samples)`` float32 array is read from the store once and
held; a window is the pair (recording, first sample), and :meth:`Windows.window` is a view
into the recording's array. :meth:`Windows.batch` copies windows into one contiguous
``(n, n_channels, n_times)`` array: the only copy a window ever gets.

Counting: a recording of ``n`` samples gives ``floor((n - w) / s) + 1`` windows of ``w``
samples starting every ``s`` samples (none when ``n < w``); the last partial window is
dropped, never padded.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from neuroharness.errors import NeuroharnessError, UsageError

__all__ = ["Windows", "n_windows", "window_starts", "to_samples"]


def to_samples(seconds: float, sfreq: float, what: str) -> int:
    """``seconds`` at ``sfreq`` Hz as a whole number of samples (>= 1); a :class:`UsageError` naming ``what``
    (e.g. "option window_s") when it is not whole (to 1e-6 of a sample)."""
    exact = float(seconds) * float(sfreq)
    n = int(round(exact))
    if n < 1 or abs(exact - n) > 1e-6 * max(1.0, exact):
        raise UsageError(f"{what}={seconds:g} s at the store's common rate {sfreq:g} Hz is {exact:g} samples; "
                         f"expected a whole number of samples >= 1 (e.g. {max(1, n) / sfreq:g} s)")
    return n


def n_windows(n_samples: int, win: int, stride: int) -> int:
    """Number of whole windows of ``win`` samples every ``stride`` samples in ``n_samples``."""
    if win < 1 or stride < 1:
        raise ValueError(f"window {win} and stride {stride} samples: expected both >= 1")
    return 0 if n_samples < win else (int(n_samples) - win) // stride + 1


def window_starts(n_samples: int, win: int, stride: int) -> np.ndarray:
    """(k,) int64 first sample of each whole window (see :func:`n_windows`)."""
    return np.arange(n_windows(n_samples, win, stride), dtype=np.int64) * stride


class Windows:
    """Windows of ``win`` samples over recordings held in memory, each recording once.

    ``signals``: one ``(n_channels, n_samples)`` float32 array per recording (same channels, same
    order); ``subjects``/``labels``: per recording. Per window: ``recording`` (index into ``signals``),
    ``start`` (first sample), and through them ``subjects``, ``labels``. :meth:`select` gives a subset
    sharing the arrays.
    """

    def __init__(self, signals: Sequence[np.ndarray], recording_ids: Sequence[str], subjects: Sequence[str],
                 labels: Sequence[int], win: int, stride: int, recording: np.ndarray | None = None,
                 start: np.ndarray | None = None):
        self.signals = list(signals)
        self.recording_ids = np.asarray(recording_ids, dtype=object)
        self.recording_subjects = np.asarray(subjects, dtype=object)
        self.recording_labels = np.asarray(labels, dtype=np.int64)
        self.win, self.stride = int(win), int(stride)
        if not (len(self.signals) == len(self.recording_ids) == len(self.recording_subjects)
                == len(self.recording_labels)):
            raise ValueError("signals, recording_ids, subjects and labels differ in length")
        shapes = {s.shape[0] for s in self.signals}
        if len(shapes) > 1:
            raise NeuroharnessError(f"recordings have different channel counts {sorted(shapes)}; windows need the "
                                    "same channels in every recording")
        if recording is None:
            counts = [n_windows(s.shape[1], self.win, self.stride) for s in self.signals]
            recording = np.repeat(np.arange(len(self.signals), dtype=np.int64), counts)
            start = np.concatenate([window_starts(s.shape[1], self.win, self.stride) for s in self.signals]
                                   or [np.zeros(0, np.int64)])
        self.recording = np.asarray(recording, dtype=np.int64)
        self.start = np.asarray(start, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.recording)

    def __repr__(self) -> str:
        return (f"Windows({len(self)} windows of {self.win} samples (stride {self.stride}) over "
                f"{len(self.signals)} recordings, {self.n_channels} channels)")

    @property
    def n_channels(self) -> int:
        return int(self.signals[0].shape[0]) if self.signals else 0

    @property
    def subjects(self) -> np.ndarray:
        """(n,) subject of each window (object array of str)."""
        return self.recording_subjects[self.recording]

    @property
    def labels(self) -> np.ndarray:
        """(n,) int64 label of each window's subject."""
        return self.recording_labels[self.recording]

    def window(self, i: int) -> np.ndarray:
        """Window ``i`` as a view (n_channels, win) of its recording's array (no copy)."""
        r, s = int(self.recording[i]), int(self.start[i])
        return self.signals[r][:, s:s + self.win]

    def select(self, index) -> Windows:
        """The windows ``index`` (a boolean mask or integer positions) sharing this object's arrays."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return Windows(self.signals, self.recording_ids, self.recording_subjects, self.recording_labels, self.win,
                       self.stride, self.recording[index], self.start[index])

    def of_subjects(self, subjects) -> np.ndarray:
        """(k,) positions of the windows whose subject is in ``subjects``, ascending."""
        keep = np.isin(self.recording_subjects, np.asarray(list(subjects), dtype=object))
        return np.flatnonzero(keep[self.recording])

    def batch(self, index=None) -> np.ndarray:
        """Windows ``index`` (default all) as one C-contiguous (k, n_channels, win) float32 array: the copy."""
        idx = np.arange(len(self)) if index is None else np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        out = np.empty((len(idx), self.n_channels, self.win), dtype=np.float32)
        # one slice copy per window straight into the output: faster than gathering through a strided view of
        # every window start (which materializes an intermediate), about 4 GB/s here
        for j, (r, s) in enumerate(zip(self.recording[idx].tolist(), self.start[idx].tolist())):
            out[j] = self.signals[r][:, s:s + self.win]
        return out

    def batches(self, index=None, size: int = 1024) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(positions, (k, n_channels, win) array)`` pairs of at most ``size`` windows, in order."""
        idx = np.arange(len(self)) if index is None else np.asarray(index)
        for lo in range(0, len(idx), max(1, int(size))):
            part = idx[lo:lo + size]
            yield part, self.batch(part)

    def counts(self) -> dict[str, int]:
        """``{subject: number of windows}``."""
        subjects, n = np.unique(self.subjects.astype(str), return_counts=True)
        return {str(s): int(k) for s, k in zip(subjects, n)}

    @property
    def nbytes(self) -> int:
        """Bytes held by the recordings' arrays (the windows themselves hold nothing)."""
        return int(sum(s.nbytes for s in self.signals))
