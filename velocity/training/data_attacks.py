"""Data-side attacks, declared in the Rust registry and executed here on the clients' labels."""

from __future__ import annotations

import torch

from velocity.specs import AttackSpec


def check_class(attack: AttackSpec, param: str, num_classes: int) -> int:
    """The class ``attack.params[param]`` names, refused (``ValueError``) outside 0..C−1."""
    value = int(attack.params[param])
    if not 0 <= value < num_classes:
        raise ValueError(f"Expected {attack.name}.{param} in 0..{num_classes - 1} (the data set has {num_classes} classes), got {value}")
    return value


def poison_labels(y: torch.Tensor, attacks: list[AttackSpec], num_classes: int) -> torch.Tensor:
    """Apply every data attack in ``attacks`` to a malicious client's labels (a new tensor).

    - ``label_flipping``: y → (C − 1) − y (Tolpegin et al., ESORICS 2020). Deterministic, so the
      attack is the same every epoch (an unseeded per-batch permutation would silently weaken it).
    - ``targeted_label_flipping(source, target)``: every ``source`` label becomes ``target``.
    """
    out = y.clone()
    for a in attacks:
        if a.name == "label_flipping":
            out = (num_classes - 1) - out
        elif a.name == "targeted_label_flipping":
            src, dst = check_class(a, "source", num_classes), check_class(a, "target", num_classes)
            out = torch.where(out == src, torch.tensor(dst, dtype=out.dtype), out)
        elif a.name == "backdoor":
            continue  # planted with its trigger, inputs and labels together (velocity.training.backdoor)
        elif a.is_data_attack:
            raise ValueError(f"Data attack {a.name!r} has no implementation in the trainer")
    return out
