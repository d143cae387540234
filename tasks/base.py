"""The task template: one pipeline for every task family.

``run_model``: build the model (card hyperparameters, overrides on top) ->
fit on the training view -> predict -> score -> :class:`RunResult`.
``evaluate``: check the split -> read the submission through the shared
checker -> score. A family implements only its data view and its scoring:

- :meth:`Task.load` the data the task reads (targets included; cached per
  options and store checksums by the base class),
- :meth:`Task.ids` the scored items of a split, in order (a DataFrame of id
  columns; the submission template, and the input of ``split_sha256``),
- :meth:`Task.training_view_of` what a model may see for training (inputs
  and targets of train and val, never test targets; public as
  :meth:`Task.training_view`),
- :meth:`Task.targets` the targets of train or val as a table aligned with
  ``ids`` (optional: for ``tasks template --split train|val``, through
  :meth:`Task.labelled_table`),
- :meth:`Task.fit` / :meth:`Task.predict` adapters to the family's model
  protocol (:mod:`neuroharness.tasks.protocols`), fitting on the training view,
- :meth:`Task.score` metrics of predictions on a split,
- :meth:`Task.read_submission` a prediction file, through
  :mod:`neuroharness.tasks.submission`,
- :meth:`Task.dataset_parts` the parts read of a dataset read in parts (one
  graph of a store of many); :meth:`Task.dataset_checksums` derives the
  record's checksums from them or from the whole stores.

Families whose predictions are too large to hold (streamed scoring)
override :meth:`Task.score_model`.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from neuroharness.errors import NeuroharnessError, SubmissionError

from .card import ModelSpec, TaskCard
from .model_utils import describe

SCORED_SPLITS = ("test", "val")


@dataclass(frozen=True)
class RunResult:
    """The outcome of one (model, seed) run.

    ``hyperparameters`` are the settings the model was built with;
    ``fitted`` are facts the fit chose (e.g. a tuned hop count), kept apart so
    that two runs with equal hyperparameters compare as the same model.
    """

    metrics: dict[str, float]
    validation_metrics: dict[str, float]
    n_parameters: int
    hyperparameters: dict
    fitted: dict
    split_sha256: str
    fit_predict_seconds: float


def parts_digest(parts: Mapping[str, str]) -> str:
    """One sha256 for the parts of a dataset a task read: over ``name|sha256`` lines in sorted order."""
    h = hashlib.sha256()
    for name in sorted(parts):
        h.update(f"{name}|{parts[name]}\n".encode())
    return h.hexdigest()


def split_digest(ids) -> str:
    """sha256 of a table of scored ids and their order: column names, dtypes and values.

    ``ids`` is a DataFrame (one row per scored item). Values are hashed as
    text for strings and as little-endian bytes for numbers, so the digest does
    not depend on the platform.
    """
    import numpy as np

    h = hashlib.sha256(f"rows={len(ids)}".encode())
    for col in ids.columns:
        values = ids[col].to_numpy()
        if values.dtype.kind in "iub":
            h.update(f"|{col}|int64|".encode())
            h.update(np.ascontiguousarray(values.astype("<i8")).tobytes())
        elif values.dtype.kind == "f":
            h.update(f"|{col}|float64|".encode())
            h.update(np.ascontiguousarray(values.astype("<f8")).tobytes())
        else:
            h.update(f"|{col}|str|".encode())
            h.update("\x1f".join(map(str, values.tolist())).encode())
    return h.hexdigest()


class Task:
    """Base class of every task; a subclass sets ``card`` and implements the family hooks."""

    card: ClassVar[TaskCard]
    #: How many data views to keep in memory (one per option set); large data sets keep one.
    cache_size: ClassVar[int] = 2
    #: Whether the task scores a validation split (``run_model`` records ``validation_metrics``).
    has_validation: ClassVar[bool] = True
    #: Whether :meth:`evaluate` spreads its scoring over a dask cluster (``evaluate --dask-scheduler``).
    scores_on_cluster: ClassVar[bool] = False

    def __init__(self):
        self._cache: dict[tuple, Any] = {}

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def models(self) -> dict[str, ModelSpec]:
        """The card's models, then the installed plugin models of this task (entry points; none imported)."""
        from .plugins import models_for

        return models_for(self.card)

    def get_model(self, name: str) -> ModelSpec:
        """Model ``name``: a card or plugin model, or an import string ``package.module:Factory``."""
        from .plugins import resolve

        return resolve(self.card, name)

    def build_model(self, name: str, hyperparameters: Mapping[str, Any] | None = None):
        """An unfitted model ``name`` (card hyperparameters, ``hyperparameters`` on top).

        A factory that cannot be imported or raises is a
        :class:`~neuroharness.tasks.plugins.PluginError` naming the model, its
        origin and the exception."""
        from .plugins import build

        return build(self.get_model(name), self.name, dict(hyperparameters or {}))

    # -- options and splits ------------------------------------------------------
    def resolve_options(self, given: Mapping[str, str] | None = None) -> dict[str, str]:
        """Every option of the card: ``given`` values (checked) over the card's defaults."""
        return self.card.resolve_options(given)

    @staticmethod
    def check_split(split: str) -> str:
        """``split`` if it is a scored split ('test' or 'val'), else a :class:`SubmissionError`."""
        if split not in SCORED_SPLITS:
            raise SubmissionError(f"split {split!r}: expected 'test' or 'val'")
        return split

    # -- the data view, cached -----------------------------------------------------
    def data(self, options: Mapping[str, str] | None = None):
        """The family's data view for ``options`` (resolved), built once per options and store content."""
        options = self.resolve_options(options)
        key = (tuple(sorted(options.items())), self.cache_key(options))
        if key not in self._cache:
            while len(self._cache) >= max(1, self.cache_size):
                self._cache.pop(next(iter(self._cache)))
            data = self.load(options)
            self._check_data(data, options)
            self._cache[key] = data
        return self._cache[key]

    def clear_cache(self) -> None:
        """Forget the cached data views (they are also rebuilt whenever a store's checksum changes)."""
        self._cache.clear()

    def _check_data(self, data, options) -> None:
        for split in SCORED_SPLITS:
            if split == "val" and not self.has_validation:
                continue
            if len(self.ids(data, split)) == 0:
                raise NeuroharnessError(
                    f"task {self.name}{''.join(f' {k}={v}' for k, v in options.items())}: the {split} split is empty "
                    f"on the prepared data ({self.describe_data(data)}); prepare the store from a fuller source "
                    f"(neuroharness datasets prepare {' '.join(d.name for d in self.card.datasets)} --force "
                    "[--source PATH])")

    def cache_key(self, options: dict[str, str]) -> tuple:
        """Something that changes when the stores change (default: their checksums)."""
        return tuple(sorted(self.dataset_checksums(options).items()))

    def describe_data(self, data) -> str:
        """A short phrase about a data view for error messages."""
        return "see `neuroharness datasets info`"

    # -- family hooks --------------------------------------------------------------
    def load(self, options: dict[str, str]):
        """Read the stores and build the split; returns the family's data view."""
        raise NotImplementedError

    def dataset_parts(self, options: dict[str, str]) -> dict[str, dict[str, str]]:
        """``{dataset name: {part: sha256}}`` for datasets read in parts (e.g. one graph); default none."""
        return {}

    def dataset_checksums(self, options: dict[str, str]) -> dict[str, str]:
        """``{dataset name: sha256}`` of exactly what :meth:`load` reads with ``options``.

        A dataset read in parts (:meth:`dataset_parts`) gets the :func:`parts_digest` of
        those parts; any other the whole store's ``content_sha256`` (read from its metadata,
        preparing the store first if it is missing)."""
        from neuroharness.loaders import get_loader

        parts = self.dataset_parts(options)
        return {d.name: parts_digest(parts[d.name]) if d.name in parts else get_loader(d.name).content_sha256(d.version)
                for d in self.card.datasets}

    def ids(self, data, split: str):
        """DataFrame of the scored items of ``split`` in scoring order (id columns only)."""
        raise NotImplementedError

    def training_view_of(self, data):
        """What a model may see for training, taken from the data view ``data`` (no test targets)."""
        raise NotImplementedError

    def targets(self, data, split: str):
        """DataFrame of the targets of ``split`` ('train' or 'val'), row-aligned with ``ids(data, split)``
        (target columns only); never called for 'test'. Families whose targets are not a table
        (volumes, time series) keep this default, which refuses and points to ``training_view()``."""
        raise SubmissionError(f"task {self.name}: its targets are not a table, so `tasks template --split {split}` "
                              f"cannot write them; read the inputs and targets of train and val in Python with "
                              f"`get_task({self.name!r}).training_view()`")

    def fit(self, model, data, seed: int):
        """Fit ``model`` on the training view of ``data``; return the fitted model."""
        raise NotImplementedError

    def predict(self, model, data, split: str):
        """Predictions of a fitted ``model`` for the items of ``split``, aligned with :meth:`ids`."""
        raise NotImplementedError

    def score(self, data, split: str, predictions) -> dict[str, float]:
        """Metrics of ``predictions`` on ``split`` (without ``main_score``; the base adds it)."""
        raise NotImplementedError

    def score_model(self, model, data, split: str) -> dict[str, float]:
        """Predict and score; override to stream predictions that do not fit in memory."""
        return self.score(data, split, self.predict(model, data, split))

    def read_submission(self, predictions, data, split: str):
        """Read and check a submission against ``ids(data, split)``; return predictions for :meth:`score`."""
        raise SubmissionError(f"task {self.name} does not score prediction files yet; see its card's submission field")

    # -- the pipeline --------------------------------------------------------------
    def _with_main(self, metrics: dict) -> dict:
        main = self.card.main_metric
        if main not in metrics:
            raise NeuroharnessError(f"task {self.name}: scoring produced no {main!r} (the card's main metric); "
                                    f"got {sorted(metrics)}")
        return {**metrics, "main_score": metrics[main]}

    def run_model(self, model_name: str, seed: int, options: Mapping[str, str] | None = None,
                  hyperparameters: Mapping[str, Any] | None = None) -> RunResult:
        """Build, fit and score model ``model_name`` with ``seed``.

        ``options`` are the card's options (defaults from the card);
        ``hyperparameters`` override the card's values for this model.
        """
        model = self.build_model(model_name, hyperparameters)
        data = self.data(options)
        built = describe(model)
        t0 = time.perf_counter()
        model = self.fit(model, data, int(seed))
        metrics = self._with_main(self.score_model(model, data, "test"))
        val = self._with_main(self.score_model(model, data, "val")) if self.has_validation else {}
        wall = time.perf_counter() - t0
        after = describe(model)
        fitted = {k: v for k, v in after.items() if k not in built or built[k] != v}
        return RunResult(
            metrics=metrics, validation_metrics=val, n_parameters=int(getattr(model, "n_parameters", 0)),
            hyperparameters=built, fitted=fitted, split_sha256=self.split_sha256(options),
            fit_predict_seconds=wall)

    def training_view(self, options: Mapping[str, str] | None = None):
        """What a model may see for training: inputs and targets of the train and validation splits,
        never test targets; the objects :meth:`fit` passes to the model (the family's protocol in
        :mod:`neuroharness.tasks.protocols`). Each family's docstring of :meth:`training_view_of`
        says what it holds."""
        return self.training_view_of(self.data(options))

    def split_sha256(self, options: Mapping[str, str] | None = None, split: str = "test") -> str:
        """Digest of the scored ids of ``split`` and their order (see :func:`split_digest`)."""
        return split_digest(self.ids(self.data(options), self.check_split(split)))

    def submission_template(self, split: str = "test", options: Mapping[str, str] | None = None):
        """A DataFrame of the id columns a submission must cover on ``split``."""
        return self.ids(self.data(options), self.check_split(split)).reset_index(drop=True)

    def labelled_table(self, split: str, options: Mapping[str, str] | None = None):
        """The items of ``split`` ('train' or 'val') with their targets: the id columns of :meth:`ids`
        followed by the columns of :meth:`targets`. Test targets are never given."""
        import pandas as pd

        if split == "test":
            raise SubmissionError(f"task {self.name}: the targets of the test split are never given; "
                                  "split 'test' has only the ids a submission must cover")
        if split not in ("train", "val"):
            raise SubmissionError(f"split {split!r}: expected 'train' or 'val'")
        data = self.data(options)
        targets = self.targets(data, split)
        ids = self.ids(data, split).reset_index(drop=True)
        if len(targets) != len(ids):
            raise NeuroharnessError(f"task {self.name}: targets of {split} have {len(targets)} rows, ids {len(ids)}")
        return pd.concat([ids, targets.reset_index(drop=True)], axis=1)

    def evaluate(self, predictions, split: str = "test", options: Mapping[str, str] | None = None) -> dict:
        """Score a submission (a path, or the in-memory form the card names) on ``split``.

        The result has a ``main_score`` key."""
        split = self.check_split(split)
        if split == "val" and not self.has_validation:
            raise SubmissionError(f"task {self.name} has no validation split; use split='test'")
        data = self.data(options)
        preds = self.read_submission(predictions, data, split)
        return self._with_main(self.score(data, split, preds))
