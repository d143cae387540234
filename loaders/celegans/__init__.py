"""C. elegans sources: connectome annotations, the signal-propagation atlas.

All of them share one canonical neuron list (:func:`neurons`): the 302
hermaphrodite neurons in plain lexicographic order, i.e. the 300-slot order
of the homogenized collection (Simeon et al. 2024) with CANL and CANR added.
"""
from __future__ import annotations

import functools
import re
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


@functools.lru_cache(maxsize=1)
def neurons() -> pd.DataFrame:
    """The canonical neuron table, indexed by ``name`` (302 rows).

    Columns: ``class`` (118 classes), ``type`` (sensory, interneuron, motor,
    pharyngeal, unknown), ``x``, ``y``, ``z`` (atlas positions, arbitrary
    units; see ``scripts/build_neuron_table.py`` for sources).
    """
    import pandas as pd  # here, not at module level: listing dataset cards must not import pandas

    with resources.files(__package__).joinpath("neurons.tsv").open() as fh:
        table = pd.read_csv(fh, sep="\t", dtype={"name": str, "class": str, "type": str}).set_index("name")
    return table


def neuron_names() -> list[str]:
    """The 302 canonical neuron names, in store order."""
    return neurons().index.tolist()


def canonical_name(raw: str) -> str:
    """Map a source's spelling of a neuron to the canonical one.

    Strips whitespace and leading zeros of numbered neurons (``VA01`` ->
    ``VA1``, ``DD06`` -> ``DD6``), as the homogenized collection does. Names
    that are not neurons come back unchanged (callers decide what to drop).
    """
    name = str(raw).strip()
    m = re.fullmatch(r"([A-Z]+)0+(\d+)", name)
    if m:
        name = m.group(1) + m.group(2)
    return name
