"""Build ``loaders/celegans/neurons.tsv``, the canonical C. elegans neuron table.

The table is committed and installed with the package; this script documents
where each column comes from and regenerates it from the real files that two
PyPI packages ship (run it with both installed, e.g. ``pip install --no-deps
cect==0.3.5 wormneuroatlas==0.0.7.3``):

- ``name``: the 302 hermaphrodite neurons, ``cect.Cells.PREFERRED_HERM_NEURON_NAMES``
  (cect 0.3.5, OpenWorm), sorted in plain lexicographic order, which is the
  order of the homogenized collection (Simeon et al. 2024) with CANL/CANR added.
- ``type``: sensory / interneuron / motor / pharyngeal / unknown, from cect's
  Cook et al. 2019 groupings (``SENSORY_NEURONS_COOK``, ``INTERNEURONS_NONPHARYNGEAL_COOK``,
  ``MOTORNEURONS_NONPHARYNGEAL_COOK``, ``PHARYNGEAL_NEURONS``, ``UNKNOWN_FUNCTION_NEURONS``).
- ``class``: the neuron class (bilateral, dorso-ventral and numbered members
  merged), by the rule in :func:`neuron_class`.
- ``x``, ``y``, ``z``: atlas positions from wormneuroatlas' ``anatlas_neuron_positions.txt``
  (Randi et al. 2023; arbitrary atlas units, anterior-posterior along x).
"""
from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

MOTOR_SERIES = ("AS", "DA", "DB", "DD", "VA", "VB", "VC", "VD")


def neuron_class(name: str, names: set[str]) -> str:
    """Merge left/right, dorsal/ventral and numbered members into one class name."""
    m = re.fullmatch(r"(%s)(\d+)" % "|".join(MOTOR_SERIES), name)
    if m:
        return m.group(1)
    base = name
    if base[-1] in "LR" and (base[:-1] + ("R" if base[-1] == "L" else "L")) in names:
        base = base[:-1]
    elif base[-1] in "LR" and any(n != name and n.startswith(base[:-1]) and n[-1] in "LR" and len(n) == len(name) for n in names):
        base = base[:-1]
    if len(base) >= 4 and base[-1] in "DV" and (base[:-1] + ("V" if base[-1] == "D" else "D")) in {
        n[:-1] if n[-1] in "LR" and len(n) == len(base) + 1 else n for n in names
    }:
        base = base[:-1]
    return base


def main() -> None:
    import importlib.util

    import cect.Cells as C

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "loaders/celegans/neurons.tsv")
    args = ap.parse_args()

    names = sorted(C.PREFERRED_HERM_NEURON_NAMES)
    assert len(names) == 302 and len(set(names)) == 302
    groups = [
        ("sensory", C.SENSORY_NEURONS_COOK),
        ("interneuron", C.INTERNEURONS_NONPHARYNGEAL_COOK),
        ("motor", C.MOTORNEURONS_NONPHARYNGEAL_COOK),
        ("pharyngeal", C.PHARYNGEAL_NEURONS),
        ("unknown", C.UNKNOWN_FUNCTION_NEURONS),
    ]
    ntype = {}
    for t, members in groups:
        for n in members:
            ntype.setdefault(n, t)
    missing = [n for n in names if n not in ntype]
    assert not missing, missing

    wna = Path(importlib.util.find_spec("wormneuroatlas").submodule_search_locations[0]) / "data"
    lines = (wna / "anatlas_neuron_positions.txt").read_text().splitlines()
    pos_names = lines[0].lstrip("#").split()
    pos = {n: [float(v) for v in line.split()] for n, line in zip(pos_names, lines[1:])}

    nameset = set(names)
    with open(args.out, "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(["name", "class", "type", "x", "y", "z"])
        for n in names:
            x, y, z = pos.get(n, (float("nan"),) * 3)
            w.writerow([n, neuron_class(n, nameset), ntype[n], f"{x:.4f}", f"{y:.4f}", f"{z:.4f}"])
    print(f"wrote {len(names)} neurons to {args.out}")


if __name__ == "__main__":
    main()
