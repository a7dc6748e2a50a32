"""Local client training.

Both trainers take the same :class:`ClientBatchPlan` — the exact minibatches (global indices into
the training tensors) every client visits this round — so they compute the same updates:

- :func:`train_clients_loop` trains one client after another with ``torch.optim.SGD``; it is the
  reference.
- :func:`train_clients_batched` trains all clients at once: the parameters of the ``k`` clients
  are stacked and one ``torch.func.vmap``-ed gradient step advances every client. Clients with
  fewer batches are padded (masked examples, frozen parameters once their own plan is done).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from velocity.training.config import LocalTrainingConfig


@dataclass(frozen=True)
class ClientBatchPlan:
    """``batches[i]`` is client i's ordered list of minibatches (int64 index tensors into x/y)."""

    batches: tuple[tuple[torch.Tensor, ...], ...]

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
        (seed, round, client id), so the plan does not depend on which other clients were sampled."""
        plans = []
        for cid, idx in zip(client_ids, client_indices, strict=True):
            rng = np.random.default_rng([seed, round, int(cid)])
            batches = []
            for _ in range(cfg.local_epochs):
                perm = np.asarray(idx)[rng.permutation(len(idx))]
                batches += [torch.from_numpy(perm[s : s + cfg.batch_size].astype(np.int64)) for s in range(0, len(perm), cfg.batch_size)]
            plans.append(tuple(batches))
        return cls(tuple(plans))


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
    for i, batches in enumerate(plan.batches):
        local = copy.deepcopy(model)
        # vector_to_parameters makes the parameters views of the vector: clone so the in-place
        # optimiser steps cannot write into the global model.
        vector_to_parameters(global_params.clone(), local.parameters())
        params = list(local.parameters())
        anchor = [p.detach().clone() for p in params]
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        for batch in batches:
            idx = batch.to(x.device)
            opt.zero_grad()
            loss = F.cross_entropy(local(x[idx]), y[idx])
            if cfg.mu > 0:
                loss = loss + cfg.mu / 2 * sum(((p - a) ** 2).sum() for p, a in zip(params, anchor, strict=True))
            loss.backward()
            opt.step()
        updates[i] = flatten_params(local) - global_params
    return updates


def train_clients_batched(
    model: nn.Module, global_params: torch.Tensor, x: torch.Tensor, y: torch.Tensor, plan: ClientBatchPlan, cfg: LocalTrainingConfig
) -> torch.Tensor:
    """All clients at once with ``torch.func``; same updates as :func:`train_clients_loop`."""
    k = plan.num_clients
    template = copy.deepcopy(model)
    vector_to_parameters(global_params.clone(), template.parameters())
    names = [n for n, _ in template.named_parameters()]
    anchor = {n: p.detach() for n, p in template.named_parameters()}
    params = {n: p.unsqueeze(0).repeat(k, *([1] * p.dim())) for n, p in anchor.items()}
    momentum = {n: torch.zeros_like(p) for n, p in params.items()} if cfg.momentum > 0 else None

    steps = max((len(b) for b in plan.batches), default=0)
    # The widest batch drawn, not cfg.batch_size: a batch size above a client's data (10**9 was
    # tried) pads nothing, and the padding stays bounded by the data's size.
    bsz = max((len(idx) for batches in plan.batches for idx in batches), default=1)
    # Padded global indices and masks, (k, steps, bsz): one gather per step for every client.
    index = torch.zeros(k, steps, bsz, dtype=torch.int64)
    mask = torch.zeros(k, steps, bsz, dtype=global_params.dtype)
    for i, batches in enumerate(plan.batches):
        for t, idx in enumerate(batches):
            index[i, t, : len(idx)] = idx
            mask[i, t, : len(idx)] = 1.0
    index, mask = index.to(x.device), mask.to(x.device)  # built on the host, then one copy each
    active = mask.sum(dim=2) > 0  # (k, steps)

    def loss_fn(p: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor, mb: torch.Tensor) -> torch.Tensor:
        per_example = F.cross_entropy(functional_call(template, p, (xb,)), yb, reduction="none")
        loss = (per_example * mb).sum() / mb.sum().clamp_min(1.0)
        if cfg.mu > 0:
            loss = loss + cfg.mu / 2 * sum(((p[n] - anchor[n]) ** 2).sum() for n in names)
        return loss

    step_grads = vmap(grad(loss_fn))
    with torch.no_grad():
        for t in range(steps):
            idx = index[:, t]
            grads = step_grads(params, x[idx], y[idx], mask[:, t])
            on = active[:, t]
            for n in names:
                g = grads[n]
                if cfg.weight_decay > 0:
                    g = g + cfg.weight_decay * params[n]
                shape = (k,) + (1,) * (g.dim() - 1)
                live = on.view(shape)
                if momentum is not None:
                    # torch.optim.SGD: buf = g on the first step, momentum·buf + g after; with a zero
                    # buffer both read momentum·buf + g.
                    momentum[n] = torch.where(live, cfg.momentum * momentum[n] + g, momentum[n])
                    g = momentum[n]
                params[n] = torch.where(live, params[n] - cfg.lr * g, params[n])
    return torch.cat([params[n].reshape(k, -1) for n in names], dim=1) - global_params


def batched_memory_floor(clients: int, parameters: int, batch: int, features: int, *, momentum: bool) -> int:
    """The least memory, in bytes, :func:`train_clients_batched` needs: every client's
    parameters and gradients (and momentum), and one batch of inputs per client, in float32.
    Activations come on top; this floor only tells a run that cannot fit from one that may."""
    copies = 3 if momentum else 2
    return 4 * clients * (copies * parameters + batch * features)


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
