"""DP-SGD's clipped gradient sum: each example's gradient clipped to norm C, summed.

Abadi et al., "Deep Learning with Differential Privacy", CCS 2016. Two ways to the same sum, both
``torch.func`` functions of the parameters, so the batched trainer ``vmap``s them over clients:

- **Per-example gradients** (``vmap`` of ``grad`` over the batch's examples), for any model. They
  hold batch × parameters numbers, which a step streams through memory.
- **Ghost clipping**, for an ``nn.Sequential`` whose layers with parameters are all ``nn.Linear``
  (the registry's ``logreg`` and ``mlp``). A linear layer's gradient for one example is
  ``Σ_t g_t a_tᵀ`` (g: the gradient at the layer's output, a: its input, t over any axes between
  the batch and the features), whose squared norm is ``Σ_{t,s} (g_t·g_s)(a_t·a_s)`` — with no such
  axis, ``‖g‖²‖a‖²`` (Goodfellow, "Efficient Per-Example Gradient Computations", 2015; Li et al.,
  "Large Language Models Can Be Strong Differentially Private Learners", ICLR 2022, as Opacus's
  fast gradient clipping). The norms come from one backward pass to the layers' outputs, and the
  clipped sum is one product per layer, ``(factor · g)ᵀ a``: no example's gradient is ever held.

Both give the same sum up to rounding (tested to 1e-12 in float64).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeGuard

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

#: ``(parameters, inputs, labels, mask, max_norm) -> Σ_j mask_j · clip_C(g_j)`` per parameter name.
ClippedSum = Callable[[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor, float], dict[str, torch.Tensor]]


def clipped_gradient_sum(per_example: dict[str, torch.Tensor], mask: torch.Tensor, max_norm: float) -> dict[str, torch.Tensor]:
    """Σ_j mask_j · g_j · min(1, C / ‖g_j‖) over a batch's per-example gradients (leading axis),
    the norm over all parameters together: DP-SGD's clipped sum (the 1e-6 keeps a zero gradient
    finite, as Opacus's clipper does)."""
    norms = torch.stack([g.reshape(g.shape[0], -1).pow(2).sum(1) for g in per_example.values()]).sum(0).sqrt()
    return {n: torch.tensordot(_clip_factor(norms, mask, max_norm), g, dims=1) for n, g in per_example.items()}


def _clip_factor(norms: torch.Tensor, mask: torch.Tensor, max_norm: float) -> torch.Tensor:
    return (max_norm / (norms + 1e-6)).clamp(max=1.0) * mask


def ghost_clipping_applies(model: nn.Module) -> TypeGuard[nn.Sequential]:
    """Whether :func:`clipped_sum` clips without per-example gradients for ``model``: an
    ``nn.Sequential`` whose children with parameters are all ``nn.Linear``."""
    return isinstance(model, nn.Sequential) and all(
        isinstance(layer, nn.Linear) or next(layer.parameters(), None) is None for layer in model.children()
    )


def clipped_sum(model: nn.Module) -> ClippedSum:
    """DP-SGD's clipped gradient sum for ``model``: by ghost clipping where it applies
    (:func:`ghost_clipping_applies`), by per-example gradients otherwise."""
    if ghost_clipping_applies(model):
        return _ghost_clipped_sum(model)
    per_example = vmap(grad(_per_example_loss(model)), in_dims=(None, 0, 0))

    def by_example(
        p: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor, mask: torch.Tensor, max_norm: float
    ) -> dict[str, torch.Tensor]:
        return clipped_gradient_sum(per_example(p, xb, yb), mask, max_norm)

    return by_example


def _per_example_loss(model: nn.Module) -> Callable[[dict[str, torch.Tensor], torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss of one example (its input without the batch axis) as a function of the parameters."""

    def loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, p, (xi.unsqueeze(0),)), yi.unsqueeze(0))

    return loss


def _ghost_clipped_sum(model: nn.Sequential) -> ClippedSum:
    layers = list(model.named_children())
    linear = [(name, layer) for name, layer in layers if isinstance(layer, nn.Linear)]

    @functools.lru_cache(maxsize=64)
    def output_shapes(input_shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
        # each linear layer's output shape for this input shape, run on the meta device (no data)
        a, out = torch.empty(input_shape, device="meta"), []
        for _, layer in layers:
            if isinstance(layer, nn.Linear):
                a = a.new_empty((*a.shape[:-1], layer.out_features))
                out.append(tuple(a.shape))
            else:
                a = layer(a)
        return tuple(out)

    def ghost(
        p: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor, mask: torch.Tensor, max_norm: float
    ) -> dict[str, torch.Tensor]:
        # A zero added to each linear layer's output: the loss's gradient with respect to it is
        # the gradient at that output, example by example (each example's loss is its own term).
        probes = [xb.new_zeros(s) for s in output_shapes(tuple(xb.shape))]

        def loss(probes: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
            inputs, a, k = [], xb, 0
            for name, layer in layers:
                if isinstance(layer, nn.Linear):
                    inputs.append(a)
                    a = F.linear(a, p[f"{name}.weight"], p.get(f"{name}.bias")) + probes[k]
                    k += 1
                else:
                    a = layer(a)
            return F.cross_entropy(a, yb, reduction="sum"), inputs

        outputs, inputs = grad(loss, has_aux=True)(probes)
        batch = xb.shape[0]
        # (batch, t, features): t runs over any axes between the batch and the features
        gs = [g.reshape(batch, -1, g.shape[-1]) for g in outputs]
        acts = [a.reshape(batch, -1, a.shape[-1]) for a in inputs]
        sq = torch.zeros(batch, dtype=xb.dtype, device=xb.device)
        for (_, layer), g, a in zip(linear, gs, acts, strict=True):
            if g.shape[1] == 1:
                sq = sq + g.pow(2).sum((1, 2)) * a.pow(2).sum((1, 2))
            else:
                sq = sq + ((g @ g.transpose(1, 2)) * (a @ a.transpose(1, 2))).sum((1, 2))
            if layer.bias is not None:
                sq = sq + g.sum(1).pow(2).sum(1)
        factor = _clip_factor(sq.sqrt(), mask, max_norm).view(-1, 1, 1)
        sums = {}
        for (name, layer), g, a in zip(linear, gs, acts, strict=True):
            clipped = g * factor
            sums[f"{name}.weight"] = torch.einsum("bto,bti->oi", clipped, a)
            if layer.bias is not None:
                sums[f"{name}.bias"] = clipped.sum((0, 1))
        return sums

    return ghost
