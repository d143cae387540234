"""Reading and validating the VesselGraph ``*_processed.csv`` files (vectorized, pyarrow).

Formats (``;``-separated, header on line 1, no index column; written by
VesselGraph ``source/dataset_preprocessing/process_edge_list.py`` and
``source/feature_generation/atlas_annotation/one_hot_encode_atlas.py``):

* nodes ``id;pos_x;pos_y;pos_z;degree;isAtSampleBorder``, ``id`` = row index;
* edges ``id;node1id;node2id;length;...;hasNodeAtSampleBorder`` (:data:`EDGE_COLUMNS`),
  ``node1id < node2id``, each node pair once, ``id`` = row index;
* atlas: one row per node, columns ``Region_Acronym_<acronym>`` holding a
  one-hot 0/1 encoding (pandas ``get_dummies``). The writer has no id column;
  a leading ``id`` column (= row index) is accepted as well, in case a
  release differs.

Every error is a :class:`DataFormatError` naming the file, the 1-based line
(the header is line 1; blank lines count as lines), the column, what was
found and what was expected.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from neuroharness.errors import DataFormatError

from .layout import FileRef

UNITS_COMMENT = ("units uncertain: VesselGraph radius thresholds are given in pixels, so voxels are assumed; "
              "VesSAP volumes are 3 um isotropic ('iso3um')")


@dataclasses.dataclass(frozen=True)
class Column:
    """One CSV column: how it is parsed and what it means.

    ``kind``: ``id`` (int64), ``float`` (float64), ``count`` (a whole number >= 0,
    stored int32; parsed as float because pandas writes upcast ints as ``12.0``),
    ``flag`` (0/1, stored bool).
    """

    name: str
    kind: str
    units: str = "1"
    long_name: str = ""

    @property
    def arrow_type(self) -> pa.DataType:
        return {"id": pa.int64(), "float": pa.float64(), "count": pa.float64(), "flag": pa.bool_()}[self.kind]

    @property
    def expected(self) -> str:
        return {"id": "an integer id", "float": "a number", "count": "a whole number >= 0", "flag": "0 or 1"}[self.kind]


NODE_COLUMNS = (
    Column("id", "id", long_name="node id (= row index)"),
    Column("pos_x", "float", "voxel", "x position of the node"),
    Column("pos_y", "float", "voxel", "y position of the node"),
    Column("pos_z", "float", "voxel", "z position of the node"),
    Column("degree", "count", "1", "number of edges at the node (recomputed by process_edge_list.py)"),
    Column("isAtSampleBorder", "flag", "1", "node lies at the border of the imaged sample"),
)

EDGE_COLUMNS = (
    Column("id", "id", long_name="edge id (= row index)"),
    Column("node1id", "id", long_name="first end node (the smaller id)"),
    Column("node2id", "id", long_name="second end node (the larger id)"),
    Column("length", "float", "voxel", "vessel length along the centreline (polyline, end segments included)"),
    Column("distance", "float", "voxel", "Euclidean distance between the two end nodes"),
    Column("curveness", "float", "1", "length / distance (0 or inf where distance is 0)"),
    Column("volume", "float", "voxel^3", "vessel volume (sum of the per-voxel volumes)"),
    Column("avgCrossSection", "float", "voxel^2", "mean cross-section area (volume / length)"),
    Column("minRadiusAvg", "float", "voxel", "mean along the centreline of the minimum distance to the vessel surface"),
    Column("minRadiusStd", "float", "voxel", "standard deviation along the centreline of the minimum distance to the surface"),
    Column("avgRadiusAvg", "float", "voxel", "mean along the centreline of the average distance to the vessel surface"),
    Column("avgRadiusStd", "float", "voxel", "standard deviation along the centreline of the average distance to the surface"),
    Column("maxRadiusAvg", "float", "voxel", "mean along the centreline of the maximum distance to the vessel surface"),
    Column("maxRadiusStd", "float", "voxel", "standard deviation along the centreline of the maximum distance to the surface"),
    Column("roundnessAvg", "float", "1", "mean along the centreline of min / max distance to the surface, in (0, 1]"),
    Column("roundnessStd", "float", "1", "standard deviation along the centreline of min / max distance to the surface"),
    Column("node1_degree", "count", "1", "degree of node node1id (recomputed by process_edge_list.py)"),
    Column("node2_degree", "count", "1", "degree of node node2id (recomputed by process_edge_list.py)"),
    Column("num_voxels", "count", "1", "number of centreline voxels"),
    Column("hasNodeAtSampleBorder", "flag", "1", "an end node lies at the sample border (OR of the two isAtSampleBorder)"),
)
EDGE_FEATURES = tuple(c for c in EDGE_COLUMNS if c.name not in ("id", "node1id", "node2id"))
ATLAS_PREFIX = "Region_Acronym_"
_TRUE, _FALSE = ["1", "1.0", "True", "true", "TRUE"], ["0", "0.0", "False", "false", "FALSE"]
_INT32_MAX = np.iinfo(np.int32).max


def _line(row: int) -> int:
    """1-based file line of 0-based data row ``row`` (the header is line 1)."""
    return int(row) + 2


# -- header -----------------------------------------------------------------------------------------
def read_header(ref: FileRef) -> list[str]:
    """Column names on line 1 of ``ref`` (a UTF-8 BOM and the line end stripped)."""
    with ref.open() as fh:
        first = fh.readline(1 << 16)
    if not first.strip():
        raise DataFormatError(f"{ref.where} line 1: empty, expected a ';'-separated header")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataFormatError(f"{ref.where} line 1: not UTF-8 text ({e}); expected a ';'-separated CSV header") from e
    return text.rstrip("\r\n").split(";")


def _separator_hint(found: list[str]) -> str:
    sep = next((c for c in ",\t" if len(found) == 1 and c in found[0]), None)
    return f" (the header looks {sep!r}-separated; the files are ';'-separated)" if sep else ""


def check_header(ref: FileRef, expected: list[str]) -> None:
    """Line 1 must hold exactly ``expected``, in order."""
    found = read_header(ref)
    if found == list(expected):
        return
    missing = [c for c in expected if c not in found]
    if missing:
        raise DataFormatError(f"{ref.where} line 1: missing column(s) {', '.join(missing)}; found header "
                              f"{';'.join(found)!r}, expected {';'.join(expected)!r}{_separator_hint(found)}")
    for i, (f, e) in enumerate(zip(found, expected), 1):
        if f != e:
            raise DataFormatError(f"{ref.where} line 1, column {i}: found {f!r}, expected {e!r} (header order must be "
                                  f"{';'.join(expected)})")
    raise DataFormatError(f"{ref.where} line 1: {len(found)} columns, expected {len(expected)}: extra column(s) "
                          f"{', '.join(found[len(expected):])} after {expected[-1]!r}")


# -- parsing ----------------------------------------------------------------------------------------
def _options(columns: list[Column], threads: bool):
    names = [c.name for c in columns]
    return dict(
        read_options=pacsv.ReadOptions(use_threads=threads, skip_rows=1, column_names=names),
        # no quoting: the files have none, and one physical line per row keeps line numbers exact
        parse_options=pacsv.ParseOptions(delimiter=";", quote_char=False, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(column_types={c.name: c.arrow_type for c in columns}, null_values=[""],
                                             true_values=_TRUE, false_values=_FALSE, strings_can_be_null=False),
    )


_CONVERSION = re.compile(r"In CSV column #(\d+): Row #(\d+): CSV conversion error to \w+: invalid value '(.*)'", re.S)
_FIELDS = re.compile(r"Row #(\d+): Expected (\d+) columns, got (\d+)", re.S)


def _diagnose(ref: FileRef, columns: list[Column], error: pa.ArrowInvalid) -> DataFormatError:
    """A precise error for a file pyarrow could not read: re-read it on one thread, which
    stops at the first bad row in file order and reports its line."""
    try:
        with ref.open() as fh:
            pacsv.read_csv(fh, **_options(columns, threads=False))
        detail = str(error)
    except pa.ArrowInvalid as e:
        detail = str(e)
    m = _CONVERSION.search(detail)
    if m:
        col = columns[int(m.group(1))]
        return DataFormatError(f"{ref.where} line {m.group(2)}, column {col.name}: found {m.group(3)!r}, "
                               f"expected {col.expected}")
    m = _FIELDS.search(detail)
    if m:
        return DataFormatError(f"{ref.where} line {m.group(1)}: {m.group(3)} ';'-separated fields, expected "
                               f"{m.group(2)} (the header's columns)")
    return DataFormatError(f"{ref.where}: not a readable ';'-separated CSV ({detail})")


def read_table(ref: FileRef, columns: list[Column]) -> pa.Table:
    """Parse the rows after line 1 (whose header the caller checked) as ``columns``; no empty values allowed."""
    try:
        with ref.open() as fh:
            table = pacsv.read_csv(fh, **_options(columns, threads=True))
    except pa.ArrowInvalid as e:
        raise _diagnose(ref, columns, e) from None
    for col in columns:
        arr = table.column(col.name)
        if arr.null_count:
            row = pc.index(pc.is_null(arr), True).as_py()
            raise DataFormatError(f"{ref.where} line {_line(row)}, column {col.name}: empty value, expected {col.expected}")
    return table


def numpy_column(table: pa.Table, col: Column, ref: FileRef) -> np.ndarray:
    """One column as numpy in its stored dtype (int64, float64, int32 or bool); counts checked."""
    values = table.column(col.name).to_numpy()
    if col.kind != "count":
        return values
    bad = ~((values >= 0) & (values <= _INT32_MAX) & (values == np.floor(values)))  # NaN compares False
    if bad.any():
        row = int(np.argmax(bad))
        raise DataFormatError(f"{ref.where} line {_line(row)}, column {col.name}: found {float(values[row])!r}, "
                              f"expected {col.expected}")
    return values.astype(np.int32)


def _first(mask: np.ndarray) -> int | None:
    return int(np.argmax(mask)) if mask.any() else None


def check_row_ids(ids: np.ndarray, ref: FileRef, what: str) -> None:
    """Column ``id`` must equal the row index 0..n-1 (VesselGraph indexes rows by it)."""
    row = _first(ids != np.arange(len(ids), dtype=ids.dtype))
    if row is not None:
        raise DataFormatError(f"{ref.where} line {_line(row)}, column id: found {int(ids[row])}, expected {row} "
                              f"({what} ids equal the row index 0..{len(ids) - 1})")


# -- the three files ------------------------------------------------------------------------------
def read_nodes(ref: FileRef) -> dict[str, np.ndarray]:
    """``{"pos": (N, 3) float64, "degree": (N,) int32, "isAtSampleBorder": (N,) bool}``, validated."""
    check_header(ref, [c.name for c in NODE_COLUMNS])
    table = read_table(ref, NODE_COLUMNS)
    n = table.num_rows
    if n == 0:
        raise DataFormatError(f"{ref.where}: no node rows after the header, expected at least one node")
    check_row_ids(table.column("id").to_numpy(), ref, "node")
    pos = np.empty((n, 3), dtype=np.float64)
    for k, axis in enumerate("xyz"):
        pos[:, k] = table.column(f"pos_{axis}").to_numpy()
        row = _first(~np.isfinite(pos[:, k]))
        if row is not None:
            raise DataFormatError(f"{ref.where} line {_line(row)}, column pos_{axis}: found {float(pos[row, k])!r}, "
                                  "expected a finite coordinate")
    cols = {c.name: c for c in NODE_COLUMNS}
    return {"pos": pos, "degree": numpy_column(table, cols["degree"], ref),
            "isAtSampleBorder": numpy_column(table, cols["isAtSampleBorder"], ref)}


def check_edge_index(n1: np.ndarray, n2: np.ndarray, n_nodes: int, ref: FileRef) -> None:
    """Endpoints in 0..n_nodes-1, no self-loop, node1id < node2id, no node pair twice."""
    for name, v in (("node1id", n1), ("node2id", n2)):
        row = _first((v < 0) | (v >= n_nodes))
        if row is not None:
            raise DataFormatError(f"{ref.where} line {_line(row)}, column {name}: node id {int(v[row])} out of range, "
                                  f"expected 0..{n_nodes - 1} (the graph has {n_nodes} nodes)")
    row = _first(n1 == n2)
    if row is not None:
        raise DataFormatError(f"{ref.where} line {_line(row)}, columns node1id/node2id: self-loop {int(n1[row])}-"
                              f"{int(n2[row])}, expected two different nodes")
    row = _first(n1 > n2)
    if row is not None:
        raise DataFormatError(f"{ref.where} line {_line(row)}, columns node1id/node2id: node1id {int(n1[row])} >= "
                              f"node2id {int(n2[row])}, expected node1id < node2id")
    if len(n1) < 2:
        return
    key = n1 * np.int64(n_nodes) + n2  # < n_nodes**2 < 2**63 for any graph that fits in memory
    if np.all(key[1:] > key[:-1]):  # the released files are sorted by node1id, often by both: no sort needed
        return
    order = np.argsort(key, kind="stable")
    sk = key[order]
    dup = np.flatnonzero(sk[1:] == sk[:-1]) + 1
    if len(dup):
        later = order[dup]  # stable sort: the later line of each repeated pair
        i = int(np.argmin(later))
        row, first = int(later[i]), int(order[dup[i] - 1])
        raise DataFormatError(f"{ref.where} line {_line(row)}, columns node1id/node2id: duplicate edge "
                              f"({int(n1[row])}, {int(n2[row])}), first on line {_line(first)}; expected each node pair once")


def read_edges(ref: FileRef, n_nodes: int) -> pa.Table:
    """The edges table, validated against a graph of ``n_nodes`` nodes (see :func:`check_edge_index`)."""
    check_header(ref, [c.name for c in EDGE_COLUMNS])
    table = read_table(ref, EDGE_COLUMNS)
    check_row_ids(table.column("id").to_numpy(), ref, "edge")
    check_edge_index(table.column("node1id").to_numpy(), table.column("node2id").to_numpy(), n_nodes, ref)
    return table


def read_atlas(ref: FileRef, n_nodes: int) -> tuple[list[str], np.ndarray]:
    """``(region acronyms, (N, R) bool one-hot)`` of an atlas file with one row per node."""
    header = read_header(ref)
    has_id = bool(header) and header[0] == "id"
    names = header[1:] if has_id else header
    for i, name in enumerate(names, 2 if has_id else 1):
        if not name.startswith(ATLAS_PREFIX) or name == ATLAS_PREFIX:
            raise DataFormatError(f"{ref.where} line 1, column {i}: found {name!r}, expected {ATLAS_PREFIX}<acronym> "
                                  f"(one-hot atlas columns{', after id' if has_id else ''}){_separator_hint(header)}")
    if not names:
        raise DataFormatError(f"{ref.where} line 1: no {ATLAS_PREFIX}<acronym> columns")
    seen = set()
    for i, name in enumerate(names, 2 if has_id else 1):
        if name in seen:
            raise DataFormatError(f"{ref.where} line 1, column {i}: {name!r} appears twice, expected each region once")
        seen.add(name)
    columns = ([Column("id", "id")] if has_id else []) + [Column(n, "flag") for n in names]
    table = read_table(ref, columns)
    if table.num_rows != n_nodes:
        raise DataFormatError(f"{ref.where}: {table.num_rows} data rows, expected {n_nodes} (one per node of the "
                              "nodes file)")
    if has_id:
        check_row_ids(table.column("id").to_numpy(), ref, "atlas row")
    onehot = np.empty((n_nodes, len(names)), dtype=bool)
    for k, name in enumerate(names):
        onehot[:, k] = table.column(name).to_numpy(zero_copy_only=False)
    return [n[len(ATLAS_PREFIX):] for n in names], onehot

