"""A decentralised ``RunSpec`` as a MoNNA (or gossip) simulation, producing the same per-round
records as a federated server."""

from __future__ import annotations

import time

import torch

from velocity.orchestrator import AttackOutcome
from velocity.runs import load_data
from velocity.sweep.spec import RunSpec
from velocity.trainer import RoundRecord, Trainer


class DecentralisedRun(Trainer):
    """A decentralised RunSpec as a MoNNA simulation (Farhadkhani et al., ICML 2023).

    ``num_clients`` is n, ``round(malicious_fraction · n)`` of them Byzantine; the n − f honest
    workers hold the data partitions. ``strategy`` is what each worker applies to the models it
    receives: ``"nearest_neighbour"`` (MoNNA's NNA), ``"FedAvg"`` (plain gossip averaging, D-SGD) or
    any registered rule. ``client_momentum`` is MoNNA's β, ``lr`` the step size, ``batch_size`` the
    minibatch; one round is one step of every worker. Loss and accuracy are the honest workers'
    means on the test set; ``attack_distance`` is the mean distance of the mixed models from the
    honest workers' mean before mixing. The checkpoint is honest worker 0's model.
    """

    def __init__(self, spec: RunSpec, *, device: str | None = None) -> None:
        from velocity.decentralised import MonnaSimulation
        from velocity.models import build_model

        self.spec = spec
        n, f = spec.num_clients, spec.num_malicious
        self.data = load_data(spec, num_clients=spec.num_data_holders)
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
            device=device or spec.device,
        )
        self.history: list[RoundRecord] = []
        self.initial_loss, self.initial_accuracy = self._evaluate()

    def _evaluate(self) -> tuple[float, float]:
        loss, acc = self.sim.evaluate(self.data.x_test, self.data.y_test)
        return float(loss.mean()), float(acc.mean())

    @property
    def model(self) -> torch.nn.Module:
        return self.sim.worker_model(0)

    @property
    def device(self) -> torch.device:
        return self.sim.device

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
