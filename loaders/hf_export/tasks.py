"""A task's own split tables as a Hugging Face ``DatasetDict`` (tasks whose targets are a table).

Splits ``train`` and ``validation`` are :meth:`~neuroharness.tasks.base.Task.labelled_table` (the id
columns, then the targets, exactly as ``neuroharness tasks template --split train|val`` writes them);
``test`` is :meth:`~neuroharness.tasks.base.Task.submission_template` (the ids a submission must cover,
in scoring order) with the target columns present but null: test targets are never exported, as
``labelled_table`` never gives them. Keeping the columns in every split gives the three splits the same
features, so ``DatasetDict.push_to_hub`` accepts them. E.g. ``celegans-structure-function``: one row per
(stimulated -> responding) neuron pair, columns ``responding``, ``stimulated``, ``significant`` (bool),
``amplitude`` (float64 ΔF/F0).
"""
from __future__ import annotations

from neuroharness.errors import NeuroharnessError, SubmissionError, UsageError

from ._common import Plan, Table, feature_id, licence_notes, value_dtype

SPLITS = {"train": "train", "validation": "val", "test": "test"}


def _features(frame, targets: list[str], where: str, card):
    import datasets

    out = {}
    for col in frame.columns:
        values = frame[col].to_numpy()
        if values.dtype.kind == "O" and not all(isinstance(v, str) for v in values):
            raise NeuroharnessError(f"{where}: column {col!r} mixes strings with other values; expected one type")
        role = "target" if col in targets else "id"
        text = (f"target ({card.targets}); null in the test split: test targets are never exported"
                if role == "target" else "id column of the split (what a submission names)")
        out[col] = datasets.Value(value_dtype(values.dtype, f"{where} column {col!r}"),
                                  id=feature_id(role=role, long_name=text))
    return datasets.Features(out)


def _table(frame, features, about: str) -> Table:
    def batches():
        batch = {}
        for col in features:
            if col in frame.columns:
                values = frame[col].to_numpy()
                batch[col] = values.astype(str) if values.dtype.kind == "O" else values
            else:  # a target column of the test split: null, never the value
                batch[col] = [None] * len(frame)
        yield batch

    return Table(features, len(frame), batches, about=about)


def task_splits(card, options) -> Plan:
    """The plan of task ``card.name`` with ``options`` (resolved): train, validation and test tables."""
    from neuroharness.loaders import get_card as dataset_card
    from neuroharness.loaders import get_loader
    from neuroharness.tasks import get_task

    task = get_task(card.name)
    opts = task.resolve_options(options)
    where = f"task {card.name}"
    try:
        frames = {"train": task.labelled_table("train", options=opts)}
        if task.has_validation:
            frames["validation"] = task.labelled_table("val", options=opts)
    except SubmissionError as e:
        datasets = " ".join(d.name for d in card.datasets)
        raise UsageError(f"task {card.name} cannot be exported as tables: {e}. Export the datasets it reads instead: "
                         f"`neuroharness datasets export NAME --format hf DIR` for NAME in {datasets}") from None
    test = task.submission_template("test", options=opts)
    ids = list(test.columns)
    train = frames["train"]
    if list(train.columns[: len(ids)]) != ids:
        raise NeuroharnessError(f"{where}: the train table's first columns {list(train.columns[:len(ids)])} differ "
                                f"from the test ids {ids}")
    targets = [c for c in train.columns if c not in ids]
    features = _features(train, targets, where, card)
    for name, frame in frames.items():
        if list(frame.columns) != list(train.columns):
            raise NeuroharnessError(f"{where}: split {name} has columns {list(frame.columns)}, train {list(train.columns)}")
    frames["test"] = test
    about = {"train": "Training items with their targets.",
             "validation": "Validation items with their targets (the task scores its `val` split on them).",
             "test": "Test items: the ids a submission must cover, in scoring order. The target columns are null: "
                     "neuroharness never exports test targets; score predictions with `neuroharness evaluate`."}
    tables = {name: _table(frame, features, about[name]) for name, frame in frames.items()}
    checksums = dict(task.dataset_checksums(opts))
    provenance = [f"task: {card.name} version {card.version}"]
    provenance += [f"option {k}: {v}" for k, v in sorted(opts.items())]
    provenance += [f"dataset {k} sha256 (of what the task reads): {v}" for k, v in checksums.items()]
    for split in ("test", "val") if task.has_validation else ("test",):
        checksums[f"split_sha256/{split}"] = task.split_sha256(opts, split)
        provenance.append(f"split_sha256 of {split} (as in result records): {checksums[f'split_sha256/{split}']}")
    provenance += [f"split {name}: {len(frame)} rows" for name, frame in frames.items()]
    licences, citations, notes = [], list(card.references), []
    for ref in card.datasets:
        dcard = dataset_card(ref.name)
        attrs = get_loader(ref.name).root_attrs(ref.version)
        licences.append(f"{ref.name}: {attrs.get('license') or dcard.license}")
        notes += licence_notes(dcard)
        citations.append(str(attrs.get("citation") or dcard.citation))
    description = " ".join(f"{card.description} Split: {card.split} Inputs: {card.inputs} Targets: {card.targets}".split())
    return Plan(name=card.name, tables=tables, title=card.title, description=description,
                citation="\n".join(dict.fromkeys(citations)), license="; ".join(licences), homepage="",
                version=card.version, provenance=provenance, notes=notes,
                checksums={**checksums, **{f"option/{k}": v for k, v in opts.items()}})


__all__ = ["SPLITS", "task_splits"]
