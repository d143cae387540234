"""What an encoding model sees: :class:`EncodingSet`, one subject's stimuli (and, for training, responses).

Kept apart from the task module so that baselines and plugins import it without the task.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class EncodingSet:
    """One subject's stimuli of one split.

    ``images`` is lazy (an ``xarray.DataArray`` over the store, dims ``stimulus, y, x, rgb``, uint8): read it in
    batches (``images[i:j].values``). ``fmri`` holds the responses, float32 ``(n, V)`` z-scored betas, for the
    training split only; it is None for a split being scored. ``hemisphere`` (``(V,)``, "lh"/"rh") gives the
    order of the ``V`` vertex columns that ``predict`` must return.
    """

    subject: str
    nsd_id: np.ndarray
    images: object
    fmri: np.ndarray | None
    hemisphere: np.ndarray

    def __len__(self) -> int:
        return int(len(self.nsd_id))

    @property
    def n_vertices(self) -> int:
        return int(len(self.hemisphere))
