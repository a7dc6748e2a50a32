"""The federated server loop: sample clients, train them locally, aggregate through the Rust
orchestrator (attacks + strategy), evaluate the new global model, record the round."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from torch.nn.utils import vector_to_parameters

from velocity import extend
from velocity.aggregation import apply_attack
from velocity.models import build_model
from velocity.orchestrator import AttackOutcome, Orchestrator, RoundSummary
from velocity.privacy import ClientLedger, ServerDP, epsilon, server_dp_holds
from velocity.rounds import DefenceRecord
from velocity.specs import AttacksLike, Component, StrategyLike, attack_items
from velocity.trainer import RoundRecord, Trainer
from velocity.training import (
    ClientBatchPlan,
    LocalTrainingConfig,
    available_memory,
    batched_memory_floor,
    dp_sgd,
    evaluate,
    flatten_params,
    poison_labels,
    prefers_batched,
    resolve_device,
    train_clients_batched,
    train_clients_loop,
)
from velocity.training.backdoor import SuccessProbe, backdoor_of, make_trigger, plant_backdoor, success_probe
from velocity.training.device import HostCopy, synchronize

__all__ = ["FederatedData", "FederatedServer", "RoundRecord"]


class FederatedData(Protocol):
    """What the server needs from a data set (``velocity.data.FederatedDataset`` provides it)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    client_indices: Sequence[np.ndarray]
    num_classes: int
    input_shape: tuple[int, ...]


def _clients_per_round(value: int | float | None, num_clients: int) -> int:
    if value is None:
        return num_clients
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Expected clients_per_round as a count or a fraction, got {value!r}")
    if isinstance(value, float) and 0 < value <= 1:
        return max(1, round(value * num_clients))
    if isinstance(value, int) and 1 <= value <= num_clients:
        return value
    raise ValueError(f"Expected clients_per_round as a count in 1..{num_clients} or a fraction in (0, 1], got {value!r}")


