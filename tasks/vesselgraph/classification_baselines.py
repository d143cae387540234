"""Baselines of ``vesselgraph-vessel-classification``: majority class, an MLP and GraphSAGE on the line graph.

Models follow the family protocol: ``fit(data, seed)`` on the
:class:`~.vessel_classification.VesselData` view without test labels and
``predict(data, idx) -> (n,) int64`` class labels of vessels ``idx``. The
card names them by import string (:data:`.cards.VESSEL_CLASSIFICATION`).
"""
from __future__ import annotations

import numpy as np

from neuroharness.errors import NeuroharnessError
from neuroharness.metrics.classification import balanced_accuracy

from ..model_utils import single_thread
from .vessel_classification import INPUTS, N_CLASSES, VesselData


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

        from ..graph.neighbor_sampling import seed_batches

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
        from ..graph.neighbor_sampling import SAGE

        self._graph = data.line_graph_csr()
        return SAGE(len(INPUTS), self.hidden, N_CLASSES, num_layers=self.num_layers, dropout=self.dropout)

    def _forward(self, seeds, gen):
        from ..graph.neighbor_sampling import sample_subgraph

        n_id, ei, seed_local = sample_subgraph(self._graph, seeds, list(self.num_neighbors), gen)
        return self._net(self._x[n_id], ei)[seed_local]

    def _logits(self, data, idx):
        import torch

        from ..graph.neighbor_sampling import layerwise_inference

        return layerwise_inference(self._net, self._x, self._graph, batch_size=65536, nodes=torch.as_tensor(idx))
