"""What the panel shows, computed from a sweep: the run table, the status counts, the label
distribution, and the runs its controls describe. Plain functions, no widget, so they are
tested without a front end."""

from __future__ import annotations

import itertools
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from velocity.rounds import json_number
from velocity.specs import MEAN_RULES
from velocity.sweep.experiment import SpecError, grid
from velocity.sweep.report import RunResult
from velocity.sweep.spec import RunSpec, check_runnable
from velocity.sweep.verdict import mean_ci, verdicts, versus_best

#: RunSpec keys a panel run takes from the sweep's first run unchanged.
_FIXED_KEYS = ("name", "strategy", "attacks", "alpha", "partition", "seed", "malicious_fraction", "num_clients", "rounds", "storage")


@dataclass(frozen=True)
class Controls:
    """The panel's choices: what pressing Run queues."""

    strategies: tuple[str, ...]
    attacks: tuple[str, ...]
    alpha: float | None  # None is iid
    malicious_fraction: float
    rounds: int
    clients: int
    seeds: int = 1  # seeds base.seed, base.seed + 1, …
    device: str | None = None  # where the new runs train (None: the base run's device)


def alpha_of(spec: RunSpec) -> float | None:
    """A spec's α as the slider sees it: its label skew (a Dirichlet draw, alone or on a quantity
    skew's sizes); None for iid labels and the partitions the slider does not change."""
    if spec.partition not in ("dirichlet", "quantity") or spec.alpha is None or math.isinf(spec.alpha):
        return None
    return spec.alpha


def partition_keys(base: RunSpec, alpha: float | None, clients: int) -> dict[str, Any]:
    """The partition arguments of ``base`` with the slider's α and the chosen client count: α is
    the Dirichlet skew of an iid or Dirichlet base (of the label, or of the attribute the base
    skews), and of a quantity skew's labels on top of its sizes; a shard, pathological or natural
    partition stays as the base has it (:func:`alpha_fixed`)."""
    keys: dict[str, Any] = {"num_clients": clients, "min_partition_size": base.min_partition_size, "seed": base.seed}
    if alpha_fixed(base):
        keys.update(
            partition=base.partition,
            alpha=None,
            shards_per_client=base.shards_per_client,
            classes_per_client=base.classes_per_client,
            partition_by=base.partition_by,
        )
    elif base.partition == "quantity":
        keys.update(partition="quantity", alpha=alpha, size_distribution=base.size_distribution, size_skew=base.size_skew)
    elif alpha is None:
        keys.update(partition="iid", partition_by=None)
    else:
        keys.update(partition="dirichlet", alpha=alpha, partition_by=base.partition_by if base.partition == "dirichlet" else None)
    return keys


def alpha_fixed(base: RunSpec) -> str:
    """Why the α slider leaves new runs' partition as ``base`` has it, or "" when it does not: a
    shard, pathological or natural partition has no Dirichlet α."""
    if base.partition in ("shard", "pathological", "natural"):
        return f"new runs keep the sweep's {base.partition_label} partition, which has no Dirichlet α"
    return ""


def data_holders(base: RunSpec, clients: int, malicious_fraction: float) -> int:
    """How many of ``clients`` hold data in a run like ``base`` with this malicious share
    (``RunSpec.num_data_holders``)."""
    return base.model_copy(update={"num_clients": clients, "malicious_fraction": malicious_fraction}).num_data_holders


def label_rows(counts: Any) -> list[dict[str, int]]:
    """A client × class count matrix as rows for the label chart."""
    return [
        {"client": int(k), "class": int(c), "count": int(counts[k, c])}
        for k in range(counts.shape[0])
        for c in range(counts.shape[1])
        if counts[k, c] > 0
    ]


def describe_partition(base: RunSpec, alpha: float | None, clients: int, counts: Any) -> str:
    sizes = counts.sum(axis=1)
    held = (counts > 0).sum(axis=1)
    if base.partition in ("shard", "pathological", "natural"):
        what = base.partition_label
    elif base.partition == "quantity":
        sizes_law = f"quantity skew ({base.size_distribution.replace('_', '-')} {base.size_skew:g})"
        what = sizes_law if alpha is None else f"{sizes_law}, Dirichlet α = {alpha:g}"
    else:
        what = "iid" if alpha is None else f"Dirichlet α = {alpha:g}"
    holders = counts.shape[0]
    who = f"{clients} clients" if holders == clients else f"{holders} honest of {clients} workers hold the data"
    return (
        f"{base.dataset} · {who} · {what} (seed {base.seed}): {int(sizes.min())}–{int(sizes.max())} examples and "
        f"{int(held.min())}–{int(held.max())} classes per client"
    )


