"""The table of named VesselGraph graphs (``graphs.tsv``, package data), optionally extended by the user.

Columns: ``graph`` (short name), ``kind`` (vessap | kleinfeld | roi | synthetic),
``file_id`` (CSV prefix, may be empty), ``file_id_evidence``, ``archive`` (file
name of the preprocessed zip), ``urls`` (space-separated, tried in order),
``sha256`` and ``size`` (bytes; empty when unknown), ``note``. A TSV with the
same header named by ``$NEUROHARNESS_VESSELGRAPH_TABLE`` replaces rows of the
same graph and adds new ones (e.g. to pin a checksum or point at a new host).
"""
from __future__ import annotations

import dataclasses
import os
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

from neuroharness.errors import DataFormatError

ENV_TABLE = "NEUROHARNESS_VESSELGRAPH_TABLE"
COLUMNS = ["graph", "kind", "file_id", "file_id_evidence", "archive", "urls", "sha256", "size", "note"]
KINDS = ("vessap", "kleinfeld", "roi", "synthetic")
OTHER = "other"  # kind of a graph found in a local source that the table does not name
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


@dataclasses.dataclass(frozen=True)
class GraphEntry:
    graph: str
    kind: str
    file_id: str
    file_id_evidence: str
    archive: str
    urls: tuple[str, ...]
    sha256: str | None
    size: int | None
    note: str


def parse_table(text: str, source: str) -> list[GraphEntry]:
    """Rows of a graph table (TSV with :data:`COLUMNS`; ``#`` lines are comments)."""
    lines = [(i, ln) for i, ln in enumerate(text.splitlines(), 1) if ln.strip() and not ln.startswith("#")]
    if not lines or lines[0][1].split("\t") != COLUMNS:
        found = lines[0][1].split("\t") if lines else []
        raise DataFormatError(f"{source} line {lines[0][0] if lines else 1}: header {found}, expected the "
                              f"tab-separated columns {COLUMNS}")
    out = []
    for i, ln in lines[1:]:
        cells = ln.split("\t")
        if len(cells) != len(COLUMNS):
            raise DataFormatError(f"{source} line {i}: {len(cells)} tab-separated fields, expected {len(COLUMNS)}")
        row = dict(zip(COLUMNS, (c.strip() for c in cells)))
        if not NAME.fullmatch(row["graph"]):
            raise DataFormatError(f"{source} line {i}, column graph: {row['graph']!r} is not a usable graph name "
                                  "(letters, digits, '_', '-', '.')")
        if row["kind"] not in KINDS + (OTHER,):
            raise DataFormatError(f"{source} line {i}, column kind: found {row['kind']!r}, expected one of {KINDS + (OTHER,)}")
        sha = row["sha256"].lower() or None
        if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise DataFormatError(f"{source} line {i}, column sha256: found {row['sha256']!r}, expected 64 hex digits or empty")
        if row["size"] and not re.fullmatch(r"[0-9]+", row["size"]):  # str.isdigit() also accepts '²', which int() refuses
            raise DataFormatError(f"{source} line {i}, column size: found {row['size']!r}, expected bytes or empty")
        if row["archive"] and ("/" in row["archive"] or row["archive"].startswith(".")):
            raise DataFormatError(f"{source} line {i}, column archive: {row['archive']!r} must be a plain file name")
        out.append(GraphEntry(row["graph"], row["kind"], row["file_id"], row["file_id_evidence"], row["archive"],
                              tuple(row["urls"].split()), sha, int(row["size"]) if row["size"] else None, row["note"]))
    return out


@lru_cache(maxsize=1)
def _package_rows() -> tuple[GraphEntry, ...]:
    return tuple(parse_table(resources.files(__package__).joinpath("graphs.tsv").read_text(), "graphs.tsv"))


def graph_table() -> dict[str, GraphEntry]:
    """``{graph: entry}`` in table order: the package table, then ``$NEUROHARNESS_VESSELGRAPH_TABLE``'s rows."""
    table = {e.graph: e for e in _package_rows()}
    user = os.environ.get(ENV_TABLE)
    if user:
        path = Path(user).expanduser()
        if not path.is_file():
            raise DataFormatError(f"${ENV_TABLE} names {path}, which is not a file; expected a TSV with columns {COLUMNS}")
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise DataFormatError(f"{path} (${ENV_TABLE}): not UTF-8 text ({e}); expected a TSV with columns "
                                  f"{COLUMNS}") from None
        for e in parse_table(text, str(path)):
            table[e.graph] = e
    return table


def graph_order(names) -> list[str]:
    """``names`` in table order, graphs the table does not know last (alphabetically)."""
    order = {g: i for i, g in enumerate(graph_table())}
    return sorted(names, key=lambda g: (order.get(g, len(order)), g))


def kind_of(name: str) -> str:
    entry = graph_table().get(name)
    return entry.kind if entry else OTHER
