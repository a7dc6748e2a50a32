"""Test-set evaluation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 4096) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``model`` on (x, y), in eval mode; the model's
    mode is restored afterwards. A model with non-finite weights gives a NaN loss; its accuracy
    is still measured (argmax of its outputs)."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for s in range(0, len(y), batch_size):
        out = model(x[s : s + batch_size])
        yb = y[s : s + batch_size]
        total_loss += float(F.cross_entropy(out, yb, reduction="sum"))
        correct += int((out.argmax(dim=1) == yb).sum())
    model.train(was_training)
    return total_loss / len(y), correct / len(y)
