"""C. elegans stores as Hugging Face datasets.

- ``celegans-activity``: one row per worm: ``calcium`` (and ``calcium_smooth`` where the store has it)
  ``Array2D((None, 302), float32)`` (time x neuron, NaN where the neuron is not recorded), ``time``
  (variable-length float64 seconds), ``labeled`` (302 bools), ``dt``, ``n_samples``, ``source_dataset``
  (``ClassLabel`` over the sources in the store), ids and the 302 ``neuron`` names.
- ``celegans-connectome``: one row per annotation: ``chemical`` and ``gap_junction``
  ``Array2D((302, 302), float32)`` [pre, post] (NaN where the annotation does not cover a neuron), the
  annotation's stage, reference, units and counts, and the neuron table (names, class, type, position).
- ``celegans-funatlas``: one row per strain: ``dFF``, ``occ1``, ``q``, ``q_eq`` ``Array2D((302, 302))``
  [responding, stimulated] with the store's dtypes, and the ``neuron`` names.
"""
from __future__ import annotations

import numpy as np

from neuroharness.errors import DataFormatError

from ._common import (Table, array_feature, class_codes, class_label, feature_id, repeat, rows_per_batch, store_plan,
                      strings, value_dtype, var_feature, xarray_table)


def _names(ds, dim: str) -> list[str]:
    return [str(v) for v in strings(np.asarray(ds[dim].values))]


def _same_axes(ds, dims: tuple[str, ...], where: str) -> list[str]:
    """The labels shared by ``dims`` (e.g. pre, post, neuron); a store whose axes differ is an error."""
    first = _names(ds, dims[0])
    for d in dims[1:]:
        if d in ds.variables and _names(ds, d) != first:
            raise DataFormatError(f"{where}: coordinates {dims[0]!r} and {d!r} differ; expected the same neuron "
                                  "list on every axis (rebuild the store with `datasets prepare --force`)")
    return first


def connectome(card, ds, part=None):
    """One row per annotation (see the module docstring)."""
    where = f"{card.name} store"
    neurons = _same_axes(ds, ("neuron", "pre", "post"), where)
    labels = {"pre": neurons, "post": neurons}
    table = xarray_table(ds, "annotation", where=where, constants=("neuron", "neuron_class", "neuron_type", "position"),
                         about="One row per connectome annotation; chemical[pre, post] and gap_junction[pre, post] "
                               "are indexed by the 302 names of column `neuron`.")
    for v in ("chemical", "gap_junction"):
        table.features[v] = var_feature(ds[v], "annotation", where=f"{where} {v}", labels=labels,
                                        index="rows and columns follow column `neuron`")
    return store_plan(card, ds.attrs, {None: table})


def funatlas(card, ds, part=None):
    """One row per strain (see the module docstring)."""
    import datasets

    where = f"{card.name} store"
    neurons = _same_axes(ds, ("responding", "stimulated"), where)
    table = xarray_table(ds, "strain", where=where, skip=("responding", "stimulated"),
                         about="One row per strain; every matrix is [responding, stimulated], indexed by the 302 "
                               "names of column `neuron`.")
    for v in ("dFF", "occ1", "q", "q_eq"):
        table.features[v] = var_feature(ds[v], "strain", where=f"{where} {v}",
                                        labels={"responding": neurons, "stimulated": neurons},
                                        index="rows and columns follow column `neuron`")
    table.features["neuron"] = datasets.List(datasets.Value("string", id=feature_id(
        long_name="canonical neuron names: the responding and stimulated axes of every matrix", units="1")),
        length=len(neurons))
    inner = table.batches

    def batches():
        for batch in inner():
            batch["neuron"] = repeat(np.asarray(neurons), len(batch["strain"]))
            yield batch

    table.batches = batches
    return store_plan(card, ds.attrs, {None: table})


WORM_COLUMNS = ("raw_worm", "raw_data_file", "dt", "n_unlabeled")


