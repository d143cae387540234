"""Task ``celegans-structure-function``: can anatomy predict signal propagation?

For directed pairs (stimulated j -> responding i) measured in the wild-type
signal-propagation atlas (Randi et al. 2023), predict (a) whether the
response is significant (q < 0.05) and (b) its amplitude (ΔF/F0), from the
connectome and anything else that is not the atlas's test pairs.

Split: pairs are grouped by the *class* of the stimulated neuron (so a left
neuron and its right partner fall on the same side); a class goes to test
if sha256(class) mod 10 is 0 or 1, to validation if it is 2, else to train.
Test pairs thus share no stimulated neuron (nor its bilateral partner) with
training pairs. Self-pairs (i = j) and unmeasured pairs are excluded.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import xarray as xr

from neuroharness.metrics.classification import average_precision, positive_rate, roc_auc
from neuroharness.metrics.regression import spearman

from ..base import Task
from ..submission import Column, TableSpec, check_table
from .cards import STRUCTURE_FUNCTION

SIGNIFICANCE_Q = 0.05
STRAIN = "wt"
CONNECTOME_ANNOTATION = "cook_2019"  # the only annotation covering all 302 neurons


@dataclass(frozen=True)
class Pairs:
    """Directed pairs as integer indices into ``Inputs.neurons``; targets absent on test."""

    responding: np.ndarray  # (n,) int
    stimulated: np.ndarray  # (n,) int
    significant: np.ndarray | None = None  # (n,) bool, q < 0.05
    amplitude: np.ndarray | None = None  # (n,) float, ΔF/F0

    def __len__(self) -> int:
        return len(self.responding)

    def without_targets(self) -> "Pairs":
        return Pairs(self.responding, self.stimulated)


@dataclass(frozen=True)
class Inputs:
    """What a model may use: neuron names and the full connectome dataset (loaded)."""

    neurons: list[str]
    connectome: xr.Dataset

    def weights(self, annotation: str = CONNECTOME_ANNOTATION) -> tuple[np.ndarray, np.ndarray]:
        """(chemical, gap) (n, n) arrays indexed [responding, stimulated]; NaN -> 0."""
        a = self.connectome.sel(annotation=annotation)
        # stores are [pre, post]; signal flows from the stimulated (pre) to the responding (post)
        chem = np.nan_to_num(a.chemical.values.T.astype(np.float64))
        gap = np.nan_to_num(a.gap_junction.values.T.astype(np.float64))
        return chem, gap


def split_of(neuron_class: str) -> str:
    """The fixed split of a stimulated neuron class: 'train', 'val' or 'test'."""
    bucket = int(hashlib.sha256(neuron_class.encode()).hexdigest(), 16) % 10
    return "test" if bucket < 2 else "val" if bucket == 2 else "train"


def build_pairs(funatlas: xr.Dataset, connectome: xr.Dataset) -> tuple[Inputs, dict[str, Pairs]]:
    """Measured wild-type pairs, split by stimulated neuron class."""
    wt = funatlas.sel(strain=STRAIN)
    dff = wt.dFF.values.astype(np.float64)
    q = wt.q.values.astype(np.float64)
    neurons = [str(n) for n in funatlas.responding.values]
    if list(map(str, connectome.pre.values)) != neurons:
        raise ValueError("celegans-connectome and celegans-funatlas disagree on the neuron list")
    measured = np.isfinite(dff) & np.isfinite(q)
    np.fill_diagonal(measured, False)
    resp, stim = np.nonzero(measured)
    classes = connectome.neuron_class.values.astype(str)
    which = np.array([split_of(classes[j]) for j in stim])
    splits = {}
    for name in ("train", "val", "test"):
        m = which == name
        splits[name] = Pairs(resp[m], stim[m], q[resp[m], stim[m]] < SIGNIFICANCE_Q, dff[resp[m], stim[m]])
    return Inputs(neurons, connectome.load()), splits


@dataclass(frozen=True)
class StructureFunctionData:
    """The task's data view: model inputs and the three splits (test targets stay here)."""

    inputs: Inputs
    splits: dict[str, Pairs]


