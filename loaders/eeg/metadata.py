"""Which recordings a source holds and what each one is: the layout's metadata table, file names and defaults.

:func:`plan` walks the source folder, keeps the files whose suffix is one of
the layout's formats, and resolves every recording's subject, group,
condition, session, device and optional clinical fields. Problems of the whole
source (no metadata table, a missing column, two rows for one file, two files
with one recording id) are errors; problems of one recording (not in the
table, a group outside patient/control, a condition the layout does not list,
an unreadable number) skip that recording with a reason naming its file, and
the others go on.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from neuroharness.errors import DataFormatError

from .layout import ID_FIELDS, Layout, SkipRecording
from .recordings import OPTIONAL_FIELDS, STRING_OPTIONAL

# files that belong to a recording without being one (BrainVision, EEGLAB): provenance digests them too
COMPANIONS = {"vhdr": ("eeg", "vmrk", "dat"), "set": ("fdt",)}
ID_CHARS = re.compile(r"[^A-Za-z0-9._-]")
NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


@dataclass
class RecordingInfo:
    """One recording to convert: its file (relative to the source, '/' separators), id and fields."""

    file: str
    path: Path
    recording: str
    subject: str
    group: str
    condition: str
    session: str
    device: str
    extra: dict = field(default_factory=dict)  # optional fields: floats (NaN when absent), sex str

    def fields(self) -> dict:
        return {"subject": self.subject, "group": self.group, "condition": self.condition,
                "session": self.session, "device": self.device, "file": self.file, **self.extra}


def recording_id(subject: str, condition: str, session: str, device: str) -> str:
    """``{subject}_{condition}_ses-{session}_{device}`` with characters outside [A-Za-z0-9._-] replaced by '-'."""
    return ID_CHARS.sub("-", f"{subject}_{condition}_ses-{session}_{device}")


def read_table(path: Path, sheet: str | None = None) -> pd.DataFrame:
    """A metadata table (CSV, TSV, or .xlsx/.xls) with every cell as a stripped string ('' when empty)."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".xlsx", ".xlsm", ".xls"):
            df = pd.read_excel(path, sheet_name=sheet if sheet is not None else 0, dtype=str)
        elif suffix in (".csv", ".tsv", ".tab", ".txt"):
            df = pd.read_csv(path, sep="," if suffix == ".csv" else "\t", dtype=str, keep_default_na=False,
                             encoding="utf-8-sig")
        else:
            raise DataFormatError(f"metadata table {path}: suffix {path.suffix!r}; expected .csv, .tsv or .xlsx")
    except DataFormatError:
        raise
    except FileNotFoundError:
        raise DataFormatError(f"metadata table {path}: no such file; the layout's [metadata] table names it "
                              "(relative to --source)") from None
    except ImportError as e:
        raise DataFormatError(f"metadata table {path}: reading it needs {e.name or 'openpyxl'} "
                              f"(pip install openpyxl), or save it as CSV") from None
    except Exception as e:  # pandas raises many kinds on malformed text
        raise DataFormatError(f"metadata table {path}: not readable ({type(e).__name__}: "
                              f"{' '.join(str(e).split())[:200]}); expected CSV/TSV with a header row, or .xlsx") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df.fillna("").astype(str).apply(lambda col: col.str.strip())


def scan(root: Path, layout: Layout) -> list[str]:
    """Paths (relative to ``root``, '/' separators, sorted) of the files with one of the layout's formats;
    hidden files and folders are left out."""
    found = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(p.startswith(".") for p in rel.parts) or not path.is_file():
            continue
        if layout.is_recording(rel.name):
            found.append(rel.as_posix())
    return sorted(found)


def companions(root: Path, rel: str) -> dict[str, Path]:
    """The files that belong with recording ``rel`` (BrainVision .eeg/.vmrk, EEGLAB .fdt), where present."""
    path = root / rel
    out = {}
    for suffix in COMPANIONS.get(path.suffix.lower().lstrip("."), ()):
        for candidate in (path.with_suffix("." + suffix), path.with_suffix("." + suffix.upper())):
            if candidate.is_file():
                out[candidate.relative_to(root).as_posix()] = candidate
                break
    return out


def _normal(rel: str) -> str:
    rel = rel.replace("\\", "/").strip()
    while rel.startswith("./"):
        rel = rel[2:]
    return rel


