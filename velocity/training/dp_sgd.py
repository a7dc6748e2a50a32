"""DP-SGD's clipped gradient sum: each example's gradient clipped to norm C, summed.

Abadi et al., "Deep Learning with Differential Privacy", CCS 2016. Two ways to the same sum, both
``torch.func`` functions of the parameters, so the batched trainer ``vmap``s them over clients:

- **Per-example gradients** (``vmap`` of ``grad`` over the batch's examples), for any model. They
  hold batch × parameters numbers, which a step streams through memory.
- **Ghost clipping**, for an ``nn.Sequential`` whose layers with parameters are all ``nn.Linear``
  or plain ``nn.Conv2d`` (every model of the registry). A linear layer's gradient for one example
  is ``Σ_t g_t a_tᵀ`` (g: the gradient at the layer's output, a: its input, t over any axes between
  the batch and the features), whose squared norm is ``Σ_{t,s} (g_t·g_s)(a_t·a_s)`` — with no such
  axis, ``‖g‖²‖a‖²`` (Goodfellow, "Efficient Per-Example Gradient Computations", 2015; Li et al.,
  "Large Language Models Can Be Strong Differentially Private Learners", ICLR 2022, as Opacus's
  fast gradient clipping). The norms come from one backward pass to the layers' outputs, and the
  clipped sum is one product per layer, ``(factor · g)ᵀ a``: no per-example gradient is held. A
  convolution's weights are few, so its per-example gradients are formed, from the unfolded input
  patches (Rochette, Manoel, Tramel, "Efficient Per-Example Gradient Computations in Convolutional
  Neural Networks", 2019).

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
    """Whether :func:`clipped_sum` clips without every parameter's per-example gradients for
    ``model``: an ``nn.Sequential`` whose children with parameters are all ``nn.Linear`` or plain
    ``nn.Conv2d`` (one group, zero padding given as numbers)."""
    if not isinstance(model, nn.Sequential) or len(list(model.named_children())) != len(model):
        return False  # (named_children lists a layer used twice once: the forward pass below would skip it)
    return all(isinstance(layer, nn.Linear) or _plain_conv(layer) or next(layer.parameters(), None) is None for layer in model.children())


def _plain_conv(layer: nn.Module) -> bool:
    """A convolution whose input patches ``F.unfold`` reproduces."""
    return isinstance(layer, nn.Conv2d) and layer.groups == 1 and layer.padding_mode == "zeros" and not isinstance(layer.padding, str)


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
    weighted = [(name, layer) for name, layer in layers if isinstance(layer, nn.Linear | nn.Conv2d)]

    @functools.lru_cache(maxsize=64)
    def output_shapes(input_shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
        # each weighted layer's output shape for this input shape, run on the meta device (no data)
        a, out = torch.empty(input_shape, device="meta"), []
        for _, layer in layers:
            if isinstance(layer, nn.Linear):
                a = a.new_empty((*a.shape[:-1], layer.out_features))
            elif isinstance(layer, nn.Conv2d):
                a = _conv(layer, a, torch.empty(layer.weight.shape, device="meta"), None)
            else:
                a = layer(a)
            if isinstance(layer, nn.Linear | nn.Conv2d):
                out.append(tuple(a.shape))
        return tuple(out)

    def ghost(
        p: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor, mask: torch.Tensor, max_norm: float
    ) -> dict[str, torch.Tensor]:
        # A zero added to each weighted layer's output: the loss's gradient with respect to it is
        # the gradient at that output, example by example (each example's loss is its own term).
        probes = [xb.new_zeros(s) for s in output_shapes(tuple(xb.shape))]

        def loss(probes: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
            inputs, a, k = [], xb, 0
            for name, layer in layers:
                if isinstance(layer, nn.Linear | nn.Conv2d):
                    inputs.append(a)
                    weight, bias = p[f"{name}.weight"], p.get(f"{name}.bias")
                    a = (F.linear(a, weight, bias) if isinstance(layer, nn.Linear) else _conv(layer, a, weight, bias)) + probes[k]
                    k += 1
                else:
                    a = layer(a)
            return F.cross_entropy(a, yb, reduction="sum"), inputs

        outputs, inputs = grad(loss, has_aux=True)(probes)
        batch = xb.shape[0]
        sq = torch.zeros(batch, dtype=xb.dtype, device=xb.device)
        # per layer: how to form its clipped sum once the factors are known
        parts: list[tuple[str, nn.Linear | nn.Conv2d, torch.Tensor, torch.Tensor | None, torch.Tensor | None]] = []
        for (name, layer), g, a in zip(weighted, outputs, inputs, strict=True):
            if isinstance(layer, nn.Linear):
                # (batch, t, features): t runs over any axes between the batch and the features
                g, a = g.reshape(batch, -1, g.shape[-1]), a.reshape(batch, -1, a.shape[-1])
                if g.shape[1] == 1:
                    sq = sq + g.pow(2).sum((1, 2)) * a.pow(2).sum((1, 2))
                else:
                    sq = sq + ((g @ g.transpose(1, 2)) * (a @ a.transpose(1, 2))).sum((1, 2))
                parts.append((name, layer, g, a, None))
            else:
                # A convolution's weights are few: its per-example gradients (out × in·k·k), from
                # the unfolded input patches, cost less than the Gram matrices of its positions.
                g = g.reshape(batch, layer.out_channels, -1)
                assert not isinstance(layer.padding, str), "ghost_clipping_applies admits numeric padding only"
                patches = F.unfold(a, layer.kernel_size, dilation=layer.dilation, padding=layer.padding, stride=layer.stride)
                per_example = torch.einsum("bol,bil->boi", g, patches)
                sq = sq + per_example.pow(2).sum((1, 2))
                g = g.transpose(1, 2)  # (batch, positions, out): the bias's layout, as a linear layer's
                parts.append((name, layer, g, None, per_example))
            if layer.bias is not None:
                sq = sq + g.sum(1).pow(2).sum(1)
        factor = _clip_factor(sq.sqrt(), mask, max_norm)
        sums = {}
        for name, layer, out_grad, layer_input, example_grads in parts:
            if layer_input is not None:
                sums[f"{name}.weight"] = torch.einsum("bto,bti->oi", out_grad * factor.view(-1, 1, 1), layer_input)
            elif example_grads is not None:
                sums[f"{name}.weight"] = torch.tensordot(factor, example_grads, dims=1).reshape(layer.weight.shape)
            if layer.bias is not None:
                sums[f"{name}.bias"] = torch.tensordot(factor, out_grad.sum(1), dims=1)
        return sums

    return ghost


def _conv(layer: nn.Conv2d, a: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return F.conv2d(a, weight, bias, layer.stride, layer.padding, layer.dilation, layer.groups)
