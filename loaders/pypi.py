"""Real data that ships inside PyPI wheels, read as raw files.

Some sources (the C. elegans connectome annotations in ``cect``, the
signal-propagation atlas in ``wormneuroatlas``) are published on PyPI. The
harness reads their data files directly instead of importing the packages,
whose import pulls heavy dependencies or calls the network. Files are found,
in order, at ``--source`` (a wheel or a directory), in an installed copy of
the same version, or in the wheel downloaded from PyPI; each file is checked
against its pinned sha256 whichever route it came by.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from neuroharness.errors import ChecksumError, DataFormatError

from . import cache, fetch, io


@dataclass(frozen=True)
class WheelSource:
    """Files inside one pinned wheel.

    ``files`` maps each member path inside the wheel (``cect/data/x.csv``) to
    its sha256. ``urls`` are the wheel's download URL and any mirrors.
    """

    package: str
    version: str
    urls: tuple[str, ...]
    sha256: str
    files: dict[str, str] = field(default_factory=dict)

    @property
    def wheel_name(self) -> str:
        return self.urls[0].rsplit("/", 1)[-1].split("#")[0]

    def describe(self) -> str:
        return f"PyPI {self.package}=={self.version} ({self.wheel_name})"

    def materialize(self, source: os.PathLike | None = None, members: list[str] | None = None) -> tuple[dict[str, Path], str]:
        """Local, verified paths of ``members`` (default: all pinned files).

        Returns ``(paths, origin)`` where ``origin`` says where they came from.
        """
        members = list(self.files) if members is None else members
        cached = cache.downloads_dir() / self.wheel_name
        if source is not None and str(source).startswith(("http://", "https://")):
            # a mirror of the same wheel: the pinned wheel sha256 still applies, so a verified cached copy is
            # byte-identical to what the URL serves; the origin still says which bytes were read
            reused = cached.exists()
            wheel = fetch.download([str(source)], cached, self.sha256)
            paths = self._extract(wheel, members, reuse=False)
            origin = f"{source} (cached copy {wheel}, sha256 {self.sha256})" if reused else str(source)
        elif source is not None:
            source = Path(source)
            if not source.exists():
                raise DataFormatError(f"{source}: source path does not exist; expected the {self.wheel_name} wheel or a directory holding its files")
            if source.is_file():
                # an explicit wheel is always read, never replaced by files extracted earlier from another copy
                paths, origin = self._extract(source, members, reuse=False), f"local wheel {source}"
            else:
                paths, origin = self._from_dir(source, members), f"local directory {source}"
        else:
            installed = self._installed_dir()
            if installed is not None:
                paths, origin = self._from_dir(installed, members), f"installed {self.package}=={self.version} at {installed}"
            else:
                wheel = fetch.download(self.urls, cached, self.sha256)
                paths, origin = self._extract(wheel, members), self.urls[0]
        for m, p in paths.items():
            if m in self.files:
                got = fetch.sha256_file(p)
                if got != self.files[m]:
                    raise ChecksumError(f"{p}: sha256 is {got}, expected {self.files[m]} ({m} of {self.describe()})")
        return paths, origin

    def _installed_dir(self) -> Path | None:
        try:
            if importlib.metadata.version(self.package) != self.version:
                return None
            spec = importlib.util.find_spec(self.package)  # locates, does not import
        except (importlib.metadata.PackageNotFoundError, ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(list(spec.submodule_search_locations)[0]).parent

    def _from_dir(self, root: Path, members: list[str]) -> dict[str, Path]:
        out, missing = {}, []
        for m in members:
            # accept site-packages, the package folder itself, or a flat folder of files
            candidates = list(dict.fromkeys([root / m, root / m.partition("/")[2], root / Path(m).name]))
            hit = next((c for c in candidates if c.is_file()), None)
            if hit is None:
                missing.append(m)
            else:
                out[m] = hit
        if missing:
            raise DataFormatError(
                f"{root}: missing {len(missing)} source file(s) of {self.describe()}: {', '.join(missing)}; "
                f"expected them directly in that folder, or at their paths inside the wheel (e.g. {members[0]})"
            )
        return out

    def _extract(self, wheel: Path, members: list[str], reuse: bool = True) -> dict[str, Path]:
        """Extract ``members`` of ``wheel`` into the raw cache; ``reuse``: keep files already there whose
        sha256 is the pinned one (the default route, where the wheel itself was verified)."""
        dest_root = cache.home() / "raw" / f"{self.package}-{self.version}"
        if dest_root.is_dir():  # temp files of an extraction that was killed (callers hold the dataset's lock)
            for stale in dest_root.rglob(".*.tmp-*"):
                io.remove(stale)
        out = {}
        try:
            zf = zipfile.ZipFile(wheel)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise DataFormatError(f"{wheel}: not a readable wheel (zip) file: {e}; expected {self.describe()}") from None
        with zf:
            names = set(zf.namelist())
            for m in members:
                if m not in names:
                    raise DataFormatError(f"{wheel}: wheel has no member {m!r}; expected {self.describe()}")
                dest = dest_root / io.safe_member(m, wheel, "relative paths inside the wheel")
                if reuse and dest.exists() and fetch.sha256_file(dest) == self.files.get(m, ""):
                    out[m] = dest
                    continue
                try:
                    with zf.open(m) as src:
                        io.copy_stream_atomic(src, dest, fetch.CHUNK)
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
                    raise DataFormatError(f"{wheel}: member {m!r} cannot be read ({e}); the wheel is damaged: "
                                          f"download {self.describe()} again") from None
                out[m] = dest
        return out