def plan(root: Path, layout: Layout) -> tuple[list[RecordingInfo], list[dict], dict[str, Path]]:
    """``(recordings to convert, skipped [{"file", "reason"}], {name: path} of the metadata table)``.

    Recordings are sorted by id; a duplicate id is a :class:`DataFormatError` naming both files.
    """
    root = Path(root)
    files = scan(root, layout)
    rows: dict[str, tuple[int, dict]] = {}
    table_files: dict[str, Path] = {}
    table_name = None
    if layout.metadata_table is not None:
        table_path = root / layout.metadata_table
        table_name = layout.metadata_table
        df = read_table(table_path, layout.metadata_sheet)
        missing = [f"{col!r} (field {key})" for key, col in layout.columns.items() if col not in df.columns]
        if missing:
            raise DataFormatError(f"metadata table {table_path}: no column {', '.join(missing)}; it has columns "
                                  f"{', '.join(map(repr, df.columns))}; fix the table or [metadata.columns] of the "
                                  f"layout {layout.origin}")
        table_files[layout.metadata_table] = table_path
        for i, row in enumerate(df.to_dict("records")):
            rel = _normal(row[layout.columns["file"]])
            if not rel:
                raise DataFormatError(f"metadata table {table_path}: row {i + 2} has an empty "
                                      f"{layout.columns['file']!r} column; expected the recording's path relative to "
                                      "the source")
            if rel in rows:
                raise DataFormatError(f"metadata table {table_path}: rows {rows[rel][0]} and {i + 2} both describe "
                                      f"file {rel!r}; expected one row per recording")
            rows[rel] = (i + 2, row)

    infos: list[RecordingInfo] = []
    skipped: list[dict] = []
    on_disk = set(files)
    for rel in files:
        try:
            infos.append(_resolve(root, rel, layout, rows.get(rel), table_name))
        except SkipRecording as e:
            skipped.append({"file": rel, "reason": e.reason})
    for rel, (line, _) in rows.items():
        if rel not in on_disk:
            why = ("no such file" if not (root / rel).exists() else
                   f"its suffix is not one of the layout's formats ({', '.join(layout.formats)})")
            skipped.append({"file": rel, "reason": f"listed in row {line} of the metadata table {table_name}, but "
                                                   f"{why} under the source"})
    by_id: dict[str, RecordingInfo] = {}
    for info in infos:
        if info.recording in by_id:
            raise DataFormatError(
                f"recordings {by_id[info.recording].file!r} and {info.file!r} both get the recording id "
                f"{info.recording!r} (subject_condition_ses-session_device); expected one recording per subject, "
                "condition, session and device: fix the metadata or the layout")
        by_id[info.recording] = info
    return [by_id[k] for k in sorted(by_id)], sorted(skipped, key=lambda s: s["file"]), table_files


def _resolve(root: Path, rel: str, layout: Layout, row, table_name) -> RecordingInfo:
    values: dict[str, str] = {}
    origin: dict[str, str] = {}
    if layout.pattern is not None:
        m = layout.pattern.fullmatch(rel)
        if m is None:
            raise SkipRecording(f"its path does not match the [names] pattern {layout.pattern.pattern!r} of the "
                                "layout")
        for key, value in m.groupdict().items():
            if value is not None and value != "":
                values[key], origin[key] = value, "the [names] pattern"
    if layout.metadata_table is not None:
        if row is None:
            raise SkipRecording(f"not listed in the metadata table {table_name} (column "
                                f"{layout.columns['file']!r}), so its subject and group are unknown; add a row for it")
        line, cells = row
        for key, col in layout.columns.items():
            if key == "file":
                continue
            value = cells[col]
            if value == "":
                continue
            if key in values and values[key] != value:
                raise SkipRecording(f"{key} is {values[key]!r} by {origin[key]} but {value!r} in column {col!r} "
                                    f"(row {line}) of the metadata table {table_name}")
            values[key], origin[key] = value, f"column {col!r}, row {line}, of the metadata table {table_name}"
    for key, value in layout.defaults.items():
        if values.get(key, "") == "" and value is not None:
            values[key], origin[key] = value, "[defaults] of the layout"
    empty = [k for k in ID_FIELDS if not values.get(k, "").strip()]
    if empty:
        where = [f"column {layout.columns[k]!r}" if k in layout.columns else "the layout" for k in empty]
        raise SkipRecording(f"no {', '.join(empty)} ({'; '.join(where)} gives none, and [defaults] has none)")
    group = layout.group(values["group"])
    if group is None:
        allowed = sorted(k for k in layout.groups)
        raise SkipRecording(f"group {values['group']!r} ({origin['group']}) is neither patient nor control; "
                            f"expected one of {', '.join(allowed)} (the [groups] table of the layout)")
    condition = layout.condition(values["condition"])
    if condition is None:
        raise SkipRecording(f"condition {values['condition']!r} ({origin['condition']}) is not listed in the "
                            f"[conditions] table of the layout; expected one of "
                            f"{', '.join(sorted(layout.conditions))}")
    layout.device(values["device"])  # a device without a [devices] table (and no "*") is skipped here already
    extra = {}
    for key in layout.optional_fields:
        raw = values.get(key, "")
        if key in STRING_OPTIONAL:
            extra[key] = raw
            continue
        text = str(raw).strip()
        # plain decimal numbers only: float() would also take 'inf', '1e400', '1_000' and non-ASCII digits
        number = float(text) if NUMBER.fullmatch(text) else (math.nan if text.casefold() in ("", "nan", "na", "n/a")
                                                               else None)
        if number is None or math.isinf(number):
            raise SkipRecording(f"{key} is {raw!r} ({origin.get(key, 'the layout')}), expected a finite number or an "
                                "empty cell")
        extra[key] = number
    subject, session, device = (values[k].strip() for k in ("subject", "session", "device"))
    return RecordingInfo(file=rel, path=root / rel, recording=recording_id(subject, condition, session, device),
                         subject=subject, group=group, condition=condition, session=session, device=device,
                         extra=extra)


__all__ = ["RecordingInfo", "companions", "plan", "read_table", "recording_id", "scan", "OPTIONAL_FIELDS"]
