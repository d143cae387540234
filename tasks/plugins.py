"""Models from outside the repository: entry points and import strings.

A package registers a model for a task in its ``pyproject.toml``::

    [project.entry-points."neuroharness.models"]
    "celegans-structure-function:logreg" = "my_package.models:LogisticRegressionModel"

The entry's name is ``TASK:MODEL``, its value the factory
(``package.module:attribute``; ``factory(**hyperparameters)`` builds an
unfitted model following the task family's protocol, see
:mod:`neuroharness.tasks.protocols`). Once the package is installed the model
is listed by ``neuroharness models list`` and runs with ``neuroharness run
TASK --model MODEL``. A factory that is importable but not registered runs
as ``--model package.module:Factory``.

Listing reads package metadata only: no plugin module is imported until a
model is built. A name registered twice (by a plugin and the card, or by two
plugins) is an error naming both packages.

Every model has an *origin*, written into records as ``model.origin``:
``{"kind": "builtin", "package": "neuroharness", "version": ...}`` for the
card's models, ``{"kind": "plugin", "package": distribution, "version": ...}``
for the others (``package`` ``"unregistered"`` and ``version`` null when the
factory of an import string belongs to no installed distribution).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from neuroharness.errors import NeuroharnessError, UnknownNameError

from .card import ModelSpec, TaskCard

GROUP = "neuroharness.models"
UNREGISTERED = "unregistered"


class PluginError(NeuroharnessError):
    """A plugin model that cannot be listed, imported or built."""


def builtin_origin() -> dict:
    from neuroharness import __version__

    return {"kind": "builtin", "package": "neuroharness", "version": __version__}


@dataclass(frozen=True)
class PluginModelSpec(ModelSpec):
    """A model that is not on the task card: an entry point or an import string, with its origin."""

    origin: dict = field(default_factory=dict)

    @property
    def where(self) -> str:
        """``package version`` (or ``package``) for messages."""
        return " ".join(str(v) for v in (self.origin.get("package"), self.origin.get("version")) if v)


def origin_of(spec: ModelSpec) -> dict:
    """The record's ``model.origin`` of ``spec``."""
    return dict(spec.origin) if isinstance(spec, PluginModelSpec) else builtin_origin()


def _where(spec: ModelSpec) -> str:
    if isinstance(spec, PluginModelSpec):
        return f"plugin package {spec.where} (entry point {spec.factory})"
    o = builtin_origin()
    return f"{o['package']} {o['version']} (built in: the task card)"


@dataclass(frozen=True)
class _Entry:
    task: str
    model: str
    value: str
    package: str | None
    version: str | None


def _raw_entries():
    """(entry point, package, version) of every ``neuroharness.models`` entry point (metadata only)."""
    for ep in metadata.entry_points(group=GROUP):
        dist = getattr(ep, "dist", None)
        yield ep, (dist.metadata["Name"] if dist is not None else None), (dist.version if dist is not None else None)


def _entries() -> list[_Entry]:
    """The well-formed ``neuroharness.models`` entry points of the installed distributions (metadata only)."""
    out, seen = [], set()
    for ep, package, version in _raw_entries():
        task, sep, model = ep.name.partition(":")
        if not sep or not task.strip() or not model.strip():
            continue  # reported by problems()
        key = (task.strip(), model.strip(), ep.value, package)
        if key in seen:  # the same distribution found twice on sys.path
            continue
        seen.add(key)
        out.append(_Entry(task.strip(), model.strip(), ep.value.strip(), package, version))
    return out


def plugin_models(card: TaskCard) -> dict[str, PluginModelSpec]:
    """The installed plugin models of task ``card.name`` (no plugin module is imported).

    Raises :class:`PluginError` when two distributions register the same name,
    or a plugin registers the name of one of the card's models."""
    builtin = card.model_specs
    out: dict[str, PluginModelSpec] = {}
    for e in _entries():
        if e.task != card.name:
            continue
        spec = PluginModelSpec(e.model, e.value, "", origin={"kind": "plugin", "package": e.package,
                                                              "version": e.version})
        if e.model in builtin:
            raise PluginError(f"model name {e.model!r} of task {card.name} is registered twice: by "
                              f"{_where(spec)} and by {_where(builtin[e.model])}; uninstall the plugin "
                              "package or rename its entry point")
        if e.model in out:
            raise PluginError(f"model name {e.model!r} of task {card.name} is registered twice: by "
                              f"{_where(out[e.model])} and by {_where(spec)}; uninstall one of the two packages")
        out[e.model] = spec
    return out


