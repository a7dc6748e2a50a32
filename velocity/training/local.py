"""Local client training.

Both trainers take the same :class:`ClientBatchPlan` — the exact minibatches (global indices into
the training tensors) every client visits this round — so they compute the same updates:

- :func:`train_clients_loop` trains one client after another with ``torch.optim.SGD``; it is the
  reference.
- :func:`train_clients_batched` trains all clients at once: the parameters of the ``k`` clients
  are rows of one matrix and one ``torch.func.vmap``-ed gradient step advances every client
  still training. A client's last, smaller batch is padded with masked examples.

With DP-SGD (``cfg.dp``) both clip each example's gradient and sum them
(:mod:`velocity.training.dp_sgd`: by ghost clipping for sequences of linear and convolution
layers, by per-example gradients otherwise) and add noise drawn from each client's own
generator, so the two trainers add the same noise.

:func:`prefers_batched` says which of the two is faster for a model on a device.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from velocity.training import dp_sgd
from velocity.training.config import LocalTrainingConfig


@dataclass(frozen=True)
class ClientBatchPlan:
    """``batches[i]`` is client i's ordered list of minibatches (int64 index tensors into x/y).

    For DP-SGD, ``sample_rates[i]`` is client i's Poisson sample rate q (each example is in each
    batch with probability q), ``expected_batch[i]`` = q · its examples (the divisor of its noisy
    gradient sums), and ``noise_seeds[i]`` seeds the generator of its noise."""

    batches: tuple[tuple[torch.Tensor, ...], ...]
    sample_rates: tuple[float, ...] | None = None
    expected_batch: tuple[float, ...] | None = None
    noise_seeds: tuple[int, ...] | None = None

    @property
    def num_clients(self) -> int:
        return len(self.batches)

    @classmethod
    def make(
        cls,
        client_indices: Sequence[np.ndarray],
        cfg: LocalTrainingConfig,
        *,
        seed: int,
        round: int,
        client_ids: Sequence[int],
    ) -> ClientBatchPlan:
        """Shuffle each client's examples every local epoch with a generator seeded by
        (seed, round, client id), so the plan does not depend on which other clients were sampled.

        With DP-SGD the batches are Poisson samples instead, as the accountant assumes: each
        epoch is ⌈examples / batch_size⌉ steps, each taking every example with probability q = 1
        / that many steps (Opacus's Poisson data loader), so a batch holds batch_size examples on
        average and may be empty."""
        if cfg.dp is not None:
            return cls._poisson(client_indices, cfg, seed=seed, round=round, client_ids=client_ids)
        plans = []
        for cid, idx in zip(client_ids, client_indices, strict=True):
            rng = np.random.default_rng([seed, round, int(cid)])
            batches = []
            for _ in range(cfg.local_epochs):
                perm = np.asarray(idx)[rng.permutation(len(idx))]
                batches += [torch.from_numpy(perm[s : s + cfg.batch_size].astype(np.int64)) for s in range(0, len(perm), cfg.batch_size)]
            plans.append(tuple(batches))
        return cls(tuple(plans))

    @classmethod
    def _poisson(
        cls, client_indices: Sequence[np.ndarray], cfg: LocalTrainingConfig, *, seed: int, round: int, client_ids: Sequence[int]
    ) -> ClientBatchPlan:
        plans, rates, expected, noise_seeds = [], [], [], []
        for cid, idx in zip(client_ids, client_indices, strict=True):
            idx = np.asarray(idx)
            steps = max(1, -(-len(idx) // cfg.batch_size))
            q = 1.0 / steps
            rng = np.random.default_rng([seed, round, int(cid), 0xD9])
            draws = rng.random((cfg.local_epochs * steps, len(idx))) < q
            plans.append(tuple(torch.from_numpy(idx[row].astype(np.int64)) for row in draws))
            rates.append(q)
            expected.append(q * len(idx))
            noise_seeds.append(int(np.random.SeedSequence([seed, round, int(cid), 0xD9]).generate_state(1, np.uint64)[0] >> 1))
        return cls(tuple(plans), tuple(rates), tuple(expected), tuple(noise_seeds))

    def noise_generator(self, i: int, device: torch.device) -> torch.Generator:
        """Client i's generator of DP-SGD noise."""
        assert self.noise_seeds is not None, "a plan without DP-SGD draws no noise"
        return torch.Generator(device=device).manual_seed(self.noise_seeds[i])


def flatten_params(model: nn.Module) -> torch.Tensor:
    """The model's parameters as one vector in their dtype (float32 for the registry's models),
    in the layout every update row uses."""
    return parameters_to_vector(model.parameters()).detach()


def train_clients_loop(
    model: nn.Module, global_params: torch.Tensor, x: torch.Tensor, y: torch.Tensor, plan: ClientBatchPlan, cfg: LocalTrainingConfig
) -> torch.Tensor:
    """Reference trainer: one client at a time. Returns the ``k × d`` updates (local − global), in
    the dtype and on the device of ``global_params`` (the model and data must share them)."""
    updates = torch.empty(plan.num_clients, global_params.numel(), dtype=global_params.dtype, device=global_params.device)
    # One local copy of the model, reset to the global parameters for each client (a deep copy per
    # client cost a third of a round of 100 small clients).
    local = copy.deepcopy(model)
    params = list(local.parameters())
    # the global parameters, as views of global_params shaped like the model's (never written)
    anchor = [v.view_as(p) for v, p in zip(global_params.split([p.numel() for p in params]), params, strict=True)]
    private = None if cfg.dp is None else _LoopDP(local, cfg, plan, x.device)
    for i, batches in enumerate(plan.batches):
        with torch.no_grad():
            for p, a in zip(params, anchor, strict=True):
                p.copy_(a)
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        noise = None if private is None else plan.noise_generator(i, x.device)
        for batch in batches:
            idx = batch.to(x.device)
            opt.zero_grad()
            if private is not None and noise is not None:
                private.set_gradients(params, anchor, x[idx], y[idx], i, noise)
                opt.step()
                continue
            loss = F.cross_entropy(local(x[idx]), y[idx])
            if cfg.mu > 0:
                loss = loss + cfg.mu / 2 * sum(((p - a) ** 2).sum() for p, a in zip(params, anchor, strict=True))
            loss.backward()
            opt.step()
        torch.cat([p.detach().reshape(-1) for p in params], out=updates[i])
        updates[i] -= global_params
    return updates


class _LoopDP:
    """DP-SGD's gradient for the reference trainer, one client's batch at a time."""

    def __init__(self, local: nn.Module, cfg: LocalTrainingConfig, plan: ClientBatchPlan, device: torch.device) -> None:
        assert cfg.dp is not None and plan.expected_batch is not None, "a DP-SGD plan (ClientBatchPlan.make with cfg.dp)"
        self.cfg, self.dp, self.expected = cfg, cfg.dp, plan.expected_batch
        self.names = [n for n, _ in local.named_parameters()]
        self.clipped_sum = dp_sgd.clipped_sum(local)
        self.device = device

    def set_gradients(
        self,
        params: list[nn.Parameter],
        anchor: list[torch.Tensor],
        xb: torch.Tensor,
        yb: torch.Tensor,
        client: int,
        noise: torch.Generator,
    ) -> None:
        """Each parameter's .grad: (clipped sum + N(0, σ²C²)) / expected batch, plus the proximal term."""
        dp = self.dp
        with torch.no_grad():
            current = {n: p.detach() for n, p in zip(self.names, params, strict=True)}
            if len(yb) > 0:
                sums = self.clipped_sum(current, xb, yb, torch.ones(len(yb), device=self.device), dp.max_grad_norm)
            else:  # an empty Poisson batch: noise alone
                sums = {n: torch.zeros_like(v) for n, v in current.items()}
            for n, p, a in zip(self.names, params, anchor, strict=True):
                z = torch.empty_like(p).normal_(generator=noise)
                g = (sums[n] + dp.noise_multiplier * dp.max_grad_norm * z) / self.expected[client]
                if self.cfg.mu > 0:
                    g = g + self.cfg.mu * (p.detach() - a)
                p.grad = g


def train_clients_batched(
    model: nn.Module, global_params: torch.Tensor, x: torch.Tensor, y: torch.Tensor, plan: ClientBatchPlan, cfg: LocalTrainingConfig
) -> torch.Tensor:
    """All clients at once with ``torch.func``; same updates as :func:`train_clients_loop`.

    The ``k`` clients' parameters are rows of one ``k × d`` matrix, updated in place with the
    operations ``torch.optim.SGD`` performs. Clients are ordered by decreasing plan length, so the
    clients still training at step ``t`` are the first rows: a step works on views of those rows and
    costs nothing for clients whose plan is done."""
    k = plan.num_clients
    steps_of = [len(b) for b in plan.batches]
    order = sorted(range(k), key=lambda i: -steps_of[i])  # stable: equal plans keep their order
    template = copy.deepcopy(model)
    vector_to_parameters(global_params.clone(), template.parameters())
    names = [n for n, _ in template.named_parameters()]
    anchor = {n: p.detach() for n, p in template.named_parameters()}

    rows = global_params.unsqueeze(0).repeat(k, 1)  # row r: client order[r]
    buffers = torch.zeros_like(rows) if cfg.momentum > 0 else None

    def views(matrix: torch.Tensor) -> dict[str, torch.Tensor]:
        # each parameter as a (k, *shape) view of its columns, in parameters_to_vector's layout
        out, offset = {}, 0
        for n, p in anchor.items():
            out[n] = matrix[:, offset : offset + p.numel()].view(k, *p.shape)
            offset += p.numel()
        return out

    params = views(rows)
    momentum = views(buffers) if buffers is not None else None

    steps = max(steps_of, default=0)
    # The widest batch drawn, not cfg.batch_size: a batch size above a client's data (10**9 was
    # tried) pads nothing, and the padding stays bounded by the data's size.
    bsz = max(1, max((len(idx) for batches in plan.batches for idx in batches), default=1))  # (Poisson batches may all be empty)
    # Padded global indices and masks, (k, steps, bsz) in training order: one gather per step.
    host_index = np.zeros((k, steps, bsz), dtype=np.int64)
    sizes = np.zeros((k, steps, 1), dtype=np.int64)
    for r, i in enumerate(order):
        for t, batch in enumerate(plan.batches[i]):
            host_index[r, t, : len(batch)] = batch.numpy()
            sizes[r, t] = len(batch)
    # built on the host (numpy: cheap per-slice writes), then one copy each
    mask = torch.from_numpy(np.arange(bsz) < sizes).to(x.device, global_params.dtype)
    index = torch.from_numpy(host_index).to(x.device)

    def loss_fn(p: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor, mb: torch.Tensor) -> torch.Tensor:
        per_example = F.cross_entropy(functional_call(template, p, (xb,)), yb, reduction="none")
        loss = (per_example * mb).sum() / mb.sum().clamp_min(1.0)
        if cfg.mu > 0:
            loss = loss + cfg.mu / 2 * sum(((p[n] - anchor[n]) ** 2).sum() for n in names)
        return loss

    step_grads = vmap(grad(loss_fn))
    dp = cfg.dp
    if dp is not None:
        assert plan.expected_batch is not None, "a DP-SGD plan (ClientBatchPlan.make with cfg.dp)"
        clipped = dp_sgd.clipped_sum(template)

        def clipped_sums(p: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor, mb: torch.Tensor) -> dict[str, torch.Tensor]:
            return clipped(p, xb, yb, mb, dp.max_grad_norm)

        step_sums = vmap(clipped_sums)
        generators = [plan.noise_generator(i, x.device) for i in order]  # row r's
        divisor = torch.tensor([plan.expected_batch[i] for i in order], dtype=global_params.dtype, device=x.device)
    with torch.no_grad():
        for t in range(steps):
            live = sum(1 for s in steps_of if s > t)  # clients still training: the first `live` rows
            current = {n: params[n][:live] for n in names}
            idx = index[:live, t]
            if dp is None:
                grads = step_grads(current, x[idx], y[idx], mask[:live, t])
            else:
                grads = step_sums(current, x[idx], y[idx], mask[:live, t])
                noise = _draw_noise({n: grads[n] for n in names}, generators[:live])
                for n in names:
                    z = noise[n]
                    grads[n] = (grads[n] + dp.noise_multiplier * dp.max_grad_norm * z) / divisor[:live].view(-1, *[1] * (z.dim() - 1))
                    if cfg.mu > 0:
                        grads[n] = grads[n] + cfg.mu * (current[n] - anchor[n])
            for n in names:
                # torch.optim.SGD's single-tensor step, operation for operation
                g = grads[n]
                if cfg.weight_decay > 0:
                    g = g.add(current[n], alpha=cfg.weight_decay)
                if momentum is not None:
                    buf = momentum[n][:live]
                    buf.mul_(cfg.momentum).add_(g)  # a zero buffer: buf = g on a client's first step, as SGD
                    g = buf
                current[n].add_(g, alpha=-cfg.lr)
    rows.sub_(global_params)
    if order == list(range(k)):
        return rows
    return rows.index_select(0, torch.tensor(np.argsort(order), device=rows.device))


def _draw_noise(like: dict[str, torch.Tensor], generators: Sequence[torch.Generator]) -> dict[str, torch.Tensor]:
    """N(0, 1) shaped as each ``(clients, *shape)`` tensor in ``like``: row r from generator r,
    parameter by parameter in order, as the loop trainer draws a client's noise. Drawing is most of
    a DP-SGD step's cost under ghost clipping, and each client's generator is its own, so the
    clients are spread over torch's threads (the values do not depend on how)."""
    noise = {n: torch.empty_like(v) for n, v in like.items()}

    def draw(r: int) -> None:
        for z in noise.values():
            z[r].normal_(generator=generators[r])

    workers = min(torch.get_num_threads(), len(generators))
    if workers > 1 and next(iter(like.values())).device.type == "cpu":
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(draw, range(len(generators))))
    else:
        for r in range(len(generators)):
            draw(r)
    return noise


