"""Name -> object registries filled by importing every module of a package.

A loader or task module registers itself with a decorator; dropping a new
module into ``loaders/`` or ``tasks/`` is enough for it to be found.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Generic, TypeVar

from neuroharness.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Registered objects of one kind, discovered from the modules of ``package``."""

    def __init__(self, kind: str, package: str):
        self.kind, self.package = kind, package
        self._items: dict[str, T] = {}
        self._discovered = False

    def register(self, name: str, obj: T) -> T:
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = obj
        return obj

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        pkg = importlib.import_module(self.package)
        for mod in pkgutil.walk_packages(pkg.__path__, prefix=pkg.__name__ + "."):
            if not mod.name.rsplit(".", 1)[-1].startswith("_"):
                importlib.import_module(mod.name)

    def get(self, name: str) -> T:
        self._discover()
        if name not in self._items:
            raise UnknownNameError(self.kind, name, self._items)
        return self._items[name]

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self._discover()
        return name in self._items
