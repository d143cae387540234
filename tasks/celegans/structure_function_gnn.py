"""Graph neural network baseline for ``celegans-structure-function``.

A two-layer GraphSAGE encoder (torch-geometric) embeds neurons from the
Cook 2019 connectome; an MLP decoder reads the (stimulated, responding)
embeddings plus the direct chemical and gap weights and outputs a logit for
a significant response and a standardized amplitude. Trained full-batch on
the training pairs (BCE + MSE), the epoch with the best validation ROC-AUC
is kept. torch is imported lazily so that listing tasks stays fast.
"""
from __future__ import annotations


import numpy as np

from .structure_function import CONNECTOME_ANNOTATION, Inputs, Pairs
from ..model_utils import single_thread

NEURON_TYPES = ("sensory", "interneuron", "motor", "pharyngeal", "unknown")


def node_features(inputs: Inputs, chem: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """(n, 11) features: neuron type one-hot (5), position (3), log in/out chemical and gap strength (3), z-scored."""
    types = inputs.connectome.neuron_type.values.astype(str)
    onehot = (types[:, None] == np.array(NEURON_TYPES)[None, :]).astype(np.float64)
    pos = np.nan_to_num(inputs.connectome.position.values.astype(np.float64))
    # chem is [responding, stimulated]: row sums are inputs, column sums outputs
    strength = np.log1p(np.column_stack([chem.sum(1), chem.sum(0), gap.sum(1)]))
    cont = np.column_stack([pos, strength])
    cont = (cont - cont.mean(0)) / np.where(cont.std(0) > 0, cont.std(0), 1)
    return np.column_stack([onehot, cont]).astype(np.float32)


class GNNLinkModel:
    """GraphSAGE link predictor for directed pairs; see module docstring."""

    def __init__(self, hidden: int = 32, epochs: int = 200, lr: float = 5e-3, weight_decay: float = 1e-4,
                 eval_every: int = 5, annotation: str = CONNECTOME_ANNOTATION):
        self.hidden, self.epochs, self.lr, self.weight_decay = hidden, epochs, lr, weight_decay
        self.eval_every, self.annotation = eval_every, annotation
        self.n_parameters = 0

    def _build(self, n_features: int):
        import torch
        from torch_geometric.nn import SAGEConv

        hidden = self.hidden

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1 = SAGEConv(n_features, hidden)
                self.conv2 = SAGEConv(hidden, hidden)
                self.decoder = torch.nn.Sequential(
                    torch.nn.Linear(3 * hidden + 2, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2)
                )

            def forward(self, x, edge_index, resp, stim, direct):
                h = torch.relu(self.conv1(x, edge_index))
                h = self.conv2(h, edge_index)
                z = torch.cat([h[stim], h[resp], h[stim] * h[resp], direct], dim=1)
                return self.decoder(z)

        return Net()

    def _tensors(self, pairs: Pairs):
        import torch

        resp = torch.as_tensor(pairs.responding, dtype=torch.long)
        stim = torch.as_tensor(pairs.stimulated, dtype=torch.long)
        direct = torch.as_tensor(np.column_stack([self._logchem[pairs.responding, pairs.stimulated],
                                                  self._loggap[pairs.responding, pairs.stimulated]]), dtype=torch.float32)
        return resp, stim, direct

    def fit(self, inputs: Inputs, train: Pairs, val: Pairs, seed: int):
        with single_thread():
            return self._fit(inputs, train, val, seed)

    def _fit(self, inputs: Inputs, train: Pairs, val: Pairs, seed: int):
        import torch

        from neuroharness.metrics.classification import roc_auc
        from neuroharness.progress import progress_bar

        torch.manual_seed(seed)
        np.random.seed(seed)
        chem, gap = inputs.weights(self.annotation)
        self._logchem, self._loggap = np.log1p(chem), np.log1p(gap)
        self._x = torch.as_tensor(node_features(inputs, chem, gap))
        # messages flow along the signal: from stimulated/pre (source) to responding/post (target)
        tgt, src = np.nonzero((chem + gap) > 0)
        self._edge_index = torch.as_tensor(np.vstack([src, tgt]), dtype=torch.long)
        self._net = self._build(self._x.shape[1])
        self.n_parameters = sum(p.numel() for p in self._net.parameters())
        opt = torch.optim.Adam(self._net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        resp, stim, direct = self._tensors(train)
        y_sig = torch.as_tensor(train.significant, dtype=torch.float32)
        self._amp_mean, self._amp_std = float(train.amplitude.mean()), float(train.amplitude.std())
        y_amp = torch.as_tensor((train.amplitude - self._amp_mean) / self._amp_std, dtype=torch.float32)
        pos_weight = torch.tensor(float((1 - y_sig.mean()) / y_sig.mean()))
        best_auc, best_state = -1.0, None
        with progress_bar(total=self.epochs, desc="gnn-link", unit="epoch") as bar:
            for epoch in range(1, self.epochs + 1):
                self._net.train()
                opt.zero_grad()
                out = self._net(self._x, self._edge_index, resp, stim, direct)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], y_sig, pos_weight=pos_weight)
                loss = loss + torch.nn.functional.mse_loss(out[:, 1], y_amp)
                loss.backward()
                opt.step()
                bar.update(1)
                if epoch % self.eval_every == 0 or epoch == self.epochs:
                    auc = roc_auc(val.significant, self.predict(inputs, val)["score"])
                    if auc > best_auc:
                        best_auc = auc
                        best_state = {k: v.detach().clone() for k, v in self._net.state_dict().items()}
        self._net.load_state_dict(best_state)
        return self

    def predict(self, inputs: Inputs, pairs: Pairs) -> dict[str, np.ndarray]:
        import torch

        self._net.eval()
        with single_thread(), torch.no_grad():
            out = self._net(self._x, self._edge_index, *self._tensors(pairs)).numpy().astype(np.float64)
        return {"score": out[:, 0], "amplitude": out[:, 1] * self._amp_std + self._amp_mean}
