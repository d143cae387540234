"""Task cards and the task base class.

A task pairs datasets with a fixed split, metrics, baselines and reference
levels. The card is declarative (:class:`TaskCard`); the task object builds
the split from the prepared stores, trains registered models and scores
predictions.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from neuroharness.errors import NeuroharnessError, SubmissionError, UnknownNameError
from neuroharness.registry import Registry

TASKS: Registry["Task"] = Registry("task", "neuroharness.tasks")


def register_task(cls):
    """Class decorator: register a :class:`Task` under ``cls.card.name``."""
    TASKS.register(cls.card.name, cls())
    return cls


@dataclass(frozen=True)
class DatasetRef:
    name: str
    version: str


@dataclass(frozen=True)
class MetricSpec:
    name: str
    higher_is_better: bool
    description: str


@dataclass(frozen=True)
class TaskOption:
    """A named setting of a task (e.g. which graph it runs on).

    Options are part of what makes records comparable: the runner writes the
    resolved values into each record and leaderboards never rank records whose
    options differ.
    """

    default: str
    description: str
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TaskCard:
    """Everything needed to state, reproduce and compare results on a task.

    Bump ``version`` whenever the split, targets or metrics change: records
    of different versions are never ranked together.
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
    seeds: tuple[int, ...] = (0, 1, 2)
    chance: dict[str, str] = field(default_factory=dict)
    submission: str = ""
    references: tuple[str, ...] = ()
    options: dict[str, TaskOption] = field(default_factory=dict)

    @property
    def higher_is_better(self) -> bool:
        return next(m.higher_is_better for m in self.metrics if m.name == self.main_metric)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: ``factory(**hyperparameters)`` builds an unfitted model."""

    name: str
    factory: Callable[..., Any]
    description: str
    hyperparameters: dict = field(default_factory=dict)

    def build(self):
        return self.factory(**self.hyperparameters)


class Task:
    """Base class: subclasses set ``card`` and implement the data/evaluate hooks."""

    card: ClassVar[TaskCard]
    models: ClassVar[dict[str, ModelSpec]] = {}

    @property
    def name(self) -> str:
        return self.card.name

    def resolve_options(self, given: dict[str, str] | None = None) -> dict[str, str]:
        """Every option of the card: ``given`` values (validated) over the defaults."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.card.options))
        if unknown:
            valid = ", ".join(sorted(self.card.options)) or "none"
            raise NeuroharnessError(f"task {self.name} has no option {unknown[0]!r}; valid options: {valid}")
        out = {}
        for key, opt in self.card.options.items():
            value = str(given.get(key, opt.default))
            if opt.choices is not None and value not in opt.choices:
                raise NeuroharnessError(
                    f"task {self.name} option {key}={value!r}: expected one of {', '.join(opt.choices)}")
            out[key] = value
        return out

    @staticmethod
    def check_split(split: str) -> str:
        """``split`` if it is a scored split ('test' or 'val'), else a :class:`SubmissionError`."""
        if split not in ("test", "val"):
            raise SubmissionError(f"split {split!r}: expected 'test' or 'val'")
        return split

    def get_model(self, name: str) -> ModelSpec:
        if name not in self.models:
            raise UnknownNameError("model", name, self.models)
        return self.models[name]

    def evaluate(self, predictions, split: str = "test", **options) -> dict[str, float]:
        """Score predictions on ``split``; the result has a ``main_score`` key.

        ``options`` are the card's options, already resolved (see :meth:`resolve_options`)."""
        raise SubmissionError(f"task {self.name} does not score prediction files yet; see its card's submission field")

    def submission_template(self, split: str = "test", **options):
        """A DataFrame of the id columns a submission must cover on ``split``."""
        raise SubmissionError(f"task {self.name} does not take prediction files yet; see its card's submission field")

    def dataset_checksums(self, **options) -> dict[str, str]:
        """``{dataset name: content_sha256}`` of the stores this task reads (with these options)."""
        raise NotImplementedError

    def run_model(self, model_name: str, seed: int, **options) -> dict:
        """Fit model ``model_name`` with ``seed``; return metrics and model facts.

        ``options`` are the card's options, already resolved (see :meth:`resolve_options`)."""
        raise NotImplementedError