def specs_from_controls(base: RunSpec, controls: Controls, existing: Sequence[RunSpec]) -> tuple[list[RunSpec], list[str]]:
    """The runs the controls describe, built on ``base`` (the sweep's first run): each chosen
    strategy × attack at the chosen α, clients, rounds and malicious fraction, for each of
    ``controls.seeds`` seeds from the base run's.

    Returns the new specs and, for every combination left out, why: it is already in the sweep,
    or it is invalid (say Krum with too many malicious clients). A name that would clash with a
    different run already in the sweep gets the differing settings appended."""
    if not controls.strategies:
        return [], ["Expected at least one strategy, got none"]
    if not controls.attacks:
        return [], ["Expected at least one attack (or 'none'), got none"]
    shared = {k: v for k, v in base.model_dump().items() if k not in _FIXED_KEYS}
    if shared.get("min_clients") is not None:
        shared["min_clients"] = min(shared["min_clients"], controls.clients)
    shared.update(partition_keys(base, controls.alpha, controls.clients))
    shared["rounds"] = controls.rounds
    if controls.device is not None:
        shared["device"] = controls.device
    alpha = shared.pop("alpha", None)
    by_hash = {s.spec_hash for s in existing}
    labels = {s.label for s in existing}
    new: list[RunSpec] = []
    skipped: list[str] = []
    if controls.seeds < 1:
        return [], [f"Expected at least one seed, got {controls.seeds}"]
    for strategy, attack, seed in itertools.product(controls.strategies, controls.attacks, range(base.seed, base.seed + controls.seeds)):
        where = f"{strategy} × {attack}"
        try:
            (spec,) = grid(
                strategies=[strategy],
                attacks=[attack],
                alphas=[alpha],
                seeds=[seed],
                malicious_fraction=controls.malicious_fraction,
                where=where,
                **{k: v for k, v in shared.items() if k != "seed"},
            )
        except SpecError as e:  # its text starts with `where`
            skipped.append(str(e))
            continue
        except ValueError as e:
            skipped.append(f"{where}: {e}")
            continue
        try:
            check_runnable([spec])
        except ValueError as e:  # its text names the run
            skipped.append(str(e))
            continue
        if spec.spec_hash in by_hash:
            skipped.append(f"{where}{f' seed {seed}' if controls.seeds > 1 else ''}: already in this sweep")
            continue
        if spec.label in labels:
            spec = spec.model_copy(update={"name": f"{spec.label} | {_differences(spec, existing)}"})
        by_hash.add(spec.spec_hash)
        labels.add(spec.label)
        new.append(spec)
    return new, list(dict.fromkeys(skipped))  # an invalid combination is named once, not once per seed


def _differences(spec: RunSpec, existing: Sequence[RunSpec]) -> str:
    """What sets ``spec`` apart from the run of the same name: clients, rounds, malicious share."""
    other = next(s for s in existing if s.label == spec.label)
    parts = [
        f"{key}={getattr(spec, key)}"
        for key in ("num_clients", "rounds", "malicious_fraction", "min_clients")
        if getattr(spec, key) != getattr(other, key)
    ]
    return " ".join(parts) or f"#{spec.spec_hash[:6]}"


