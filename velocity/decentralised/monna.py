"""Decentralised learning with Byzantine workers: MoNNA, and plain gossip averaging as its baseline.

There is no server. ``n`` workers each hold a model; ``f`` of them are Byzantine. Every round each
honest worker

1. computes a stochastic gradient ``g`` on a minibatch of its own data, at its own parameters;
2. updates its Polyak momentum ``m ← β·m + (1 − β)·g`` (``m`` starts at zero) and takes the local
   step ``θ_{t+½} = θ − lr·m``;
3. receives ``n − f`` models, its own first. With ``byzantine_reach="all"`` (the worst case the
   paper analyses, and its code's setting) these are the ``f`` Byzantine models plus
   ``n − 2f − 1`` honest peers drawn at random; with ``"sampled"`` they are ``n − f − 1`` peers
   drawn uniformly from all other nodes, so it gets between 0 and ``f`` Byzantine models;
4. mixes: nearest-neighbour averaging (NNA) replaces its model by the average of the ``n − 2f``
   received models closest to its own, itself included. ``aggregator="average"`` averages every
   received model instead: that is plain decentralised SGD (gossip averaging, with the same local
   momentum), the non-robust baseline. Any registered aggregation rule (``"TrimmedMean"``,
   ``"Krum"``, ...) can be applied to each worker's received set as well; it sees the models
   themselves, and a rule that keeps state across rounds (CenteredClipping's centre,
   ClippedClustering's norms, FoolsGold's histories) starts afresh on every received set.

The Byzantine models are generated once per round, from the honest post-step models, by an update
attack of the Rust core (:func:`velocity.apply_attack`): the attack sees the ``(n − f) × d``
matrix of honest models with ``f`` extra rows that start as the honest mean, and overwrites those
rows. Sign flipping therefore sends ``−scale · mean(θ_{t+½})``, as the paper's code does; ALIE
sends ``μ − z·σ`` of the honest models, mimic copies one honest model. The adaptive attacks
(``adaptive_ipm``, ``adaptive_alie``, ``agr_tailored``) replay the round's mixing (its received
sets and aggregator) for each strength they try, and send the one that puts the honest workers'
mixed models furthest, on average, from the honest mean. The mixing runs in the Rust
core too (``velocity._core.nearest_neighbour_mix``, every worker's received set in one call).
The honest workers' gradients are computed together: their parameters are stacked and
``torch.func.vmap`` runs one batched gradient over all of them. Example::

    fd = load_federated("digits", num_clients=11, partition="iid")   # the n − f honest workers
    net = build_model("mlp-32", input_shape=fd.input_shape, num_classes=10)
    sim = MonnaSimulation(model=net, data=fd, n=16, f=5, learning_rate=0.5, attack="sign_flip")
    steps = sim.run(300)                       # one MonnaStep per round
    loss, acc = sim.evaluate(fd.x_test, fd.y_test)   # one value per honest worker
    gossip = MonnaSimulation(model=net, data=fd, n=16, f=5, learning_rate=0.5,
                             attack="sign_flip", aggregator="average")   # the D-SGD baseline

On a few CPU cores, tiny per-worker models run fastest with ``torch.set_num_threads(1)``.

References: Farhadkhani, Guerraoui, Gupta, Hoang, Pinot, Stephan, "Robust Collaborative Learning
with Linear Gradient Overhead", ICML 2023 (MoNNA, NNA); D-SGD with gossip averaging is the
baseline the paper compares against.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from velocity import _core
from velocity.aggregation import aggregate, apply_attack
from velocity.decentralised.setup import validate
from velocity.specs import AttackLike, AttackSpec, StrategyLike, StrategySpec
from velocity.training.device import HostCopy, resolve_device

__all__ = ["MonnaSimulation", "MonnaStep", "Reach", "nearest_neighbour_mix"]

Reach = Literal["all", "sampled"]
_REACHES = ("all", "sampled")

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def nearest_neighbour_mix(models: Any, received: Any, keep: int) -> np.ndarray:
    """Nearest-neighbour averaging of every worker's received set at once (Rust core).

    Row ``w`` of the result is the mean of the ``keep`` rows of ``received[w]`` (row indices into
    ``models``, the worker's own model first) closest in L2 distance to its first row, that row
    included; ties go to the earlier index in the set, and rows with NaN/Inf count as infinitely
    far. ``keep = len(received[w])`` is plain averaging.

    >>> nearest_neighbour_mix([[0.0], [10.0], [20.0], [100.0]], [[0, 1, 3], [1, 2, 3], [2, 1, 3]], keep=2)
    array([[ 5.],
           [15.],
           [15.]], dtype=float32)

    Reference: Farhadkhani et al., "Robust Collaborative Learning with Linear Gradient Overhead",
    ICML 2023 (NNA).
    """
    if isinstance(models, torch.Tensor):
        models = models.detach().cpu().numpy()
    x = np.ascontiguousarray(models, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"Expected models as a 2-D array (rows × parameters), got shape {x.shape}")
    if isinstance(received, (torch.Tensor, np.ndarray)):
        received = received.tolist()
    return _core.nearest_neighbour_mix(x, [list(map(int, r)) for r in received], int(keep))


@dataclass(frozen=True)
class MonnaStep:
    """One round of a decentralised simulation. Tensors are detached copies (on the CPU); rows
    follow the honest workers' order.

    Node ids in ``received``: honest workers are ``0 … n − f − 1``, Byzantine ones
    ``n − f … n − 1``.
    """

    step: int  #: the round's index, from 1
    gradients: torch.Tensor  #: ``(n − f) × d`` honest stochastic gradients
    momentum: torch.Tensor  #: ``(n − f) × d`` momentum after this round's update
    post_step_models: torch.Tensor  #: ``(n − f) × d`` models after the local step, θ − lr·m
    byzantine_models: torch.Tensor  #: ``f × d`` models the Byzantine workers sent
    received: torch.Tensor  #: ``(n − f) × (n − f)`` node ids each worker received, its own first
    mixed_models: torch.Tensor  #: ``(n − f) × d`` models after mixing (the next round's θ)
    losses: torch.Tensor  #: ``n − f`` minibatch losses, at the parameters the gradients were taken at
    attack: Mapping[str, Any] | None  #: what the attack did (name and strength); None without one

    @property
    def byzantine_received(self) -> torch.Tensor:
        """How many Byzantine models each honest worker received."""
        return (self.received >= self.received.shape[0]).sum(dim=1)


def _check(ok: bool, what: str, expected: str, got: Any) -> None:
    if not ok:
        raise ValueError(f"Expected {expected} for {what}, got {got!r}")


def _worker_data(data: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A FederatedDataset, or one (x, y) pair per honest worker."""
    if hasattr(data, "client_indices") and hasattr(data, "client"):
        return [data.client(k) for k in range(data.num_clients)]
    if not isinstance(data, Sequence) or isinstance(data, (str, bytes)):
        raise TypeError(f"Expected data as one (x, y) pair per honest worker or a FederatedDataset, got {type(data).__name__}")
    out = []
    for k, pair in enumerate(data):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"Expected an (x, y) pair for worker {k}'s data, got {type(pair).__name__}")
        x, y = (torch.as_tensor(v) for v in pair)
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(
                f"Expected as many labels as (at least one) examples for worker {k}, got {len(x)} examples and {len(y)} labels"
            )
        out.append((x, y))
    return out


