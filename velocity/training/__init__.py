"""Local training of federated clients: a reference loop and a batched (vmap) trainer."""

from velocity.training.config import LocalTrainingConfig
from velocity.training.data_attacks import poison_labels
from velocity.training.device import DEVICE_HELP, resolve_device
from velocity.training.evaluate import evaluate
from velocity.training.local import (
    ClientBatchPlan,
    available_memory,
    batched_memory_floor,
    flatten_params,
    prefers_batched,
    train_clients_batched,
    train_clients_loop,
)

__all__ = [
    "DEVICE_HELP",
    "ClientBatchPlan",
    "LocalTrainingConfig",
    "available_memory",
    "batched_memory_floor",
    "evaluate",
    "flatten_params",
    "poison_labels",
    "prefers_batched",
    "resolve_device",
    "train_clients_batched",
    "train_clients_loop",
]