def run_table(
    specs: Sequence[RunSpec],
    statuses: Sequence[str],
    summaries: dict[int, dict[str, Any]],
    latest: dict[int, dict[str, Any]],
    rounds_seen: dict[int, int],
) -> list[dict[str, Any]]:
    """One entry per run: its status, progress, latest (or final) accuracy and loss, the change
    against its clean twin in this sweep (same settings, no attack, same seed), what its defence
    did (the malicious updates' share of the aggregate against their share of the weights; a
    note when a defending rule never acted) and its error."""
    entries: list[dict[str, Any]] = []
    named = settings(specs)
    for i, (spec, status) in enumerate(zip(specs, statuses, strict=True)):
        summary = summaries.get(i, {})
        last = latest.get(i, {})
        accuracy = summary.get("final_accuracy", last.get("accuracy"))
        loss = summary.get("final_loss", last.get("global_loss"))
        summarised = status == "finished" and "mean_malicious_share" in summary  # else the latest round speaks
        share = summary.get("mean_malicious_share") if summarised else last.get("malicious_share")
        weight = summary.get("mean_malicious_weight") if summarised else last.get("malicious_weight")
        never_acted = summarised and bool(spec.attacks) and spec.strategy not in MEAN_RULES and summary.get("rounds_defence_acted") == 0
        entries.append(
            {
                "index": i,
                "run": spec.label,
                "strategy": spec.strategy_label,
                "attack": spec.attack_label,
                "alpha": spec.alpha_label,
                "setting": named[i][0],
                "attack_shown": named[i][1],
                "seed": spec.seed,
                "status": status,
                "rounds_done": rounds_seen.get(i, 0),
                "rounds_total": spec.rounds,
                "accuracy": json_number(accuracy),
                "loss": json_number(loss),
                "accuracy_change": None,
                "loss_change": None,
                "attack_success": json_number(summary.get("final_attack_success", last.get("attack_success"))) if spec.attacks else None,
                "malicious_share": json_number(share) if spec.attacks else None,
                "malicious_weight": json_number(weight) if spec.attacks else None,
                "defence_note": "never acted" if never_acted else None,
                "dp_epsilon": json_number(summary.get("final_dp_epsilon", last.get("dp_epsilon"))),
                "server_dp_epsilon": json_number(summary.get("final_server_dp_epsilon", last.get("server_dp_epsilon"))),
                "error": summary.get("error") if status in ("failed", "cancelled") else None,
            }
        )
    # Against the clean twin only once both finished: a finished run against a twin still at
    # round 4 (or a run cancelled half-way) would be compared with an unfinished model.
    by_hash = {spec.spec_hash: i for i, spec in enumerate(specs)}
    for i, spec in enumerate(specs):
        if not spec.attacks:
            continue
        twin = by_hash.get(spec.clean_twin().spec_hash)
        if twin is None or statuses[i] != "finished" or statuses[twin] != "finished":
            continue
        mine, clean = entries[i], entries[twin]
        if mine["accuracy"] is not None and clean["accuracy"] is not None:
            mine["accuracy_change"] = mine["accuracy"] - clean["accuracy"]
        if mine["loss"] is not None and clean["loss"] is not None:  # a diverged (NaN) loss has none
            mine["loss_change"] = mine["loss"] - clean["loss"]
    return entries


def _varies(specs: Sequence[RunSpec], key: str) -> bool:
    return len({getattr(s, key) for s in specs}) > 1


def settings(specs: Sequence[RunSpec]) -> list[tuple[str, str]]:
    """Per run, its setting and its attack as the panel names them: the setting is the
    partition (α), with the client count and rounds when the sweep varies them; the attack
    carries the number of malicious clients (f) when the attacked runs vary their share. Two
    runs of the same strategy, attack and seed that differ in any of these never get the same
    names."""
    attacked = [s for s in specs if s.attacks]
    by_clients, by_rounds, by_fraction = _varies(specs, "num_clients"), _varies(specs, "rounds"), _varies(attacked, "malicious_fraction")
    out = []
    for spec in specs:
        setting = spec.partition_label
        if by_clients:
            setting += f" · {spec.num_clients} clients"
        if by_rounds:
            setting += f" · {spec.rounds} rounds"
        attack = spec.attack_label
        if by_fraction and spec.attacks:
            attack += f" · f={spec.num_malicious}"
        out.append((setting, attack))
    return out


