"""Task ``vesselgraph-link-prediction``: which nearby pairs of vessel nodes are joined by a vessel?

The card (:data:`.cards.LINK_PREDICTION`) states the task, split and metrics.
This module builds and caches the split (:class:`LinkSplit`, keyed by the
checksum of the graph read, so adding another graph to the store keeps it),
the models' view of it (:class:`LinkData`, no test pairs) and the scoring.
Baselines: :mod:`.link_baselines` (models ``fit(data: LinkData, seed)`` and
``score(data, pairs) -> (n,) float``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from neuroharness.errors import NeuroharnessError
from neuroharness.loaders.vesselgraph import part_sha256
from neuroharness.metrics.link_prediction import roc_auc

from ..base import Task
from ..submission import Column, TableSpec, check_table, write_table
from .cards import LINK_PREDICTION, REFERENCE_ROWS

TASK = LINK_PREDICTION.name
VERSION = LINK_PREDICTION.version
SPLIT_SEED = 123  # np.random.seed(123) in the reference's LinkVesselGraph.process
FRACTIONS = (0.1, 0.1)  # validation, test: floor(f * E) positives each; training = the rest
N_WORKERS = 2  # threads for negative sampling (speed only: the result does not depend on it)
LABELS = {"positive": 1, "spatial": 0, "random": 2}  # kinds of the pairs of a scored split

__all__ = ["FRACTIONS", "LABELS", "REFERENCE_ROWS", "SPLIT_SEED", "LinkData", "LinkSplit", "VesselGraphLinkPrediction",
           "build_split", "load_split", "save_split", "split_cache_path", "write_predictions"]


# -- what models see ------------------------------------------------------------------------------
@dataclass
class LinkData:
    """Inputs of a model: ``num_nodes`` compact nodes, ``pos`` (N, 3) float64 store coordinates, training
    positives/negatives and validation positives/negatives, each (n, 2) int64 compact ids with u < v."""

    num_nodes: int
    pos: np.ndarray
    train_pos: np.ndarray
    train_neg: np.ndarray
    val_pos: np.ndarray
    val_neg: np.ndarray
    _cache: dict = field(default_factory=dict, repr=False)

    def train_edge_index(self) -> np.ndarray:
        """(2, 2 E_train) int64: the training graph, column k and k + E_train being training edge k both ways."""
        t = self.train_pos.T
        return np.ascontiguousarray(np.concatenate([t, t[::-1]], axis=1))

    def adjacency(self):
        """(N, N) scipy.sparse CSR float64 0/1 symmetric adjacency of the training graph."""
        if "adj" not in self._cache:
            import scipy.sparse as sp

            ei = self.train_edge_index()
            self._cache["adj"] = sp.csr_matrix((np.ones(ei.shape[1]), (ei[0], ei[1])),
                                               shape=(self.num_nodes, self.num_nodes))
        return self._cache["adj"]

    def csr(self):
        """The training graph as a :class:`~neuroharness.tasks.graph.neighbor_sampling.CSRGraph` (built once)."""
        if "csr" not in self._cache:
            from ..graph.neighbor_sampling import CSRGraph

            self._cache["csr"] = CSRGraph.from_edge_index(self.train_edge_index(), self.num_nodes)
        return self._cache["csr"]

    def normalized_pos(self) -> np.ndarray:
        """(N, 3) float32 z-scored coordinates (per axis, over all nodes: positions are inputs, not labels)."""
        sd = self.pos.std(0)
        return ((self.pos - self.pos.mean(0)) / np.where(sd > 0, sd, 1.0)).astype(np.float32)


# -- the split ----------------------------------------------------------------------------------
@dataclass
class LinkSplit:
    """One graph's link-prediction split, in compact node indices (isolated nodes removed).

    ``checksum`` is the sha256 of the graph's own content (its part of the
    store). ``node_id`` (N,) int64 CSV id of each compact node; ``pos`` (N, 3)
    float64 store coordinates; ``delta`` the spatial cube half-width (store
    units); ``pos_pairs`` / ``neg_pairs``: ``{"train", "val", "test"}`` ->
    (n, 2) int64 (u < v) positives and spatial negatives, 1:1;
    ``random_pairs``: ``{"val", "test"}`` -> uniformly random non-edge pairs,
    as many as the positives.
    """

    graph: str
    checksum: str
    node_id: np.ndarray
    pos: np.ndarray
    delta: float
    pos_pairs: dict[str, np.ndarray]
    neg_pairs: dict[str, np.ndarray]
    random_pairs: dict[str, np.ndarray]
    n_csv_nodes: int
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def num_nodes(self) -> int:
        return len(self.node_id)

    def scored(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(pairs (n, 2) compact u < v, kind (n,) int8 per :data:`LABELS`) of ``split`` ('val' or 'test';
        'train': the training positives and spatial negatives, which have no random negatives),
        sorted by CSV ids (node1, node2), so the order says nothing about the kind (computed once)."""
        if ("scored", split) not in self._memo:
            rnd = self.random_pairs.get(split, np.zeros((0, 2), dtype=np.int64))
            pairs = np.concatenate([self.pos_pairs[split], self.neg_pairs[split], rnd])
            kind = np.concatenate([np.full(len(self.pos_pairs[split]), LABELS["positive"], np.int8),
                                   np.full(len(self.neg_pairs[split]), LABELS["spatial"], np.int8),
                                   np.full(len(rnd), LABELS["random"], np.int8)])
            csv = self.node_id[pairs]
            order = np.lexsort((csv[:, 1], csv[:, 0]))
            self._memo[("scored", split)] = (pairs[order], kind[order])
        return self._memo[("scored", split)]

    def model_view(self) -> LinkData:
        """What a model may see: positions, training graph, training and validation pairs (no test pairs).
        One view per split object, so its adjacency and CSR graph are built once."""
        if "view" not in self._memo:
            self._memo["view"] = LinkData(self.num_nodes, self.pos, self.pos_pairs["train"], self.neg_pairs["train"],
                                          self.pos_pairs["val"], self.neg_pairs["val"])
        return self._memo["view"]


