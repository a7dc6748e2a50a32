"""Model registry: small networks addressed by a ``model_id``.

``logreg``, ``mlp`` (hidden sizes in the id: ``mlp-256-128``; default ``mlp`` = 128-64),
``cnn28`` (McMahan et al. 2017's MNIST CNN for 1×28×28 inputs) and ``cnn32`` (a small CNN for
3×32×32 inputs such as CIFAR-10). None uses batch norm or dropout, so every model can be trained
for many clients at once with ``torch.func.vmap``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

Builder = Callable[[tuple[int, ...], int, tuple[int, ...]], nn.Module]


def _mlp(input_shape: tuple[int, ...], num_classes: int, hidden: tuple[int, ...]) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def _logreg(input_shape: tuple[int, ...], num_classes: int, _: tuple[int, ...]) -> nn.Module:
    return _mlp(input_shape, num_classes, ())


def _require_shape(model_id: str, input_shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
    if tuple(input_shape) != expected:
        raise ValueError(f"Expected inputs of shape {expected} for model {model_id!r}, got {tuple(input_shape)}")


def _cnn28(input_shape: tuple[int, ...], num_classes: int, _: tuple[int, ...]) -> nn.Module:
    _require_shape("cnn28", input_shape, (1, 28, 28))
    return nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 512),
        nn.ReLU(),
        nn.Linear(512, num_classes),
    )


def _cnn32(input_shape: tuple[int, ...], num_classes: int, _: tuple[int, ...]) -> nn.Module:
    _require_shape("cnn32", input_shape, (3, 32, 32))
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 256),
        nn.ReLU(),
        nn.Linear(256, num_classes),
    )


MODELS: dict[str, tuple[Builder, str]] = {
    "logreg": (_logreg, "multinomial logistic regression on the flattened input"),
    "mlp": (_mlp, "fully connected ReLU network; hidden sizes in the id, e.g. mlp-256-128 (default 128-64)"),
    "cnn28": (_cnn28, "CNN for 1×28×28 images (McMahan et al., AISTATS 2017)"),
    "cnn32": (_cnn32, "CNN for 3×32×32 images"),
}


def list_models() -> dict[str, str]:
    """Known model ids and what they are."""
    return {k: v[1] for k, v in MODELS.items()}


def parse_model_id(model_id: str) -> tuple[str, tuple[int, ...]]:
    """``"mlp-256-128"`` → ``("mlp", (256, 128))``; ``"mlp"`` → ``("mlp", (128, 64))``."""
    if not isinstance(model_id, str):
        raise TypeError(f"Expected model_id as text, got {type(model_id).__name__}")
    base, *sizes = model_id.strip().lower().split("-")
    if base not in MODELS:
        raise ValueError(f"Unknown model_id {model_id!r}; expected one of: {', '.join(MODELS)} (e.g. mlp-256-128)")
    if sizes and base != "mlp":
        raise ValueError(f"Expected hidden sizes only for mlp (e.g. mlp-256-128), got {model_id!r}")
    try:
        hidden = tuple(int(s) for s in sizes)
    except ValueError:
        raise ValueError(f"Expected integer hidden sizes in {model_id!r}, e.g. mlp-256-128") from None
    if any(h < 1 for h in hidden):
        raise ValueError(f"Expected hidden sizes >= 1 in {model_id!r}")
    if base == "mlp" and not sizes:
        hidden = (128, 64)
    return base, hidden


def build_model(model_id: str, *, input_shape: tuple[int, ...], num_classes: int, seed: int = 0) -> nn.Module:
    """Build a model with weights initialised from ``seed`` (PyTorch's default initialisers)."""
    base, hidden = parse_model_id(model_id)
    if num_classes < 2:
        raise ValueError(f"Expected num_classes >= 2, got {num_classes}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MODELS[base][0](tuple(input_shape), num_classes, hidden)
