"""Baselines of ``vesselgraph-link-prediction``: neighbourhood heuristics, a coordinate MLP and GraphSAGE.

Models follow the family protocol: ``fit(data, seed)`` on a
:class:`~.link_prediction.LinkData` (positions, training graph, training and
validation pairs; never test pairs) and ``score(data, pairs) -> (n,) float64``
for (n, 2) compact node pairs, higher = more likely a vessel. The card names
them by import string (:data:`.cards.LINK_PREDICTION`).
"""
from __future__ import annotations

import numpy as np

from neuroharness.errors import NeuroharnessError
from neuroharness.metrics.link_prediction import roc_auc

from ..model_utils import single_thread
from .link_prediction import LinkData


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
        from ..graph.neighbor_sampling import SAGE

        self._graph = data.csr()
        self._n_train = len(data.train_pos)
        self._enc = SAGE(3, self.hidden, self.hidden, num_layers=self.num_layers)
        self._dec = self._decoder()

    def _modules(self):
        return [self._enc, self._dec]

    def _train_logits(self, data, pairs, pos_idx, gen):
        import torch

        from ..graph.neighbor_sampling import sample_subgraph

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

        from ..graph.neighbor_sampling import layerwise_inference

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


def common_neighbours(**kw) -> NeighbourhoodHeuristic:
    """Model ``common-neighbours``: :class:`NeighbourhoodHeuristic` ``("common-neighbours")``."""
    return NeighbourhoodHeuristic("common-neighbours", **kw)


def adamic_adar(**kw) -> NeighbourhoodHeuristic:
    """Model ``adamic-adar``: :class:`NeighbourhoodHeuristic` ``("adamic-adar")``."""
    return NeighbourhoodHeuristic("adamic-adar", **kw)


def resource_allocation(**kw) -> NeighbourhoodHeuristic:
    """Model ``resource-allocation``: :class:`NeighbourhoodHeuristic` ``("resource-allocation")``."""
    return NeighbourhoodHeuristic("resource-allocation", **kw)
