"""NSD (Algonauts 2023) subjects as Hugging Face datasets: one ``DatasetDict`` per subject.

- ``stimuli``: one row per stimulus: ``nsd_id`` (int32), ``split`` (``ClassLabel`` train/test),
  ``split_row`` (int32), ``fmri`` (one float32 per vertex: left hemisphere, then right; NaN rows for
  test stimuli whose responses the source lacks) and ``images`` ``Array3D((y, x, 3), uint8)``.
- ``vertices``: one row per vertex: ``hemisphere`` (``ClassLabel`` lh/rh), ``fsaverage_index`` (int32),
  ``noise_ceiling`` (float32, where the store has it) and one int16 ``roi_<class>`` per ROI class, with
  its CF ``flag_values``/``flag_meanings`` in the feature's ``id``.

NSD's terms forbid redistribution: an export is the user's own local copy; never push it to the Hub or
share it (``neuroharness datasets publish`` refuses this dataset).
"""
from __future__ import annotations

import json

from ._common import store_plan, xarray_table



def subject(card, tree, part):
    """The ``DatasetDict`` plan of subject ``part`` (e.g. ``subj01``) of the NSD store (the DataTree ``tree``)."""
    from neuroharness.loaders.nsd.store import HEMISPHERES, SPLITS

    where = f"{card.name} subject {part}"
    ds = tree[part].to_dataset(inherit=False)
    stimuli = xarray_table(ds, "stimulus", where=where, class_labels={"split": list(SPLITS)},
                           about=f"Subject {part}: one row per stimulus; fmri[v] is the vertex numbered v (column `vertex`) "
                                 "of the `vertices` table.")
    vertices = xarray_table(ds, "vertex", where=where, index_column="vertex",
                            class_labels={"hemisphere": list(HEMISPHERES)},
                            about=f"Subject {part}: one row per vertex, in the order of each stimulus's `fmri`.")
    facts = [f"subject {part} {k}: {v if isinstance(v, str) else json.dumps(v)}" for k, v in ds.attrs.items()]
    # the card forbids redistribution: store_plan adds the note that the export is the user's own copy
    return store_plan(card, tree.attrs, {"stimuli": stimuli, "vertices": vertices}, part=part, provenance=facts)
