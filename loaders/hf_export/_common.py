"""What every Hugging Face exporter shares: features from store variables, the export plan, the Arrow writer.

An exporter turns a prepared store into a :class:`Plan`: one :class:`Table` (a ``datasets.Dataset``) or
several (the splits of a ``datasets.DatasetDict``), each with its ``Features`` and a function that yields
the rows in batches (dicts of numpy arrays, one entry per column). :func:`materialize` streams the batches
into one Arrow file per table with ``datasets``' own ``ArrowWriter`` (memory: one batch at a time; n-d
values are handed to it as Arrow arrays that share the numpy memory, :func:`nested_arrow`) and opens the
files memory-mapped, with a ``DatasetInfo`` that carries the store's provenance.

Type rules (:func:`var_feature`): a value per row is ``Value`` with the store's dtype; a 1-D value per row
is a fixed-length ``List``; 2-D to 5-D numeric values are ``Array2D`` ... ``Array5D`` with the store's
dtype; values whose length differs from row to row are variable-length ``List`` (built by the exporters).
Each feature's ``id`` holds a JSON object with the variable's ``units``, ``long_name`` and other CF
attributes, its store dims and the labels of its trailing dims, since ``id`` is the one per-feature field
that ``datasets`` keeps through ``save_to_disk`` and ``push_to_hub``.
"""
from __future__ import annotations

import datetime as _dt
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np

from neuroharness import __version__
from neuroharness.errors import DataFormatError, NeuroharnessError
from neuroharness.progress import progress_bar, status

#: Bumped whenever an exporter's output for the same store would change (part of the cache key).
EXPORT_VERSION = "1"
#: Rows are written in batches of about this many bytes (a batch is what one export holds in memory).
BATCH_BYTES = 64 << 20
#: Labels of a trailing dim longer than this are not copied into a feature's metadata.
MAX_LABELS = 4096
_SKIP_ATTRS = {"_ARRAY_DIMENSIONS", "_FillValue", "coordinates", "missing_value"}
_ARRAY = {2: "Array2D", 3: "Array3D", 4: "Array4D", 5: "Array5D"}


