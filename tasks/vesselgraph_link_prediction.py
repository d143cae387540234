"""Task ``vesselgraph-link-prediction``: which nearby pairs of vessel nodes are joined by a vessel?

A whole-brain vessel graph (nodes: bifurcations and end points with 3-D
positions; edges: vessel segments) with a tenth of its edges hidden: score
node pairs so that hidden edges rank above *spatial* negatives, pairs of
nodes that lie close together (each inside the other's cube of half-width
mean + 2 std of the edge distance) but are not joined. Random node pairs are
far apart and easy to reject, so they only give a secondary score. Models
see the node positions and the training graph; as in ogbl-vessel, the full
graph is public, so looking up hidden edges in it is against the rules.

Split (as VesselGraph's LinkVesselGraph and ogbl-vessel): isolated nodes are
dropped; the positive edges (one per vessel, node1id < node2id) are permuted
with a fixed split seed (``SPLIT_SEED`` = 123, the reference's seed; the model
seed never changes it): the first floor(0.1 E) are validation, the next
floor(0.1 E) test, the rest training. E spatial negatives (the reference's
strategy, see :mod:`.negative_sampling`; never an edge of the full graph)
are drawn once and cut 1:1 into training, validation and test negatives in
that order. The training graph is the training positives in both directions.
Secondary split: the same validation and test positives against as many
uniformly random pairs that are neither edges nor spatial negatives. The task option ``graph`` picks the graph
of the prepared ``vesselgraph`` store (default BALBc_no1, the ogbl-vessel
graph); records on different graphs are never ranked together.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from neuroharness.metrics.link_prediction import roc_auc

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

TASK = "vesselgraph-link-prediction"
VERSION = "1.0"
SPLIT_SEED = 123  # np.random.seed(123) in the reference's LinkVesselGraph.process
FRACTIONS = (0.1, 0.1)  # validation, test: floor(f * E) positives each; training = the rest
N_WORKERS = 2  # threads for negative sampling (speed only: the result does not depend on it)
LABELS = {"positive": 1, "spatial": 0, "random": 2}  # kinds of the pairs of a scored split

_CITE = ("Paetzold JC et al. (2021) Whole Brain Vessel Graphs: A Dataset and Benchmark for Graph Learning and "
         "Neuroscience. NeurIPS 2021 Datasets and Benchmarks, arXiv:2108.13233")
_OGB = "snap-stanford/ogb examples/linkproppred/vessel/README.md (ogbl-vessel leaderboard)"

#: Published ROC-AUC (%) on the ogbl-vessel test split (BALBc_no1, OGB's own spatial split), 10 runs, from
#: their sources; not produced by this harness and not on our split.
REFERENCE_ROWS: tuple[dict, ...] = (
    {"method": "MF", "roc_auc": 49.97, "std": 0.05, "source": _OGB},
    {"method": "MLP (Node2Vec features)", "roc_auc": 47.94, "std": 1.33, "source": _OGB},
    {"method": "GCN", "roc_auc": 43.53, "std": 9.61, "source": _OGB},
    {"method": "GraphSAGE", "roc_auc": 49.89, "std": 6.78, "source": _OGB},
    {"method": "GCN+Node2Vec", "roc_auc": 49.54, "std": 0.57, "source": _OGB + "; 226.7M parameters"},
    {"method": "SAGE+Node2Vec", "roc_auc": 47.35, "std": 1.36, "source": _OGB},
    {"method": "SAGE+JKNet", "roc_auc": 50.01, "std": None, "source": "ytchx1999/ogbl-vessel README"},
    {"method": "SEAL (no x-feat)", "roc_auc": 80.73, "std": 0.01, "source": "ytchx1999/ogbl-vessel README"},
    {"method": "previous SOTA (as cited by GAV)", "roc_auc": 87.98, "std": None,
     "source": "GAV paper, arXiv:2303.14501 (WACV 2024)"},
    {"method": "GAV", "roc_auc": 98.38, "std": None, "source": "GAV paper, arXiv:2303.14501 (WACV 2024)"},
)


def _reference_lines() -> tuple[str, ...]:
    rows = "; ".join(f"{r['method']} {r['roc_auc']:.2f}" + (f"±{r['std']:.2f}" if r["std"] is not None else "")
                     + f" ({r['source']})" for r in REFERENCE_ROWS)
    return (
        (f"dataset, split protocol and spatial negatives: {_CITE}; code jocpae/VesselGraph "
         "(source/pytorch_dataset/link_dataset.py, vessap_utils.py)"),
        ("evaluator: ogb.linkproppred.Evaluator('ogbl-vessel'), metric rocauc (sklearn roc_auc_score on the "
         "positive and negative scores); this task's roc_auc agrees with it on identical inputs"),
        ("Published numbers, NOT produced here: ROC-AUC % on the ogbl-vessel test split (graph BALBc_no1, OGB's "
         "own random 80/10/10 split with spatial negatives, node features x, y, z only), mean±std over 10 runs "
         "where given: " + rows + ". The ogb README heads the column 'Accuracy' but the values are ROC-AUC. "
         "Comparable to this task's roc_auc on graph BALBc_no1 only in protocol, not in the exact edges of "
         "each split (our permutation and sampler differ from OGB's)."),
        ("Simple SAGE with self-loops ~50.3, ~60 with Node2Vec (skepsun/ogbl_vessel_baselines README, approximate). "
         "The OGB maintainers note GCN/SAGE stay near 0.5 (snap-stanford/ogb#359)."),
    )


# -- the split ----------------------------------------------------------------------------------
@dataclass
class LinkSplit:
    """One graph's link-prediction split, in compact node indices (isolated nodes removed).

    ``node_id`` (N,) int64 CSV id of each compact node; ``pos`` (N, 3) float64
    store coordinates; ``delta`` the spatial cube half-width (store units);
    ``pos_pairs`` / ``neg_pairs``: ``{"train", "val", "test"}`` -> (n, 2)
    int64 (u < v) positives and spatial negatives, 1:1; ``random_pairs``:
    ``{"val", "test"}`` -> uniformly random non-edge pairs, as many as the
    positives.
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

    @property
    def num_nodes(self) -> int:
        return len(self.node_id)

    def scored(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(pairs (n, 2) compact u < v, kind (n,) int8 per :data:`LABELS`) of ``split`` ('val' or 'test'),
        sorted by CSV ids (node1, node2), so the order says nothing about the kind."""
        pairs = np.concatenate([self.pos_pairs[split], self.neg_pairs[split], self.random_pairs[split]])
        kind = np.concatenate([np.full(len(self.pos_pairs[split]), LABELS["positive"], np.int8),
                               np.full(len(self.neg_pairs[split]), LABELS["spatial"], np.int8),
                               np.full(len(self.random_pairs[split]), LABELS["random"], np.int8)])
        csv = self.node_id[pairs]
        order = np.lexsort((csv[:, 1], csv[:, 0]))
        return pairs[order], kind[order]

    def model_view(self) -> LinkData:
        """What a model may see: positions, training graph, training and validation pairs (no test pairs)."""
        return LinkData(self.num_nodes, self.pos, self.pos_pairs["train"], self.neg_pairs["train"],
                        self.pos_pairs["val"], self.neg_pairs["val"])


def _split_seed(seed: int, part: int) -> list[int]:
    """Entropy of the random stream of one part of the split (0 permutation, 1 spatial, 2 random)."""
    return [int(seed), part]


def build_split(edge_index: np.ndarray, pos: np.ndarray, distance: np.ndarray, *, seed: int = SPLIT_SEED,
                n_workers: int = N_WORKERS, graph: str = "", checksum: str = "") -> LinkSplit:
    """The split of a graph: ``edge_index`` (E, 2) CSV node ids (= rows of ``pos``), ``pos`` (N_csv, 3),
    ``distance`` (E,) the edges' ``distance`` column: delta = mean + 2 sample std of its finite values (the
    reference uses pandas over the same column).

    ``seed`` fixes the split; ``n_workers`` only changes the speed of the negative sampling."""
    from .negative_sampling import random_negatives, spatial_delta, spatial_negatives

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
    from neuroharness.loaders import cache

    arrays = {"node_id": split.node_id, "pos": split.pos, "delta": np.float64(split.delta),
              "n_csv_nodes": np.int64(split.n_csv_nodes), "graph": np.str_(split.graph),
              "checksum": np.str_(split.checksum), "task_version": np.str_(VERSION)}
    idx = np.int32 if split.num_nodes < 2**31 else np.int64
    for name, d in (("pos", split.pos_pairs), ("neg", split.neg_pairs), ("random", split.random_pairs)):
        for k, v in d.items():
            arrays[f"{name}_{k}"] = v.astype(idx)
    tmp = cache.temp_sibling(path)
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_split(path: Path) -> LinkSplit:
    """Read a split written by :func:`save_split`."""
    with np.load(path, allow_pickle=False) as z:
        def pairs(name, keys):
            return {k: z[f"{name}_{k}"].astype(np.int64) for k in keys}

        return LinkSplit(str(z["graph"]), str(z["checksum"]), z["node_id"].astype(np.int64), z["pos"],
                         float(z["delta"]), pairs("pos", ("train", "val", "test")),
                         pairs("neg", ("train", "val", "test")), pairs("random", ("val", "test")),
                         int(z["n_csv_nodes"]))


def split_cache_path(graph: str, checksum: str) -> Path:
    """Where the split of ``graph`` of the store with ``checksum`` is cached (keyed by task version too)."""
    from neuroharness.loaders import cache

    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in graph)
    return cache.home() / "splits" / TASK / f"{safe}__v{VERSION}__{checksum}.npz"


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
        """The training graph as a :class:`~neuroharness.tasks.neighbor_sampling.CSRGraph` (built once)."""
        if "csr" not in self._cache:
            from .neighbor_sampling import CSRGraph

            self._cache["csr"] = CSRGraph.from_edge_index(self.train_edge_index(), self.num_nodes)
        return self._cache["csr"]

    def normalized_pos(self) -> np.ndarray:
        """(N, 3) float32 z-scored coordinates (per axis, over all nodes: positions are inputs, not labels)."""
        sd = self.pos.std(0)
        return ((self.pos - self.pos.mean(0)) / np.where(sd > 0, sd, 1.0)).astype(np.float32)


# -- baselines ---------------------------------------------------------------------------------------
class NeighbourhoodHeuristic:
    """Common neighbours, Adamic-Adar or resource allocation on the training graph (no learning).

    score(u, v) = sum over common training neighbours w of weight(w): 1 (CN), 1 / log deg(w) (AA),
    1 / deg(w) (RA). Vectorized as rows of the sparse adjacency, ``batch_size`` pairs at a time.
    """

    n_parameters = 0

    def __init__(self, kind: str, batch_size: int = 1 << 18):
        if kind not in ("common-neighbours", "adamic-adar", "resource-allocation"):
            raise NeuroharnessError(f"heuristic {kind!r}: expected common-neighbours, adamic-adar or "
                                    "resource-allocation")
        self.kind, self.batch_size = kind, batch_size

    def fit(self, data: LinkData, seed: int):
        import scipy.sparse as sp

        adj = data.adjacency()
        deg = np.asarray(adj.sum(1)).ravel()
        if self.kind == "common-neighbours":
            w = np.ones_like(deg)
        elif self.kind == "adamic-adar":  # a common neighbour has degree >= 2, so log(deg) > 0 where it matters
            w = np.where(deg >= 2, 1.0 / np.log(np.maximum(deg, 2)), 0.0)
        else:
            w = np.where(deg >= 1, 1.0 / np.maximum(deg, 1), 0.0)
        self._adj = adj
        self._weighted = (adj @ sp.diags(w)).tocsr()  # column w scaled by weight(w)
        return self

    def score(self, data: LinkData, pairs: np.ndarray) -> np.ndarray:
        out = np.empty(len(pairs), dtype=np.float64)
        for a in range(0, len(pairs), self.batch_size):
            p = pairs[a:a + self.batch_size]
            out[a:a + len(p)] = np.asarray(self._adj[p[:, 0]].multiply(self._weighted[p[:, 1]]).sum(1)).ravel()
        return out


class _PairModel:
    """Shared training of a symmetric pair scorer: node embeddings h, logit = MLP([h_u * h_v, |h_u - h_v|]).

    Training: ``steps`` Adam steps on mini-batches of ``batch_size`` training pairs (half positives, half
    spatial negatives, cycled in seeded random order), binary cross-entropy; validation ROC-AUC every
    ``eval_every`` steps, the best state kept.
    """

    name = "model"

    def __init__(self, hidden: int = 64, steps: int = 300, batch_size: int = 1024, lr: float = 5e-3,
                 eval_every: int = 50):
        self.hidden, self.steps, self.batch_size, self.lr, self.eval_every = hidden, steps, batch_size, lr, eval_every
        self.n_parameters = 0
        self.best_step = 0
        self.best_val_roc_auc = float("nan")

    def fit(self, data: LinkData, seed: int):
        with single_thread():
            return self._fit(data, seed)

    def score(self, data: LinkData, pairs: np.ndarray) -> np.ndarray:
        with single_thread():
            return self._score(data, pairs)

    def _decoder(self):
        import torch

        h = self.hidden
        return torch.nn.Sequential(torch.nn.Linear(2 * h, h), torch.nn.ReLU(), torch.nn.Linear(h, 1))

    @staticmethod
    def _pair_features(hu, hv):
        import torch

        return torch.cat([hu * hv, (hu - hv).abs()], dim=1)  # symmetric in (u, v)

    def _fit(self, data: LinkData, seed: int):
        import torch

        from neuroharness.progress import progress_bar

        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        self._x = torch.from_numpy(data.normalized_pos())
        self._build(data)
        self.n_parameters = sum(p.numel() for p in self._params())
        pos = torch.from_numpy(data.train_pos)
        neg = torch.from_numpy(data.train_neg)
        half = max(1, self.batch_size // 2)
        opt = torch.optim.Adam(self._params(), lr=self.lr)
        order = {"pos": torch.randperm(len(pos), generator=gen), "neg": torch.randperm(len(neg), generator=gen)}
        at = {"pos": 0, "neg": 0}

        def take(name, pairs):
            idx = []
            need = half
            while need:
                if at[name] >= len(pairs):
                    order[name], at[name] = torch.randperm(len(pairs), generator=gen), 0
                got = order[name][at[name]:at[name] + need]
                at[name] += len(got)
                need -= len(got)
                idx.append(got)
            return torch.cat(idx)

        val_pairs = np.concatenate([data.val_pos, data.val_neg])
        best, best_state = -1.0, None
        with progress_bar(total=self.steps, desc=self.name, unit="step") as bar:
            for step in range(1, self.steps + 1):
                self._train_mode(True)
                ip, ineg = take("pos", pos), take("neg", neg)
                pairs = torch.cat([pos[ip], neg[ineg]])
                y = torch.cat([torch.ones(len(ip)), torch.zeros(len(ineg))])
                opt.zero_grad()
                logit = self._train_logits(data, pairs, ip, gen)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, y)
                loss.backward()
                opt.step()
                bar.update(1)
                if step % self.eval_every == 0 or step == self.steps:
                    s = self._score(data, val_pairs)
                    auc = roc_auc(s[:len(data.val_pos)], s[len(data.val_pos):])
                    if auc > best:
                        best, self.best_step = auc, step
                        best_state = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in self._modules()]
        for m, state in zip(self._modules(), best_state):
            m.load_state_dict(state)
        self.best_val_roc_auc = float(best)
        return self

    def _params(self):
        return [p for m in self._modules() for p in m.parameters()]

    def _train_mode(self, on: bool):
        for m in self._modules():
            m.train(on)


class MLPCoordinates(_PairModel):
    """MLP encoder on each endpoint's z-scored (x, y, z), symmetric pair decoder; no graph."""

    name = "mlp-coordinates"

    def _build(self, data):
        import torch

        h = self.hidden
        self._enc = torch.nn.Sequential(torch.nn.Linear(3, h), torch.nn.ReLU(), torch.nn.Linear(h, h))
        self._dec = self._decoder()

    def _modules(self):
        return [self._enc, self._dec]

    def _train_logits(self, data, pairs, pos_idx, gen):
        return self._dec(self._pair_features(self._enc(self._x[pairs[:, 0]]), self._enc(self._x[pairs[:, 1]]))).squeeze(1)

    def _score(self, data, pairs):
        import torch

        self._train_mode(False)
        out = np.empty(len(pairs), dtype=np.float64)
        with torch.no_grad():
            for a in range(0, len(pairs), 1 << 16):
                p = torch.from_numpy(np.ascontiguousarray(pairs[a:a + (1 << 16)]))
                out[a:a + len(p)] = self._train_logits(data, p, None, None).numpy()
        return out