class MonnaSimulation:
    """MoNNA — Polyak momentum on every worker and nearest-neighbour averaging — with ``f`` of
    ``n`` workers Byzantine; ``aggregator="average"`` gives plain decentralised SGD.

    Parameters
    ----------
    model
        The network; every honest worker starts from its parameters (float32). It is not modified.
    data
        One ``(x, y)`` pair per honest worker (``n − f`` of them), or a ``FederatedDataset`` with
        ``n − f`` clients. Byzantine workers hold no data.
    loss_fn
        ``loss_fn(outputs, targets)`` → the minibatch's mean loss (``F.cross_entropy`` by default).
    n, f
        Number of workers and of Byzantine workers among them; needs ``n − f > f``.
    learning_rate
        Step size of the local update ``θ − lr·m``.
    beta
        Momentum coefficient in [0, 1): ``m ← β·m + (1 − β)·g``. The paper uses 0.99; 0 is D-SGD.
    batch_size
        Minibatch size per worker, drawn without replacement each round; ``None`` is the full
        local data set (all workers must then hold the same number of examples).
    attack, attack_kwargs
        An update attack of the registry (``"sign_flip"``, ``"alie"``, ``"ipm"``, ...; text, dict
        or :mod:`velocity.attacks` object) and its parameters. Required when ``f > 0``.
    aggregator, aggregator_kwargs
        ``"nearest_neighbour"`` (default, MoNNA's NNA), ``"average"`` (gossip averaging), or a
        registered aggregation strategy applied to each received set (``"TrimmedMean"`` with
        ``aggregator_kwargs={"f": 5}``, ``"NNM(f=5) + Krum(f=5)"``; rules without their own ``f``
        use this ``f``). Server optimisers are not allowed: there is no server.
    byzantine_reach
        ``"all"``: every honest worker receives every Byzantine model; ``"sampled"``: each receives
        ``n − f − 1`` peers drawn uniformly from all other nodes.
    seed
        Drives the minibatches, the peer draws and randomised attacks.
    device
        Where the workers' models, data and gradients live (see
        :func:`velocity.training.resolve_device`: ``"auto"``, ``"cpu"``, ``"cuda:1"``, ...);
        ``None`` keeps the model's own device. The mixing runs in the Rust core on the host.

    References
    ----------
    Farhadkhani, Guerraoui, Gupta, Hoang, Pinot, Stephan, "Robust Collaborative Learning with
    Linear Gradient Overhead", ICML 2023.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        data: Any,
        loss_fn: LossFn = F.cross_entropy,
        n: int,
        f: int,
        learning_rate: float,
        beta: float = 0.99,
        batch_size: int | None = 32,
        attack: AttackLike | None = None,
        attack_kwargs: Mapping[str, Any] | None = None,
        aggregator: StrategyLike = "nearest_neighbour",
        aggregator_kwargs: Mapping[str, Any] | None = None,
        byzantine_reach: Reach = "all",
        seed: int = 0,
        device: str | torch.device | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"Expected model as a torch.nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError(f"Expected loss_fn as a callable loss_fn(outputs, targets), got {type(loss_fn).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"Expected an integer for seed, got {type(seed).__name__}: {seed!r}")
        setup = validate(
            n=n, f=f, attacks=self._attack_with_kwargs(attack, attack_kwargs), aggregator=aggregator, aggregator_kwargs=aggregator_kwargs
        )
        _check(0 <= beta < 1, "beta", "a value in [0, 1)", beta)
        _check(learning_rate > 0, "learning_rate", "a value > 0", learning_rate)
        _check(byzantine_reach in _REACHES, "byzantine_reach", "'all' or 'sampled'", byzantine_reach)
        if batch_size is not None:
            _check(isinstance(batch_size, int) and batch_size >= 1, "batch_size", "an integer >= 1 or None", batch_size)

        self.n, self.f = int(n), int(f)
        self.num_honest = self.n - self.f
        self.learning_rate, self.beta = float(learning_rate), float(beta)
        self.byzantine_reach: Reach = byzantine_reach
        self.loss_fn = loss_fn
        self.seed = int(seed)

        self.attack: AttackSpec | None = setup.attack
        self.aggregator: str = setup.aggregator
        self._strategy: StrategySpec | None = setup.strategy
        self._keep = setup.keep

        # The model: a private copy (on `device` when given); parameters are stacked per worker
        # and fed to functional_call.
        self._module = copy.deepcopy(model)
        if device is not None:
            self._module = self._module.to(resolve_device(device))
        named = [(k, p.detach()) for k, p in self._module.named_parameters()]
        if not named:
            raise ValueError("Expected a model with at least one parameter, got none")
        for k, p in named:
            if p.dtype != torch.float32:
                raise TypeError(f"Expected float32 parameters (the core mixes float32), got {p.dtype} for {k!r}")
        self._names = [k for k, _ in named]
        self._shapes = [p.shape for _, p in named]
        self._sizes = [p.numel() for _, p in named]
        self._buffers = {k: b.detach() for k, b in self._module.named_buffers()}
        self.device = named[0][1].device
        self._host_copy = HostCopy()
        theta0 = torch.cat([p.reshape(-1) for _, p in named])
        self.dim = theta0.numel()
        self._theta = theta0.unsqueeze(0).repeat(self.num_honest, 1)
        self._momentum = torch.zeros_like(self._theta)

        self._load_data(_worker_data(data), batch_size)
        self._grad_fn = vmap(grad_and_value(self._loss))
        self.step_count = 0

    # ------------------------------------------------------------------ configuration
    @staticmethod
    def _attack_with_kwargs(attack: AttackLike | None, kwargs: Mapping[str, Any] | None) -> AttackLike | None:
        if attack is None or (isinstance(attack, str) and attack.strip().lower() in ("", "none")):
            if kwargs:
                raise ValueError(f"Expected attack_kwargs only with an attack, got {dict(kwargs)!r} and no attack")
            return None
        if kwargs:
            if not isinstance(attack, str):
                raise TypeError(f"Expected attack as a name when attack_kwargs are given, got {type(attack).__name__}")
            return {"type": attack.strip(), **kwargs}
        return attack

    def _load_data(self, data: list[tuple[torch.Tensor, torch.Tensor]], batch_size: int | None) -> None:
        k = self.num_honest
        if len(data) != k:
            raise ValueError(f"Expected data for the n − f = {k} honest workers, got {len(data)}")
        sizes = [len(y) for _, y in data]
        longest = max(sizes)
        if batch_size is None:
            if len(set(sizes)) != 1:
                raise ValueError(
                    f"Expected equal local data sizes for full-batch gradients (batch_size=None), got sizes from {min(sizes)} to {longest}"
                )
        elif batch_size > min(sizes):
            raise ValueError(f"Expected batch_size <= the smallest local data set ({min(sizes)} examples), got {batch_size}")
        x0, y0 = data[0]
        self._x = torch.zeros((k, longest, *x0.shape[1:]), dtype=x0.dtype, device=self.device)
        self._y = torch.zeros((k, longest, *y0.shape[1:]), dtype=y0.dtype, device=self.device)
        for i, (x, y) in enumerate(data):
            if x.shape[1:] != x0.shape[1:] or y.shape[1:] != y0.shape[1:]:
                raise ValueError(
                    f"Expected every worker's examples shaped like worker 0's {tuple(x0.shape[1:])}, got {tuple(x.shape[1:])} for worker {i}"
                )
            self._x[i, : len(y)] = x.to(self.device)
            self._y[i, : len(y)] = y.to(self.device)
        self._data_sizes = np.asarray(sizes)
        self.batch_size = batch_size

    # ------------------------------------------------------------------ pieces of a round
    def _params(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Stacked per-worker parameters, ``{name: (k, *shape)}``, from the ``k × d`` matrix."""
        k = theta.shape[0]
        chunks = torch.split(theta, self._sizes, dim=1)
        return {name: c.reshape(k, *shape) for name, c, shape in zip(self._names, chunks, self._shapes, strict=True)}

    def _loss(self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(functional_call(self._module, (params, self._buffers), (x,)), y)

    def _rng(self, step: int, purpose: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, step, purpose])

    def _minibatch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        k, longest = self._x.shape[:2]
        if self.batch_size is None:
            return self._x, self._y
        keys = self._rng(step, 0).random((k, longest))
        keys[np.arange(longest)[None, :] >= self._data_sizes[:, None]] = np.inf  # padding is never drawn
        idx = torch.from_numpy(np.argsort(keys, axis=1, kind="stable")[:, : self.batch_size]).to(self.device)
        rows = torch.arange(k, device=self.device)[:, None]
        return self._x[rows, idx], self._y[rows, idx]

    def _received(self, step: int) -> np.ndarray:
        """``k × (n − f)`` node ids each honest worker receives, its own first."""
        k, n, f = self.num_honest, self.n, self.f
        rng = self._rng(step, 1)
        out = np.empty((k, n - f), dtype=np.int64)
        byzantine = np.arange(k, n)
        for w in range(k):
            if self.byzantine_reach == "all":
                others = np.delete(np.arange(k), w)
                peers = np.concatenate([rng.choice(others, size=n - 2 * f - 1, replace=False), byzantine])
            else:
                others = np.delete(np.arange(n), w)
                peers = rng.choice(others, size=n - f - 1, replace=False)
            out[w, 0], out[w, 1:] = w, peers
        return out

    def _mix(self, models: np.ndarray, received: np.ndarray, step: int) -> np.ndarray:
        if self._keep is not None:  # a mixer of the registry: it keeps the core's count of the received models
            return nearest_neighbour_mix(models, received, keep=self._keep)
        assert self._strategy is not None  # validate() gives a strategy for every other aggregator
        seed = int(self._rng(step, 3).integers(2**63))
        strategy = self._strategy
        return np.stack([aggregate(models[r], strategy, f=self.f, seed=seed) for r in received])

    # ------------------------------------------------------------------ public API
    @torch.no_grad()
    def step(self) -> MonnaStep:
        """Run one round and return what happened in it."""
        t = self.step_count + 1
        k, f = self.num_honest, self.f
        xb, yb = self._minibatch(t)
        with torch.enable_grad():
            grads, losses = self._grad_fn(self._params(self._theta), xb, yb)
        g = torch.cat([grads[name].reshape(k, -1) for name in self._names], dim=1)
        momentum = self.beta * self._momentum + (1.0 - self.beta) * g
        post = self._theta - self.learning_rate * momentum

        post_np = self._host_copy(post)  # read only within this step (the buffer is reused)
        received = self._received(t)
        outcome: dict[str, Any] | None = None
        if f > 0:
            assert self.attack is not None
            start = np.concatenate([post_np, np.repeat(post_np.mean(axis=0, keepdims=True), f, axis=0)])
            # adaptive attacks optimise against this round's mixing of the models every worker receives
            attacked, outcome = apply_attack(
                start,
                self.attack,
                malicious=list(range(k, self.n)),
                f=f,
                seed=int(self._rng(t, 2).integers(2**63)),
                defence=lambda m: self._mix(m, received, t),
            )
            byz_np = attacked[k:]
        else:
            byz_np = np.zeros((0, self.dim), np.float32)
        models = np.ascontiguousarray(np.concatenate([post_np, byz_np]))
        mixed = torch.from_numpy(self._mix(models, received, t)).to(self.device)

        self._momentum, self._theta = momentum, mixed
        self.step_count = t

        def cpu(v: torch.Tensor) -> torch.Tensor:
            return v.detach().to("cpu", copy=True)

        return MonnaStep(
            step=t,
            gradients=cpu(g),
            momentum=cpu(momentum),
            post_step_models=cpu(post),
            byzantine_models=torch.from_numpy(byz_np.copy()),
            received=torch.from_numpy(received),
            mixed_models=cpu(mixed),
            losses=cpu(losses),
            attack=outcome if f > 0 else None,
        )

    def run(self, rounds: int) -> list[MonnaStep]:
        """Run ``rounds`` rounds; returns their results (``run(0)`` → ``[]``)."""
        if not isinstance(rounds, (int, np.integer)) or isinstance(rounds, bool):
            raise TypeError(f"Expected an integer number of rounds, got {type(rounds).__name__}: {rounds!r}")
        _check(rounds >= 0, "rounds", "an integer >= 0", rounds)
        return [self.step() for _ in range(int(rounds))]

    @property
    def models(self) -> torch.Tensor:
        """The honest workers' current models, ``(n − f) × d`` (a copy)."""
        return self._theta.detach().clone()

    @property
    def momentum(self) -> torch.Tensor:
        """The honest workers' current momentum, ``(n − f) × d`` (a copy)."""
        return self._momentum.detach().clone()

    def worker_model(self, i: int) -> nn.Module:
        """A copy of the network carrying honest worker ``i``'s current parameters."""
        if not 0 <= i < self.num_honest:
            raise IndexError(f"Expected an honest worker id in 0..{self.num_honest - 1}, got {i}")
        out = copy.deepcopy(self._module)
        torch.nn.utils.vector_to_parameters(self._theta[i].clone(), out.parameters())
        return out

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
        """Every honest worker's mean loss (``loss_fn``) and accuracy (argmax of the outputs) on
        ``(x, y)``, as two tensors of ``n − f`` values; all workers are evaluated in one vmap."""
        forward = vmap(lambda p, xb: functional_call(self._module, (p, self._buffers), (xb,)), in_dims=(0, None))
        params = self._params(self._theta)
        was_training = self._module.training
        self._module.eval()
        try:
            loss_sum = torch.zeros(self.num_honest)
            correct = torch.zeros(self.num_honest)
            for s in range(0, len(y), batch_size):
                xb, yb = x[s : s + batch_size].to(self.device), y[s : s + batch_size].to(self.device)
                out = forward(params, xb)
                loss_sum += vmap(self.loss_fn, in_dims=(0, None))(out, yb).cpu() * len(yb)
                if out.dim() == 3 and yb.dim() == 1 and not yb.is_floating_point():
                    correct += (out.argmax(dim=2) == yb).sum(dim=1).cpu().float()
                else:
                    correct += float("nan")
        finally:
            self._module.train(was_training)
        return loss_sum / len(y), correct / len(y)

    def __repr__(self) -> str:
        return (
            f"MonnaSimulation(n={self.n}, f={self.f}, aggregator={self.aggregator!r}, attack={str(self.attack) if self.attack else None!r}, "
            f"byzantine_reach={self.byzantine_reach!r}, lr={self.learning_rate}, beta={self.beta}, step={self.step_count})"
        )