# -- dtypes and features -----------------------------------------------------------------------------
def value_dtype(dtype, where: str) -> str:
    """The ``datasets.Value`` dtype of a numpy dtype (``"float32"``, ``"uint16"``, ``"bool"``, ``"string"``)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "USO":
        return "string"
    if dtype.kind == "b":
        return "bool"
    if dtype.kind in "iuf" and dtype.itemsize in (1, 2, 4, 8) and not (dtype.kind == "f" and dtype.itemsize == 1):
        return dtype.name
    raise DataFormatError(f"{where}: dtype {dtype} has no exact Hugging Face `datasets` type; expected booleans, "
                          "integers, floats or strings")


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def feature_id(attrs: Mapping | None = None, **extra) -> str | None:
    """The JSON text a feature's ``id`` holds: CF attributes (``units``, ``long_name``, ...) then ``extra``.

    Keys whose value is None are left out; None when nothing is left."""
    meta = {}
    for key, value in {**dict(attrs or {}), **extra}.items():
        if key in _SKIP_ATTRS or value is None:
            continue
        meta[str(key)] = _jsonable(value)
    return json.dumps(meta, ensure_ascii=False, sort_keys=False) if meta else None


def feature_meta(feature) -> dict:
    """The metadata :func:`feature_id` wrote into a feature's ``id`` (for a ``List``, its values' ``id``)."""
    while getattr(feature, "id", None) is None and hasattr(feature, "feature"):
        feature = feature.feature
    fid = getattr(feature, "id", None)
    return json.loads(fid) if fid else {}


def array_feature(inner: tuple[int, ...], dtype: str, fid: str | None = None, *, ragged_first: bool = False,
                  ragged: bool = False):
    """The feature of one row's value of shape ``inner`` and ``datasets`` dtype ``dtype``.

    ``()``: ``Value``; 1-D or strings: (nested) fixed-length ``List``; 2-D to 5-D numbers: ``ArrayND``.
    ``ragged_first``: the first dim's length differs between rows (``None`` in the array shape, or a
    variable-length ``List``); ``ragged``: every dim's length does (nested variable-length ``List``s,
    e.g. channels x time of recordings with different channels and lengths)."""
    import datasets

    if not inner:
        return datasets.Value(dtype, id=fid)
    if ragged or dtype == "string" or len(inner) == 1 or len(inner) > 5:
        # datasets rebuilds List features without their id (Features.__init__), so the metadata sits on the values
        feature = datasets.Value(dtype, id=fid)
        for i, n in reversed(list(enumerate(inner))):
            feature = datasets.List(feature, length=-1 if ragged or (ragged_first and i == 0) else int(n))
        return feature
    shape = (None if ragged_first else int(inner[0]), *map(int, inner[1:]))
    return getattr(datasets, _ARRAY[len(inner)])(shape=shape, dtype=dtype, id=fid)


def var_feature(var, row_dim: str | None, *, where: str, dims: tuple[str, ...] | None = None,
                labels: Mapping[str, list] | None = None, **extra):
    """The feature of store variable ``var`` (an ``xarray.DataArray``) exported one row per ``row_dim``.

    ``row_dim`` None: the whole variable is every row's value (a constant column, e.g. neuron names).
    The ``id`` records the variable's attributes, its dims after the row dim (``dims`` renames them) and
    the string labels of those dims found in ``labels`` or among ``var``'s coordinates."""
    var_dims = tuple(map(str, var.dims))
    if row_dim is not None and (not var_dims or var_dims[0] != row_dim):
        raise NeuroharnessError(f"{where}: dims {var_dims} do not start with the row dim {row_dim!r}")
    inner_dims = var_dims[1:] if row_dim is not None else var_dims
    inner = tuple(var.shape[1:] if row_dim is not None else var.shape)
    dtype = value_dtype(var.dtype, where)
    found = {}
    for d in inner_dims:
        values = (labels or {}).get(d)
        if values is None and d in getattr(var, "coords", {}) and var.coords[d].dtype.kind in "USO":
            values = [str(v) for v in np.asarray(var.coords[d].values)]
        if values is not None and len(values) <= MAX_LABELS:
            found[d] = list(map(str, values))
    fid = feature_id(var.attrs, dims=list(dims or inner_dims) or None, labels=found or None, **extra)
    return array_feature(inner, dtype, fid)


def strings(values) -> np.ndarray:
    """Text values as a numpy unicode array (bytes decoded as UTF-8)."""
    values = np.asarray(values)
    if values.dtype.kind == "S":
        return np.char.decode(values, "utf-8")
    if values.dtype.kind == "O":
        return np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in values.ravel()],
                          dtype=str).reshape(values.shape)
    return values


def class_label(names, *, where: str, attrs: Mapping | None = None, **extra):
    """A ``ClassLabel`` over ``names`` (in that order), its metadata in ``id``."""
    import datasets

    names = [str(n) for n in names]
    if len(set(names)) != len(names) or not names:
        raise NeuroharnessError(f"{where}: class names {names} are empty or repeated")
    return datasets.ClassLabel(names=names, id=feature_id(attrs, **extra))


def class_codes(values, names, where: str) -> np.ndarray:
    """``values`` (strings) as int64 codes into ``names``; a value not in ``names`` is a :class:`DataFormatError`."""
    index = {n: i for i, n in enumerate(names)}
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(map(str, strings(values))):
        if v not in index:
            raise DataFormatError(f"{where}: row {i} holds {v!r}; expected one of {', '.join(names)}")
        out[i] = index[v]
    return out


# -- the export plan -----------------------------------------------------------------------------------------
@dataclass
class Table:
    """One table: ``features``, the number of ``rows`` and ``batches()``, an iterator of column dicts
    (numpy arrays or lists, every column of ``features``, equal lengths) covering the rows in order.
    ``row_bytes`` (an estimate) sizes the batches; ``about`` is a line for the description."""

    features: object
    rows: int
    batches: Callable[[], Iterator[dict]]
    about: str = ""
    row_bytes: int = 0