class GraphSAGELink(_PairModel):
    """GraphSAGE (mean) on the training graph over z-scored (x, y, z), symmetric pair decoder.

    Mini-batches: the endpoints of the batch's pairs are the seeds of a sampled ``num_neighbors``
    subgraph (one hop per layer); the batch's own positive edges are removed from it, so training
    pairs look like evaluation pairs (never edges of the graph the model sees). Evaluation: exact
    layer-wise inference over full neighbourhoods.
    """

    name = "graphsage"

    def __init__(self, num_layers: int = 2, num_neighbors: tuple[int, ...] = (10, 10), **kw):
        super().__init__(**kw)
        if len(num_neighbors) != num_layers:
            raise NeuroharnessError(f"graphsage: num_neighbors {list(num_neighbors)} needs one count per layer "
                                    f"({num_layers})")
        self.num_layers, self.num_neighbors = num_layers, tuple(num_neighbors)

    def _build(self, data):
        from .neighbor_sampling import SAGE

        self._graph = data.csr()
        self._n_train = len(data.train_pos)
        self._enc = SAGE(3, self.hidden, self.hidden, num_layers=self.num_layers)
        self._dec = self._decoder()

    def _modules(self):
        return [self._enc, self._dec]

    def _train_logits(self, data, pairs, pos_idx, gen):
        import torch

        from .neighbor_sampling import sample_subgraph

        seeds = torch.cat([pairs[:, 0], pairs[:, 1]])
        n_id, ei, seed_local, e_id = sample_subgraph(self._graph, seeds, list(self.num_neighbors), gen,
                                                     return_edge_id=True)
        drop = torch.zeros(self._n_train, dtype=torch.bool)
        drop[pos_idx] = True
        ei = ei[:, ~drop[e_id % self._n_train]]  # both directions of the batch's positive edges
        h = self._enc(self._x[n_id], ei)[seed_local]
        return self._dec(self._pair_features(h[:len(pairs)], h[len(pairs):])).squeeze(1)

    def _score(self, data, pairs):
        import torch

        from .neighbor_sampling import layerwise_inference

        self._train_mode(False)
        nodes, inv = np.unique(pairs, return_inverse=True)
        inv = torch.from_numpy(inv.reshape(pairs.shape).astype(np.int64))
        out = np.empty(len(pairs), dtype=np.float64)
        with torch.no_grad():
            h = layerwise_inference(self._enc, self._x, self._graph, batch_size=65536, nodes=torch.from_numpy(nodes))
            for a in range(0, len(pairs), 1 << 16):
                i = inv[a:a + (1 << 16)]
                out[a:a + len(i)] = self._dec(self._pair_features(h[i[:, 0]], h[i[:, 1]])).squeeze(1).numpy()
        return out


