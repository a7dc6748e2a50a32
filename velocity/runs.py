"""Build what one RunSpec describes: the partitioned data set and the server (federated) or the
MoNNA simulation (decentralised) that trains on it.

One place maps spec keys to components. Both topologies produce the same per-round records, so
sweeps, files and comparisons treat them alike.
"""

from __future__ import annotations

from typing import Any

from velocity.server import FederatedServer
from velocity.sweep.spec import RunSpec
from velocity.trainer import Trainer
from velocity.training import LocalTrainingConfig


def load_data(spec: RunSpec, *, num_clients: int | None = None) -> Any:
    from velocity.data import load_federated

    return load_federated(spec.dataset, num_clients=num_clients or spec.num_clients, **spec.partition_args)


def build_trainer(spec: RunSpec, *, device: str | None = None) -> tuple[Trainer, str]:
    """The trainer a spec describes (a federated server, or a decentralised simulation) and the
    data set's name; ``device`` overrides the spec's (a sweep worker's share of the GPUs)."""
    if spec.topology == "decentralised":
        from velocity.decentralised.run import DecentralisedRun

        run = DecentralisedRun(spec, device=device)
        return run, run.data.name
    data = load_data(spec)
    local = LocalTrainingConfig(
        lr=spec.lr,
        batch_size=spec.batch_size,
        local_epochs=spec.local_epochs,
        momentum=spec.momentum,
        weight_decay=spec.weight_decay,
        dp=spec.dp,
    )
    server = FederatedServer(
        data,
        model_id=spec.model_id,
        strategy=spec.strategy,
        attacks=list(spec.attacks),
        malicious_fraction=spec.malicious_fraction,
        clients_per_round=spec.min_clients,
        local=local,
        batched=spec.batched,
        client_momentum=spec.client_momentum,
        seed=spec.seed,
        device=device or spec.device,
        server_dp=spec.server_dp,
    )
    return server, getattr(data, "name", spec.dataset)