@dataclass(frozen=True)
class StructureFunctionTraining:
    """What a model may see for training (``task.training_view()``): ``inputs`` (neuron names and the
    whole connectome) and the ``train`` and ``val`` :class:`Pairs` with their targets. No test pair."""

    inputs: Inputs
    train: Pairs
    val: Pairs

    def table(self, split: str) -> pd.DataFrame:
        """The pairs of ``split`` ('train' or 'val') as a DataFrame: ``responding``, ``stimulated`` (names),
        ``significant`` (bool, q < 0.05) and ``amplitude`` (ΔF/F0)."""
        if split not in ("train", "val"):
            raise ValueError(f"split {split!r}: the training view holds 'train' and 'val'")
        p = getattr(self, split)
        names = np.asarray(self.inputs.neurons)
        return pd.DataFrame({"responding": names[p.responding], "stimulated": names[p.stimulated],
                             "significant": p.significant, "amplitude": p.amplitude})


SUBMISSION = TableSpec(
    ids=(Column("responding", "str", "neuron names"), Column("stimulated", "str", "neuron names")),
    values=(Column("score", "float"), Column("amplitude", "float")),
    items="pairs", id_format="pair (stimulated {stimulated} -> responding {responding})",
)


def submission_spec(neurons) -> TableSpec:
    """:data:`SUBMISSION` knowing the store's neuron names, so that a misspelt or unknown neuron is
    reported as such, with its row, rather than as a pair that is not of the split."""
    known = tuple(map(str, neurons))
    text = f"one of the {len(known)} canonical neuron names of the store"
    return replace(SUBMISSION, ids=tuple(replace(c, known=known, range_text=text) for c in SUBMISSION.ids))


class CelegansStructureFunction(Task):
    """Models (:class:`~neuroharness.tasks.protocols.StructureFunctionModel`): ``fit(inputs, train, val,
    seed)``, ``predict(inputs, pairs) -> {"score", "amplitude"}``.

    ``training_view()`` is a :class:`StructureFunctionTraining` (inputs; train and val pairs with
    targets; ``.table("train")`` as a DataFrame); test pairs reach models only through ``predict``,
    without targets."""

    card = STRUCTURE_FUNCTION

    def load(self, options) -> StructureFunctionData:
        """Open both stores (preparing them if needed) and build the fixed split."""
        from neuroharness.loaders import open_dataset

        funatlas, connectome = (open_dataset(d.name, d.version) for d in self.card.datasets)
        inputs, splits = build_pairs(funatlas, connectome)
        return StructureFunctionData(inputs, splits)

    def ids(self, data: StructureFunctionData, split: str) -> pd.DataFrame:
        """The pairs of ``split`` as canonical names (the submission's id columns)."""
        p = data.splits[split]
        names = np.asarray(data.inputs.neurons)
        return pd.DataFrame({"responding": names[p.responding], "stimulated": names[p.stimulated]})

    def targets(self, data: StructureFunctionData, split: str) -> pd.DataFrame:
        """``significant`` (bool, q < 0.05) and ``amplitude`` (ΔF/F0) of the pairs of ``split``, aligned with :meth:`ids`."""
        p = data.splits[split]
        return pd.DataFrame({"significant": np.asarray(p.significant, dtype=bool),
                             "amplitude": np.asarray(p.amplitude, dtype=np.float64)})

    def training_view_of(self, data: StructureFunctionData) -> StructureFunctionTraining:
        """:class:`StructureFunctionTraining`: the connectome inputs and the train and val pairs with targets."""
        return StructureFunctionTraining(data.inputs, data.splits["train"], data.splits["val"])

    def fit(self, model, data: StructureFunctionData, seed: int):
        view = self.training_view_of(data)
        return model.fit(view.inputs, view.train, view.val, seed)

    def predict(self, model, data: StructureFunctionData, split: str) -> dict[str, np.ndarray]:
        return model.predict(data.inputs, data.splits[split].without_targets())

    def score(self, data: StructureFunctionData, split: str, predictions) -> dict[str, float]:
        """Metrics of aligned predictions (``{"score": (n,), "amplitude": (n,)}``) on ``split``."""
        pairs = data.splits[split]
        score, amplitude = np.asarray(predictions["score"]), np.asarray(predictions["amplitude"])
        return {
            "roc_auc": roc_auc(pairs.significant, score),
            "average_precision": average_precision(pairs.significant, score),
            "spearman": spearman(pairs.amplitude, amplitude),
            "chance_average_precision": positive_rate(pairs.significant),
            "n_pairs": len(pairs),
            "n_significant": int(pairs.significant.sum()),
        }

    def read_submission(self, predictions, data: StructureFunctionData, split: str) -> dict[str, np.ndarray]:
        values = check_table(predictions, submission_spec(data.inputs.neurons), self.ids(data, split), split)
        return {"score": values["score"].to_numpy(), "amplitude": values["amplitude"].to_numpy()}
