"""Task ``vesselgraph-vessel-classification``: radius class of every vessel of a whole-brain graph.

Vessels (edges of the VesselGraph graph G) become the nodes of its line
graph L(G), two vessels being adjacent when they share a bifurcation or end
point. From each vessel's length, distance (between its end points) and
curveness (length / distance), and from L(G), predict its radius class,
minRadiusAvg bucketed at 5 and 13.33 (VesselGraph's "pixel boundaries"):
class 0 if minRadiusAvg <= 5, 1 if in (5, 13.33], 2 if > 13.33. Reading the
classes as capillaries / small / large vessels is an interpretation; the
source only has the thresholds. Scored by balanced accuracy (mean per-class
recall over the classes present in the test vessels), because the classes
are unbalanced (VesselGraph trains with class weights n/count for this reason).

Split: every vessel with a finite minRadiusAvg, permuted with a fixed split
seed (``SPLIT_SEED`` = 12, the seed of VesselGraph's hard-input generator;
the model seed never changes it); the first floor(0.8 n) are train, the next
floor(0.1 n) validation, the rest test. The task option ``graph`` picks the
graph of the prepared ``vesselgraph`` store (default BALBc_no1); records on
different graphs are never ranked together.

Costs on a whole brain (5.3 M vessels, 22.6 M directed line-graph edges; 2
CPU cores): line graph + CSR 6-7 s; ``mlp`` about 12 s per epoch;
``graphsage`` about 15 ms per training batch of 512 (2 min per epoch) plus
7 s per exact validation pass; peak RSS about 4.5 GB. The default budgets
(20 and 10 epochs) are sized for small graphs; pass larger ``batch_size``
or fewer ``epochs`` through ``hyperparameters`` for whole brains.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np
import pandas as pd
from neuroharness.metrics.classification import (
    accuracy,
    balanced_accuracy,
    per_class_recall,
)

from neuroharness.errors import NeuroharnessError, SubmissionError

from . import submission
from .base import (
    DatasetRef,
    MetricSpec,
    ModelSpec,
    Task,
    TaskCard,
    TaskOption,
    register_task,
)
from .model_utils import describe, single_thread

TASK = "vesselgraph-vessel-classification"
THRESHOLDS = (5.0, 13.33)      # minRadiusAvg class boundaries (generate_ogbn_dataset_hard_inputs.py)
N_CLASSES = 3
INPUTS = ("length", "distance", "curveness")
LABEL_COLUMN = "minRadiusAvg"
SPLIT_SEED = 12
FRACTIONS = (0.8, 0.1)          # train, validation; test = the rest

_CITE = ("Paetzold JC et al. (2021) Whole Brain Vessel Graphs: A Dataset and Benchmark for Graph Learning and "
         "Neuroscience. NeurIPS 2021 Datasets and Benchmarks, arXiv:2108.13233")


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

    ``features`` (E, 3) float64 raw [length, distance, curveness] (store units,
    possibly non-finite); ``label`` (E,) int64 class, -1 where unknown (no
    finite minRadiusAvg, or hidden: models get the test labels as -1);
    ``split`` sorted vessel indices per split; ``edge_index`` (E, 2) end nodes
    in G (node1id < node2id); vessel ``k`` is edge row ``k`` = CSV ``id`` k.
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
        """L(G) as a :class:`~neuroharness.tasks.neighbor_sampling.CSRGraph` over the E vessels (built once)."""
        if "csr" not in self._line:
            from .line_graph import line_graph
            from .neighbor_sampling import CSRGraph

            ei = line_graph(self.edge_index.T, self.n_nodes, check=False)  # the loader checked G is simple
            self._line["csr"] = CSRGraph.from_edge_index(ei, self.n_vessels)
        return self._line["csr"]

    def without_test_labels(self) -> VesselData:
        label = self.label.copy()
        label[self.split["test"]] = -1
        return replace(self, label=label)  # shares _line, so the line graph is built once


def load_graph(graph: str) -> VesselData:
    """Read graph ``graph`` of the prepared store (preparing only it if there is no store)."""
    from neuroharness.loaders.vesselgraph import content_sha256, open_graph

    ds = open_graph(graph)
    checksum = content_sha256()
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


def standardize(features: np.ndarray, train: np.ndarray) -> np.ndarray:
    """(E, F) float32 z-scores with training statistics; +inf -> training max, -inf -> min, NaN -> median."""
    x = np.array(features, dtype=np.float64)
    for j in range(x.shape[1]):
        col, ref = x[:, j], x[train, j]
        fin = ref[np.isfinite(ref)]
        if fin.size == 0:
            col[:] = 0.0
            continue
        col[np.isposinf(col)], col[np.isneginf(col)], col[np.isnan(col)] = fin.max(), fin.min(), np.median(fin)
        sd = fin.std()
        x[:, j] = (col - fin.mean()) / (sd if sd > 0 else 1.0)
    return x.astype(np.float32)


def class_weights(y: np.ndarray) -> np.ndarray:
    """(3,) n / count per class of training labels ``y`` (as VesselGraph's gnn.py); 0 for absent classes."""
    counts = np.bincount(y, minlength=N_CLASSES).astype(np.float64)
    return np.where(counts > 0, len(y) / np.maximum(counts, 1), 0.0)


# -- models -----------------------------------------------------------------------------------
class MajorityModel:
    """Predicts the most frequent training class for every vessel (1 parameter)."""

    n_parameters = 1

    def fit(self, data: VesselData, seed: int):
        self.majority = int(np.argmax(np.bincount(data.label[data.split["train"]], minlength=N_CLASSES)))
        return self

    def predict(self, data: VesselData, idx: np.ndarray) -> np.ndarray:
        return np.full(len(idx), self.majority, dtype=np.int64)


class _TorchClassifier:
    """Shared training loop: class-weighted cross-entropy, Adam, best epoch by validation balanced accuracy."""

    name = "model"

    def __init__(self, hidden: int = 64, epochs: int = 20, batch_size: int = 512, lr: float = 1e-2,
                 weight_decay: float = 0.0, eval_every: int = 1):
        self.hidden, self.epochs, self.batch_size, self.lr = hidden, epochs, batch_size, lr
        self.weight_decay, self.eval_every = weight_decay, eval_every
        self.n_parameters = 0
        self.best_epoch = 0
        self.best_val_balanced_accuracy = float("nan")

    def fit(self, data: VesselData, seed: int):
        with single_thread():
            return self._fit(data, seed)

    def predict(self, data: VesselData, idx: np.ndarray) -> np.ndarray:
        with single_thread():
            return self._logits(data, np.asarray(idx, dtype=np.int64)).argmax(1).numpy().astype(np.int64)

    def _fit(self, data: VesselData, seed: int):
        import torch

        from neuroharness.progress import progress_bar

        from .neighbor_sampling import seed_batches

        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        train, val = data.split["train"], data.split["val"]
        self._x = torch.from_numpy(standardize(data.features, train))
        self._net = self._build(data)
        self.n_parameters = sum(p.numel() for p in self._net.parameters())
        y = torch.from_numpy(data.label)
        weight = torch.as_tensor(class_weights(data.label[train]), dtype=torch.float32)
        opt = torch.optim.Adam(self._net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        best, best_state = -1.0, None
        with progress_bar(total=self.epochs, desc=self.name, unit="epoch") as bar:
            for epoch in range(1, self.epochs + 1):
                self._net.train()
                for seeds in seed_batches(torch.from_numpy(train), self.batch_size, gen):
                    opt.zero_grad()
                    loss = torch.nn.functional.cross_entropy(self._forward(seeds, gen), y[seeds], weight=weight)
                    loss.backward()
                    opt.step()
                bar.update(1)
                if epoch % self.eval_every == 0 or epoch == self.epochs:
                    pred = self._logits(data, val).argmax(1).numpy()
                    score = balanced_accuracy(data.label[val], pred)
                    if score > best:
                        best, self.best_epoch = score, epoch
                        best_state = {k: v.detach().clone() for k, v in self._net.state_dict().items()}
        self._net.load_state_dict(best_state)
        self.best_val_balanced_accuracy = float(best)
        return self


class MLPModel(_TorchClassifier):
    """MLP 3 -> hidden -> hidden -> 3 on standardized [length, distance, curveness]; no graph."""

    name = "mlp"

    def _build(self, data):
        import torch

        h = self.hidden
        return torch.nn.Sequential(torch.nn.Linear(len(INPUTS), h), torch.nn.ReLU(), torch.nn.Linear(h, h),
                                   torch.nn.ReLU(), torch.nn.Linear(h, N_CLASSES))

    def _forward(self, seeds, gen):
        return self._net(self._x[seeds])

    def _logits(self, data, idx):
        import torch

        self._net.eval()
        with torch.no_grad():
            return self._net(self._x[torch.as_tensor(idx)])


class GraphSAGEModel(_TorchClassifier):
    """GraphSAGE on the line graph L(G): mini-batches of training vessels with sampled neighbourhoods
    (``num_neighbors`` per hop, one hop per layer); evaluation with exact layer-wise inference."""

    name = "graphsage"

    def __init__(self, num_layers: int = 2, num_neighbors: tuple[int, ...] = (10, 10), dropout: float = 0.0, **kw):
        super().__init__(**kw)
        if len(num_neighbors) != num_layers:
            raise NeuroharnessError(f"graphsage: num_neighbors {list(num_neighbors)} needs one count per layer "
                                    f"({num_layers})")
        self.num_layers, self.num_neighbors, self.dropout = num_layers, tuple(num_neighbors), dropout

    def _build(self, data):
        from .neighbor_sampling import SAGE

        self._graph = data.line_graph_csr()
        return SAGE(len(INPUTS), self.hidden, N_CLASSES, num_layers=self.num_layers, dropout=self.dropout)

    def _forward(self, seeds, gen):
        from .neighbor_sampling import sample_subgraph

        n_id, ei, seed_local = sample_subgraph(self._graph, seeds, list(self.num_neighbors), gen)
        return self._net(self._x[n_id], ei)[seed_local]

    def _logits(self, data, idx):
        import torch

        from .neighbor_sampling import layerwise_inference

        return layerwise_inference(self._net, self._x, self._graph, batch_size=65536, nodes=torch.as_tensor(idx))


# -- task -------------------------------------------------------------------------------------
@register_task
class VesselGraphVesselClassification(Task):
    card = TaskCard(
        name=TASK,
        version="1.0",
        title="Classify whole-brain vessels by radius from their geometry and the vessel graph (VesselGraph)",
        description=" ".join(__doc__.split("\n\n")[1].split()),
        datasets=(DatasetRef("vesselgraph", "1.0"),),
        split=" ".join(__doc__.split("\n\n")[2].split()).removeprefix("Split: "),
        inputs=("per vessel (edge of G, node of the line graph L(G)): length, distance, curveness (store units, "
                "voxels per the loader: uncertain); the line graph's adjacency (vessels sharing an end point). "
                "No radius, volume, cross-section or roundness column (they determine the label)"),
        targets="radius class 0 / 1 / 2 of minRadiusAvg (<= 5, (5, 13.33], > 13.33)",
        metrics=(
            MetricSpec("balanced_accuracy", True, "mean per-class recall over the classes present in the test vessels"),
            MetricSpec("accuracy", True, "fraction of test vessels classified correctly"),
            MetricSpec("recall/0", True, "recall of class 0 (minRadiusAvg <= 5)"),
            MetricSpec("recall/1", True, "recall of class 1 (5 < minRadiusAvg <= 13.33)"),
            MetricSpec("recall/2", True, "recall of class 2 (minRadiusAvg > 13.33)"),
        ),
        main_metric="balanced_accuracy",
        seeds=(0, 1, 2),
        chance={
            "balanced_accuracy": "1/3: any constant prediction (and random guessing, in expectation) when all three "
                                 "classes occur in the test vessels",
            "accuracy": "the majority class's share of the test vessels (a constant prediction of the training "
                        "majority class); computed on the data and reported per run as chance_accuracy",
        },
        submission=(
            "a table (.parquet or .npz, no pickle) with integer columns `vessel` (the edge's CSV `id` = row of the "
            "edges file) and `label` (0, 1 or 2), one row per test vessel of the chosen graph, no other vessel, "
            "no duplicates, no NaN. `neuroharness tasks template vesselgraph-vessel-classification ids.parquet "
            "--option graph=GRAPH` lists the vessels; `neuroharness evaluate vesselgraph-vessel-classification "
            "preds.parquet --option graph=GRAPH` scores it"),
        references=(
            (f"dataset, labels and split: {_CITE}; code jocpae/VesselGraph (source/ogb_dataset/node_classification/"
             "generate_ogbn_dataset_hard_inputs.py: minRadiusAvg buckets [5.0, 13.33], inputs [length, distance, "
             "curveness], random 80/10/10 split with seed 12; source/baseline_models: GCN, GraphSAGE, GraphSAINT, "
             "SIGN, Cluster-GCN, MLP, SpecMLP-W + C&S, trained with class weights n/count)"),
            ("No reference numbers: the paper's vessel-classification results (accuracy, balanced accuracy) were not "
             "retrieved and none are quoted. Its headline metric is most likely balanced accuracy (uncertain); the "
             "OGB-style evaluator of the fork uses accuracy."),
            ("Our split permutes the labeled vessels with numpy's default_rng(12), not the reference's generator, so "
             "the vessels in each split differ from the released ogbn-* datasets."),
        ),
        options={"graph": TaskOption("BALBc_no1", "graph of the prepared vesselgraph store")},
    )
    models: ClassVar[dict[str, ModelSpec]] = {
        "majority": ModelSpec("majority", MajorityModel, "the most frequent training class for every vessel"),
        "mlp": ModelSpec("mlp", MLPModel,
                         "MLP (2 hidden layers, 64 units) on standardized [length, distance, curveness]; class-weighted "
                         "cross-entropy (n/count), Adam, best epoch by validation balanced accuracy",
                         {"hidden": 64, "epochs": 20, "batch_size": 512, "lr": 1e-2}),
        "graphsage": ModelSpec("graphsage", GraphSAGEModel,
                               "2-layer GraphSAGE (mean, 64 hidden) on the line graph, mini-batches with 10 + 10 "
                               "sampled neighbours, class-weighted cross-entropy, best epoch by validation balanced "
                               "accuracy (exact layer-wise inference)",
                               {"hidden": 64, "epochs": 10, "batch_size": 512, "lr": 1e-2, "num_layers": 2,
                                "num_neighbors": (10, 10)}),
    }

    _cache: ClassVar[dict] = {}

    def load(self, graph: str) -> VesselData:
        """The graph's vessels, labels and split (cached per store, graph and store checksum)."""
        from neuroharness.loaders.vesselgraph import store_path

        path = str(store_path())
        data = self._cache.get((path, graph, _checksum_quick(path)))
        if data is None:
            data = load_graph(graph)
            type(self)._cache = {(path, graph, data.checksum): data}  # hold one graph at a time
        return data

    def dataset_checksums(self, graph: str | None = None) -> dict[str, str]:
        from neuroharness.loaders.vesselgraph import content_sha256

        return {"vesselgraph": content_sha256(graph)}

    def score(self, data: VesselData, idx: np.ndarray, pred: np.ndarray) -> dict:
        """Metrics of predicted labels ``pred`` for vessels ``idx`` (true labels from ``data``)."""
        y = data.label[idx]
        train_y = data.label[data.split["train"]]
        majority = int(np.argmax(np.bincount(train_y, minlength=N_CLASSES)))
        out = {"balanced_accuracy": balanced_accuracy(y, pred), "accuracy": accuracy(y, pred)}
        out.update({f"recall/{c}": r for c, r in per_class_recall(y, pred).items()})
        out.update({f"count/{c}": int(n) for c, n in enumerate(np.bincount(y, minlength=N_CLASSES))})
        out["n_vessels"] = len(y)
        out["chance_accuracy"] = float((y == majority).mean())
        out["chance_balanced_accuracy"] = 1.0 / len(np.unique(y))
        out["main_score"] = out[self.card.main_metric]
        return out

    def run_model(self, model_name: str, seed: int, *, graph: str = "BALBc_no1",
                  hyperparameters: dict | None = None) -> dict:
        """Fit ``model_name`` on the train vessels of ``graph``; score validation and test vessels.

        ``hyperparameters`` override the registered ones (e.g. ``{"epochs": 2}``)."""
        spec = self.get_model(model_name)
        data = self.load(graph)
        model = spec.factory(**{**spec.hyperparameters, **(hyperparameters or {})})
        hidden = data.without_test_labels()
        t0 = time.perf_counter()
        model.fit(hidden, seed)
        preds = {s: model.predict(hidden, data.split[s]) for s in ("val", "test")}
        wall = time.perf_counter() - t0
        return {
            "metrics": self.score(data, data.split["test"], preds["test"]),
            "validation_metrics": self.score(data, data.split["val"], preds["val"]),
            "n_parameters": int(model.n_parameters),
            "hyperparameters": describe(model),
            "fit_predict_seconds": wall,
        }

    def submission_template(self, split: str = "test", *, graph: str = "BALBc_no1") -> pd.DataFrame:
        """The vessels a submission must label on ``split``: column ``vessel`` (int64 CSV edge ids, ascending)."""
        data = self.load(graph)
        return pd.DataFrame({"vessel": data.split[self.check_split(split)].astype(np.int64)})

    def evaluate(self, predictions, split: str = "test", *, graph: str = "BALBc_no1") -> dict:
        """Score a submission (path to .parquet/.npz, or a DataFrame) on ``split`` of ``graph``."""
        split = self.check_split(split)
        source = "predictions" if isinstance(predictions, pd.DataFrame) else str(predictions)
        table = predictions if isinstance(predictions, pd.DataFrame) else submission.read_table(predictions)
        data = self.load(graph)
        vessel, label = check_submission(table, source, data.split[split], split, graph)
        return self.score(data, vessel, label)


def check_submission(table: pd.DataFrame, source: str, expected: np.ndarray, split: str,
                     graph: str) -> tuple[np.ndarray, np.ndarray]:
    """(vessel, label) int64 sorted by vessel, after checking ``table`` covers exactly ``expected``.

    Raises :class:`SubmissionError` naming ``source`` and the first offending row."""
    missing = [c for c in ("vessel", "label") if c not in table.columns]
    if missing:
        raise SubmissionError(f"{source}: missing column(s) {missing}; found {list(table.columns)}, "
                              "expected ['vessel', 'label']")
    cols = {}
    for c, what in (("vessel", "edge ids (the CSV id column)"), ("label", "class labels 0, 1 or 2")):
        col = table[c]
        if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
            raise SubmissionError(f"{source}: column {c!r} has dtype {col.dtype}, expected integers ({what})")
        a = col.to_numpy()
        if a.dtype.kind == "f":
            bad = ~np.isfinite(a)
            if bad.any():
                raise SubmissionError(f"{source}: column {c!r} has {int(bad.sum())} NaN/inf value(s), first at row "
                                      f"{int(np.flatnonzero(bad)[0])}; expected integers ({what})")
            frac = np.flatnonzero(a != np.round(a))
            if frac.size:
                raise SubmissionError(f"{source}: column {c!r} row {int(frac[0])} is {a[frac[0]]!r}; expected integers "
                                      f"({what})")
            raise SubmissionError(f"{source}: column {c!r} has dtype {a.dtype}, expected an integer dtype ({what})")
        cols[c] = a.astype(np.int64)
    vessel, label = cols["vessel"], cols["label"]
    bad = np.flatnonzero((label < 0) | (label >= N_CLASSES))
    if bad.size:
        raise SubmissionError(f"{source}: row {int(bad[0])} (vessel {int(vessel[bad[0]])}) has label "
                              f"{int(label[bad[0]])}; expected 0, 1 or 2 ({bad.size} row(s) out of range)")
    order = np.argsort(vessel, kind="stable")
    sv = vessel[order]
    dup = np.flatnonzero(sv[1:] == sv[:-1])
    if dup.size:
        raise SubmissionError(f"{source}: vessel {int(sv[dup[0]])} appears more than once ({dup.size} repeated row(s))")
    known = np.isin(sv, expected)
    if not known.all():
        v = int(sv[np.argmin(known)])
        raise SubmissionError(f"{source}: {int((~known).sum())} row(s) are not {split} vessels of graph {graph}, "
                              f"e.g. vessel {v}; expected exactly the {len(expected)} vessels of the template")
    if len(sv) != len(expected):
        v = int(expected[np.argmin(np.isin(expected, sv))])
        raise SubmissionError(f"{source}: {len(expected) - len(sv)} of {len(expected)} {split} vessels of graph "
                              f"{graph} missing, e.g. vessel {v}")
    return sv, label[order]


def _checksum_quick(path) -> str:
    """The store's content_sha256 from its consolidated root attributes (no array read)."""
    import json
    from pathlib import Path

    p = Path(path) / ".zattrs"
    try:
        return str(json.loads(p.read_text()).get("content_sha256"))
    except (OSError, ValueError):
        return ""


def write_predictions(path, vessel, label):
    """Write a submission table (``vessel``, ``label``, both int64) as .parquet or .npz."""
    return submission.write_table(pd.DataFrame({"vessel": np.asarray(vessel, dtype=np.int64),
                                                "label": np.asarray(label, dtype=np.int64)}), path)
