"""A shallow convolutional network for EEG windows, after Schirrmeister et al. (2017).

Schirrmeister RT, Springenberg JT, Fiederer LDJ, et al. (2017) Deep learning with convolutional neural
networks for EEG decoding and visualization. Human Brain Mapping 38(11):5391-5420,
doi:10.1002/hbm.23730 -- the "shallow ConvNet" (ShallowFBCSPNet), written here from the paper's
description (braindecode cannot be imported in this environment: it requires torchaudio):

    temporal convolution (40 filters of 25 samples at 250 Hz, with bias)
    -> spatial convolution (40 filters over all channels, no bias)
    -> batch normalization -> square -> mean pooling (75 samples, stride 15) -> log
    -> dropout (0.5) -> dense layer to 2 classes (a convolution spanning the remaining time)

Lengths are given in seconds (0.1 s, 0.3 s, 0.06 s) and converted at the windows' rate, so they equal
the paper's at 250 Hz. The temporal and spatial convolutions have no non-linearity between them; they
are computed as ONE convolution whose (filters, channels, taps) kernel is the product of the two
factors (the same function and the same parameters as the two layers, trained through the
factors), about ten times faster on a CPU than running them one after the other.

Input: volts -> microvolts, each window's per-channel mean removed, divided by the standard deviation
of the training windows (a fitted constant). Training: AdamW with a cosine learning-rate schedule,
cross-entropy weighted by inverse class frequency (of windows), batches shuffled by a seeded
generator; run single-threaded with the seed fixed, so a seed gives the same probabilities twice.
"""
from __future__ import annotations

import math

import numpy as np

from .data import EegInfo

__all__ = ["ShallowConvNet"]

MICROVOLTS = 1e6


def _network(n_channels: int, n_times: int, sfreq: float, n_filters: int, filter_s: float, pool_s: float,
             pool_stride_s: float, drop_prob: float):
    import torch
    from torch import nn
    from torch.nn import functional as F

    kernel = max(1, int(round(filter_s * sfreq)))
    pool = max(1, int(round(pool_s * sfreq)))
    stride = max(1, int(round(pool_stride_s * sfreq)))
    n_conv = n_times - kernel + 1
    if n_conv < pool:
        raise ValueError(f"windows of {n_times} samples are too short for a {kernel}-sample temporal filter and "
                         f"{pool}-sample pooling ({n_times / sfreq:g} s at {sfreq:g} Hz); use longer windows")
    n_pooled = (n_conv - pool) // stride + 1

    class FactorizedConv(nn.Module):
        """Temporal then spatial convolution, computed as one (n_filters, 1, channels, taps) convolution."""

        def __init__(self):
            super().__init__()
            self.temporal_weight = nn.Parameter(torch.empty(n_filters, kernel))
            self.temporal_bias = nn.Parameter(torch.zeros(n_filters))
            self.spatial_weight = nn.Parameter(torch.empty(n_filters, n_filters, n_channels))
            # Glorot-uniform bounds of the two layers as separate convolutions (fan_in, fan_out per layer)
            t = math.sqrt(6.0 / (kernel + n_filters * kernel))
            s = math.sqrt(6.0 / (n_filters * n_channels + n_filters * n_channels))
            nn.init.uniform_(self.temporal_weight, -t, t)
            nn.init.uniform_(self.spatial_weight, -s, s)

        def forward(self, x):  # x (B, 1, C, T)
            w = torch.einsum("gfc,fk->gck", self.spatial_weight, self.temporal_weight).unsqueeze(1)
            b = torch.einsum("gfc,f->g", self.spatial_weight, self.temporal_bias)
            return F.conv2d(x, w, b)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = FactorizedConv()
            self.bn = nn.BatchNorm2d(n_filters, momentum=0.1)
            self.pool = nn.AvgPool2d((1, pool), stride=(1, stride))
            self.drop = nn.Dropout(drop_prob)
            self.classifier = nn.Conv2d(n_filters, 2, (1, n_pooled))
            nn.init.xavier_uniform_(self.classifier.weight)
            nn.init.zeros_(self.classifier.bias)

        def forward(self, x):  # x (B, C, T) -> (B, 2) logits
            h = self.bn(self.conv(x.unsqueeze(1)))
            h = torch.log(torch.clamp(self.pool(h * h), min=1e-6))
            return self.classifier(self.drop(h)).flatten(1)

    return Net()


class ShallowConvNet:
    """Shallow ConvNet (see the module docstring); :class:`~neuroharness.tasks.protocols.WindowClassifier`."""

    def __init__(self, epochs: int = 8, batch_size: int = 32, lr: float = 1e-3, weight_decay: float = 0.0,
                 n_filters: int = 40, filter_s: float = 0.1, pool_s: float = 0.3, pool_stride_s: float = 0.06,
                 drop_prob: float = 0.5):
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.n_filters = int(n_filters)
        self.filter_s = float(filter_s)
        self.pool_s = float(pool_s)
        self.pool_stride_s = float(pool_stride_s)
        self.drop_prob = float(drop_prob)
        self.n_parameters = 0

    def _inputs(self, X) -> np.ndarray:
        x = np.asarray(X, dtype=np.float32) * np.float32(MICROVOLTS)
        x = x - x.mean(axis=-1, keepdims=True)
        return x / np.float32(self._scale)

    def fit(self, X, y, groups, info: EegInfo, seed: int):
        import torch

        from ..model_utils import single_thread

        X = np.asarray(X)
        y = np.asarray(y).astype(np.int64)
        if X.ndim != 3 or len(X) != len(y):
            raise ValueError(f"expected X (n, channels, times) and y (n,); got {X.shape}, {y.shape}")
        if set(np.unique(y)) != {0, 1}:
            raise ValueError("the training windows need both labels 0 and 1")
        self._scale = float(np.std(np.asarray(X, dtype=np.float64) * MICROVOLTS)) or 1.0
        counts = np.bincount(y, minlength=2).astype(np.float64)
        with single_thread(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            net = _network(X.shape[1], X.shape[2], float(info.sfreq), self.n_filters, self.filter_s, self.pool_s,
                           self.pool_stride_s, self.drop_prob)
            xt = torch.from_numpy(np.ascontiguousarray(self._inputs(X)))
            yt = torch.from_numpy(y)
            weight = torch.tensor(len(y) / (2.0 * counts), dtype=torch.float32)
            opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.epochs))
            gen = torch.Generator().manual_seed(int(seed))
            loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
            net.train()
            loss = None
            for _ in range(self.epochs):
                order = torch.randperm(len(yt), generator=gen)
                for lo in range(0, len(order), self.batch_size):
                    idx = order[lo:lo + self.batch_size]
                    if len(idx) < 2:  # batch norm needs two samples
                        continue
                    opt.zero_grad()
                    loss = loss_fn(net(xt[idx]), yt[idx])
                    loss.backward()
                    opt.step()
                sched.step()
            self.final_loss_ = float(loss.detach()) if loss is not None else float("nan")
        net.eval()
        self._net = net
        self.n_parameters = int(sum(p.numel() for p in net.parameters()))
        return self

    def predict_proba(self, X) -> np.ndarray:
        import torch

        from ..model_utils import single_thread

        x = self._inputs(X)
        out = []
        with single_thread(), torch.no_grad():
            for lo in range(0, len(x), 256):
                logits = self._net(torch.from_numpy(np.ascontiguousarray(x[lo:lo + 256])))
                out.append(torch.softmax(logits, dim=1)[:, 1].double().numpy())
        return np.concatenate(out) if out else np.zeros(0)
