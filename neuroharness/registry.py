"""Name -> card registries filled from light ``cards`` modules.

Every family folder of a package (``tasks/celegans/``, ``loaders/fisbe/``, ...)
holds a ``cards.py`` that imports nothing heavy and defines ``CARDS``, a tuple
of cards (objects with a ``name``). Listing reads only those modules, so it
imports neither torch nor numba, and a family whose ``cards`` module fails to
import is skipped with a logged warning instead of breaking the listing.
Dropping a new family folder with a ``cards.py`` is enough for it to be found.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import pkgutil
import sys
from typing import Generic, TypeVar

from neuroharness.errors import UnknownNameError

T = TypeVar("T")
log = logging.getLogger("neuroharness")


class Registry(Generic[T]):
    """Cards of one kind, discovered from ``<package>.<family>.cards`` modules."""

    def __init__(self, kind: str, package: str):
        self.kind, self.package = kind, package
        self._items: dict[str, T] = {}
        self._origin: dict[str, str] = {}
        self.broken: dict[str, str] = {}  # module -> error, for modules that failed to import
        self._discovered = False

    def register(self, card: T, origin: str = "") -> T:
        """Add ``card`` under ``card.name``; a second, different card of that name is an error."""
        name = card.name
        if name in self._items and self._items[name] != card:
            raise ValueError(f"{self.kind} {name!r} is defined twice: in {self._origin[name]} and in {origin or '?'}")
        self._items[name] = card
        self._origin[name] = origin
        return card

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        pkg = importlib.import_module(self.package)
        for family in sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.ispkg and not m.name.startswith("_")):
            module = f"{self.package}.{family}.cards"
            if importlib.util.find_spec(module) is None:
                continue
            try:
                cards = importlib.import_module(module).CARDS
            except Exception as e:  # noqa: BLE001 - one broken family must not hide the others
                self.broken[module] = f"{type(e).__name__}: {e}"
                log.warning("skipping %s cards from %s: %s: %s", self.kind, module, type(e).__name__, e)
                continue
            for card in cards:
                self.register(card, module)

    def get(self, name: str) -> T:
        self._discover()
        if name not in self._items:
            raise UnknownNameError(self.kind, name, self._items)
        return self._items[name]

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._items)

    def origin(self, name: str) -> str:
        self.get(name)
        return self._origin[name]

    def __contains__(self, name: str) -> bool:
        self._discover()
        return name in self._items


def lazy_exports(package: str, exports: dict[str, str]):
    """``(__getattr__, __dir__)`` for a package that re-exports names of its submodules on first use.

    ``exports`` maps a public name to the relative module defining it (``".loader"``). A family
    package uses this so that importing it (to read its ``cards``) imports nothing heavy.
    """
    module = sys.modules[package]

    def __getattr__(name: str):
        where = exports.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where, package), name)
        setattr(module, name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(module)) | set(exports))

    return __getattr__, __dir__