def _heuristic(kind):
    def factory(**kw):
        return NeighbourhoodHeuristic(kind, **kw)

    return factory


# -- submissions ---------------------------------------------------------------------------------------
def write_predictions(path, node1, node2, score) -> Path:
    """Write a submission table (``node1``, ``node2`` int64 CSV node ids, ``score`` float64) as .parquet or .npz."""
    return submission.write_table(pd.DataFrame({"node1": np.asarray(node1, dtype=np.int64),
                                                "node2": np.asarray(node2, dtype=np.int64),
                                                "score": np.asarray(score, dtype=np.float64)}), path)


def check_submission(table: pd.DataFrame, source: str, expected: np.ndarray, n_csv_nodes: int, split: str,
                     graph: str) -> np.ndarray:
    """Scores (n,) float64 in the order of ``expected`` (n, 2) CSV pairs (node1 < node2, sorted), after
    checking that ``table`` scores each of them exactly once (a pair may be given in either order)."""
    missing = [c for c in ("node1", "node2", "score") if c not in table.columns]
    if missing:
        raise SubmissionError(f"{source}: missing column(s) {missing}; found {list(table.columns)}, "
                              "expected ['node1', 'node2', 'score']")
    ids = []
    for c in ("node1", "node2"):
        col = table[c]
        if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_integer_dtype(col):
            raise SubmissionError(f"{source}: column {c!r} has dtype {col.dtype}, expected integers (CSV node ids)")
        if col.isna().any():  # nullable integer columns
            raise SubmissionError(f"{source}: column {c!r} has {int(col.isna().sum())} missing value(s), first at row "
                                  f"{int(np.flatnonzero(col.isna().to_numpy())[0])}")
        a = col.to_numpy().astype(np.int64)
        bad = np.flatnonzero((a < 0) | (a >= n_csv_nodes))
        if bad.size:
            raise SubmissionError(f"{source}: row {int(bad[0])}, column {c!r}: node id {int(a[bad[0]])} out of range; "
                                  f"graph {graph} has CSV node ids 0..{n_csv_nodes - 1}")
        ids.append(a)
    col = table["score"]
    if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
        raise SubmissionError(f"{source}: column 'score' has dtype {col.dtype}, expected numbers")
    score = col.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(score))
    if bad.size:
        raise SubmissionError(f"{source}: column 'score' has {bad.size} NaN/inf value(s), first at row {int(bad[0])}")
    u, v = np.minimum(ids[0], ids[1]), np.maximum(ids[0], ids[1])
    same = np.flatnonzero(u == v)
    if same.size:
        raise SubmissionError(f"{source}: row {int(same[0])} pairs node {int(u[same[0]])} with itself")
    n = np.int64(n_csv_nodes)
    key = u * n + v
    order = np.argsort(key, kind="stable")
    sk = key[order]
    dup = np.flatnonzero(sk[1:] == sk[:-1])
    if dup.size:
        k = int(sk[dup[0]])
        raise SubmissionError(f"{source}: pair ({k // n_csv_nodes}, {k % n_csv_nodes}) appears more than once "
                              f"({dup.size} repeated row(s); a pair counts once in either order)")
    want = expected[:, 0] * n + expected[:, 1]  # sorted: the template is sorted by (node1, node2)
    at = np.searchsorted(want, sk).clip(max=len(want) - 1)
    known = want[at] == sk
    if not known.all():
        k = int(sk[np.argmin(known)])
        raise SubmissionError(f"{source}: {int((~known).sum())} row(s) are not {split} pairs of graph {graph}, e.g. "
                              f"({k // n_csv_nodes}, {k % n_csv_nodes}); expected exactly the {len(want)} pairs of "
                              "the template")
    if len(sk) != len(want):
        got = np.zeros(len(want), dtype=bool)
        got[at] = True
        i = int(np.argmin(got))
        raise SubmissionError(f"{source}: {len(want) - len(sk)} of {len(want)} {split} pairs of graph {graph} missing, "
                              f"e.g. ({int(expected[i, 0])}, {int(expected[i, 1])})")
    out = np.empty(len(want), dtype=np.float64)
    out[at] = score[order]
    return out


