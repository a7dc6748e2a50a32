"""Built-in offline data sets, named like strategies: ``"blobs"``, ``"blobs(classes=4, dim=20)"``,
``"digits"``, ``"synthetic-mnist(samples=6000)"``. They make every example, test and notebook
runnable with no network."""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ArrayData:
    """Decoded examples: x is float32 (N, *shape), y is int64 in 0..C-1. The test arrays are
    None when the source has no test split (one is then split off)."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    num_classes: int
    #: Per example of ``x``, the value of the column a natural partition groups by (a writer, a
    #: user, a site), as text; None when none was asked for (or the set has none).
    groups: np.ndarray | None = None
    #: The name of that column.
    group_column: str | None = None


def _blobs(seed: int, classes: int = 10, dim: int = 20, per_class: int = 300, spread: float = 0.7) -> ArrayData:
    """Unit-variance Gaussian clusters around centres drawn from N(0, spread²)."""
    rng = np.random.default_rng([seed, 0xB10B5])
    centres = rng.normal(0.0, spread, size=(classes, dim))
    x = np.concatenate([rng.normal(c, 1.0, size=(per_class, dim)) for c in centres]).astype(np.float32)
    y = np.repeat(np.arange(classes, dtype=np.int64), per_class)
    return ArrayData(x, y, None, None, classes)


def _digits(seed: int) -> ArrayData:
    """The real 8×8 handwritten digits scikit-learn ships (1797 images, UCI ML hand-written digits)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None, :, :]
    return ArrayData(x, d.target.astype(np.int64), None, None, 10)


def _synthetic_mnist(seed: int, samples: int = 12000, noise: float = 0.25, writers: int = 100) -> ArrayData:
    """MNIST-shaped (1×28×28, 10 classes) and learnable: each class is a fixed smooth stroke
    pattern; examples are randomly shifted copies with pixel noise. For speed tests. Each example
    has a writer (column ``writer``, for the natural partition; writers write different amounts,
    by a Zipf-like law), drawn from a stream of its own so the images do not depend on it."""
    rng = np.random.default_rng([seed, 0x3A15])
    grid = np.stack(np.meshgrid(np.arange(28), np.arange(28), indexing="ij"), -1).astype(np.float32)
    templates = []
    for _ in range(10):
        img = np.zeros((28, 28), np.float32)
        for centre in rng.uniform(7, 21, size=(4, 2)):
            img += np.exp(-((grid - centre) ** 2).sum(-1) / (2 * rng.uniform(2.0, 4.0) ** 2))
        templates.append(img / img.max())
    y = rng.integers(0, 10, size=samples).astype(np.int64)
    shifts = rng.integers(-2, 3, size=(samples, 2))
    x = np.empty((samples, 1, 28, 28), np.float32)
    for i in range(samples):
        x[i, 0] = np.roll(templates[y[i]], tuple(shifts[i]), axis=(0, 1))
    x += rng.normal(0, noise, size=x.shape).astype(np.float32)
    np.clip(x, 0.0, 1.0, out=x)
    if not isinstance(writers, int) or isinstance(writers, bool) or not 1 <= writers <= samples:
        raise ValueError(f"Expected writers as an integer in 1..samples = {samples}, got {writers!r}")
    pen = np.random.default_rng([seed, 0x3A15, 0x3717E5])
    share = 1.0 / np.arange(1, writers + 1)
    writer = pen.choice(writers, size=samples, p=share / share.sum())
    return ArrayData(x, y, None, None, 10, np.array([f"w{w:03d}" for w in writer]), "writer")


BUILTINS: dict[str, tuple[Callable[..., ArrayData], str]] = {
    "blobs": (_blobs, "Gaussian blobs (classes, dim, per_class, spread)"),
    "digits": (_digits, "the real 8×8 handwritten digits from scikit-learn, 1797 images"),
    "synthetic-mnist": (_synthetic_mnist, "MNIST-shaped 1×28×28 synthetic images with writers (samples, noise, writers)"),
}


def parse_builtin(source: str) -> tuple[str, dict[str, Any]] | None:
    """``"blobs(classes=4)"`` → ``("blobs", {"classes": 4})``; None if not a built-in name."""
    text = source.strip()
    name = text.split("(", 1)[0].strip().lower().replace("_", "-")
    if name not in BUILTINS:
        return None
    if "(" not in text:
        return name, {}
    try:
        call = ast.parse(text.replace(text.split("(", 1)[0], "f", 1), mode="eval").body
        if not isinstance(call, ast.Call) or call.args or any(kw.arg is None for kw in call.keywords):
            raise ValueError
        kwargs = {str(kw.arg): ast.literal_eval(kw.value) for kw in call.keywords}
    except (SyntaxError, ValueError):
        raise ValueError(f"Expected keyword arguments like {name}(key=value, ...), got {source!r}") from None
    return name, kwargs


def load_builtin(name: str, kwargs: dict[str, Any], seed: int) -> ArrayData:
    fn, _ = BUILTINS[name]
    try:
        return fn(seed, **kwargs)
    except TypeError as e:
        import inspect

        allowed = [p for p in inspect.signature(fn).parameters if p != "seed"]
        raise ValueError(f"Unknown option for the built-in data set {name!r}: {e}; expected: {', '.join(allowed) or 'none'}") from None
