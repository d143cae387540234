"""Baselines of ``celegans-forecast``.

Model protocol: ``fit(store, split, seed, connectome) -> self`` with ``store`` a
:class:`~neuroharness.tasks.celegans.windows.RaggedActivity`, ``split`` the
training view of one split protocol (a
:class:`~neuroharness.tasks.celegans.forecast.ForecastSplit` without test
segments) and ``connectome`` the loaded ``celegans-connectome`` dataset;
``predict(context (B, L, N), mask (N,), horizon) -> (B, horizon, N)``;
``n_parameters`` set by ``fit``. torch is imported only by the models that train.
"""
from __future__ import annotations

import numpy as np


class NaiveModel:
    """Copy the last context value to every future step (0 parameters)."""

    n_parameters = 0

    def fit(self, store, split, seed, connectome=None):
        return self

    def predict(self, ctx: np.ndarray, mask: np.ndarray, horizon: int) -> np.ndarray:
        return np.repeat(ctx[:, -1:, :], horizon, axis=1)


class LinearARModel:
    """x[t+1] - x[t] = W · (x[t], ..., x[t-p+1]) + b, ridge-penalized, masked to labeled neurons.

    Fitted by L-BFGS on sampled training windows (the per-neuron normal
    equations differ by which worms label each neuron, so there is no single
    closed form). Multi-step forecasts roll the model forward. With
    ``structure`` (N, N) bool, neuron i may only read neurons j with
    ``structure[i, j]`` (the connectome-constrained variant).
    """

    def __init__(self, lags: int = 3, l2: float = 1e-3, n_windows: int = 20000, iterations: int = 60):
        self.lags, self.l2, self.n_windows, self.iterations = lags, l2, n_windows, iterations
        self.n_parameters = 0
        self._structure = None

    def _design(self, ctx):
        lags = ctx[:, -self.lags :, :][:, ::-1, :]  # (B, p, N), most recent first
        return lags.reshape(len(ctx), -1)

    def _training_set(self, store, segments, seed):
        from .windows import WindowDataset

        ds = WindowDataset(store, segments, context=self.lags, horizon=1, batch_size=4096, windows_per_step=1.0, seed=seed)
        total = sum(ds.n_windows(s) for s in ds.segments)
        keep = min(1.0, self.n_windows / max(total, 1))
        ds = WindowDataset(store, segments, context=self.lags, horizon=1, batch_size=4096, windows_per_step=keep, seed=seed)
        X, Y, M = [], [], []
        for ctx, tgt, mask in ds:
            X.append(self._design(ctx))
            Y.append(tgt[:, 0] - ctx[:, -1])
            M.append(mask)
        return np.concatenate(X), np.concatenate(Y), np.concatenate(M)

    def fit(self, store, split, seed, connectome=None):
        import torch

        torch.manual_seed(seed)
        X, Y, M = (torch.as_tensor(a) for a in self._training_set(store, split.train, seed))
        N = Y.shape[1]
        W = torch.zeros(self.lags * N, N, dtype=torch.float32, requires_grad=True)
        b = torch.zeros(N, requires_grad=True)
        wmask = None
        if self._structure is not None:
            allowed = torch.as_tensor(self._structure.T)  # [input j, output i]
            wmask = allowed.repeat(self.lags, 1).float()
        Mf = M.float()
        denom = Mf.sum() + 1e-9
        opt = torch.optim.LBFGS([W, b], lr=1, max_iter=self.iterations, history_size=20, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            Wm = W if wmask is None else W * wmask
            loss = (((X @ Wm + b - Y) ** 2) * Mf).sum() / denom + self.l2 * (Wm**2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        Wm = W.detach() if wmask is None else (W * wmask).detach()
        self._W, self._b = Wm.numpy(), b.detach().numpy()
        self.n_parameters = int((Wm != 0).sum()) + N
        return self

    def predict(self, ctx, mask, horizon):
        hist = ctx[:, -self.lags :, :].copy()
        out = []
        for _ in range(horizon):
            nxt = hist[:, -1] + self._design(hist) @ self._W + self._b
            nxt = nxt * mask[None, :]  # unlabeled neurons stay at 0, as in the inputs
            out.append(nxt)
            hist = np.concatenate([hist[:, 1:], nxt[:, None]], axis=1)
        return np.stack(out, axis=1).astype(np.float32)


class ConnectomeLinearModel(LinearARModel):
    """Linear AR where neuron i reads only itself and its Cook 2019 partners (chemical j->i or gap)."""

    def fit(self, store, split, seed, connectome=None):
        cook = connectome.sel(annotation="cook_2019")
        chem = np.nan_to_num(cook.chemical.values)  # [pre, post]
        gap = np.nan_to_num(cook.gap_junction.values)
        self._structure = (chem.T > 0) | (gap > 0) | np.eye(len(chem), dtype=bool)  # [i reads j]
        return super().fit(store, split, seed, connectome)


class LSTMModel:
    """LSTM over (values, mask) -> next-step change of every neuron; rolled out for k > 1."""

    def __init__(self, hidden: int = 128, steps: int = 300, batch_size: int = 32, train_len: int = 50, lr: float = 3e-3):
        self.hidden, self.steps, self.batch_size, self.train_len, self.lr = hidden, steps, batch_size, train_len, lr
        self.n_parameters = 0

    def _net(self, n):
        import torch

        class Net(torch.nn.Module):
            def __init__(self, hidden):
                super().__init__()
                self.lstm = torch.nn.LSTM(2 * n, hidden, batch_first=True)
                self.head = torch.nn.Linear(hidden, n)
                # start as the copy-last predictor (zero change) and learn departures from it
                torch.nn.init.zeros_(self.head.weight)
                torch.nn.init.zeros_(self.head.bias)

            def forward(self, x, mask, state=None):
                m = mask[:, None, :].expand_as(x).float()
                h, state = self.lstm(torch.cat([x, m], dim=-1), state)
                return self.head(h), state

        return Net(self.hidden)

    def fit(self, store, split, seed, connectome=None):
        import torch

        from neuroharness.progress import progress_bar

        from .windows import WindowDataset

        torch.manual_seed(seed)
        n = store.n_neurons
        self._model = self._net(n)
        self.n_parameters = sum(p.numel() for p in self._model.parameters())
        opt = torch.optim.Adam(self._model.parameters(), lr=self.lr)
        ds = WindowDataset(store, split.train, context=self.train_len, horizon=1, batch_size=self.batch_size, windows_per_step=0.02, seed=seed)
        step, epoch = 0, 0
        with progress_bar(total=self.steps, desc="lstm", unit="step") as bar:
            while step < self.steps:
                ds.set_epoch(epoch)
                for ctx, tgt, mask in ds:
                    seq = torch.as_tensor(np.concatenate([ctx, tgt], axis=1))
                    mk = torch.as_tensor(mask)
                    pred, _ = self._model(seq[:, :-1], mk)
                    err = (seq[:, :-1] + pred - seq[:, 1:]) ** 2 * mk[:, None, :]
                    loss = err.sum() / (mk.sum() * (seq.shape[1] - 1))
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    step += 1
                    bar.update(1)
                    if step >= self.steps:
                        break
                epoch += 1
        return self

    def predict(self, ctx, mask, horizon):
        import torch

        self._model.eval()
        out = []
        with torch.no_grad():
            x = torch.as_tensor(ctx)
            mk = torch.as_tensor(np.broadcast_to(mask, (len(ctx), mask.size)).copy())
            pred, state = self._model(x, mk)
            nxt = x[:, -1] + pred[:, -1]
            for _ in range(horizon):
                nxt = nxt * mk
                out.append(nxt)
                d, state = self._model(nxt[:, None], mk, state)
                nxt = nxt + d[:, -1]
        return torch.stack(out, dim=1).numpy()
