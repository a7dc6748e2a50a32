"""A small, real federated experiment on built-in data, for the README's first command.

Softmax regression trained by local SGD on Gaussian blobs split non-IID (Dirichlet α) across
clients; a strategy × attack grid runs through the Rust orchestrator, and every accuracy shown
is measured on a held-out test set. (The PyTorch trainer and sweeps build on the same core.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from velocity.orchestrator import Orchestrator

DEFAULT_STRATEGIES = ("FedAvg", "FedMedian", "TrimmedMean", "Krum", "GeometricMedian", "CenteredClipping(tau=0.5)")
DEFAULT_ATTACKS = ("none", "sign_flip(scale=4.0)", "alie", "ipm(epsilon=10.0)")


@dataclass
class Blobs:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


def make_blobs(*, num_classes: int = 10, dim: int = 20, per_class: int = 300, spread: float = 0.7, seed: int = 0) -> Blobs:
    """Gaussian blobs with unit-variance clusters around random centres; 25% held out."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, spread, size=(num_classes, dim))
    x = np.concatenate([rng.normal(c, 1.0, size=(per_class, dim)) for c in centres]).astype(np.float32)
    y = np.repeat(np.arange(num_classes), per_class)
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    cut = len(y) * 3 // 4
    return Blobs(x[:cut], y[:cut], x[cut:], y[cut:], num_classes)


def dirichlet_split(y: np.ndarray, num_clients: int, alpha: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Per class, proportions ~ Dir(α) over clients (α → ∞ is iid)."""
    parts: list[list[int]] = [[] for _ in range(num_clients)]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        props = rng.dirichlet(np.full(num_clients, alpha))
        cuts = (np.cumsum(props)[:-1] * len(idx)).astype(int)
        for k, chunk in enumerate(np.split(idx, cuts)):
            parts[k].extend(chunk.tolist())
    return [np.array(sorted(p), dtype=int) for p in parts]


def _forward(w: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    dim = x.shape[1]
    logits = x @ w[: dim * k].reshape(dim, k) + w[dim * k :]
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def evaluate(w: np.ndarray, x: np.ndarray, y: np.ndarray, k: int) -> tuple[float, float]:
    """Cross-entropy loss and accuracy; a non-finite model scores NaN loss and chance-level accuracy."""
    if not np.all(np.isfinite(w)):
        return float("nan"), float(np.mean(y == 0))
    p = _forward(w, x, k)
    loss = float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)))
    return loss, float(np.mean(p.argmax(axis=1) == y))


def local_update(w: np.ndarray, x: np.ndarray, y: np.ndarray, k: int, *, lr: float, epochs: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    """Minibatch SGD on the softmax cross-entropy; returns the update (local − global)."""
    dim = x.shape[1]
    local = w.copy()
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for s in range(0, len(y), batch):
            b = order[s : s + batch]
            p = _forward(local, x[b], k)
            p[np.arange(len(b)), y[b]] -= 1.0
            p /= len(b)
            local[: dim * k] -= lr * (x[b].T @ p).ravel()
            local[dim * k :] -= lr * p.sum(axis=0)
    return (local - w).astype(np.float32)


def run_demo(
    *,
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES,
    attacks: tuple[str, ...] = DEFAULT_ATTACKS,
    num_clients: int = 10,
    num_malicious: int = 3,
    rounds: int = 15,
    alpha: float = 0.3,
    seed: int = 0,
) -> list[dict[str, object]]:
    """Run every strategy against every attack; returns one row of measured results per pair."""
    data = make_blobs(seed=seed)
    k, dim = data.num_classes, data.x_train.shape[1]
    parts = dirichlet_split(data.y_train, num_clients, alpha, np.random.default_rng(seed))
    sizes = np.array([len(p) for p in parts], dtype=np.float64)
    rows = []
    for attack in attacks:
        for strategy in strategies:
            orch = Orchestrator(
                strategy,
                attacks=attack,
                num_clients=num_clients,
                num_malicious=num_malicious if attack != "none" else 0,
                seed=seed,
            )
            w = np.zeros(dim * k + k, dtype=np.float32)
            orch.global_model = w
            rng = np.random.default_rng(seed + 1)
            initial_loss, _ = evaluate(w, data.x_test, data.y_test, k)
            for _ in range(rounds):
                updates = np.stack(
                    [
                        local_update(w, data.x_train[p], data.y_train[p], k, lr=0.1, epochs=1, batch=32, rng=rng)
                        for p in parts
                    ]
                )
                summary = orch.step(updates, weights=sizes)
                w = orch.global_model
                loss, acc = evaluate(w, data.x_test, data.y_test, k)
                orch.report_metrics(loss, acc)
            hist = orch.history
            rows.append(
                {
                    "strategy": str(orch.strategy),
                    "attack": attack,
                    "initial_loss": initial_loss,
                    "final_loss": hist[-1].global_loss,
                    "final_accuracy": hist[-1].accuracy,
                    "mean_attack_distance": float(np.mean([h.attack_distance for h in hist])),
                    "kernel_ms": float(np.mean([h.kernel_ms for h in hist])),
                    "last_summary": summary,
                }
            )
    return rows
