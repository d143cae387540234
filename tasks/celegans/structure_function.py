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
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from neuroharness.errors import SubmissionError
from neuroharness.metrics.classification import average_precision, positive_rate, roc_auc
from neuroharness.metrics.regression import spearman

from . import submission
from .base import DatasetRef, MetricSpec, ModelSpec, Task, TaskCard, register_task

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


# -- baselines ---------------------------------------------------------------
class _LinearAmplitude:
    """Amplitude = a + b * score, least squares on training pairs (2 parameters)."""

    def _fit_amplitude(self, score: np.ndarray, amplitude: np.ndarray) -> None:
        X = np.column_stack([np.ones_like(score), score])
        self._ab = np.linalg.lstsq(X, amplitude, rcond=None)[0]

    def _amplitude(self, score: np.ndarray) -> np.ndarray:
        return self._ab[0] + self._ab[1] * score


class ChanceModel:
    """Uniform random scores and amplitudes: the chance level, 0 parameters."""

    n_parameters = 0

    def fit(self, inputs: Inputs, train: Pairs, val: Pairs, seed: int):
        self._seed = seed
        return self

    def predict(self, inputs: Inputs, pairs: Pairs) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self._seed, len(pairs)])
        return {"score": rng.random(len(pairs)), "amplitude": rng.standard_normal(len(pairs))}


class DirectConnectomeModel(_LinearAmplitude):
    """Score = chemical + gap-junction weight from stimulated to responding (Cook 2019)."""

    n_parameters = 2

    def __init__(self, annotation: str = CONNECTOME_ANNOTATION):
        self.annotation = annotation

    def _score(self, inputs: Inputs, pairs: Pairs) -> np.ndarray:
        chem, gap = inputs.weights(self.annotation)
        return (chem + gap)[pairs.responding, pairs.stimulated]

    def fit(self, inputs, train, val, seed):
        self._fit_amplitude(self._score(inputs, train), train.amplitude)
        return self

    def predict(self, inputs, pairs):
        s = self._score(inputs, pairs)
        return {"score": s, "amplitude": self._amplitude(s)}


class MultiHopModel(_LinearAmplitude):
    """Score = sum_{k=1..K} alpha^k (A/rho(A))^k, A = log1p(chemical + gap).

    ``A[i, j]`` is the weight from j to i and rho its spectral radius, so
    the series counts weighted walks of up to K synapses from the stimulated
    neuron. K and alpha are chosen by ROC-AUC on the training pairs.
    """

    n_parameters = 4  # K, alpha, and the two amplitude coefficients

    def __init__(self, annotation: str = CONNECTOME_ANNOTATION, hops=(1, 2, 3, 4), alphas=(0.25, 0.5, 0.75, 1.0)):
        self.annotation, self.hops, self.alphas = annotation, tuple(hops), tuple(alphas)

    def _series(self, inputs: Inputs, K: int, alpha: float) -> np.ndarray:
        chem, gap = inputs.weights(self.annotation)
        A = np.log1p(chem + gap)
        A = A / np.max(np.abs(np.linalg.eigvals(A)))
        out, power = np.zeros_like(A), np.eye(len(A))
        for k in range(1, K + 1):
            power = power @ A
            out += alpha**k * power
        return out

    def fit(self, inputs, train, val, seed):
        best = None
        for K in self.hops:
            for alpha in self.alphas:
                S = self._series(inputs, K, alpha)
                auc = roc_auc(train.significant, S[train.responding, train.stimulated])
                if best is None or auc > best[0]:
                    best = (auc, K, alpha, S)
        _, self.K, self.alpha, self._S = best
        self._fit_amplitude(self._S[train.responding, train.stimulated], train.amplitude)
        return self

    def predict(self, inputs, pairs):
        s = self._S[pairs.responding, pairs.stimulated]
        return {"score": s, "amplitude": self._amplitude(s)}


def _gnn_factory(**kw):
    from .celegans_structure_function_gnn import GNNLinkModel

    return GNNLinkModel(**kw)


