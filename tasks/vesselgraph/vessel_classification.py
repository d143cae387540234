"""Task ``vesselgraph-vessel-classification``: radius class of every vessel of a whole-brain graph.

The card (:data:`.cards.VESSEL_CLASSIFICATION`) states the task, split and
metrics. This module reads one graph (:class:`VesselData`: inputs, labels,
the fixed split and the line graph, built on demand) and scores predicted
labels. Baselines: :mod:`.classification_baselines` (models
``fit(data: VesselData, seed)`` on the view without test labels and
``predict(data, idx) -> (n,) int64``).

Costs on a whole brain (5.3 M vessels, 22.6 M directed line-graph edges; 2
CPU cores): line graph + CSR 6-7 s; ``mlp`` about 12 s per epoch;
``graphsage`` about 15 ms per training batch of 512 (2 min per epoch) plus
7 s per exact validation pass; peak RSS about 4.5 GB. The default budgets
(20 and 10 epochs) are sized for small graphs; pass larger ``batch_size``
or fewer ``epochs`` through ``hyperparameters`` for whole brains.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from neuroharness.errors import NeuroharnessError
from neuroharness.loaders.vesselgraph import part_sha256
from neuroharness.metrics.classification import accuracy, balanced_accuracy, per_class_recall

from ..base import Task
from ..submission import Column, TableSpec, check_table, write_table
from .cards import VESSEL_CLASSIFICATION

TASK = VESSEL_CLASSIFICATION.name
THRESHOLDS = (5.0, 13.33)      # minRadiusAvg class boundaries (generate_ogbn_dataset_hard_inputs.py)
N_CLASSES = 3
INPUTS = ("length", "distance", "curveness")
LABEL_COLUMN = "minRadiusAvg"
SPLIT_SEED = 12
FRACTIONS = (0.8, 0.1)          # train, validation; test = the rest


def radius_class(min_radius_avg) -> np.ndarray:
    """(n,) int64 class of each minRadiusAvg: 0 if <= 5, 1 if in (5, 13.33], 2 if > 13.33; -1 if not finite."""
    r = np.asarray(min_radius_avg, dtype=np.float64)
    out = (r > THRESHOLDS[0]).astype(np.int64) + (r > THRESHOLDS[1])
    out[~np.isfinite(r)] = -1
    return out


def split_vessels(labeled: np.ndarray, seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
    """``{"train", "val", "test"}``: sorted vessel indices of a random 80/10/10 split of ``labeled`` (indices)."""
    labeled = np.asarray(labeled, dtype=np.int64)
    perm = labeled[np.random.default_rng(seed).permutation(len(labeled))]
    n_train, n_val = (int(np.floor(f * len(labeled))) for f in FRACTIONS)
    parts = {"train": perm[:n_train], "val": perm[n_train:n_train + n_val], "test": perm[n_train + n_val:]}
    return {k: np.sort(v) for k, v in parts.items()}


# -- data -------------------------------------------------------------------------------------
@dataclass
class VesselData:
    """One graph of the store, as the task and its models see it.

    ``checksum`` is the sha256 of the graph's own content (its part of the
    store). ``features`` (E, 3) float64 raw [length, distance, curveness]
    (store units, possibly non-finite); ``label`` (E,) int64 class, -1 where
    unknown (no finite minRadiusAvg, or hidden: models get the test labels as
    -1); ``split`` sorted vessel indices per split; ``edge_index`` (E, 2) end
    nodes in G (node1id < node2id); vessel ``k`` is edge row ``k`` = CSV ``id`` k.
    """

    graph: str
    checksum: str
    features: np.ndarray
    label: np.ndarray
    split: dict[str, np.ndarray]
    edge_index: np.ndarray
    n_nodes: int
    _line: dict = field(default_factory=dict, repr=False)

    @property
    def n_vessels(self) -> int:
        return len(self.label)

    def line_graph_csr(self):
        """L(G) as a :class:`~neuroharness.tasks.graph.neighbor_sampling.CSRGraph` over the E vessels (built once)."""
        if "csr" not in self._line:
            from ..graph.line_graph import line_graph
            from ..graph.neighbor_sampling import CSRGraph

            ei = line_graph(self.edge_index.T, self.n_nodes, check=False)  # the loader checked G is simple
            self._line["csr"] = CSRGraph.from_edge_index(ei, self.n_vessels)
        return self._line["csr"]

    def without_test_labels(self) -> VesselData:
        """The training view: test labels set to -1 (built once; shares the line graph)."""
        if "hidden" not in self._line:
            label = self.label.copy()
            label[self.split["test"]] = -1
            self._line["hidden"] = replace(self, label=label)  # shares _line, so the line graph is built once
        return self._line["hidden"]


def load_graph(graph: str) -> VesselData:
    """Read graph ``graph`` of the prepared store (preparing only it if there is no store)."""
    from neuroharness.loaders.vesselgraph import open_graph

    ds = open_graph(graph)
    checksum = part_sha256(graph)
    missing = [c for c in (*INPUTS, LABEL_COLUMN, "edge_index") if c not in ds.variables]
    if missing:
        raise NeuroharnessError(f"graph {graph} of the vesselgraph store has no variable(s) {missing}; "
                                f"{TASK} needs {', '.join(INPUTS)}, {LABEL_COLUMN} and edge_index")
    features = np.column_stack([np.asarray(ds[c].values, dtype=np.float64) for c in INPUTS])
    label = radius_class(ds[LABEL_COLUMN].values)
    split = split_vessels(np.flatnonzero(label >= 0))
    if min(len(v) for v in split.values()) == 0:
        raise NeuroharnessError(f"graph {graph}: {int((label >= 0).sum())} vessels with a finite {LABEL_COLUMN} "
                                "give an empty train, validation or test split; the task needs at least 10")
    return VesselData(graph, checksum, features, label, split, np.asarray(ds["edge_index"].values, dtype=np.int64),
                      int(ds.sizes["node"]))


# -- submissions -------------------------------------------------------------------------------
def write_predictions(path, vessel, label):
    """Write a submission table (``vessel``, ``label``, both int64) as .parquet or .npz."""
    return write_table(pd.DataFrame({"vessel": np.asarray(vessel, dtype=np.int64),
                                     "label": np.asarray(label, dtype=np.int64)}), path)


def submission_spec(data: VesselData) -> TableSpec:
    """The submission's columns for ``data``'s graph: integer vessel ids in range, integer labels 0..2."""
    n = data.n_vessels
    return TableSpec(
        ids=(Column("vessel", "int", "edge ids (the CSV id column)", low=0, high=n - 1,
                    range_text=f"graph {data.graph} has vessel ids 0..{n - 1}"),),
        values=(Column("label", "int", "class labels 0, 1 or 2", low=0, high=N_CLASSES - 1,
                       range_text="expected 0, 1 or 2"),),
        items="vessels", scope=f" of graph {data.graph}", id_format="vessel {vessel}")


# -- task -------------------------------------------------------------------------------------
class VesselGraphVesselClassification(Task):
    """Option ``graph``; data view :class:`VesselData`; models
    (:class:`~neuroharness.tasks.protocols.VesselModel`: ``fit(data, seed)``, ``predict(data, idx)``) see
    :meth:`VesselData.without_test_labels`, which is also ``training_view(options={"graph": G})``."""

    card = VESSEL_CLASSIFICATION
    cache_size = 1  # a whole brain holds 5.3 M vessels and, once built, their line graph

    def dataset_parts(self, options) -> dict[str, dict[str, str]]:
        return {"vesselgraph": {options["graph"]: part_sha256(options["graph"])}}

    def describe_data(self, data: VesselData) -> str:
        return f"graph {data.graph}: {int((data.label >= 0).sum())} vessels with a finite {LABEL_COLUMN}"

    def load(self, options) -> VesselData:
        """The vessels, labels and split of graph ``options["graph"]``."""
        return load_graph(options["graph"])

    def ids(self, data: VesselData, split: str) -> pd.DataFrame:
        """The vessels of ``split``: column ``vessel`` (int64 CSV edge ids, ascending)."""
        return pd.DataFrame({"vessel": data.split[split].astype(np.int64)})

    def targets(self, data: VesselData, split: str) -> pd.DataFrame:
        """``label`` (int64 radius class 0..2) of the vessels of ``split``, aligned with :meth:`ids`."""
        return pd.DataFrame({"label": data.label[data.split[split]].astype(np.int64)})

    def training_view_of(self, data: VesselData) -> VesselData:
        """:meth:`VesselData.without_test_labels`: every vessel's features and the graph, train and val
        labels; test labels are -1."""
        return data.without_test_labels()

    def fit(self, model, data: VesselData, seed: int):
        return model.fit(self.training_view_of(data), seed)

    def predict(self, model, data: VesselData, split: str) -> np.ndarray:
        return model.predict(data.without_test_labels(), data.split[split])

    def score(self, data: VesselData, split: str, predictions) -> dict:
        """Metrics of predicted labels ((n,) aligned with :meth:`ids`) on ``split`` (true labels from ``data``)."""
        pred = np.asarray(predictions)
        y = data.label[data.split[split]]
        train_y = data.label[data.split["train"]]
        majority = int(np.argmax(np.bincount(train_y, minlength=N_CLASSES)))
        out = {"balanced_accuracy": balanced_accuracy(y, pred), "accuracy": accuracy(y, pred)}
        out.update({f"recall/{c}": r for c, r in per_class_recall(y, pred).items()})
        out.update({f"count/{c}": int(n) for c, n in enumerate(np.bincount(y, minlength=N_CLASSES))})
        out["n_vessels"] = len(y)
        out["chance_accuracy"] = float((y == majority).mean())
        out["chance_balanced_accuracy"] = 1.0 / len(np.unique(y))
        return out

    def read_submission(self, predictions, data: VesselData, split: str) -> np.ndarray:
        values = check_table(predictions, submission_spec(data), self.ids(data, split), split)
        return values["label"].to_numpy()
