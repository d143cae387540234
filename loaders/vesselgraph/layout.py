"""Finding VesselGraph graphs in a folder or in release zips (read in place, never extracted).

A graph is ``<file_id>_nodes_processed.csv`` + ``<file_id>_edges_processed.csv``
(+ optional ``<file_id>_atlas_processed.csv``) in one folder. Accepted layouts,
inside a directory or a zip archive:

* the release layout ``<graph>/<file_id>/<file_id>_*_processed.csv``;
* ``<file_id>/`` subfolders, or the files loose;
* ``<graph>/<file_id>_*_processed.csv``.

The graph's short name (e.g. ``BALBc_no1``) is the first of these that the
graph table knows: the folder above a ``<file_id>/`` folder, the file id
itself, the graph whose table ``file_id`` it is, the folder holding the files
(the source directory or the zip's stem count as folders). Otherwise it is the
``<graph>`` folder of the release layout at the root, else the file id; the
one graph of a zip named ``<graph>.zip`` after a table graph is that graph.
"""
from __future__ import annotations

import contextlib
import dataclasses
import lzma
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from neuroharness.errors import DataFormatError

from .. import io

from .table import NAME, graph_table

SUFFIXES = {"nodes": "_nodes_processed.csv", "edges": "_edges_processed.csv", "atlas": "_atlas_processed.csv"}
# what zipfile and its decompressors raise for damaged or unsupported archives (encrypted members raise
# RuntimeError, unknown compression methods NotImplementedError, bz2 OSError), and the file errors below them
ARCHIVE_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, NotImplementedError, RuntimeError, OSError)


@dataclasses.dataclass(frozen=True)
class FileRef:
    """A file on disk, or a member of a zip archive."""

    path: Path
    member: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.member}" if self.member else str(self.path)

    @contextlib.contextmanager
    def open(self):
        """The file opened for binary reading (a zip member is decompressed as it is read).

        A file that cannot be opened, and a damaged archive (also a damaged
        deflate stream or a wrong CRC met while the caller reads), are
        :class:`DataFormatError` naming the file or member; the caller's own
        exceptions pass unchanged.
        """
        if self.member is None:
            try:
                fh = open(self.path, "rb")
            except OSError as e:
                raise DataFormatError(f"{self.where}: the file cannot be read ({e})") from None
            with fh:
                yield fh
            return
        try:
            zf = zipfile.ZipFile(self.path)
        except (*ARCHIVE_ERRORS, ValueError) as e:  # ValueError: e.g. a negative offset in a damaged directory
            raise self._damaged(e) from None
        with zf:
            try:
                fh = zf.open(self.member)
            except (*ARCHIVE_ERRORS, ValueError) as e:
                raise self._damaged(e) from None
            with fh:
                yield _GuardedMember(fh, self)

    def _damaged(self, e: BaseException) -> DataFormatError:
        return DataFormatError(f"{self.where}: the zip member cannot be read ({type(e).__name__}: {e}); the archive is "
                               "damaged: download or copy it again")


class _GuardedMember:
    """A zip member stream whose archive errors are :class:`DataFormatError` (pyarrow re-raises what its
    Python file objects raise, so a reader sees the harness's error, not zlib's)."""

    def __init__(self, fh, ref: FileRef):
        self._fh, self._ref = fh, ref

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def _guard(self, method, *args):
        try:
            return method(*args)
        except ARCHIVE_ERRORS as e:
            raise self._ref._damaged(e) from None

    def read(self, *args):
        return self._guard(self._fh.read, *args)

    def read1(self, *args):
        return self._guard(self._fh.read1, *args)

    def readline(self, *args):
        return self._guard(self._fh.readline, *args)

    def readinto(self, buffer):
        return self._guard(self._fh.readinto, buffer)

    def peek(self, *args):
        return self._guard(self._fh.peek, *args)


@dataclasses.dataclass(frozen=True)
class GraphRef:
    """The raw files of one graph."""

    name: str
    file_id: str
    nodes: FileRef
    edges: FileRef
    atlas: FileRef | None = None

    @property
    def where(self) -> str:
        return self.nodes.where[: -len(SUFFIXES["nodes"])] + "_*_processed.csv"

    def renamed(self, name: str) -> GraphRef:
        return dataclasses.replace(self, name=name)


