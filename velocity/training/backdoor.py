"""Backdoors (BadNets; its distributed variant DBA) and how well a targeted attack succeeds.

A trigger is a set of input features set to a bright value: on images (C × H × W) the
``size × size`` square in the bottom-right corner, every channel; on tabular data the last
``size`` features. Malicious clients stamp it on a share of their training examples and relabel
them as the target class; with ``distributed=true`` (Xie et al., ICLR 2020) the trigger is split
into parts, one per malicious client in turn, and only the assembled trigger is tested.

The attack success rate is measured on the test set: of the examples not of the target class,
with the full trigger stamped, the share classified as the target (Gu et al., BadNets 2017; as
in Bagdasaryan et al., AISTATS 2020). For ``targeted_label_flipping`` it is the share of the
source class's test examples classified as the target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from velocity.specs import AttackSpec
from velocity.training.data_attacks import check_class


@dataclass(frozen=True)
class Trigger:
    """Flat feature indices and the value stamped on them."""

    features: torch.Tensor  # int64, indices into an example flattened
    value: float

    def stamp(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (n × input shape) with the trigger (or the given part of it) stamped, as a new tensor."""
        out = x.clone()
        flat = out.view(len(out), -1)
        flat[:, self.features if features is None else features] = self.value
        return out

    def parts(self, count: int) -> list[torch.Tensor]:
        """The trigger split into ``count`` contiguous parts (DBA's local triggers)."""
        return [p for p in torch.tensor_split(self.features, count) if len(p) > 0]


def trigger_features(input_shape: tuple[int, ...], size: int) -> torch.Tensor:
    """The flat feature indices a trigger of ``size`` covers on inputs of ``input_shape``: the
    ``size × size`` bottom-right square of every channel of an image, else the last ``size``
    features. ``ValueError`` when it does not fit."""
    if len(input_shape) == 3:
        c, h, w = input_shape
        if size > min(h, w):
            raise ValueError(f"Expected a backdoor trigger of at most {min(h, w)} pixels for {h}×{w} images, got size = {size}")
        return torch.arange(c * h * w).view(c, h, w)[:, h - size :, w - size :].reshape(-1)
    d = math.prod(input_shape)
    if size > d:
        raise ValueError(f"Expected a backdoor trigger of at most {d} features, got size = {size}")
    return torch.arange(d - size, d)


def make_trigger(input_shape: tuple[int, ...], size: int, x_train: torch.Tensor) -> Trigger:
    """The trigger for data of ``input_shape``; its value is the training data's largest value (1
    for images in [0, 1], a high value for standardised features). ``ValueError`` when it does
    not fit the input."""
    return Trigger(features=trigger_features(input_shape, size), value=float(x_train.max()))


def check_targets(attacks: list[AttackSpec], num_classes: int, input_shape: tuple[int, ...]) -> None:
    """Refuse a targeted attack its data cannot carry: a class outside 0..C−1, a trigger larger
    than the inputs (``ValueError``). The trainer and the sweep (before any run starts) both ask."""
    for a in attacks:
        if a.name == "backdoor":
            check_class(a, "target", num_classes)
            trigger_features(input_shape, int(a.params["size"]))
        elif a.name == "targeted_label_flipping":
            check_class(a, "source", num_classes)
            check_class(a, "target", num_classes)


def backdoor_of(attacks: list[AttackSpec]) -> AttackSpec | None:
    """The backdoor among a run's attacks, if there is one."""
    return next((a for a in attacks if a.name == "backdoor"), None)


def plant_backdoor(
    x: torch.Tensor,
    y: torch.Tensor,
    client_indices: Sequence[np.ndarray],
    malicious: list[int],
    attack: AttackSpec,
    trigger: Trigger,
    num_classes: int,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training inputs and labels with the backdoor planted in the malicious clients' data (new
    tensors): each stamps its part of the trigger (the whole one unless distributed) on a
    seeded ``fraction`` of its examples and relabels them as ``target``."""
    target, fraction = int(attack.params["target"]), float(attack.params["fraction"])
    check_targets([attack], num_classes, tuple(x.shape[1:]))
    parts = trigger.parts(len(malicious)) if attack.params.get("distributed") else [trigger.features]
    x, y = x.clone(), y.clone()
    rng = np.random.default_rng([seed, 0xBAD])
    for k, cid in enumerate(sorted(malicious)):
        idx = np.asarray(client_indices[cid], dtype=np.int64)
        chosen = torch.from_numpy(rng.choice(idx, size=max(1, round(fraction * len(idx))), replace=False)) if len(idx) else None
        if chosen is None:
            continue
        x[chosen] = trigger.stamp(x[chosen], parts[k % len(parts)])
        y[chosen] = target
    return x, y


@dataclass(frozen=True)
class SuccessProbe:
    """The test examples a targeted attack aims at and the class it wants for them."""

    x: torch.Tensor
    target: int

    def rate(self, model: torch.nn.Module, batch_size: int = 4096) -> float:
        """The share of the probe's examples ``model`` classifies as the target (NaN if none)."""
        if len(self.x) == 0:
            return math.nan
        model.eval()
        hits = 0
        with torch.no_grad():
            for s in range(0, len(self.x), batch_size):
                hits += int((model(self.x[s : s + batch_size]).argmax(1) == self.target).sum())
        return hits / len(self.x)


def success_probe(attacks: list[AttackSpec], x_test: torch.Tensor, y_test: torch.Tensor, trigger: Trigger | None) -> SuccessProbe | None:
    """What to measure for a run's targeted attack: the triggered test examples not of the
    target class (backdoor), or the source class's test examples (targeted label flipping)."""
    backdoor = backdoor_of(attacks)
    if backdoor is not None and trigger is not None:
        target = int(backdoor.params["target"])
        keep = y_test != target
        return SuccessProbe(trigger.stamp(x_test[keep]), target)
    flip = next((a for a in attacks if a.name == "targeted_label_flipping"), None)
    if flip is not None:
        return SuccessProbe(x_test[y_test == int(flip.params["source"])], int(flip.params["target"]))
    return None
