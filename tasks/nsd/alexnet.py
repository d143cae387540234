"""AlexNet for the Algonauts 2023 devkit baseline: the network, its weights, its preprocessing, its features.

Why the network is defined here: the devkit calls ``torchvision.models.alexnet(pretrained=True)``, but the
project pins torch 2.13.0 (CPU) and the torchvision releases on PyPI that exist for it need torch >= 2.14,
so torchvision cannot be installed. :class:`AlexNet` therefore rebuilds torchvision's AlexNet from its
published architecture with the same module tree (``features.0/3/6/8/10`` convolutions,
``classifier.1/4/6`` linear layers), so torchvision's own weight file ``alexnet-owt-7be5be79.pth`` loads
into it with ``strict=True``, and nothing else is needed from torchvision.

Weights are never downloaded by the harness. They are read from ``weights`` (a path) or else from the torch
hub cache, ``torch.hub.get_dir()/checkpoints/alexnet-owt-7be5be79.pth``, where torchvision (and the one-line
command in :data:`HOW_TO_GET`) put them; absent, :func:`resolve_weights` raises an error naming both places.
The cached file is checked against the sha256 prefix in its name (torchvision's convention).

Features (the devkit's ``01_extract_image_features.py``): each image resized to 224 × 224, scaled to [0, 1],
normalised with the ImageNet mean and std, then the outputs of maxpool1, maxpool2, ReLU3, ReLU4, maxpool5,
ReLU6, ReLU7 and fc8 flattened and concatenated: :data:`N_FEATURES` = 205,672 values per image.

Resizing differs slightly from the devkit: it resizes PIL images (bilinear with antialiasing, uint8 output);
:func:`preprocess` uses ``torch.nn.functional.interpolate(mode="bilinear", antialias=True)`` on the same
0-255 values and rounds to whole grey levels like PIL, which leaves differences of at most one grey level
(PIL computes in fixed point) on some pixels.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neuroharness.errors import DataFormatError

WEIGHTS_FILE = "alexnet-owt-7be5be79.pth"
WEIGHTS_URL = f"https://download.pytorch.org/models/{WEIGHTS_FILE}"
#: torchvision names each weight file with the first hex digits of its sha256
WEIGHTS_SHA256_PREFIX = "7be5be79"
HOW_TO_GET = (f"python -c \"import torch; torch.hub.load_state_dict_from_url('{WEIGHTS_URL}', check_hash=True)\" "
              "(downloads torchvision's ImageNet AlexNet weights, 233 MB, into the torch hub cache)")

SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: The devkit's layers, in its order, with their output shapes at 224 × 224 input.
LAYERS = {
    "maxpool1": (64, 27, 27),
    "maxpool2": (192, 13, 13),
    "ReLU3": (384, 13, 13),
    "ReLU4": (256, 13, 13),
    "maxpool5": (256, 6, 6),
    "ReLU6": (4096,),
    "ReLU7": (4096,),
    "fc8": (1000,),
}
N_FEATURES = sum(math.prod(s) for s in LAYERS.values())  # 205,672
#: Where each layer is tapped: (module list, index), the devkit's numbering of torchvision's modules.
_TAPS = {("features", 2): "maxpool1", ("features", 5): "maxpool2", ("features", 7): "ReLU3",
         ("features", 9): "ReLU4", ("features", 12): "maxpool5", ("classifier", 2): "ReLU6",
         ("classifier", 5): "ReLU7", ("classifier", 6): "fc8"}


class AlexNet(nn.Module):
    """torchvision's AlexNet (Krizhevsky 2014 "one weird trick" variant), same module tree and state-dict keys."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(p=0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))

    def layer_features(self, x: torch.Tensor) -> np.ndarray:
        """``(b, N_FEATURES)`` float32: the devkit's layers of a preprocessed batch, flattened, concatenated."""
        out = np.empty((x.shape[0], N_FEATURES), np.float32)
        offset = 0
        x = x.detach()

        def tap(where, k, x):
            nonlocal offset
            if (where, k) in _TAPS:
                # copied at once: the in-place ReLUs that follow must not change what was tapped
                flat = x.detach().flatten(1)
                out[:, offset: offset + flat.shape[1]] = flat.numpy()
                offset += flat.shape[1]

        for k, layer in enumerate(self.features):
            x = layer(x)
            tap("features", k, x)
        x = torch.flatten(self.avgpool(x), 1)
        for k, layer in enumerate(self.classifier):
            x = layer(x)
            tap("classifier", k, x)
        assert offset == N_FEATURES
        return out


def default_weights_path() -> Path:
    """Where torchvision keeps its AlexNet weights: ``torch.hub.get_dir()/checkpoints/alexnet-owt-7be5be79.pth``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def resolve_weights(weights: str | Path | None = None) -> Path:
    """The weight file to load: ``weights`` if given (it must exist), else the torch hub cache's copy."""
    cached = default_weights_path()
    if weights is not None and str(weights) != "":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise DataFormatError(f"AlexNet weights {path}: file not found (the model's `weights` hyperparameter). "
                                  f"Pass the path of torchvision's {WEIGHTS_FILE}, or leave `weights` unset to "
                                  f"read it from the torch hub cache ({cached}); to get it: {HOW_TO_GET}")
        return path
    if not cached.is_file():
        raise DataFormatError(f"AlexNet weights not found: no `weights` path was given and the torch hub cache has no "
                              f"{cached}. The harness never downloads them by itself. Get them with: {HOW_TO_GET}; "
                              f"or pass weights=PATH (--hyperparameter weights=PATH) to a copy of {WEIGHTS_FILE}")
    return cached


def load_alexnet(path: str | Path) -> AlexNet:
    """An :class:`AlexNet` in eval mode with the state dict of ``path`` (``strict=True``; tensors only)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds on a damaged or foreign file
        raise DataFormatError(f"AlexNet weights {path}: unreadable as a torch state dict ({type(e).__name__}: {e})") \
            from None
    if not isinstance(state, dict):
        raise DataFormatError(f"AlexNet weights {path}: holds a {type(state).__name__}, expected a state dict "
                              "(parameter name -> tensor) like torchvision's")
    model = AlexNet()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise DataFormatError(f"AlexNet weights {path}: not torchvision's AlexNet state dict "
                              f"({' '.join(str(e).split())})") from None
    return model.eval()


@functools.lru_cache(maxsize=1)
def _cached_network(path: str, size: int, mtime_ns: int) -> AlexNet:
    return load_alexnet(path)


def network(path: Path) -> AlexNet:
    """:func:`load_alexnet`, kept for the next call with the same unchanged file (models of several subjects)."""
    st = path.stat()
    return _cached_network(str(path.resolve()), st.st_size, st.st_mtime_ns)


def preprocess(batch: np.ndarray) -> torch.Tensor:
    """``(b, y, x, 3)`` uint8 images -> ``(b, 3, 224, 224)`` float32: resized (bilinear, antialiased, rounded
    to grey levels like PIL), scaled to [0, 1], ImageNet-normalised."""
    x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float()
    if tuple(x.shape[-2:]) != (SIZE, SIZE):
        x = nn.functional.interpolate(x, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
        x = x.round_().clamp_(0, 255)
    x = x / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def image_features(model: AlexNet, batch: np.ndarray) -> np.ndarray:
    """``(b, N_FEATURES)`` float32 devkit features of a batch of uint8 RGB images."""
    with torch.no_grad():
        return model.layer_features(preprocess(batch))
