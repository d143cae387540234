"""Dataset cards: what a dataset is, without importing how it is built.

A card holds the facts every dataset states once (name, version, title,
description, licence, citation, homepage) and names its loader by import
string (``"neuroharness.loaders.family.module:Class"``), so listing or
describing datasets imports neither numpy nor xarray. Each family folder
defines its cards in a light ``cards.py`` (``CARDS = (...)``); the loader
class points at its card (``card = cards.X``) and reads every fact from it.

This module imports only the standard library.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
#: what ``DatasetCard.redistribution`` starts with
REDISTRIBUTION = ("allowed", "forbidden", "unknown")


class DatasetCardError(ValueError):
    """A dataset card with a missing or malformed field (raised when the card is defined)."""


@dataclass(frozen=True)
class DatasetCard:
    """The description of one dataset version.

    ``loader`` is the import string of its :class:`~neuroharness.loaders.base.DatasetLoader`
    subclass; ``parts`` names what ``prepare(only=...)`` selects (e.g. ``"graph"``),
    or ``""`` for a dataset that is prepared whole. ``offline`` tells a user whose
    machine cannot reach the source how to prepare it anyway (``--source``, mirror
    variables, fixture generators); download errors end with it.

    ``redistribution`` says whether a prepared store may be republished (``datasets
    publish``): ``"allowed: <why>"``, ``"forbidden: <why>"`` or ``"unknown: <why>"``
    (the default ``"unknown"``: a card that does not say is never published).
    """

    name: str
    version: str
    title: str
    description: str
    license: str
    citation: str
    homepage: str = ""
    parts: str = ""
    loader: str = field(kw_only=True)
    offline: str = field(kw_only=True)
    redistribution: str = field(default="unknown", kw_only=True)

    def __post_init__(self):
        for key in ("name", "version", "title", "description", "license", "citation", "loader", "offline"):
            value = getattr(self, key)
            if not isinstance(value, str) or not value.strip():
                raise DatasetCardError(f"dataset card {self.name!r}: field {key!r} is {value!r}, expected a non-empty string")
        for key in ("homepage", "parts"):
            if not isinstance(getattr(self, key), str):
                raise DatasetCardError(f"dataset card {self.name!r}: field {key!r} is {getattr(self, key)!r}, expected a string")
        if not NAME.fullmatch(self.name):
            raise DatasetCardError(f"dataset card {self.name!r}: field 'name' is {self.name!r}, expected lower-case "
                                   "letters, digits and '-' (e.g. 'celegans-connectome')")
        status, sep, reason = str(self.redistribution).partition(":")
        if (not isinstance(self.redistribution, str) or status not in REDISTRIBUTION
                or (sep and not reason.strip()) or (status == "forbidden" and not sep)):
            raise DatasetCardError(f"dataset card {self.name!r}: field 'redistribution' is {self.redistribution!r}, "
                                   "expected 'allowed: <why>', 'forbidden: <why>' or 'unknown: <why>' (the reason "
                                   "names the licence)")
        module, sep, attr = self.loader.partition(":")
        if not sep or not module or not attr:
            raise DatasetCardError(f"dataset card {self.name!r}: field 'loader' is {self.loader!r}, expected an import "
                                   "string 'package.module:Class'")

    @property
    def redistribution_status(self) -> str:
        """``"allowed"``, ``"forbidden"`` or ``"unknown"``: the first word of :attr:`redistribution`."""
        return self.redistribution.partition(":")[0]

    @property
    def redistribution_reason(self) -> str:
        """Why (the text after ``"<status>:"`` in :attr:`redistribution`; ``""`` if none is given)."""
        return self.redistribution.partition(":")[2].strip()

    def to_dict(self) -> dict[str, str]:
        """The card as a plain dict (description with its whitespace collapsed), for printing and JSON."""
        out = asdict(self)
        out["description"] = " ".join(self.description.split())
        return out

    def __call__(self) -> dict[str, str]:
        # Transitional: ``loader.card()`` was a method returning this dict, and neuroharness/cli.py
        # still calls it so. Remove once callers use ``get_card(name).to_dict()``.
        return self.to_dict()