def _split_seed(seed: int, part: int) -> list[int]:
    """Entropy of the random stream of one part of the split (0 permutation, 1 spatial, 2 random)."""
    return [int(seed), part]


def build_split(edge_index: np.ndarray, pos: np.ndarray, distance: np.ndarray, *, seed: int = SPLIT_SEED,
                n_workers: int = N_WORKERS, graph: str = "", checksum: str = "") -> LinkSplit:
    """The split of a graph: ``edge_index`` (E, 2) CSV node ids (= rows of ``pos``), ``pos`` (N_csv, 3),
    ``distance`` (E,) the edges' ``distance`` column: delta = mean + 2 sample std of its finite values (the
    reference uses pandas over the same column).

    ``seed`` fixes the split; ``n_workers`` only changes the speed of the negative sampling."""
    from ..graph.negative_sampling import random_negatives, spatial_delta, spatial_negatives

    ei = np.asarray(edge_index, dtype=np.int64)
    ei = np.sort(ei[ei[:, 0] != ei[:, 1]], axis=1)  # u < v; a self-loop is no vessel between two nodes
    pos = np.asarray(pos, dtype=np.float64)
    n_csv = len(pos)
    touched = np.zeros(n_csv, dtype=bool)
    touched[ei.ravel()] = True
    node_id = np.flatnonzero(touched).astype(np.int64)
    compact = np.cumsum(touched, dtype=np.int64) - 1
    ei = compact[ei]
    pos = np.ascontiguousarray(pos[node_id])
    e = len(ei)
    n_val, n_test = (math.floor(f * e) for f in FRACTIONS)
    if min(n_val, n_test, e - n_val - n_test) < 1:
        raise NeuroharnessError(f"graph {graph or '?'}: {e} edges give an empty training, validation or test "
                                f"split; {TASK} needs at least 10 edges")
    d = np.asarray(distance, dtype=np.float64)
    delta = spatial_delta(d[np.isfinite(d)])
    perm = np.random.default_rng(_split_seed(seed, 0)).permutation(e)
    parts = {"val": perm[:n_val], "test": perm[n_val:n_val + n_test], "train": perm[n_val + n_test:]}
    pos_pairs = {k: ei[np.sort(v)] for k, v in parts.items()}
    neg = spatial_negatives(pos, ei, e, delta=delta, seed=_split_seed(seed, 1), n_workers=n_workers)
    n_train = e - n_val - n_test
    neg_pairs = {"train": neg[:n_train], "val": neg[n_train:n_train + n_val], "test": neg[n_train + n_val:]}
    # random negatives avoid every spatial negative too: a scored pair is listed once, and no training
    # negative comes back as a test pair
    avoid = np.concatenate([ei, neg])
    rnd = random_negatives(len(pos), avoid, n_val + n_test, seed=_split_seed(seed, 2), n_workers=n_workers)
    random_pairs = {"val": rnd[:n_val], "test": rnd[n_val:]}
    return LinkSplit(graph, checksum, node_id, pos, delta, pos_pairs, neg_pairs, random_pairs, n_csv)