@register_task
class CelegansStructureFunction(Task):
    card = TaskCard(
        name="celegans-structure-function",
        version="1.0",
        title="Predict signal propagation from C. elegans anatomy",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
        datasets=(DatasetRef("celegans-funatlas", "1.0"), DatasetRef("celegans-connectome", "1.0")),
        split=__doc__.split("\n\n")[2].replace("\n", " ").removeprefix("Split: "),
        inputs="celegans-connectome (all annotations, neuron types and positions); training and validation pairs with targets",
        targets="significant = q < 0.05 (wt strain); amplitude = dFF (ΔF/F0), responding neuron i to stimulated neuron j",
        metrics=(
            MetricSpec("roc_auc", True, "ROC-AUC of `score` for significant responses over test pairs"),
            MetricSpec("average_precision", True, "average precision of `score` for significant responses over test pairs"),
            MetricSpec("spearman", True, "Spearman rho between `amplitude` and dFF over test pairs"),
        ),
        main_metric="roc_auc",
        seeds=(0, 1, 2),
        chance={"roc_auc": "0.5", "average_precision": "positive rate of the test pairs", "spearman": "0"},
        submission=(
            "one row per test pair: columns responding (str), stimulated (str) canonical neuron names, "
            "score (float, higher = more likely significant), amplitude (float, predicted dFF); "
            "as .npz (1-D arrays, no object dtype), .parquet, or .zarr (variables along one dim)"
        ),
        references=(
            "Randi F, Sharma AK, Dvali S, Leifer AM (2023) Nature 623:406, doi:10.1038/s41586-023-06683-4",
            "Cook SJ et al. (2019) Nature 571:63, doi:10.1038/s41586-019-1352-7",
        ),
    )
    models = {
        "chance": ModelSpec("chance", ChanceModel, "uniform random scores (chance level)"),
        "connectome-direct": ModelSpec("connectome-direct", DirectConnectomeModel, "chemical + gap-junction weight j->i (Cook 2019)"),
        "connectome-multihop": ModelSpec("connectome-multihop", MultiHopModel, "truncated series of normalized adjacency powers, K and alpha tuned on train"),
        "gnn-link": ModelSpec("gnn-link", _gnn_factory, "GraphSAGE encoder on the Cook 2019 connectome + pair MLP decoder (torch-geometric)"),
    }

    _cache: tuple | None = None

    def load(self) -> tuple[Inputs, dict[str, Pairs]]:
        """Open both stores (preparing them if needed) and build the fixed split."""
        from neuroharness.loaders import open_dataset

        funatlas = open_dataset("celegans-funatlas", self.card.datasets[0].version)
        connectome = open_dataset("celegans-connectome", self.card.datasets[1].version)
        key = (funatlas.attrs["content_sha256"], connectome.attrs["content_sha256"])
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, build_pairs(funatlas, connectome), {
                "celegans-funatlas": funatlas.attrs["content_sha256"],
                "celegans-connectome": connectome.attrs["content_sha256"],
            })
        return self._cache[1]

    def dataset_checksums(self) -> dict[str, str]:
        self.load()
        return dict(self._cache[2])

    def score(self, pairs: Pairs, score: np.ndarray, amplitude: np.ndarray) -> dict[str, float]:
        """Metrics of aligned predictions on ``pairs`` (which carry targets)."""
        out = {
            "roc_auc": roc_auc(pairs.significant, score),
            "average_precision": average_precision(pairs.significant, score),
            "spearman": spearman(pairs.amplitude, amplitude),
            "chance_average_precision": positive_rate(pairs.significant),
            "n_pairs": len(pairs),
            "n_significant": int(pairs.significant.sum()),
        }
        out["main_score"] = out[self.card.main_metric]
        return out

    def run_model(self, model_name: str, seed: int) -> dict:
        spec = self.get_model(model_name)
        inputs, splits = self.load()
        model = spec.build()
        t0 = time.perf_counter()
        model.fit(inputs, splits["train"], splits["val"], seed)
        preds = {s: model.predict(inputs, splits[s].without_targets()) for s in ("val", "test")}
        wall = time.perf_counter() - t0
        return {
            "metrics": self.score(splits["test"], **preds["test"]),
            "validation_metrics": self.score(splits["val"], **preds["val"]),
            "n_parameters": int(model.n_parameters),
            "hyperparameters": {k: v for k, v in vars(model).items() if not k.startswith("_") and k != "n_parameters" and isinstance(v, (int, float, str, tuple, list))},
            "fit_predict_seconds": wall,
        }

    def submission_template(self, split: str = "test") -> pd.DataFrame:
        """The pairs to predict, as canonical names (the submission's id columns)."""
        inputs, splits = self.load()
        p = splits[split]
        names = np.asarray(inputs.neurons)
        return pd.DataFrame({"responding": names[p.responding], "stimulated": names[p.stimulated]})

    def evaluate(self, predictions, split: str = "test") -> dict[str, float]:
        """Score a submission (path or DataFrame) on ``split`` ('test' or 'val')."""
        if split not in ("test", "val"):
            raise SubmissionError(f"split {split!r}: expected 'test' or 'val'")
        source = str(predictions) if not isinstance(predictions, pd.DataFrame) else "predictions"
        table = predictions if isinstance(predictions, pd.DataFrame) else submission.read_table(predictions)
        table = submission.check_columns(
            table, source, {"responding": "neuron names", "stimulated": "neuron names"}, ("score", "amplitude")
        )
        inputs, splits = self.load()
        expected = self.submission_template(split)
        dup = table.duplicated(["responding", "stimulated"])
        if dup.any():
            r = table[dup].iloc[0]
            raise SubmissionError(f"{source}: pair ({r.stimulated} -> {r.responding}) appears more than once")
        merged = expected.merge(table, on=["responding", "stimulated"], how="left", indicator=True)
        missing = merged["_merge"] != "both"
        if missing.any():
            r = merged[missing].iloc[0]
            raise SubmissionError(f"{source}: {int(missing.sum())} of {len(expected)} {split} pairs missing, e.g. stimulated {r.stimulated} -> responding {r.responding}")
        if len(table) != len(expected):
            extra = table.merge(expected, how="left", indicator=True)
            r = extra[extra["_merge"] == "left_only"].iloc[0]
            raise SubmissionError(f"{source}: {len(table) - len(expected)} row(s) are not {split} pairs, e.g. stimulated {r.stimulated} -> responding {r.responding}")
        return self.score(splits[split], merged["score"].to_numpy(), merged["amplitude"].to_numpy())