def activity(card, ds, part=None):
    """One row per worm (see the module docstring)."""
    import datasets

    where = f"{card.name} store"
    neurons = _names(ds, "neuron")
    n = len(neurons)
    worms = _names(ds, "worm")
    sources = sorted(set(_names(ds, "source_dataset")))
    start = np.asarray(ds["worm_start"].values, dtype=np.int64)
    size = np.asarray(ds["row_size"].values, dtype=np.int64)
    total = int(ds.sizes["sample"])
    if len(start) and (np.any(start < 0) or np.any(start + size > total) or np.any(size < 0)):
        raise DataFormatError(f"{where}: worm_start/row_size point outside the {total} samples; rebuild the store "
                              "with `neuroharness datasets prepare celegans-activity --force`")
    traces = [v for v in ("calcium", "calcium_smooth") if v in ds]
    labels = {"neuron": neurons}
    f = {"worm": datasets.Value("string", id=feature_id(long_name="worm id: <source_dataset>/<raw_worm>", units="1")),
         "source_dataset": class_label(sources, where=f"{where} source_dataset",
                                       long_name="source study of the worm", units="1")}
    for v in WORM_COLUMNS:
        f[v] = var_feature(ds[v], "worm", where=f"{where} {v}")
    f["n_samples"] = datasets.Value(value_dtype(ds["row_size"].dtype, where), id=feature_id(ds["row_size"].attrs))
    f["labeled"] = var_feature(ds["labeled"], "worm", where=f"{where} labeled", labels=labels)
    f["time"] = array_feature((0,), value_dtype(ds["time"].dtype, where),
                              feature_id(ds["time"].attrs, dims=["time"]), ragged_first=True)
    for v in traces:
        f[v] = array_feature((0, n), value_dtype(ds[v].dtype, where),
                             feature_id(ds[v].attrs, dims=["time", "neuron"], labels=labels), ragged_first=True)
    f["neuron"] = datasets.List(datasets.Value("string", id=feature_id(
        long_name="canonical neuron names: the neuron axis of the traces and of `labeled`", units="1")), length=n)
    features = datasets.Features(f)
    per_worm = {v: np.asarray(ds[v].values) for v in (*WORM_COLUMNS, "labeled")}
    src = class_codes(_names(ds, "source_dataset"), sources, f"{where} source_dataset")
    if not np.array_equal(start[1:], start[:-1] + size[:-1]):
        w = int(np.flatnonzero(start[1:] != start[:-1] + size[:-1])[0]) + 1
        raise DataFormatError(f"{where}: worm {worms[w]} does not start where the previous worm ends (worm_start "
                              f"{int(start[w])}, expected {int(start[w - 1] + size[w - 1])}); rebuild the store with "
                              "`neuroharness datasets prepare celegans-activity --force`")
    mean = int(size.mean()) if len(size) else 0
    row_bytes = max(1, mean) * n * 4 * len(traces)

    def batches():
        step = rows_per_batch(row_bytes, cap=256)
        for lo in range(0, len(worms), step):
            hi = min(len(worms), lo + step)
            batch = {"worm": worms[lo:hi], "source_dataset": src[lo:hi], "n_samples": size[lo:hi],
                     "neuron": repeat(np.asarray(neurons), hi - lo)}
            for v in WORM_COLUMNS:
                batch[v] = strings(per_worm[v][lo:hi]) if per_worm[v].dtype.kind in "USO" else per_worm[v][lo:hi]
            batch["labeled"] = per_worm["labeled"][lo:hi]
            # one read of the samples of these worms (stored one after the other), then cut into worms
            s0, s1 = int(start[lo]), int(start[hi - 1] + size[hi - 1])
            block = {v: np.asarray(ds[v][s0:s1].values) for v in ("time", *traces)}
            for v in ("time", *traces):
                batch[v] = [block[v][int(start[w]) - s0: int(start[w] + size[w]) - s0] for w in range(lo, hi)]
            yield batch

    about = (f"One row per worm ({len(worms)} worms, {total} samples in all); calcium[t, i] is neuron `neuron[i]` "
             "at `time[t]`, NaN where that neuron is not recorded in the worm (see `labeled`).")
    return store_plan(card, ds.attrs, {None: Table(features, len(worms), batches, about=about, row_bytes=row_bytes)})
