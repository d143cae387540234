"""Task ``celegans-forecast``: forecast whole-brain calcium activity.

From a context of 200 samples (66.6 s at dt = 0.333 s) of every labeled
neuron of a worm, predict the next k samples, k = 1 (main score) and k = 10
(3.3 s). Scored on labeled neurons only.

Splits (both reported in every record):

- ``worms``: held-out worms, stratified by source dataset. Within each
  source, worms are ordered by sha256 of their id; the first ceil(20%) are
  test, the next ceil(10%) validation (if the source has at least 3 worms),
  the rest train. Test windows come from the whole recording of test worms.
- ``time``: within every worm, the first half is for training (its last
  10% for validation) and the second half is test.

Test windows start every 50 samples (the first at the start of the test
stretch); each covers context + 10 samples.
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

import numpy as np

from .base import DatasetRef, MetricSpec, ModelSpec, Task, TaskCard, register_task
from .windows import RaggedActivity, Segment, WindowDataset, windows_of

CONTEXT = 200
HORIZONS = (1, 10)
EVAL_STRIDE = 50
SPLITS = ("worms", "time")


@dataclass(frozen=True)
class ForecastSplit:
    """Train/val/test segments of one split protocol."""

    train: list[Segment]
    val: list[Segment]
    test: list[Segment]


def worm_splits(ids: np.ndarray, sources: np.ndarray) -> dict[int, str]:
    """Held-out worm assignment per worm index: 'train', 'val' or 'test'."""
    out = {}
    for s in sorted(set(sources)):
        members = [i for i in np.flatnonzero(sources == s)]
        members.sort(key=lambda i: hashlib.sha256(str(ids[i]).encode()).hexdigest())
        n = len(members)
        n_test = math.ceil(0.2 * n) if n >= 2 else 0
        n_val = math.ceil(0.1 * n) if n >= 3 else 0
        for rank, i in enumerate(members):
            out[i] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return out


def build_splits(store: RaggedActivity) -> dict[str, ForecastSplit]:
    """The two split protocols of the card as worm segments."""
    which = worm_splits(store.worm_ids, store.source)
    by = {k: [Segment(w, 0, int(store.length[w])) for w in range(len(store)) if which[w] == k] for k in ("train", "val", "test")}
    worms = ForecastSplit(by["train"], by["val"], by["test"])
    half = [int(store.length[w]) // 2 for w in range(len(store))]
    time_split = ForecastSplit(
        [Segment(w, 0, half[w] - half[w] // 10) for w in range(len(store))],
        [Segment(w, half[w] - half[w] // 10 - CONTEXT, half[w]) for w in range(len(store))],
        [Segment(w, half[w], int(store.length[w])) for w in range(len(store))],
    )
    return {"worms": worms, "time": time_split}


def eval_windows(store: RaggedActivity, segments, horizon: int = max(HORIZONS)):
    """Yield (segment, context (B, L, N), target (B, H, N), mask (N,)) for every test window of each segment."""
    span = CONTEXT + horizon
    for seg in segments:
        if seg.hi - seg.lo < span:
            continue
        trace = store.worm(seg.worm, seg.lo, seg.hi)
        starts = np.arange(0, seg.hi - seg.lo - span + 1, EVAL_STRIDE)
        ctx, tgt = windows_of(trace, starts, CONTEXT, horizon)
        yield seg, ctx, tgt, store.labeled[seg.worm]


class _Accumulator:
    """Sums of squared errors per (source, horizon), model and naive."""

    def __init__(self):
        self.sse, self.naive, self.count = {}, {}, {}

    def add(self, source: str, pred: np.ndarray, ctx: np.ndarray, tgt: np.ndarray, mask: np.ndarray) -> None:
        last = ctx[:, -1:, :]
        for k in HORIZONS:
            m = mask[None, None, :]
            err = ((pred[:, :k] - tgt[:, :k]) ** 2 * m).sum(dtype=np.float64)
            nai = ((last - tgt[:, :k]) ** 2 * m).sum(dtype=np.float64)
            cnt = float(mask.sum()) * k * len(tgt)
            for key in (source, None):
                self.sse[key, k] = self.sse.get((key, k), 0.0) + err
                self.naive[key, k] = self.naive.get((key, k), 0.0) + nai
                self.count[key, k] = self.count.get((key, k), 0.0) + cnt

    def metrics(self, prefix: str) -> dict[str, float]:
        out = {}
        for (src, k), sse in sorted(self.sse.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
            n, naive = self.count[src, k], self.naive[src, k]
            mse, nmse = sse / n, naive / n
            skill = 1 - mse / nmse if nmse > 0 else 0.0
            tail = "" if src is None else f"/{src}"
            out[f"{prefix}/skill_h{k}{tail}"] = float(skill)
            if src is None:
                out[f"{prefix}/mse_h{k}"] = float(mse)
                out[f"{prefix}/naive_mse_h{k}"] = float(nmse)
        return out


# -- baselines ---------------------------------------------------------------
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


@register_task
class CelegansForecast(Task):
    card = TaskCard(
        name="celegans-forecast",
        version="1.0",
        title="Forecast C. elegans whole-brain calcium activity",
        description=" ".join(__doc__.split("\n\n")[1].split()),
        datasets=(DatasetRef("celegans-activity", "1.0"), DatasetRef("celegans-connectome", "1.0")),
        split=" ".join(" ".join(__doc__.split("\n\n")[2:5]).split()),
        inputs=f"{CONTEXT} samples of the normalized calcium trace of every neuron (NaN -> 0 where unlabeled) and the labeled mask",
        targets="the next 1 and 10 samples of every labeled neuron",
        metrics=(
            MetricSpec("worms/skill_h1", True, "1 - MSE/MSE_naive at k = 1 on held-out worms (naive = copy last context sample)"),
            MetricSpec("worms/skill_h10", True, "the same over the next 10 samples"),
            MetricSpec("time/skill_h1", True, "1 - MSE/MSE_naive at k = 1 on the second half of every worm"),
            MetricSpec("worms/mse_h1", False, "MSE over labeled neurons, k = 1, held-out worms (z-scored units squared)"),
        ),
        main_metric="worms/skill_h1",
        seeds=(0, 1, 2),
        chance={"worms/skill_h1": "0 (the naive copy-last predictor)"},
        submission="run-only for now: register a model with fit(store, split, seed, connectome) and predict(context, mask, horizon)",
        references=("Simeon Q et al. (2024) arXiv:2411.12091 (dataset; NaivePredictor as the copy-last baseline)",),
    )
    models = {
        "naive": ModelSpec("naive", NaiveModel, "copy the last context sample"),
        "linear-ar": ModelSpec("linear-ar", LinearARModel, "ridge linear autoregression on 3 lags of all neurons"),
        "lstm": ModelSpec("lstm", LSTMModel, "LSTM (128 units) on values and mask, next-step change, rolled out"),
        "connectome-linear": ModelSpec("connectome-linear", ConnectomeLinearModel,
                                       "linear AR where neuron i reads only its Cook 2019 partners and itself"),
    }

    _cache: tuple | None = None

    def load(self):
        from neuroharness.loaders import get_loader, open_dataset

        activity = get_loader("celegans-activity")
        ds = activity.open(self.card.datasets[0].version)
        connectome = open_dataset("celegans-connectome", self.card.datasets[1].version)
        key = (ds.attrs["content_sha256"], connectome.attrs["content_sha256"])
        if self._cache is None or self._cache[0] != key:
            store = RaggedActivity(activity.store_path(self.card.datasets[0].version))
            self._cache = (key, store, build_splits(store), connectome.load())
        return self._cache[1], self._cache[2], self._cache[3]

    def dataset_checksums(self):
        self.load()
        return {"celegans-activity": self._cache[0][0], "celegans-connectome": self._cache[0][1]}

    def run_model(self, model_name: str, seed: int) -> dict:
        spec = self.get_model(model_name)
        store, splits, connectome = self.load()
        t0 = time.perf_counter()
        metrics = {}
        n_params = 0
        for name in SPLITS:
            model = spec.build().fit(store, splits[name], seed, connectome)
            n_params = max(n_params, int(model.n_parameters))
            acc = _Accumulator()
            for seg, ctx, tgt, mask in eval_windows(store, splits[name].test):
                acc.add(str(store.source[seg.worm]), model.predict(ctx, mask, max(HORIZONS)), ctx, tgt, mask)
            metrics.update(acc.metrics(name))
        metrics["main_score"] = metrics[self.card.main_metric]
        hyper = {k: v for k, v in vars(spec.build()).items() if not k.startswith("_") and k != "n_parameters"}
        return {"metrics": metrics, "validation_metrics": {}, "n_parameters": n_params, "hyperparameters": hyper,
                "fit_predict_seconds": time.perf_counter() - t0}
