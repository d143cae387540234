"""Task registry: one folder per task family, each with a light ``cards.py``.

Listing and describing tasks read only the cards (no torch, no numba);
:func:`get_task` imports a card's implementation when a task is run or scored.

>>> from neuroharness.tasks import list_tasks, get_card, get_task
"""
from __future__ import annotations

from neuroharness.registry import Registry

from .card import CardError, DatasetRef, MetricSpec, ModelSpec, TaskCard, TaskOption, import_object

TASKS: Registry[TaskCard] = Registry("task", "neuroharness.tasks")
_INSTANCES: dict[str, object] = {}


def list_tasks() -> list[str]:
    """Names of every registered task."""
    return TASKS.names()


def get_card(name: str) -> TaskCard:
    """The card of task ``name`` (``UnknownNameError`` lists valid names); imports nothing heavy."""
    return TASKS.get(name)


def get_task(name: str):
    """The :class:`~neuroharness.tasks.base.Task` running card ``name`` (one instance per name)."""
    card = get_card(name)
    if name not in _INSTANCES:
        cls = import_object(card.implementation)
        if cls.card is not card:
            raise CardError(f"{card.implementation} runs card {cls.card.name!r}, not the registered card {name!r}")
        _INSTANCES[name] = cls()
    return _INSTANCES[name]


__all__ = ["TASKS", "CardError", "DatasetRef", "MetricSpec", "ModelSpec", "TaskCard", "TaskOption",
           "list_tasks", "get_card", "get_task"]
