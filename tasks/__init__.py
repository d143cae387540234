"""Task registry: one module per task family, each registering its cards and baselines."""
from __future__ import annotations

from .base import TASKS, DatasetRef, MetricSpec, ModelSpec, Task, TaskCard, TaskOption, register_task


def list_tasks() -> list[str]:
    """Names of every registered task."""
    return TASKS.names()


def get_task(name: str) -> Task:
    """The task ``name`` (``UnknownNameError`` lists valid names)."""
    return TASKS.get(name)


__all__ = ["TASKS", "DatasetRef", "MetricSpec", "ModelSpec", "Task", "TaskCard", "TaskOption", "register_task", "list_tasks", "get_task"]