def resolve_name(file_id: str, folders: tuple[str, ...], root_name: str | None) -> str:
    """Short name of the graph whose files are ``<folders>/<file_id>_*`` (see the module docstring)."""
    table = graph_table()
    by_file_id = {e.file_id: g for g, e in table.items() if e.file_id}
    chain = ([root_name] if root_name else []) + list(folders)
    holder = chain[-1] if chain else None
    above = chain[-2] if len(chain) >= 2 and holder == file_id else None
    for candidate in (above, file_id, by_file_id.get(file_id), holder):
        if candidate in table:
            return candidate
    if len(folders) == 2 and folders[1] == file_id:  # a graph the table does not know, in the release layout
        return folders[0]
    return file_id


def _graphs(paths: list[str], make_ref, root_name: str | None, where: str) -> list[GraphRef]:
    """Graphs among relative POSIX ``paths`` (files of a directory or members of a zip)."""
    present = set(paths)
    out = []
    for p in sorted(paths):
        pp = PurePosixPath(p)
        if not pp.name.endswith(SUFFIXES["nodes"]):
            continue
        file_id = pp.name[: -len(SUFFIXES["nodes"])]
        folder = pp.parent
        sibling = {k: (folder / f"{file_id}{s}").as_posix() for k, s in SUFFIXES.items()}
        if sibling["edges"] not in present:
            raise DataFormatError(f"{where}: {p} has no {PurePosixPath(sibling['edges']).name} beside it; expected "
                                  "the nodes and edges files of a graph in one folder")
        folders = tuple(x for x in folder.parts if x not in ("", "."))
        name = resolve_name(file_id, folders, root_name)
        if not NAME.fullmatch(name):
            raise DataFormatError(f"{where}: graph name {name!r} (from {p}) is not usable; expected letters, digits, "
                                  "'_', '-', '.'")
        out.append(GraphRef(name, file_id, make_ref(sibling["nodes"]), make_ref(sibling["edges"]),
                            make_ref(sibling["atlas"]) if sibling["atlas"] in present else None))
    return out


def safe_member(name: str, archive: Path) -> str:
    """``name`` unchanged (as the zip stores it); names that would escape a directory if extracted are an error."""
    io.safe_member(name, archive, "relative paths like <graph>/<file_id>/<file_id>_nodes_processed.csv")
    return name


def graphs_in_zip(archive: Path) -> list[GraphRef]:
    """Graphs inside one zip archive (members checked for path traversal)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [safe_member(n, archive) for n in zf.namelist() if not n.endswith("/")]
    except DataFormatError:
        raise
    except (*ARCHIVE_ERRORS, ValueError) as e:  # ValueError: e.g. a negative offset in a damaged directory
        raise DataFormatError(f"{archive}: not a readable zip archive ({type(e).__name__}: {e})") from None
    refs = _graphs(members, lambda m: FileRef(archive, m), archive.stem, str(archive))
    if len(refs) == 1 and refs[0].name not in graph_table() and archive.stem in graph_table():
        refs = [refs[0].renamed(archive.stem)]  # <graph>.zip, as released, holding one graph under another folder name
    return refs


def graphs_in_dir(root: Path) -> list[GraphRef]:
    """Graphs in a directory tree: CSV files at any depth, and every ``*.zip`` in it."""
    files = [p.relative_to(root).as_posix() for p in root.rglob("*_processed.csv") if p.is_file()]
    refs = _graphs(files, lambda rel: FileRef(root / rel), root.name, str(root))
    for z in sorted(root.rglob("*.zip")):
        refs += graphs_in_zip(z)
    return refs


def unique(refs: list[GraphRef]) -> dict[str, GraphRef]:
    """``{name: ref}``; a graph found twice is an error naming both places."""
    out: dict[str, GraphRef] = {}
    for r in refs:
        if r.name in out:
            raise DataFormatError(f"graph {r.name}: found twice, at {out[r.name].where} and {r.where}; expected once "
                                  "(remove one, or prepare from a folder that holds one copy)")
        out[r.name] = r
    return out