@dataclass
class Plan:
    """What one export writes: one table (``tables == {None: t}``: a ``Dataset``) or several (a ``DatasetDict``).

    ``description``/``citation``/``license``/``homepage``/``version`` fill each table's ``DatasetInfo``
    (``provenance`` lines are appended to the description), ``key`` identifies the content (the store's
    checksums) for the cache, ``notes`` are printed after the export (licence warnings)."""

    name: str
    tables: dict
    title: str
    description: str
    citation: str
    license: str
    homepage: str = ""
    version: str = ""
    provenance: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checksums: dict = field(default_factory=dict)
    part: str | None = None

    @property
    def single(self) -> bool:
        return list(self.tables) == [None]

    @property
    def key(self) -> str:
        """What identifies the exported content (name, version, part, checksums of what was read)."""
        return json.dumps([self.name, self.version, self.part, sorted(self.checksums.items())])


def store_provenance(attrs: Mapping, part: str | None = None) -> list[str]:
    """Provenance lines from a store's root attributes (checksums, source, licence, creation)."""
    lines = [f"dataset: {attrs.get('dataset', '?')} version {attrs.get('dataset_version', '?')}",
             f"content_sha256: {attrs.get('content_sha256', '?')}"]
    if part is not None and attrs.get("parts_sha256"):
        parts = json.loads(attrs["parts_sha256"]) if isinstance(attrs["parts_sha256"], str) else attrs["parts_sha256"]
        lines.append(f"part {part} sha256: {parts.get(part, '?')}")
    for key in ("source", "source_argument", "only", "created", "harness_version", "raw_sha256"):
        if attrs.get(key) not in (None, "", []):
            lines.append(f"store {key}: {attrs[key]}")
    return lines


def hf_version(version: str) -> str | None:
    """A card version as the ``MAJOR.MINOR.PATCH`` text ``datasets.Version`` accepts (``"1.0"`` -> ``"1.0.0"``)."""
    m = re.fullmatch(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(version).strip())
    if not m:
        return None
    return ".".join(g or "0" for g in m.groups())


def describe_features(features) -> list[str]:
    """One line per column: name, type, units and long name (for the description)."""
    lines = []
    for name, feature in features.items():
        meta = feature_meta(feature)
        kind = type(feature).__name__
        if hasattr(feature, "names"):
            kind += f" {feature.names}"
        elif hasattr(feature, "shape"):
            kind += f"{tuple(feature.shape)} {feature.dtype}"
        elif hasattr(feature, "feature"):  # List: its length and value type, without the id
            kind, inner, lengths = "List", feature, []
            while hasattr(inner, "feature"):
                lengths.append("*" if inner.length == -1 else str(inner.length))
                inner = inner.feature
            kind += f"[{', '.join(lengths)}] {getattr(inner, 'dtype', inner)}"
        elif hasattr(feature, "dtype"):
            kind += f" {feature.dtype}"
        unit = f" [{meta['units']}]" if "units" in meta else ""
        long = f": {meta['long_name']}" if "long_name" in meta else ""
        dims = f" dims {tuple(meta['dims'])}" if "dims" in meta else ""
        lines.append(f"  {name}: {kind}{dims}{unit}{long}")
    return lines


def dataset_info(plan: Plan, table: str | None):
    """The ``datasets.DatasetInfo`` of one table of ``plan``."""
    import datasets

    t = plan.tables[table]
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    text = [plan.title, "", " ".join(plan.description.split()), ""]
    if t.about:
        text += [t.about, ""]
    text += [f"Exported by neuroharness {__version__} on {created} (exporter version {EXPORT_VERSION}):"]
    text += [f"  {line}" for line in plan.provenance]
    text += ["", "Columns (units and long names are also in each feature's `id`, as JSON):"]
    text += describe_features(t.features)
    text += ["", "Licence: " + plan.license]
    text += [f"Note: {n}" for n in plan.notes]
    return datasets.DatasetInfo(description="\n".join(text), citation=plan.citation, homepage=plan.homepage,
                                license=plan.license, features=t.features, dataset_name=plan.name,
                                config_name=table or "default", version=hf_version(plan.version))