class FederatedServer(Trainer):
    """Runs federated rounds on a partitioned data set with a PyTorch model.

    Parameters
    ----------
    data
        A partitioned data set (``velocity.data.load_federated(...)``).
    model_id
        See :func:`velocity.models.list_models`.
    strategy, attacks
        As for :class:`velocity.Orchestrator`. With ``FedProx(mu=...)`` the clients add the
        proximal term.
    malicious_fraction
        Share of the federation that is malicious (rounded to a count; the ids come from ``seed``).
    clients_per_round
        Clients trained per round: a count, a fraction of the federation, or all (``None``).
    local
        Local SGD settings; ``local.dp`` trains every client with DP-SGD
        (:class:`velocity.privacy.ClientDP`), and each round records the largest ε of any client
        so far (``dp_epsilon``).
    server_dp
        DP-FedAvg at the server (:class:`velocity.privacy.ServerDP`), run by the core with any
        built-in strategy; each round records ε so far (``server_dp_epsilon``) where it is a
        guarantee: for the mean (:func:`velocity.privacy.server_dp_holds`).
    batched
        Train the sampled clients together with ``torch.func.vmap`` (``True``) or one by one
        (``False``). ``None`` (default) picks the faster for the model and device, and with
        DP-SGD for the size of a step's per-example gradients
        (:func:`velocity.training.prefers_batched`), and one by one when training them together
        would not fit in memory; :attr:`batched` says which was chosen.
    client_momentum
        Worker momentum β across rounds: each client sends m ← β·m + (1 − β)·Δ instead of its
        update Δ (Karimireddy, He, Jaggi, "Learning from History for Byzantine Robust
        Optimization", ICML 2021, where centered clipping is evaluated with β = 0.9). 0 disables it.
    seed
        Drives the model initialisation, the malicious clients, client sampling and batching.
    device
        Where the model, the data and the client training live: ``"auto"`` (a CUDA GPU, then
        Apple's MPS, then the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a
        ``torch.device``. The model is initialised on the CPU from ``seed`` whatever the device;
        the aggregation runs in the Rust core on the host, which gets one copy of the round's
        update matrix. GPU kernels are not bit-reproducible as the CPU's are.
    """

    def __init__(
        self,
        data: FederatedData,
        *,
        model_id: str = "mlp",
        strategy: StrategyLike = "FedAvg",
        attacks: AttacksLike = None,
        malicious_fraction: float = 0.0,
        clients_per_round: int | float | None = None,
        local: LocalTrainingConfig | None = None,
        batched: bool | None = None,
        client_momentum: float = 0.0,
        seed: int = 0,
        device: str | torch.device = "auto",
        server_dp: ServerDP | None = None,
    ) -> None:
        self.data = data
        self.device = resolve_device(device)
        self._host_copy = HostCopy()
        if not 0.0 <= client_momentum < 1.0:
            raise ValueError(f"Expected client_momentum in [0, 1), got {client_momentum!r}")
        self.client_momentum = client_momentum
        self._momentum: dict[int, torch.Tensor] = {}
        num_clients = len(data.client_indices)
        if not 0.0 <= malicious_fraction <= 1.0:
            raise ValueError(f"Expected malicious_fraction in [0, 1], got {malicious_fraction!r}")
        # Python rules and attacks (velocity.extend) run here; everything built in runs in the core.
        self._python_rule = extend.get(strategy, "rule")
        attack_list = attack_items(attacks)
        self._python_attacks = [c for c in (extend.get(a, "update_attack") for a in attack_list) if c is not None]
        core_attacks = [a for a in attack_list if extend.get(a, "update_attack") is None]
        if server_dp is not None and self._python_rule is not None:
            raise ValueError(
                f"Expected a built-in strategy with server_dp (the core clips the updates and adds the noise), "
                f"got the Python rule {self._python_rule.name!r}, which aggregates outside the core"
            )
        self.orchestrator = Orchestrator(
            "FedAvg" if self._python_rule is not None else strategy,
            attacks=core_attacks,
            num_clients=num_clients,
            num_malicious=round(malicious_fraction * num_clients),
            seed=seed,
            server_dp=server_dp,
        )
        self.server_dp = server_dp
        self._server_dp_holds = server_dp is not None and server_dp_holds(self.orchestrator.strategy)
        local = local or LocalTrainingConfig()
        rule = self.orchestrator.strategy.rule
        if rule.name == "FedProx" and local.mu == 0:
            local = dataclasses.replace(local, mu=float(rule.params["mu"]))
        self.local = local
        self.clients_per_round = _clients_per_round(clients_per_round, num_clients)
        self.seed = seed
        self._model = build_model(model_id, input_shape=tuple(data.input_shape), num_classes=data.num_classes, seed=seed).to(self.device)
        self._ledger = None if local.dp is None else ClientLedger(local.dp)
        if local.dp is not None:
            norms = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d, torch.nn.SyncBatchNorm)
            mixing = [type(m).__name__ for m in self._model.modules() if isinstance(m, norms)]
            if mixing:
                raise ValueError(
                    f"Expected a model without batch normalisation for DP-SGD (it mixes the examples of a batch, so no "
                    f"example's gradient is its own), got {model_id!r} with {', '.join(sorted(set(mixing)))}"
                )
        self.orchestrator.global_model = flatten_params(self._model).cpu().numpy()
        if batched is None:
            self.batched = (
                prefers_batched(self._model, self.device, per_example_rows=self._per_example_rows())
                and self._memory_shortfall(self.clients_per_round) is None
            )
        else:
            self.batched = batched
            shortfall = self._memory_shortfall(self.clients_per_round) if batched else None
            if shortfall is not None:
                raise ValueError(shortfall)
        self._sizes = np.array([len(i) for i in data.client_indices], dtype=np.float64)
        self._sampler = np.random.default_rng([seed, 0x5A3F])
        x_train, y_train, success = self._plant_backdoor(self._poisoned_labels())
        # the data on the device once; the clients' minibatches are gathered there
        self._x_train, self._y_train = x_train.to(self.device), y_train.to(self.device)
        self._x_test, self._y_test = data.x_test.to(self.device), data.y_test.to(self.device)
        self._success = dataclasses.replace(success, x=success.x.to(self.device)) if success is not None else None
        self._root = self._root_examples(rule)
        # the root examples themselves, clean, on the device (the training tensors may be poisoned)
        index = torch.from_numpy(self._root) if self._root is not None else None
        self._root_data = None if index is None else (data.x_train[index].to(self.device), data.y_train[index].to(self.device))
        self.initial_loss, self.initial_accuracy = evaluate(self._model, self._x_test, self._y_test)
        self.history: list[RoundRecord] = []

    def _step_batch(self) -> int:
        """The batch a client's step takes: the batch size, or the largest client's data if smaller."""
        return min(self.local.batch_size, max((len(i) for i in self.data.client_indices), default=0))

    def _per_example_rows(self) -> int:
        """How many examples' gradients a batched step holds (clients × batch): 0 without DP-SGD and
        with ghost clipping (:mod:`velocity.training.dp_sgd`), which holds none."""
        if self.local.dp is None or dp_sgd.ghost_clipping_applies(self._model):
            return 0
        return self.clients_per_round * self._step_batch()

    def _memory_shortfall(self, clients: int) -> str | None:
        """Why training ``clients`` clients at once cannot fit in this machine's memory, or
        ``None`` when it may: such a run is refused (or trained one client at a time) before it
        starts, since the OS would otherwise stop the worker with no word of why."""
        parameters = sum(p.numel() for p in self._model.parameters())
        batch = self._step_batch()
        features = int(np.prod(self.data.input_shape))
        need = batched_memory_floor(
            clients, parameters, batch, features, momentum=self.local.momentum > 0, per_example=self._per_example_rows() > 0
        )
        have = torch.cuda.mem_get_info(self.device)[0] if self.device.type == "cuda" else available_memory()
        if have is None or need <= have:
            return None
        return (
            f"Expected a run that fits in memory, got one that needs at least {need / 2**30:.1f} GiB to train {clients} "
            f"clients at once ({parameters} parameters each, with gradients, and a batch of {batch}) with "
            f"{have / 2**30:.1f} GiB available: set batched = false to train one client at a time"
        )

    def _root_examples(self, rule: Component) -> np.ndarray | None:
        """FLTrust's root data: ``root_size`` clean training examples the server holds, a seeded
        draw from the training set (with its true labels); ``None`` for every other rule."""
        if rule.name != "FLTrust":
            return None
        size = min(int(rule.params["root_size"]), len(self.data.y_train))
        return np.sort(np.random.default_rng([self.seed, 0xF1A7]).choice(len(self.data.y_train), size=size, replace=False))

    def _server_update(self, rnd: int, global_params: torch.Tensor) -> np.ndarray | None:
        """FLTrust's reference: the server's own update, trained on its root data from the global
        model with the clients' local procedure (seeded as a client with the id after the last)."""
        if self._root_data is None:
            return None
        x, y = self._root_data
        # positions into the root tensors: the same examples, in the same order, as indices into the training set
        # the server's own data is not the clients': it trains without DP-SGD
        local = dataclasses.replace(self.local, dp=None)
        plan = ClientBatchPlan.make([np.arange(len(y))], local, seed=self.seed, round=rnd, client_ids=[len(self.data.client_indices)])
        update = train_clients_loop(self._model, global_params, x, y, plan, local)
        return update[0].cpu().numpy()

    def _poisoned_labels(self) -> torch.Tensor:
        """Training labels with the data attacks applied to the malicious clients' examples, once."""
        attacks = self.orchestrator.data_attacks
        if not attacks:
            return self.data.y_train
        y = self.data.y_train.clone()
        for cid in self.orchestrator.malicious_clients:
            idx = torch.from_numpy(np.asarray(self.data.client_indices[cid], dtype=np.int64))
            y[idx] = poison_labels(y[idx], attacks, self.data.num_classes)
        return y

    def _plant_backdoor(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, SuccessProbe | None]:
        """Training inputs and labels (``y``: after the label attacks) with a backdoor planted in
        the malicious clients' data, and what measures a targeted attack's success each round."""
        attacks = self.orchestrator.data_attacks
        backdoor, trigger, x = backdoor_of(attacks), None, self.data.x_train
        if backdoor is not None:
            trigger = make_trigger(tuple(self.data.input_shape), int(backdoor.params["size"]), self.data.x_train)
            x, y = plant_backdoor(
                x,
                y,
                self.data.client_indices,
                self.orchestrator.malicious_clients,
                backdoor,
                trigger,
                self.data.num_classes,
                self.seed,
            )
        return x, y, success_probe(attacks, self.data.x_test, self.data.y_test, trigger)

    @property
    def model(self) -> torch.nn.Module:
        """The global model (its parameters are the orchestrator's global model after each round)."""
        return self._model

    @property
    def malicious_clients(self) -> list[int]:
        return self.orchestrator.malicious_clients

    def run_round(self) -> RoundRecord:
        start = time.perf_counter()
        rnd = len(self.history) + 1
        n = len(self.data.client_indices)
        ids = np.sort(self._sampler.choice(n, size=self.clients_per_round, replace=False))
        plan = ClientBatchPlan.make(
            [self.data.client_indices[i] for i in ids], self.local, seed=self.seed, round=rnd, client_ids=ids.tolist()
        )
        global_params = torch.from_numpy(self.orchestrator.global_model).to(self.device)
        train = train_clients_batched if self.batched else train_clients_loop
        updates = train(self._model, global_params, self._x_train, self._y_train, plan, self.local)
        if self._ledger is not None and plan.sample_rates is not None:
            self._ledger.record(ids.tolist(), plan.sample_rates, [len(b) for b in plan.batches])
        if self.client_momentum > 0:
            updates = self._apply_client_momentum(ids, updates)
        g0 = self._server_update(rnd, global_params)
        synchronize(self.device)  # a GPU's training is timed to its end, not to its last launch
        t_train = time.perf_counter()

        python = self._python_rule is not None or bool(self._python_attacks)
        # the one host copy of the round's updates (none on the CPU); the user's Python code may
        # keep the matrix, so it gets an array of its own, not the buffer reused next round
        x = self._host_copy(updates, own=python)
        if not python:
            summary = self.orchestrator.step(x, weights=self._sizes[ids], client_ids=ids.tolist(), server_update=g0)
        else:
            summary = self._step_with_python(x, self._sizes[ids], ids, rnd, g0)
        t_agg = time.perf_counter()

        vector_to_parameters(torch.from_numpy(self.orchestrator.global_model).to(self.device), self._model.parameters())
        loss, acc = evaluate(self._model, self._x_test, self._y_test)
        success = self._success.rate(self._model) if self._success is not None else math.nan
        if self._python_rule is None:  # a Python rule's rounds are not in the core's history
            self.orchestrator.report_metrics(loss, acc)
        end = time.perf_counter()

        record = RoundRecord(
            round=rnd,
            client_ids=tuple(int(i) for i in ids),
            num_clients=summary.num_clients,
            num_malicious=summary.num_malicious,
            global_loss=loss,
            accuracy=acc,
            attack_success=success,
            attack_distance=summary.attack_distance,
            attacks=summary.attacks,
            train_ms=(t_train - start) * 1e3,
            aggregate_ms=(t_agg - t_train) * 1e3,
            eval_ms=(end - t_agg) * 1e3,
            round_ms=(end - start) * 1e3,
            defence=DefenceRecord.from_summary(summary),
            dp_epsilon=self._ledger.worst() if self._ledger is not None else math.nan,
            server_dp_epsilon=self._server_epsilon(rnd),
        )
        self.history.append(record)
        return record

    def _server_epsilon(self, rounds: int) -> float:
        """Server DP's ε after ``rounds`` rounds (q = clients per round / clients); NaN without
        server DP or where it is no guarantee (a rule other than the mean)."""
        dp = self.server_dp
        if dp is None or not self._server_dp_holds:
            return math.nan
        q = self.clients_per_round / len(self.data.client_indices)
        return epsilon(noise_multiplier=dp.noise_multiplier, sample_rate=q, steps=rounds, delta=dp.delta, accountant=dp.accountant)

    def _step_with_python(self, x: np.ndarray, weights: np.ndarray, ids: np.ndarray, rnd: int, g0: np.ndarray | None) -> RoundSummary:
        """A round with Python attacks (applied first, then the core's) and/or a Python rule."""
        start = time.perf_counter()
        malicious_set = set(self.orchestrator.malicious_clients)
        malicious = [r for r, cid in enumerate(ids.tolist()) if cid in malicious_set]
        rng = np.random.default_rng([self.seed, rnd, 0xA77AC])
        outcomes: list[AttackOutcome] = []
        for component in self._python_attacks:
            x = extend.run_attack(component, x, malicious=malicious, rng=rng)
            outcomes.append(AttackOutcome(component.name, None))
        if self._python_rule is None:  # the core attacks and aggregates, with its state and history
            summary = self.orchestrator.step(x, weights=weights, client_ids=ids.tolist(), server_update=g0)
            return dataclasses.replace(summary, attacks=(*outcomes, *summary.attacks))

        honest = [r for r in range(len(ids)) if r not in malicious] or malicious
        honest_mean = x[honest].mean(axis=0)
        rule = self._python_rule

        def defence(m: np.ndarray) -> np.ndarray:  # what the adaptive attacks optimise against: this rule
            return extend.run_rule(rule, m, f=len(malicious), weights=weights)

        if malicious:
            for a in self.orchestrator.attacks:
                if not a.is_data_attack:
                    x, report = apply_attack(x, a, malicious=malicious, f=len(malicious), seed=int(rng.integers(2**63)), defence=defence)
                    outcomes.append(AttackOutcome(report["name"], report.get("strength")))
        t_attack = time.perf_counter()
        aggregate = defence(np.ascontiguousarray(x, dtype=np.float32))
        t_rule = time.perf_counter()
        self.orchestrator.global_model = self.orchestrator.global_model + aggregate

        def ms(a: float, b: float) -> float:
            return (b - a) * 1e3

        return RoundSummary(
            round=rnd,
            num_clients=len(ids),
            num_malicious=len(malicious),
            malicious_clients=tuple(int(ids[r]) for r in malicious),
            client_ids=tuple(int(i) for i in ids),
            client_shares=None,  # a Python rule is not traced
            update_norms=tuple(float(v) for v in np.linalg.norm(np.asarray(x, dtype=np.float64), axis=1)),
            global_loss=float("nan"),
            accuracy=float("nan"),
            attacks=tuple(outcomes),
            attack_distance=float(np.linalg.norm(aggregate - honest_mean)),
            honest_mean_norm=float(np.linalg.norm(honest_mean)),
            aggregate_norm=float(np.linalg.norm(aggregate)),
            aggregate_finite=bool(np.isfinite(aggregate).all()),
            # A Python rule is not traced: only the malicious weight share is known.
            malicious_share=float("nan"),
            malicious_weight=float(np.asarray(weights, dtype=np.float64)[malicious].sum() / np.sum(weights)) if malicious else 0.0,
            selected=None,
            selected_malicious=None,
            detection_precision=None,
            detection_recall=None,
            clipped=None,
            clip_radius=None,
            attack_ms=ms(start, t_attack),
            aggregate_ms=ms(t_attack, t_rule),
            server_ms=ms(t_rule, time.perf_counter()),
            kernel_ms=0.0,
        )

    def _apply_client_momentum(self, ids: np.ndarray, updates: torch.Tensor) -> torch.Tensor:
        """Each client's momentum persists across the rounds it takes part in (zero at first)."""
        beta = self.client_momentum
        out = torch.empty_like(updates)
        for row, cid in enumerate(ids.tolist()):
            prev = self._momentum.get(cid)
            m = (1 - beta) * updates[row] if prev is None else beta * prev + (1 - beta) * updates[row]
            self._momentum[cid] = m
            out[row] = m
        return out