def save_split(split: LinkSplit, path: Path) -> Path:
    """Write ``split`` as an uncompressed .npz (no object arrays), atomically."""
    from neuroharness.loaders.io import atomic_path

    arrays = {"node_id": split.node_id, "pos": split.pos, "delta": np.float64(split.delta),
              "n_csv_nodes": np.int64(split.n_csv_nodes), "graph": np.str_(split.graph),
              "checksum": np.str_(split.checksum), "task_version": np.str_(VERSION)}
    idx = np.int32 if split.num_nodes < 2**31 else np.int64
    for name, d in (("pos", split.pos_pairs), ("neg", split.neg_pairs), ("random", split.random_pairs)):
        for k, v in d.items():
            arrays[f"{name}_{k}"] = v.astype(idx)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return Path(path)


def load_split(path) -> LinkSplit:
    """Read a split written by :func:`save_split` (a path or a binary file object)."""
    with np.load(path, allow_pickle=False) as z:
        def pairs(name, keys):
            return {k: z[f"{name}_{k}"].astype(np.int64) for k in keys}

        return LinkSplit(str(z["graph"]), str(z["checksum"]), z["node_id"].astype(np.int64), z["pos"],
                         float(z["delta"]), pairs("pos", ("train", "val", "test")),
                         pairs("neg", ("train", "val", "test")), pairs("random", ("val", "test")),
                         int(z["n_csv_nodes"]))