# -- writing ---------------------------------------------------------------------------------------------
def _nested_shape(feature) -> tuple[int, str] | None:
    """``(ndim, value dtype)`` of a column Arrow stores as nested variable-length lists of numbers (an
    ``ArrayND``, or ``List`` of ``List`` ... of numbers without a fixed length); None for other columns."""
    import datasets

    if isinstance(feature, (datasets.Array2D, datasets.Array3D, datasets.Array4D, datasets.Array5D)):
        dtype = feature.dtype
        return (len(feature.shape), dtype) if dtype not in ("string", "large_string") else None
    ndim = 0
    while isinstance(feature, datasets.List) and feature.length == -1:
        ndim, feature = ndim + 1, feature.feature
    if ndim and isinstance(feature, datasets.Value) and feature.dtype not in ("string", "large_string", "binary"):
        return ndim, feature.dtype
    return None


def nested_arrow(rows, feature, arrow_type, where: str):
    """The Arrow array of one column of a batch: ``rows`` (one n-d array per row, or one array whose first
    axis is the rows) as nested lists of ``arrow_type`` (a ``datasets`` extension type for ``ArrayND``).

    Built here rather than by ``datasets`` because its conversion copies every value twice; here the values
    of a one-row batch (a whole volume) are not copied at all, and several rows are copied once."""
    import pyarrow as pa

    ndim, dtype = _nested_shape(feature)
    rows = list(rows) if not isinstance(rows, np.ndarray) else list(rows) if rows.ndim == ndim + 1 else None
    if rows is None or any(np.ndim(r) != ndim for r in rows):
        raise NeuroharnessError(f"{where}: expected one {ndim}-d array per row")
    rows = [np.ascontiguousarray(r, dtype=np.dtype(dtype) if dtype != "bool" else bool) for r in rows]
    flat = rows[0].reshape(-1) if len(rows) == 1 else np.concatenate([r.reshape(-1) for r in rows])
    storage_type = getattr(arrow_type, "storage_type", arrow_type)
    inner = storage_type
    for _ in range(ndim):
        inner = inner.value_type
    out = pa.array(flat, type=inner)
    for axis in reversed(range(ndim)):
        parts, start = [np.zeros(1, np.int64)], 0
        for r in rows:
            count = int(np.prod(r.shape[:axis], dtype=np.int64))
            parts.append(start + np.arange(1, count + 1, dtype=np.int64) * r.shape[axis])
            start += count * r.shape[axis]
        offsets = np.concatenate(parts)
        if offsets[-1] >= 2 ** 31:
            raise DataFormatError(f"{where}: {int(offsets[-1])} values in one batch; Arrow lists hold fewer than "
                                  "2**31 (a row this large cannot be exported)")
        out = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), out)
    if out.type != storage_type:
        out = out.cast(storage_type)
    return pa.ExtensionArray.from_storage(arrow_type, out) if storage_type is not arrow_type else out


