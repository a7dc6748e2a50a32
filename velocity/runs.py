"""Build what one RunSpec describes: the partitioned data set and the server (federated) or the
MoNNA simulation (decentralised) that trains on it.

One place maps spec keys to components. Both topologies produce the same per-round records, so
sweeps, files and comparisons treat them alike.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Protocol

import torch

from velocity.orchestrator import AttackOutcome
from velocity.server import FederatedServer, RoundRecord
from velocity.sweep.spec import RunSpec
from velocity.training import LocalTrainingConfig


class Trainer(Protocol):
    """What a sweep worker drives: rounds with a callback, a model to checkpoint, initial metrics."""

    model: torch.nn.Module
    initial_loss: float
    initial_accuracy: float

    def run(self, rounds: int, *, on_round: Callable[[RoundRecord], None] | None = None) -> list[RoundRecord]: ...


def load_data(spec: RunSpec, *, num_clients: int | None = None) -> Any:
    from velocity.data import load_federated

    return load_federated(
        spec.dataset,
        num_clients=num_clients or spec.num_clients,
        partition=spec.partition,
        alpha=spec.alpha,
        shards_per_client=spec.shards_per_client,
        classes_per_client=spec.classes_per_client,
        min_partition_size=spec.min_partition_size,
        test_fraction=spec.test_fraction,
        seed=spec.seed,
    )


def build_server(spec: RunSpec) -> tuple[Trainer, str]:
    """The trainer for a spec and the data set's name."""
    if spec.topology == "decentralised":
        run = DecentralisedRun(spec)
        return run, run.data.name
    data = load_data(spec)
    local = LocalTrainingConfig(
        lr=spec.lr, batch_size=spec.batch_size, local_epochs=spec.local_epochs, momentum=spec.momentum, weight_decay=spec.weight_decay
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
    )
    return server, getattr(data, "name", spec.dataset)


class DecentralisedRun:
    """A decentralised RunSpec as a MoNNA simulation (Farhadkhani et al., ICML 2023).

    ``num_clients`` is n, ``round(malicious_fraction · n)`` of them Byzantine; the n − f honest
    workers hold the data partitions. ``strategy`` is what each worker applies to the models it
    receives: ``"nearest_neighbour"`` (MoNNA's NNA), ``"FedAvg"`` (plain gossip averaging, D-SGD) or
    any registered rule. ``client_momentum`` is MoNNA's β, ``lr`` the step size, ``batch_size`` the
    minibatch; one round is one step of every worker. Loss and accuracy are the honest workers'
    means on the test set; ``attack_distance`` is the mean distance of the mixed models from the
    honest workers' mean before mixing. The checkpoint is honest worker 0's model.
    """

    def __init__(self, spec: RunSpec) -> None:
        from velocity.decentralised import MonnaSimulation
        from velocity.models import build_model

        self.spec = spec
        n, f = spec.num_clients, spec.num_malicious
        self.data = load_data(spec, num_clients=n - f)
        net = build_model(spec.model_id, input_shape=self.data.input_shape, num_classes=self.data.num_classes, seed=spec.seed)
        aggregator = "average" if spec.strategy == "FedAvg" else spec.strategy
        self.sim = MonnaSimulation(
            model=net,
            data=self.data,
            n=n,
            f=f,
            learning_rate=spec.lr,
            beta=spec.client_momentum,
            batch_size=spec.batch_size,
            attack=spec.attacks[0] if spec.attacks and f > 0 else None,
            aggregator=aggregator,
            byzantine_reach="all",
            seed=spec.seed,
        )
        self.history: list[RoundRecord] = []
        self.initial_loss, self.initial_accuracy = self._evaluate()

    def _evaluate(self) -> tuple[float, float]:
        loss, acc = self.sim.evaluate(self.data.x_test, self.data.y_test)
        return float(loss.mean()), float(acc.mean())

    @property
    def model(self) -> torch.nn.Module:
        return self.sim.worker_model(0)

    def run_round(self) -> RoundRecord:
        start = time.perf_counter()
        step = self.sim.step()
        t_step = time.perf_counter()
        loss, acc = self._evaluate()
        end = time.perf_counter()
        honest_mean = step.post_step_models.mean(dim=0)
        distance = float(torch.linalg.vector_norm(step.mixed_models - honest_mean, dim=1).mean())
        attacks: tuple[AttackOutcome, ...] = ()
        if step.attack is not None:  # apply_attack's report: {"name": ..., "strength": ...}
            attacks = (AttackOutcome(step.attack["name"], step.attack.get("strength")),)
        record = RoundRecord(
            round=step.step,
            client_ids=tuple(range(self.sim.num_honest)),
            num_clients=self.sim.n,
            num_malicious=self.sim.f,
            global_loss=loss,
            accuracy=acc,
            attack_distance=distance,
            attacks=attacks,
            train_ms=(t_step - start) * 1e3,  # gradients, attack and mixing: one decentralised step
            aggregate_ms=0.0,
            eval_ms=(end - t_step) * 1e3,
            round_ms=(end - start) * 1e3,
        )
        self.history.append(record)
        return record

    def run(self, rounds: int, *, on_round: Callable[[RoundRecord], None] | None = None) -> list[RoundRecord]:
        out = []
        for _ in range(rounds):
            record = self.run_round()
            if on_round is not None:
                on_round(record)
            out.append(record)
        return out

