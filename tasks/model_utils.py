"""Helpers shared by the baselines of several task families."""
from __future__ import annotations

import contextlib
import math


@contextlib.contextmanager
def single_thread():
    """Run torch on one thread inside the block: multi-threaded scatter sums add in a
    varying order, so only a single thread makes two runs with one seed bit-identical."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def describe(model) -> dict:
    """Hyperparameters of a model object for its result record: its public attributes that are
    plain values (non-finite floats become None; tuples of numbers become lists)."""
    out = {}
    for k, v in vars(model).items():
        if k.startswith("_") or k == "n_parameters":
            continue
        if isinstance(v, (bool, int, float, str)) or v is None:
            out[k] = v if not isinstance(v, float) or math.isfinite(v) else None
        elif isinstance(v, (tuple, list)) and all(isinstance(a, (int, float)) for a in v):
            out[k] = list(v)
    return out