# -- task ---------------------------------------------------------------------------------------------
@register_task
class VesselGraphLinkPrediction(Task):
    card = TaskCard(
        name=TASK,
        version=VERSION,
        title="Predict hidden vessels between nearby nodes of a whole-brain vessel graph (VesselGraph)",
        description=" ".join(__doc__.split("\n\n")[1].split()),
        datasets=(DatasetRef("vesselgraph", "1.0"),),
        split=" ".join(__doc__.split("\n\n")[2].split()).removeprefix("Split (as VesselGraph's LinkVesselGraph and "
                                                                      "ogbl-vessel): "),
        inputs=("node positions pos_x, pos_y, pos_z (store units; voxels per the loader: uncertain) of every non-isolated "
                "node; the training graph (training positives, both directions); training positives and spatial "
                "negatives; validation positives and negatives for model selection"),
        targets="a score per node pair, higher = more likely a vessel",
        metrics=(
            MetricSpec("roc_auc", True, "ROC-AUC of the test positives against the test spatial negatives (1:1); "
                                        "ties count 1/2; = ogb Evaluator('ogbl-vessel') rocauc"),
            MetricSpec("roc_auc_random_negatives", True,
                       "ROC-AUC of the same test positives against uniformly random non-edge pairs (easy; secondary)"),
        ),
        main_metric="roc_auc",
        seeds=(0, 1, 2),
        chance={"roc_auc": "0.5 (any constant or random score)", "roc_auc_random_negatives": "0.5"},
        submission=(
            "a table (.parquet or .npz, no pickle) with integer columns `node1`, `node2` (CSV node ids of the chosen "
            "graph; either order) and a finite float column `score`, one row per pair of the template and no other: "
            "test positives, spatial and random negatives mixed, sorted by (node1, node2). `neuroharness tasks "
            f"template {TASK} ids.parquet --option graph=GRAPH` lists them; `neuroharness evaluate {TASK} "
            "preds.parquet --option graph=GRAPH` scores it"),
        references=_reference_lines(),
        options={"graph": TaskOption("BALBc_no1", "graph of the prepared vesselgraph store")},
    )
    models: ClassVar[dict[str, ModelSpec]] = {
        "common-neighbours": ModelSpec("common-neighbours", _heuristic("common-neighbours"),
                                       "number of common neighbours in the training graph"),
        "adamic-adar": ModelSpec("adamic-adar", _heuristic("adamic-adar"),
                                 "Adamic-Adar: sum of 1 / log(degree) over common training neighbours"),
        "resource-allocation": ModelSpec("resource-allocation", _heuristic("resource-allocation"),
                                         "resource allocation: sum of 1 / degree over common training neighbours"),
        "mlp-coordinates": ModelSpec(
            "mlp-coordinates", MLPCoordinates,
            "MLP encoder (3 -> 64 -> 64) on each endpoint's z-scored coordinates, decoder MLP on [h_u * h_v, "
            "|h_u - h_v|]; BCE on training positives vs spatial negatives, Adam, best step by validation ROC-AUC",
            {"hidden": 64, "steps": 300, "batch_size": 1024, "lr": 5e-3, "eval_every": 50}),
        "graphsage": ModelSpec(
            "graphsage", GraphSAGELink,
            "2-layer GraphSAGE (mean, 64) on the training graph over z-scored coordinates, mini-batches of "
            "pairs with 10 + 10 sampled neighbours (batch positives removed from the subgraph), decoder on "
            "[h_u * h_v, |h_u - h_v|]; BCE, Adam, best step by validation ROC-AUC; exact layer-wise inference",
            {"hidden": 64, "steps": 300, "batch_size": 1024, "lr": 5e-3, "eval_every": 50, "num_layers": 2,
             "num_neighbors": (10, 10)}),
    }
    #: Published ogbl-vessel ROC-AUC (%), see :data:`REFERENCE_ROWS`.
    reference_rows = REFERENCE_ROWS

    _cache: ClassVar[dict] = {}

    def load(self, graph: str) -> LinkSplit:
        """The split of ``graph``: from memory, else from the split cache, else built (and cached)."""
        from neuroharness.loaders import cache

        from neuroharness.loaders.vesselgraph import content_sha256

        checksum = content_sha256(graph)
        hit = self._cache.get((graph, checksum))
        if hit is not None:
            return hit
        path = split_cache_path(graph, checksum)
        with cache.lock(f"{TASK}-{graph}"):
            split = load_split(path) if path.exists() else None
            if split is None or (split.graph, split.checksum) != (graph, checksum):
                from neuroharness.loaders.vesselgraph import open_graph

                from neuroharness.progress import status

                status(f"[{TASK}] building the split of graph {graph} (cached in {path})")
                ds = open_graph(graph)
                if "distance" not in ds.variables:
                    raise NeuroharnessError(f"graph {graph} of the vesselgraph store has no variable 'distance'; "
                                            f"{TASK} needs it for the spatial negatives' cube size")
                split = build_split(np.asarray(ds["edge_index"].values), np.asarray(ds["pos"].values),
                                    np.asarray(ds["distance"].values), graph=graph, checksum=checksum)
                path.parent.mkdir(parents=True, exist_ok=True)
                save_split(split, path)
        type(self)._cache = {(graph, checksum): split}  # hold one graph at a time
        return split

    def dataset_checksums(self, graph: str | None = None) -> dict[str, str]:
        from neuroharness.loaders.vesselgraph import content_sha256

        return {"vesselgraph": content_sha256(graph)}

    def score(self, kind: np.ndarray, scores: np.ndarray) -> dict:
        """Metrics of ``scores`` for pairs of kinds ``kind`` (:data:`LABELS`)."""
        pos = scores[kind == LABELS["positive"]]
        out = {"roc_auc": roc_auc(pos, scores[kind == LABELS["spatial"]]),
               "roc_auc_random_negatives": roc_auc(pos, scores[kind == LABELS["random"]]),
               "n_positives": len(pos), "n_spatial_negatives": int((kind == LABELS["spatial"]).sum()),
               "n_random_negatives": int((kind == LABELS["random"]).sum())}
        out["main_score"] = out[self.card.main_metric]
        return out

    def run_model(self, model_name: str, seed: int, *, graph: str = "BALBc_no1",
                  hyperparameters: dict | None = None) -> dict:
        """Fit ``model_name`` on the training graph and pairs of ``graph``; score validation and test pairs.

        ``hyperparameters`` override the registered ones (e.g. ``{"steps": 20}``)."""
        spec = self.get_model(model_name)
        split = self.load(graph)
        model = spec.factory(**{**spec.hyperparameters, **(hyperparameters or {})})
        data = split.model_view()
        t0 = time.perf_counter()
        model.fit(data, seed)
        result = {}
        for s in ("val", "test"):
            pairs, kind = split.scored(s)
            result[s] = self.score(kind, model.score(data, pairs))
        wall = time.perf_counter() - t0
        return {"metrics": result["test"], "validation_metrics": result["val"], "n_parameters": int(model.n_parameters),
                "hyperparameters": describe(model), "fit_predict_seconds": wall}

    def submission_template(self, split: str = "test", *, graph: str = "BALBc_no1") -> pd.DataFrame:
        """The pairs a submission must score on ``split``: int64 CSV ids ``node1`` < ``node2``, sorted."""
        s = self.load(graph)
        pairs, _ = s.scored(self.check_split(split))
        csv = s.node_id[pairs]
        return pd.DataFrame({"node1": csv[:, 0], "node2": csv[:, 1]})

    def evaluate(self, predictions, split: str = "test", *, graph: str = "BALBc_no1") -> dict:
        """Score a submission (path to .parquet/.npz, or a DataFrame) on ``split`` of ``graph``."""
        split = self.check_split(split)
        source = "predictions" if isinstance(predictions, pd.DataFrame) else str(predictions)
        table = predictions if isinstance(predictions, pd.DataFrame) else submission.read_table(predictions)
        s = self.load(graph)
        pairs, kind = s.scored(split)
        scores = check_submission(table, source, s.node_id[pairs], s.n_csv_nodes, split, graph)
        return self.score(kind, scores)
