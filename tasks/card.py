"""Declarative task cards: what a task is, without importing how it runs.

A card names the datasets, split, metrics, options, chance levels and
baseline models of a task. Models and the task implementation are import
strings (``"package.module:attribute"``), so listing or describing tasks
imports neither torch nor numba. Cards check themselves when they are
defined: a card that names an unknown main metric, a chance level of no
metric, or an option default outside its choices cannot be created.

This module imports only the standard library (and the harness's exceptions).
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from neuroharness.errors import UsageError


class CardError(ValueError):
    """A task card that contradicts itself (raised when the card is defined)."""


def import_object(spec: str) -> Any:
    """The object named by ``"package.module:attribute"`` (attribute may be dotted)."""
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise CardError(f"import string {spec!r}: expected 'package.module:attribute'")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class DatasetRef:
    """A dataset (by registered name) and the version of it a task reads."""

    name: str
    version: str


@dataclass(frozen=True)
class MetricSpec:
    """A metric of a task: its direction and, where known, the range its values lie in.

    ``low`` / ``high`` (None: unbounded on that side) are what a record may
    hold: leaderboards refuse a record whose metric lies outside them.
    """

    name: str
    higher_is_better: bool
    description: str
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class TaskOption:
    """A named setting of a task (e.g. which graph it runs on).

    Options are part of what makes records comparable: the runner writes the
    resolved values into each record and leaderboards never rank records whose
    options differ. The default lives here and nowhere else.
    """

    default: str
    description: str
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A baseline model: ``factory(**hyperparameters)`` builds an unfitted model.

    ``factory`` is an import string (``"package.module:Class"``), imported only
    when the model is built, or a callable (for models defined at run time).
    """

    name: str
    factory: str | Callable[..., Any]
    description: str
    hyperparameters: dict = field(default_factory=dict)

    def resolve_factory(self) -> Callable[..., Any]:
        return import_object(self.factory) if isinstance(self.factory, str) else self.factory

    def build(self, **overrides):
        """An unfitted model with the card's hyperparameters, ``overrides`` on top."""
        return self.resolve_factory()(**{**self.hyperparameters, **overrides})


_TEXT_FIELDS = ("name", "version", "evaluator_version", "title", "description", "split", "inputs", "targets", "submission")


@dataclass(frozen=True)
class TaskCard:
    """Everything needed to state, reproduce and compare results on a task.

    Bump ``version`` whenever the split, targets or metrics change: records
    of different versions are never ranked together. ``implementation`` is
    the import string of the :class:`~neuroharness.tasks.base.Task` subclass
    that runs the card.
    """

    name: str
    version: str
    title: str
    description: str
    datasets: tuple[DatasetRef, ...]
    split: str
    inputs: str
    targets: str
    metrics: tuple[MetricSpec, ...]
    main_metric: str
    implementation: str
    models: tuple[ModelSpec, ...] = ()
    seeds: tuple[int, ...] = (0, 1, 2)
    chance: dict[str, str] = field(default_factory=dict)
    submission: str = ""
    references: tuple[str, ...] = ()
    options: dict[str, TaskOption] = field(default_factory=dict)
    #: Largest absolute difference `neuroharness reproduce` accepts between a rerun of an official
    #: record and the record (0: bit-identical, what single-threaded CPU baselines give).
    reproduce_tolerance: float = 0.0
    #: Version of the task's scoring code: bump it when a metric's computation changes without a change of
    #: ``version`` (split, targets, metric definitions), e.g. a bug fix in a metric. Records carry it as
    #: ``task.evaluator_version`` and records of different evaluator versions are never ranked together.
    evaluator_version: str = "1"

    def __post_init__(self):
        where = f"task card {self.name!r}"
        for key in _TEXT_FIELDS:
            value = getattr(self, key)
            if not isinstance(value, str) or (key != "submission" and not value.strip()):
                raise CardError(f"{where}: field {key} must be a non-empty string, got {value!r}")
        if not self.datasets or not all(isinstance(d, DatasetRef) for d in self.datasets):
            raise CardError(f"{where}: datasets must be a non-empty tuple of DatasetRef")
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise CardError(f"{where}: metric names repeat: {names}")
        if self.main_metric not in names:
            raise CardError(f"{where}: main_metric {self.main_metric!r} is not one of its metrics {names}")
        for m in self.metrics:
            for bound in ("low", "high"):
                value = getattr(m, bound)
                if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)
                                          or value != value or value in (float("inf"), float("-inf"))):
                    raise CardError(f"{where}: metric {m.name} {bound} = {value!r}, expected a finite number or None")
            if m.low is not None and m.high is not None and m.low > m.high:
                raise CardError(f"{where}: metric {m.name} has low = {m.low!r} > high = {m.high!r}")
        stray = sorted(set(self.chance) - set(names))
        if stray:
            raise CardError(f"{where}: chance levels for {stray}, which are not metrics of the card {names}")
        for key, opt in self.options.items():
            if opt.choices is not None and opt.default not in opt.choices:
                raise CardError(f"{where}: option {key} default {opt.default!r} is not among its choices {opt.choices}")
        models = [m.name for m in self.models]
        if len(set(models)) != len(models):
            raise CardError(f"{where}: model names repeat: {models}")
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds) or not self.seeds:
            raise CardError(f"{where}: seeds must be a non-empty tuple of integers, got {self.seeds!r}")
        if not (isinstance(self.reproduce_tolerance, (int, float)) and 0 <= self.reproduce_tolerance < float("inf")):
            raise CardError(f"{where}: reproduce_tolerance must be a finite number >= 0, got {self.reproduce_tolerance!r}")
        if ":" not in self.implementation:
            raise CardError(f"{where}: implementation {self.implementation!r} is not 'package.module:Class'")

    def check_options(self, given: Mapping[str, str] | None) -> dict[str, str]:
        """``given`` option values as strings, each checked against the card (:class:`UsageError` otherwise)."""
        out = {}
        for key, value in dict(given or {}).items():
            if key not in self.options:
                valid = ", ".join(sorted(self.options)) or "none"
                raise UsageError(f"task {self.name} has no option {key!r}; valid options: {valid}")
            value = str(value)
            choices = self.options[key].choices
            if choices is not None and value not in choices:
                raise UsageError(f"task {self.name} option {key}={value!r}: expected one of {', '.join(choices)}")
            out[key] = value
        return out

    def resolve_options(self, given: Mapping[str, str] | None = None) -> dict[str, str]:
        """Every option of the card: the checked ``given`` values over the card's defaults."""
        given = self.check_options(given)
        return {key: given.get(key, opt.default) for key, opt in self.options.items()}

    @property
    def higher_is_better(self) -> bool:
        return next(m.higher_is_better for m in self.metrics if m.name == self.main_metric)

    @property
    def model_specs(self) -> dict[str, ModelSpec]:
        return {m.name: m for m in self.models}

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["models"] = {m.name: m.description for m in self.models}
        return out