def split_cache_key(graph: str, checksum: str) -> str:
    """The split cache file of ``graph`` with content checksum ``checksum`` (the graph's own, not the
    store's) relative to the cache root; keyed by the task version too."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in graph)
    return f"splits/{TASK}/{safe}__v{VERSION}__{checksum}.npz"


def split_cache_path(graph: str, checksum: str) -> Path:
    """Where the split of ``graph`` with content checksum ``checksum`` is cached in the local cache."""
    from neuroharness.loaders import cache

    return cache.home() / split_cache_key(graph, checksum)


def _remote_cached_split(graph: str, checksum: str) -> LinkSplit | None:
    """The split published in a remote (read-only) cache with its stores (``splits/`` uploaded too), or None."""
    import io

    from neuroharness.loaders import cache
    from neuroharness.loaders.location import StoreLocation

    key = split_cache_key(graph, checksum)
    try:
        data = StoreLocation(cache.home_url()).read_bytes(key)
    except FileNotFoundError:
        return None
    split = load_split(io.BytesIO(data))
    return split if (split.graph, split.checksum) == (graph, checksum) else None


def _build_split(graph: str, checksum: str, where: str) -> LinkSplit:
    from neuroharness.loaders.vesselgraph import open_graph
    from neuroharness.progress import status

    status(f"[{TASK}] building the split of graph {graph} ({where})")
    ds = open_graph(graph)
    if "distance" not in ds.variables:
        raise NeuroharnessError(f"graph {graph} of the vesselgraph store has no variable 'distance'; "
                                f"{TASK} needs it for the spatial negatives' cube size")
    return build_split(np.asarray(ds["edge_index"].values), np.asarray(ds["pos"].values),
                       np.asarray(ds["distance"].values), graph=graph, checksum=checksum)


# -- submissions ---------------------------------------------------------------------------------------
def write_predictions(path, node1, node2, score) -> Path:
    """Write a submission table (``node1``, ``node2`` int64 CSV node ids, ``score`` float64) as .parquet or .npz."""
    return write_table(pd.DataFrame({"node1": np.asarray(node1, dtype=np.int64),
                                     "node2": np.asarray(node2, dtype=np.int64),
                                     "score": np.asarray(score, dtype=np.float64)}), path)


def submission_spec(split: LinkSplit) -> TableSpec:
    """The submission's columns for ``split``'s graph: unordered CSV id pairs in range, a finite score."""
    ids = tuple(Column(c, "int", "CSV node ids", low=0, high=split.n_csv_nodes - 1,
                       range_text=f"graph {split.graph} has CSV node ids 0..{split.n_csv_nodes - 1}")
                for c in ("node1", "node2"))
    return TableSpec(ids=ids, values=(Column("score", "float"),), unordered=True, items="pairs",
                     scope=f" of graph {split.graph}", id_format="pair ({node1}, {node2})")


# -- task ---------------------------------------------------------------------------------------------
class VesselGraphLinkPrediction(Task):
    """Option ``graph``; data view :class:`LinkSplit`; models
    (:class:`~neuroharness.tasks.protocols.LinkModel`: ``fit(data, seed)``, ``score(data, pairs)``) see
    :meth:`LinkSplit.model_view` only, which is also ``training_view(options={"graph": G})``."""

    card = LINK_PREDICTION
    cache_size = 1  # a whole-brain split holds ~10 M pairs
    #: Published ogbl-vessel ROC-AUC (%), see :data:`REFERENCE_ROWS`.
    reference_rows = REFERENCE_ROWS

    def dataset_parts(self, options) -> dict[str, dict[str, str]]:
        return {"vesselgraph": {options["graph"]: part_sha256(options["graph"])}}

    def describe_data(self, data: LinkSplit) -> str:
        return f"graph {data.graph}: {data.num_nodes} non-isolated nodes, {sum(map(len, data.pos_pairs.values()))} edges"

    def load(self, options) -> LinkSplit:
        """The split of graph ``options["graph"]``: from the split cache, else built (and cached).

        A remote cache (``$NEUROHARNESS_HOME`` is a URL) is read-only: the split is read from its
        ``splits/`` folder if it was uploaded with the stores, else built in memory for this process."""
        from neuroharness.loaders import cache

        graph = options["graph"]
        checksum = part_sha256(graph)
        if cache.home_url() is not None:
            split = _remote_cached_split(graph, checksum)
            return split if split is not None else _build_split(graph, checksum, "not cached: the cache is remote")
        path = split_cache_path(graph, checksum)
        # a finished split is read without the lock (save_split writes atomically), so a read-only cache serves it
        split = load_split(path) if path.exists() else None
        if split is not None and (split.graph, split.checksum) == (graph, checksum):
            return split
        with cache.writable(), cache.lock(f"{TASK}-{graph}"):
            split = load_split(path) if path.exists() else None
            if split is None or (split.graph, split.checksum) != (graph, checksum):
                split = _build_split(graph, checksum, f"cached in {path}")
                save_split(split, path)
        return split

    def ids(self, data: LinkSplit, split: str) -> pd.DataFrame:
        """The scored pairs of ``split``: int64 CSV ids ``node1`` < ``node2``, sorted (positives and negatives mixed);
        for 'train' the training positives and spatial negatives (:meth:`targets` labels them)."""
        pairs, _ = data.scored(split)
        csv = data.node_id[pairs]
        return pd.DataFrame({"node1": csv[:, 0], "node2": csv[:, 1]})

    def targets(self, data: LinkSplit, split: str) -> pd.DataFrame:
        """``label`` of the pairs of ``split`` ('train': training positives and spatial negatives; 'val': the
        scored validation pairs), aligned with :meth:`ids`: int64 1 for a vessel, 0 for a negative (spatial or
        random)."""
        _, kind = data.scored(split)
        return pd.DataFrame({"label": (kind == LABELS["positive"]).astype(np.int64)})

    def training_view_of(self, data: LinkSplit) -> LinkData:
        """:class:`LinkData` (:meth:`LinkSplit.model_view`): node positions, training positives and
        negatives, validation positives and negatives; no test pairs."""
        return data.model_view()

    def fit(self, model, data: LinkSplit, seed: int):
        return model.fit(self.training_view_of(data), seed)

    def predict(self, model, data: LinkSplit, split: str) -> np.ndarray:
        return model.score(data.model_view(), data.scored(split)[0])

    def score(self, data: LinkSplit, split: str, predictions) -> dict:
        """Metrics of ``predictions`` ((n,) scores aligned with :meth:`ids`) on ``split``."""
        _, kind = data.scored(split)
        scores = np.asarray(predictions, dtype=np.float64)
        pos = scores[kind == LABELS["positive"]]
        return {"roc_auc": roc_auc(pos, scores[kind == LABELS["spatial"]]),
                "roc_auc_random_negatives": roc_auc(pos, scores[kind == LABELS["random"]]),
                "n_positives": len(pos), "n_spatial_negatives": int((kind == LABELS["spatial"]).sum()),
                "n_random_negatives": int((kind == LABELS["random"]).sum())}

    def read_submission(self, predictions, data: LinkSplit, split: str) -> np.ndarray:
        values = check_table(predictions, submission_spec(data), self.ids(data, split), split)
        return values["score"].to_numpy()