def problems() -> list[str]:
    """Entry points that are ignored: a name that is not ``TASK:MODEL``, or that names no registered task."""
    from . import list_tasks

    tasks = list_tasks()
    out = []
    for ep, package, _ in _raw_entries():
        task, sep, model = ep.name.partition(":")
        where = f"entry point {ep.name!r} = {ep.value!r} of {package or 'an unknown package'}"
        if not sep or not task.strip() or not model.strip():
            out.append(f"{where}: expected the name TASK:MODEL; ignored")
        elif task.strip() not in tasks:
            out.append(f"{where}: names no registered task; ignored (valid tasks: {', '.join(tasks)})")
    return out


def models_for(card: TaskCard) -> dict[str, ModelSpec]:
    """The card's models followed by the installed plugin models of the task."""
    return {**card.model_specs, **plugin_models(card)}


def is_import_string(name: str) -> bool:
    module, sep, attr = name.partition(":")
    return bool(sep and module and attr) and all(p.isidentifier() for p in module.split(".") + attr.split("."))


def distribution_of(module: str) -> tuple[str | None, str | None]:
    """(distribution name, version) that installs top-level package of ``module``, else (None, None)."""
    top = module.split(".", 1)[0]
    try:
        names = metadata.packages_distributions().get(top) or []
    except Exception:  # noqa: BLE001 - broken metadata of some other package
        names = []
    for name in names:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None, None


def import_string_spec(name: str) -> PluginModelSpec:
    """A model given as ``package.module:Factory`` (importable, not registered); imports nothing yet."""
    module = name.partition(":")[0]
    if module.split(".", 1)[0] == "neuroharness":
        origin = builtin_origin()
    else:
        package, version = distribution_of(module)
        origin = {"kind": "plugin", "package": package or UNREGISTERED, "version": version}
    return PluginModelSpec(name, name, "", origin=origin)


def resolve(card: TaskCard, name: str) -> ModelSpec:
    """The model ``name`` of task ``card``: a card model, an installed plugin, or an import string.

    An unknown name raises :class:`UnknownNameError` listing the valid ones."""
    models = models_for(card)
    if name in models:
        return models[name]
    if is_import_string(name):
        return import_string_spec(name)
    raise UnknownNameError("model", name, models)


def _describe(spec: ModelSpec, task: str) -> str:
    if isinstance(spec, PluginModelSpec):
        return f"model {spec.name} of task {task} (from {spec.where or spec.origin.get('kind')}, factory {spec.factory})"
    return f"model {spec.name} of task {task}"


def resolve_factory(spec: ModelSpec, task: str):
    """``spec``'s factory, imported; a failing import is a :class:`PluginError` naming the model."""
    try:
        return spec.resolve_factory()
    except Exception as e:  # noqa: BLE001 - any import-time failure of third-party code
        raise PluginError(f"{_describe(spec, task)}: cannot import its factory {spec.factory}: "
                          f"{type(e).__name__}: {e}") from e


def build(spec: ModelSpec, task: str, hyperparameters: dict | None = None) -> Any:
    """An unfitted model from ``spec`` (hyperparameters over the card's); failures name the model."""
    factory = resolve_factory(spec, task)
    try:
        return factory(**{**spec.hyperparameters, **dict(hyperparameters or {})})
    except NeuroharnessError:
        raise
    except Exception as e:  # noqa: BLE001
        raise PluginError(f"{_describe(spec, task)}: its factory {spec.factory} raised "
                          f"{type(e).__name__}: {e}") from e


def description(spec: ModelSpec) -> str:
    """The card's description, else the first line of the factory's docstring (imports the factory)."""
    if spec.description:
        return spec.description
    try:
        doc = (spec.resolve_factory().__doc__ or "").strip()
    except Exception:  # noqa: BLE001
        return ""
    return doc.splitlines()[0].strip() if doc else ""


__all__ = ["GROUP", "PluginError", "PluginModelSpec", "build", "builtin_origin", "description", "import_string_spec",
           "is_import_string", "models_for", "origin_of", "plugin_models", "problems", "resolve", "resolve_factory"]
