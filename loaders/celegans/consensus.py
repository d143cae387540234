"""Reader for the consensus connectome CSVs of the homogenized C. elegans collection.

Source: HuggingFace dataset ``qsimeon/celegans_connectome_data`` (Simeon et al.
2024), written by ``extra/consensus_connectome.py`` of github
``qsimeon/worm-data-preprocess`` (HEAD 953f66a; script last changed in 90deb35).

Layout (``DataFrame.to_csv(path, index=False)``, so no index column):

- Four files, ``consensus_connectome_{full,trimmed}_{withfunc,nofunc}.csv``.
  ``full`` has one row per ordered pair of the 300 neurons (302 minus CANL,
  CANR), self-pairs included, so 90,000 rows, ``from_neuron`` outer and
  ``to_neuron`` inner, both in plain lexicographic order. ``trimmed`` keeps
  only rows with at least one weight present (gap or chemical; in
  ``withfunc`` also functional). ``nofunc`` drops the ``functional_weight``
  column and nothing else.
- Columns: :data:`CONSENSUS_COLUMNS` (``withfunc``) or
  :data:`CONSENSUS_COLUMNS_NOFUNC`.
- ``from_pos``/``to_pos``: a Python tuple written with ``str``, e.g.
  ``"(0.03, 94.34, 10.31)"`` (quoted, since it holds commas).
  ``from_type``/``to_type``: the master sheet's type (``inter``, ``motor``,
  ``pharyngeal``, ``sensory``).
- ``mean_gap_weight``: mean of the distinct nonzero gap values that any
  annotation gives the pair, in either direction, so it is symmetric.
  ``mean_chem_weight``: mean of the nonzero chemical values of the
  annotations for from -> to, excluding the functional (Randi 2023) one.
  A pair with no such value is NaN, written as an empty field (never 0).
- ``uncertainty`` = 0.9 * std(chem) + 0.1 * std(gap) (NaN unless both are
  present); ``functional_weight``: signed Randi 2023 value (q < 0.05).
- ``data_sources``: a sorted Python list written with ``str``, e.g.
  ``"['cook2019', 'witvliet2020_7']"``; ``"[]"`` when empty.

Only the names and the two structural weight columns are read; the others
are taken as they are.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pandas as pd

from neuroharness.errors import DataFormatError

CONSENSUS_COLUMNS = (
    "from_neuron",
    "to_neuron",
    "from_pos",
    "to_pos",
    "from_type",
    "to_type",
    "mean_gap_weight",
    "mean_chem_weight",
    "uncertainty",
    "functional_weight",
    "data_sources",
)
"""Header of the ``withfunc`` files, in order."""

CONSENSUS_COLUMNS_NOFUNC = tuple(c for c in CONSENSUS_COLUMNS if c != "functional_weight")
"""Header of the ``nofunc`` files, in order."""

FILE_PATTERN = "consensus_connectome_{rows}_{func}.csv"
VARIANTS = ("full_withfunc", "full_nofunc", "trimmed_withfunc", "trimmed_nofunc")
CONSENSUS_FILES = {v: FILE_PATTERN.format(rows=v.split("_")[0], func=v.split("_")[1]) for v in VARIANTS}
"""Variant -> file name, e.g. ``full_nofunc`` -> ``consensus_connectome_full_nofunc.csv``."""

_WEIGHTS = (("mean_chem_weight", "chemical"), ("mean_gap_weight", "electrical"))


def _check_header(path: Path, header: list[str]) -> tuple[str, ...]:
    """Return the layout the header matches, or raise naming the first wrong column."""
    found = [h.strip() for h in header]
    for layout in (CONSENSUS_COLUMNS, CONSENSUS_COLUMNS_NOFUNC):
        if found == list(layout):
            return layout
    # Pick the layout the file was most likely meant to be, to report one precise fault.
    layout = CONSENSUS_COLUMNS if "functional_weight" in found else CONSENSUS_COLUMNS_NOFUNC
    missing = [c for c in layout if c not in found]
    if missing:
        raise DataFormatError(
            f"{path}: line 1, column {missing[0]!r} is missing; found header {found}, expected {list(layout)}"
        )
    for i, (got, want) in enumerate(zip(found, layout)):
        if got != want:
            raise DataFormatError(
                f"{path}: line 1, column {i + 1}: found {got!r}, expected {want!r} "
                f"(header {found}, expected {list(layout)} in this order)"
            )
    extra = found[len(layout)]
    raise DataFormatError(f"{path}: line 1, column {len(layout) + 1}: found unexpected column {extra!r}, expected {list(layout)}")


def _weight(path: Path, line: int, col: str, text: str) -> float:
    """Parse one weight field; an empty field is the source's NaN, i.e. no contact."""
    text = text.strip()
    if text == "":
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise DataFormatError(f"{path}: line {line}, column {col!r}: found {text!r}, expected a number >= 0 or an empty field") from None
    # The writer emits missing values as empty fields, so a literal nan/inf is damage, not absence.
    if not math.isfinite(value) or value < 0:
        raise DataFormatError(f"{path}: line {line}, column {col!r}: found {text!r}, expected a finite number >= 0 or an empty field")
    return value