def rows_per_batch(row_bytes: int, cap: int = 65536) -> int:
    """Rows per batch so that one batch holds about :data:`BATCH_BYTES`."""
    return int(max(1, min(cap, BATCH_BYTES // max(1, int(row_bytes)))))


def write_table(plan: Plan, table: str | None, path: Path):
    """Stream ``plan.tables[table]`` into the Arrow file ``path``; return it as a memory-mapped ``Dataset``."""
    import datasets
    from datasets.arrow_writer import ArrowWriter

    t = plan.tables[table]
    label = f"{plan.name}{'' if plan.part is None else '/' + plan.part}{'' if table is None else ' ' + table}"
    names = list(t.features)
    schema = t.features.arrow_schema
    nested = {k for k in names if _nested_shape(t.features[k]) is not None}
    written = 0
    writer = ArrowWriter(features=t.features, path=str(path))
    try:
        with progress_bar(total=t.rows, desc=f"[{label}] export", unit="row") as bar:
            for batch in t.batches():
                if set(batch) != set(names):
                    raise NeuroharnessError(f"export of {label}: a batch has columns {sorted(batch)}, expected "
                                            f"{sorted(names)}")
                n = {len(v) for v in batch.values()}
                if len(n) != 1:
                    raise NeuroharnessError(f"export of {label}: columns of a batch differ in length ({sorted(n)})")
                n = n.pop()
                if n == 0:
                    continue
                writer.write_batch({k: nested_arrow(batch[k], t.features[k], schema.field(k).type, f"{label} {k}")
                                    if k in nested else batch[k] for k in names})
                written += n
                bar.update(n)
        writer.finalize()
    finally:
        writer.close()
    if written != t.rows:
        raise NeuroharnessError(f"export of {label}: wrote {written} rows, expected {t.rows}")
    return datasets.Dataset.from_file(str(path), info=dataset_info(plan, table),
                                      split=None if table is None else datasets.NamedSplit(table))


def materialize(plan: Plan, workdir: Path):
    """Write every table of ``plan`` under ``workdir``; a ``Dataset`` (one table) or a ``DatasetDict``."""
    import datasets

    workdir.mkdir(parents=True, exist_ok=True)
    out = {}
    for table in plan.tables:
        name = "data" if table is None else table
        part = "" if plan.part is None else f" {plan.part}"
        status(f"[{plan.name}{part}] writing {plan.tables[table].rows} rows" + ("" if table is None else f" of {table}"))
        out[table] = write_table(plan, table, workdir / f"{name}.arrow")
    return out[None] if plan.single else datasets.DatasetDict(out)


def _row_chunk(var) -> int:
    """Rows of one stored chunk of ``var`` along its first dim (0 when not chunked)."""
    chunks = getattr(var, "chunks", None)
    if chunks and chunks[0]:
        return int(chunks[0][0])
    enc = var.encoding.get("chunks") or var.encoding.get("preferred_chunks")
    if isinstance(enc, dict):
        enc = list(enc.values())
    return int(enc[0]) if enc else 0


def xarray_batches(ds, row_dim: str, columns: Mapping[str, str], *, row_bytes: int = 0,
                   extra: Callable[[int, int], dict] | None = None) -> Iterator[dict]:
    """Batches of rows ``[start, stop)`` along ``row_dim`` of the xarray Dataset ``ds``: ``columns`` maps
    a column name to the variable it copies (strings decoded); ``extra(start, stop)`` adds columns.

    Rows are read a block of whole store chunks at a time (each chunk is decompressed once) and handed
    out in batches of about :data:`BATCH_BYTES`."""
    n = int(ds.sizes[row_dim])
    if row_bytes <= 0:
        row_bytes = sum(ds[v].dtype.itemsize * int(np.prod(ds[v].shape[1:], dtype=np.int64)) for v in columns.values())
    step = rows_per_batch(row_bytes)
    chunk = max([_row_chunk(ds[v]) for v in columns.values()] + [1])
    budget = 4 * BATCH_BYTES  # what one block of rows may hold
    if chunk * row_bytes <= budget:  # whole chunks: each is read once
        block = chunk * max(1, budget // (chunk * max(1, row_bytes)))
    else:  # chunks larger than memory should hold: a slice of them at a time
        block = max(step, budget // max(1, row_bytes))
    for b0 in range(0, n, block):
        b1 = min(n, b0 + block)
        values = {}
        for col, var in columns.items():
            a = np.asarray(ds[var][b0:b1].values)
            if a.dtype.byteorder == (">" if sys.byteorder == "little" else "<"):  # Arrow takes native order only
                a = a.astype(a.dtype.newbyteorder("="))
            values[col] = strings(a) if a.dtype.kind in "SO" else a
        for start in range(b0, b1, step):
            stop = min(b1, start + step)
            batch = {col: a[start - b0:stop - b0] for col, a in values.items()}
            if extra is not None:
                batch.update(extra(start, stop))
            yield batch


def repeat(value, n: int) -> list:
    """``value`` (a constant column's value) repeated for ``n`` rows."""
    return [value] * n


def xarray_table(ds, row_dim: str, *, where: str, skip=(), class_labels: Mapping[str, list] | None = None,
                 constants=(), index_column: str | None = None, rename: Mapping[str, str] | None = None,
                 about: str = "") -> Table:
    """A :class:`Table` with one row per ``row_dim`` of the xarray Dataset ``ds``.

    Columns, in order: ``index_column`` (int64 row number, when given: what other tables refer to), the
    ``row_dim`` coordinate, then every other variable whose first dim is ``row_dim`` (coordinates, then data
    variables; ``skip`` leaves some out; a variable with ``row_dim`` in second place belongs to another
    table), then the ``constants``: variables without ``row_dim``, the same
    value in every row (e.g. neuron names). ``class_labels`` {column: names} turns string columns into
    ``ClassLabel``; ``rename`` {variable: column} renames columns. Trailing dims' labels go into each
    feature's ``id``."""
    import datasets

    class_labels = dict(class_labels or {})
    rename = dict(rename or {})
    n = int(ds.sizes[row_dim])
    names = []
    if row_dim in ds.variables:
        names.append(row_dim)
    for group in (ds.coords, ds.data_vars):
        for v in map(str, group):
            if v == row_dim or v in skip or v in names:
                continue
            dims = tuple(map(str, ds[v].dims))
            if dims and dims[0] == row_dim:  # variables with row_dim later (fmri on vertex) belong to another table
                names.append(v)
    features, columns = {}, {}
    if index_column:
        features[index_column] = datasets.Value("int64", id=feature_id(
            long_name=f"row index along {row_dim} in the store (what other tables refer to)", units="1"))
    for v in names:
        col = rename.get(v, v)
        if col in class_labels:
            features[col] = class_label(class_labels[col], where=f"{where} {v}", attrs=ds[v].attrs)
        else:
            features[col] = var_feature(ds[v], row_dim, where=f"{where} {v}")
        columns[col] = v
    const = {}
    for v in constants:
        col = rename.get(v, v)
        features[col] = var_feature(ds[v], None, where=f"{where} {v}")
        values = np.asarray(ds[v].values)
        const[col] = strings(values) if values.dtype.kind in "SO" else values
    features = datasets.Features(features)
    row_bytes = sum(ds[v].dtype.itemsize * int(np.prod(ds[v].shape[1:], dtype=np.int64)) for v in names)

    def extra(start, stop):
        out = {k: repeat(v, stop - start) for k, v in const.items()}
        if index_column:
            out[index_column] = np.arange(start, stop, dtype=np.int64)
        return out

    def batches():
        for batch in xarray_batches(ds, row_dim, columns, row_bytes=row_bytes, extra=extra):
            for col in class_labels:
                if col in batch:
                    batch[col] = class_codes(batch[col], class_labels[col], f"{where} {columns[col]}")
            yield batch

    return Table(features, n, batches, about=about, row_bytes=row_bytes)


def licence_notes(card) -> list[str]:
    """What an export of dataset ``card`` must tell its user about sharing it (from the card's
    ``redistribution``: nothing where it is allowed)."""
    status = getattr(card, "redistribution_status", None)
    reason = getattr(card, "redistribution_reason", "") or card.license
    if status is None:  # a card without the field: judge from the licence text
        text = card.license.lower()
        status = "forbidden" if "no redistribution" in text else "unknown" if "unknown" in text else "allowed"
    if status == "forbidden":
        return [f"{card.name} may not be redistributed ({reason}). This export is your own local copy of data you "
                f"obtained under those terms: do not push it to the Hugging Face Hub or share it "
                f"(`neuroharness datasets publish` refuses {card.name} for the same reason)."]
    if status == "unknown":
        return [f"{card.name}: whether it may be redistributed is not known ({reason}); check the source's terms "
                "before sharing this export or pushing it to the Hub."]
    return []


def store_plan(card, attrs: Mapping, tables: dict, *, part: str | None = None, notes=(), provenance=()) -> Plan:
    """The :class:`Plan` of a dataset store: the card's texts, the store's licence, citation and checksums,
    and the card's redistribution terms as notes."""
    notes = [*licence_notes(card), *notes]
    return Plan(name=card.name, tables=tables, title=str(attrs.get("title") or card.title),
                description=card.description, citation=str(attrs.get("citation") or card.citation),
                license=str(attrs.get("license") or card.license), homepage=card.homepage,
                version=str(attrs.get("dataset_version") or card.version),
                provenance=store_provenance(attrs, part) + list(provenance), notes=list(notes),
                checksums=store_checksums(card.name, attrs, part), part=part)


def store_checksums(name: str, attrs: Mapping, part: str | None = None) -> dict[str, str]:
    """``{name: content_sha256}`` of a store, and ``{name/part: sha256}`` of the part exported."""
    out = {name: str(attrs.get("content_sha256", ""))}
    if part is not None and attrs.get("parts_sha256"):
        parts = json.loads(attrs["parts_sha256"]) if isinstance(attrs["parts_sha256"], str) else attrs["parts_sha256"]
        out[f"{name}/{part}"] = str(parts.get(part, ""))
    return out