def heatmap_cells(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The heatmap's cells from the run table (:func:`run_table`): accuracy (final, or latest
    while running) per strategy × attack × setting as the table names them (:func:`settings`),
    the mean over the cell's runs (its seeds) with the half-width of a 95 % Student-t interval
    when it has several."""
    values: dict[tuple[str, str, str], list[float]] = {}
    for entry in entries:
        cell = values.setdefault((entry["strategy"], entry["attack_shown"], entry["setting"]), [])
        if entry["accuracy"] is not None:
            cell.append(float(entry["accuracy"]))
    # the clean baseline leads the attack axis, the attacks follow in name order
    order = {a: i for i, a in enumerate(sorted({a for _, a, _ in values}, key=lambda a: (a != "none", a)))}
    cells = []
    for (strategy, attack, setting), accs in values.items():
        if not accs:
            continue
        mean, ci = mean_ci(accs)
        cells.append(
            {
                "strategy": strategy,
                "attack": attack,
                "attack_order": order[attack],
                "setting": setting,
                "accuracy": mean,
                "ci95": ci,
                "runs": len(accs),
            }
        )
    return cells


def _split(text: Any, kind: type) -> list[Any]:
    return [kind(v) for v in str(text).split(";")] if isinstance(text, str) and text else []


def client_rows(rounds: Sequence[Mapping[str, Any]], *, max_rounds: int = 100) -> tuple[list[dict[str, Any]], str]:
    """One run seen per client: for each round and aggregated client, whether it is malicious,
    its share of the aggregate (0: the defence left it out) and the norm of the update it sent
    (after the attacks), from the round rows' per-client columns. A run of more than
    ``max_rounds`` rounds is shown at evenly spaced rounds (the last included), so the chart
    stays light; the note says so."""
    usable = [r for r in rounds if isinstance(r.get("client_ids"), str) and r["client_ids"]]  # (decentralised rows have none)
    step = max(1, math.ceil(len(usable) / max_rounds))
    shown = [r for i, r in enumerate(usable) if i % step == 0 or i == len(usable) - 1]
    out = []
    for r in shown:
        ids, malicious = _split(r["client_ids"], int), set(_split(r.get("malicious_clients"), int))
        shares, norms = _split(r.get("client_shares"), float), _split(r.get("update_norms"), float)
        for k, client in enumerate(ids):
            out.append(
                {
                    "round": int(r["round"]),
                    "client": client,
                    "role": "malicious" if client in malicious else "honest",
                    "share": json_number(shares[k]) if k < len(shares) else None,
                    "norm": json_number(norms[k]) if k < len(norms) else None,
                }
            )
    note = f"1 round in {step} shown ({len(shown)} of {len(usable)})" if step > 1 else ""
    if usable and not usable[-1].get("client_shares"):
        note = "; ".join(filter(None, [note, "this rule does not say what share each client had (a Python rule)"]))
    return out, note


def panel_verdict(specs: Sequence[RunSpec], statuses: Sequence[str], summaries: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The comparison's verdict (``velocity.sweep.verdict``) over the runs finished so far."""
    results = [
        RunResult(spec, {**summaries.get(i, {}), "status": status}, "")
        for i, (spec, status) in enumerate(zip(specs, statuses, strict=True))
        if status == "finished"
    ]
    verdict = verdicts(results)
    verdict["table"] = [{**{k: json_number(v) for k, v in row.items()}, "versus_best": versus_best(row)} for row in verdict["table"]]
    return verdict


class RoundRate:
    """Rounds per second over the last ``window`` seconds (or since the first round, if later)."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._times: deque[float] = deque()
        self._first: float | None = None

    def add(self, n: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self._first is None:
            self._first = now
        self._times.extend([now] * n)

    def rate(self, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        while self._times and self._times[0] < now - self.window:
            self._times.popleft()
        if self._first is None:
            return None
        span = min(self.window, now - self._first)
        return len(self._times) / span if span > 0 else None


def status_counts(statuses: Sequence[str], rounds: int, rate: float | None) -> dict[str, Any]:
    counts: dict[str, Any] = dict.fromkeys(("queued", "running", "finished", "failed", "cancelled"), 0)
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    counts["rounds"] = rounds
    counts["rounds_per_s"] = None if rate is None else round(rate, 2)
    return counts


def caption(specs: Sequence[RunSpec]) -> str:
    """The settings every run of a sweep shares, in one line, for an exported figure: a slide
    should say what it shows (data, model, federation, training)."""
    if not specs:
        return ""
    first = specs[0]

    def shared(key: str) -> Any:
        values = {getattr(s, key) for s in specs}
        return next(iter(values)) if len(values) == 1 else None

    parts = [f"{first.dataset} · {first.model_id}" if shared("dataset") and shared("model_id") else None]
    partitions = {s.partition_label for s in specs}
    if len(partitions) == 1:
        parts.append(next(iter(partitions)))
    for key, text in (
        ("num_clients", "{} clients"),
        ("rounds", "{} rounds"),
        ("local_epochs", "{} local epoch{}"),
        ("lr", "lr {:g}"),
        ("momentum", "momentum {:g}"),
        ("client_momentum", "worker momentum {:g}"),
    ):
        value = shared(key)
        if value is not None and not (key == "client_momentum" and value == 0):
            parts.append(text.format(value, "" if value == 1 else "s"))
    attacked = [s for s in specs if s.attacks]
    fractions = {s.malicious_fraction for s in attacked}
    if len(fractions) == 1:
        parts.append(f"{next(iter(fractions)):.0%} malicious in attacked runs")
    seeds = sorted({s.seed for s in specs})
    parts.append(f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds")
    return " · ".join(p for p in parts if p)