#: With DP-SGD on the CPU, the batched trainer is the faster only while a step's per-example
#: gradients (clients × batch × parameters, float32) stay below about this many bytes.
DP_BATCHED_CPU_BYTES = 256 * 2**20


def prefers_batched(model: nn.Module, device: torch.device, *, per_example_rows: int = 0) -> bool:
    """Whether :func:`train_clients_batched` is the faster trainer for ``model`` on ``device``:
    always on a GPU (one kernel per layer and step instead of one per client), and on the CPU
    for models without convolutions. ``vmap`` turns a convolution over ``k`` clients into one
    grouped convolution, which the CPU's kernels run slower than ``k`` plain ones: measured with
    ``benchmarks/bench_rounds.py --model M --clients 100`` (batch 32, 2 cores), a round of cnn28
    takes 1.7× longer batched, while the MLP 784-128-64-10's is 2.5× and logistic regression's
    4.3× shorter.

    With DP-SGD, a model that ghost clipping does not serve
    (:func:`velocity.training.dp_sgd.ghost_clipping_applies`) has ``per_example_rows`` (clients ×
    batch) gradients of every parameter held at once by a batched step, which streams them through
    memory: on the CPU it stays batched while they take at most :data:`DP_BATCHED_CPU_BYTES`.
    Measured with per-example gradients (synthetic-mnist, 100 clients, batch 32, one epoch, 2
    cores; training per round batched / one by one): logreg (100 MB of them) 379 / 608 ms, mlp-32
    (326 MB) 1.00 / 0.91 s, mlp-64 (650 MB) 1.88 / 1.17 s, the MLP 784-128-64-10 (1.4 GB) 5.12 /
    2.11 s. (These models now clip by ghost clipping, which holds none.)"""
    if device.type != "cpu":
        return True
    convolutions = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    if any(isinstance(m, convolutions) for m in model.modules()):
        return False
    if dp_sgd.ghost_clipping_applies(model):
        return True
    parameters = sum(p.numel() for p in model.parameters())
    return 4 * per_example_rows * parameters <= DP_BATCHED_CPU_BYTES


def batched_memory_floor(clients: int, parameters: int, batch: int, features: int, *, momentum: bool, per_example: bool = False) -> int:
    """The least memory, in bytes, :func:`train_clients_batched` needs: every client's
    parameters and gradients (and momentum), one batch of inputs per client, and with DP-SGD
    (``per_example``) every example's gradient, in float32. Activations come on top; this floor
    only tells a run that cannot fit from one that may."""
    copies = 3 if momentum else 2
    return 4 * clients * (copies * parameters + batch * features + (batch * parameters if per_example else 0))


def available_memory() -> int | None:
    """Bytes the OS can give without swapping (Linux's MemAvailable); None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