def read_consensus_csv(path) -> tuple[pd.DataFrame, set[str]]:
    """Read one consensus connectome CSV (any of the four variants).

    Returns ``(edges, covered)``: ``edges`` has columns ``pre``, ``post``
    (str), ``type`` (``chemical`` from ``mean_chem_weight``, directed
    from -> to; ``electrical`` from ``mean_gap_weight``, one row per ordered
    pair as listed, left for the caller to symmetrize) and ``weight``
    (float64, > 0 only); ``covered`` is every name in either name column.
    Raises :class:`DataFormatError` naming file, line, column, found and expected.
    """
    path = Path(path)
    pre, post, kind, weight = [], [], [], []
    covered: set[str] = set()
    seen: dict[tuple[str, str], int] = {}
    try:
        # utf-8-sig: tolerate a BOM added by a spreadsheet round trip.
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise DataFormatError(f"{path}: empty file, expected a header {list(CONSENSUS_COLUMNS_NOFUNC)}")
            layout = _check_header(path, header)
            at = {c: layout.index(c) for c in ("from_neuron", "to_neuron", "mean_chem_weight", "mean_gap_weight")}
            for row in reader:
                line = reader.line_num  # physical line of the row's end; rows hold no newlines
                if not row:
                    continue
                if len(row) != len(layout):
                    raise DataFormatError(f"{path}: line {line}: found {len(row)} fields, expected {len(layout)} ({list(layout)})")
                a, b = row[at["from_neuron"]].strip(), row[at["to_neuron"]].strip()
                for col, name in (("from_neuron", a), ("to_neuron", b)):
                    if not name:
                        raise DataFormatError(f"{path}: line {line}, column {col!r}: found an empty name, expected a neuron name")
                # The caller adds chemical weights per pair, so a repeated pair would double-count.
                if (a, b) in seen:
                    raise DataFormatError(
                        f"{path}: line {line}, columns 'from_neuron','to_neuron': pair ({a}, {b}) repeats line {seen[a, b]}, expected each ordered pair once"
                    )
                seen[a, b] = line
                covered.add(a)
                covered.add(b)
                for col, k in _WEIGHTS:
                    w = _weight(path, line, col, row[at[col]])
                    if w > 0:
                        pre.append(a)
                        post.append(b)
                        kind.append(k)
                        weight.append(w)
    except DataFormatError:
        raise
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataFormatError(f"{path}: not a readable consensus connectome CSV: {e}") from None
    if not seen:
        raise DataFormatError(f"{path}: no rows after the header line, expected one row per ordered pair of neurons "
                              "(all pairs in the full files, pairs with a weight in the trimmed ones)")
    edges = pd.DataFrame(
        {
            "pre": pd.Series(pre, dtype=str),
            "post": pd.Series(post, dtype=str),
            "type": pd.Series(kind, dtype=str),
            "weight": np.asarray(weight, dtype=np.float64),
        },
        columns=["pre", "post", "type", "weight"],
    )
    return edges, covered
