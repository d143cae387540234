"""neuroharness: uniform neuroscience datasets, task cards and reproducible leaderboards.

>>> import neuroharness as nh
>>> ds = nh.open_dataset("celegans-connectome")       # xarray.Dataset, lazy
>>> task = nh.get_task("celegans-structure-function")
>>> task.evaluate(predictions)["main_score"]

Messages go to the ``logging`` logger ``"neuroharness"`` and show only if you
configure logging or call ``neuroharness.progress.set_quiet(False)``; progress
bars show in terminals and notebooks (see :mod:`neuroharness.progress`).
"""
__version__ = "0.2.0"


def open_dataset(name: str, version: str | None = None, store: str | None = None, storage_options=None):
    """Open dataset ``name`` as a lazy ``xarray.Dataset`` (``xarray.DataTree`` for datasets made of parts),
    prepared on first use; ``store``: a store's path or fsspec URL (``s3://``, ``hf://``, ``https://`` ...)
    to open instead of the cache's."""
    from neuroharness.loaders import open_dataset as _open

    return _open(name, version, store=store, storage_options=storage_options)


def prepare_dataset(name: str, source=None, force: bool = False, only=None):
    """Fetch, verify and homogenize dataset ``name``; return the store path (``only``: parts, e.g. graphs)."""
    from neuroharness.loaders import prepare

    return prepare(name, source, force=force, only=only)


def list_datasets() -> list[str]:
    from neuroharness.loaders import list_datasets as _list

    return _list()


def get_task(name: str):
    """The task card object of task ``name`` (splits, metrics, baselines, ``evaluate``)."""
    from neuroharness.tasks import get_task as _get

    return _get(name)


def list_tasks() -> list[str]:
    from neuroharness.tasks import list_tasks as _list

    return _list()
