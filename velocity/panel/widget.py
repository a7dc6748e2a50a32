"""``SweepPanel``: the live notebook panel of a ``Sweep`` (an anywidget).

Python owns the state; the front end (``widgets/``, bundled into ``velocity/static/``) renders
it. One background thread, the panel's *feeder*, makes every change the panel itself makes:
it takes round rows from the sweep's callback, sends them to the front end in batches a few
times a second (``{"kind": "rows", "start", "rows"}``, appended to the charts' named data set)
and refreshes the run table and the counts. Messages from the front end (Run, Stop, replay) and
control changes (α, clients) are queued to the same thread, so nothing mutates the widget from
two threads at once, and the kernel stays free for other cells while a sweep runs.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from velocity.panel import charts, export
from velocity.panel.presets import PRESETS, find_preset
from velocity.panel.state import (
    Controls,
    RoundRate,
    alpha_fixed,
    alpha_of,
    caption,
    client_rows,
    data_holders,
    describe_partition,
    heatmap_cells,
    label_rows,
    panel_verdict,
    partition_keys,
    run_table,
    specs_from_controls,
    status_counts,
)
from velocity.rounds import PER_CLIENT_COLUMNS, panel_row
from velocity.training.device import available_devices, device_name

if TYPE_CHECKING:
    from velocity.sweep.spec import RunSpec
    from velocity.sweep.sweep import Sweep

#: The traits a Run message carries, as the front end shows them.
CONTROL_TRAITS = ("alpha", "strategies", "attacks", "malicious_fraction", "rounds", "clients", "seeds", "device")

#: Rows per replay message, so a late view of a long sweep is not sent one huge message.
REPLAY_CHUNK = 5000


def _rule_names() -> list[str]:
    from velocity import extend
    from velocity.registry import list_strategies

    return [*(c.name for c in list_strategies() if c.kind == "rule"), *extend.names("rule")]


def _attack_names() -> list[str]:
    from velocity import extend
    from velocity.registry import list_attacks

    # the nan/inf attacks only test input checking; they teach nothing in a panel
    return ["none", *(c.name for c in list_attacks() if c.name not in ("nan", "inf")), *extend.names("update_attack")]


def _option_help(options: list[str]) -> dict[str, str]:
    """One line per strategy or attack choice, from the registry: what it is, and for a choice
    with parameters (``sign_flip(scale=4.0)``) which ones differ from its defaults."""
    from velocity.registry import list_attacks, list_strategies

    summaries = {c.name: c.summary for c in [*list_strategies(), *list_attacks()]}
    summaries["none"] = "No attack: the clean baseline every attacked run is compared with."
    out = {}
    for option in options:
        parts = [p.strip() for p in option.split("+")]
        lines = []
        for part in parts:
            name, _, params = part.partition("(")
            if name in summaries:
                lines.append(f"{name}: {summaries[name]}" if len(parts) > 1 or params else summaries[name])
                if params:
                    lines[-1] += f" Here with {params.rstrip(')')}."
        if lines:
            out[option] = " ".join(lines)
    return out


def _chance(base: RunSpec) -> float | None:
    """A uniform guess's accuracy on the sweep's data set (None when it cannot be loaded here:
    the runs will say why)."""
    from velocity.data import num_classes

    try:
        return 1 / num_classes(base.dataset, test_fraction=base.test_fraction)
    except (OSError, ValueError):
        return None


def attack_strengths() -> list[dict[str, Any]]:
    """The attacks whose strength is one number (sign-flip scale, IPM ε, ALIE z, …), from the
    registry: name, parameter, default (None where it is derived) and what it means."""
    from velocity.registry import list_attacks

    out = []
    for c in list_attacks():
        floats = [p for p in c.params if p.type == "float"]
        if len(c.params) == 1 and floats and c.name not in ("nan", "inf"):
            (p,) = floats
            out.append({"attack": c.name, "param": p.name, "default": None if p.derived else p.default, "help": p.description})
    return out


def _unique(items: Any) -> list[str]:
    return list(dict.fromkeys(items))


class SweepPanel(anywidget.AnyWidget):
    """A live dashboard of a sweep: charts that grow round by round, a strategy × attack heatmap,
    the label distribution of the chosen α, controls that queue new runs, and a ranking table.

    >>> sweep = Sweep.from_grid(strategies=["FedAvg", "FedMedian"], attacks=["none", "sign_flip"])
    >>> sweep.start()
    >>> sweep.panel()     # or display(sweep)
    >>> sweep.panel(view="heatmap", projector=True)   # opened on the heatmap, drawn larger

    Parameters
    ----------
    sweep
        The sweep to show; started or not (Run starts it).
    interval
        Seconds between updates sent to the front end; rows arriving in between are batched.
    **kwargs
        Initial values of the traits, e.g. ``view`` (the chart shown: ``"progress"``,
        ``"heatmap"``, ``"defence"``, ``"clients"`` or ``"labels"``), ``projector`` (larger text
        and charts), ``show_setting`` (only the runs of one setting, as the run table names it) or
        ``client_run`` (the run the per-client view shows).
    """

    _esm = export.STATIC / "panel.js"
    _css = export.STATIC / "panel.css"

    # ---- what Python shows
    specs = traitlets.Dict(help="Vega-Lite spec per chart, each reading a named data set").tag(sync=True)
    row_count = traitlets.Int(0, help="round rows sent to the front end so far").tag(sync=True)
    runs: traitlets.List[dict[str, Any]] = traitlets.List(help="the run table (velocity.panel.state.run_table)").tag(sync=True)
    cells: traitlets.List[dict[str, Any]] = traitlets.List(help="the heatmap's cells (velocity.panel.state.heatmap_cells)").tag(sync=True)
    verdict = traitlets.Dict(help="the comparison's verdict over the finished runs (velocity.sweep.verdict)").tag(sync=True)
    counts = traitlets.Dict(help="runs per status, rounds and rounds per second").tag(sync=True)
    running = traitlets.Bool(False).tag(sync=True)
    message = traitlets.Unicode("", help="what the last Run or Stop did").tag(sync=True)
    label_rows: traitlets.List[dict[str, Any]] = traitlets.List(help="client × class counts of the chosen partition").tag(sync=True)
    label_note = traitlets.Unicode("").tag(sync=True)
    client_run = traitlets.Int(None, allow_none=True, help="the run the per-client view shows (None: the first attacked run)").tag(
        sync=True
    )
    client_rows: traitlets.List[dict[str, Any]] = traitlets.List(
        help="that run per client and round (velocity.panel.state.client_rows)"
    ).tag(sync=True)
    client_note = traitlets.Unicode("", help="which run the per-client view shows, and how").tag(sync=True)
    strategy_options = traitlets.List(traitlets.Unicode()).tag(sync=True)
    attack_options = traitlets.List(traitlets.Unicode()).tag(sync=True)
    option_help = traitlets.Dict(help="what each strategy and attack choice is, one line each (the registry's summary)").tag(sync=True)
    presets: traitlets.List[dict[str, str]] = traitlets.List(help="scenarios the controls can be set to: name and summary").tag(sync=True)
    attack_strengths: traitlets.List[dict[str, Any]] = traitlets.List(
        help="attacks with one strength parameter: its name, default and meaning (velocity.panel.widget.attack_strengths)"
    ).tag(sync=True)
    # ---- what the user chooses (two-way)
    alpha = traitlets.Float(None, allow_none=True, help="Dirichlet α of new runs; None is iid").tag(sync=True)
    alpha_note = traitlets.Unicode("", help="why the α slider is off for this sweep's partition ('' when it applies)").tag(sync=True)
    strategies = traitlets.List(traitlets.Unicode()).tag(sync=True)
    attacks = traitlets.List(traitlets.Unicode()).tag(sync=True)
    malicious_fraction = traitlets.Float(0.2).tag(sync=True)
    rounds = traitlets.Int(10).tag(sync=True)
    clients = traitlets.Int(10).tag(sync=True)
    seeds = traitlets.Int(1, help="seeds per combination queued by Run, from the sweep's first run's").tag(sync=True)
    device = traitlets.Unicode("auto", help="where new runs train (velocity.training.device)").tag(sync=True)
    device_options = traitlets.List(traitlets.Unicode(), help="the devices this machine has, 'auto' first").tag(sync=True)
    rank_by = traitlets.Enum(("accuracy", "loss"), "accuracy").tag(sync=True)
    view = traitlets.Enum(charts.CHART_NAMES, "progress", help="the chart shown (one at a time: the tabs)").tag(sync=True)
    projector = traitlets.Bool(False, help="everything drawn larger, for a projector").tag(sync=True)
    show_setting = traitlets.Unicode("", help="the setting whose runs the line charts and the table show ('': every setting)").tag(
        sync=True
    )
    # ---- derived from show_setting by Python
    shown_runs = traitlets.Any(None, help="indices of the runs shown, a list (None: all)").tag(sync=True)

    def __init__(self, sweep: Sweep, *, interval: float = 0.25, **kwargs: Any) -> None:
        if not interval > 0:
            raise ValueError(f"Expected interval > 0 seconds, got {interval!r}")
        base = sweep.specs[0]
        attacked = [s for s in sweep.specs if s.attacks]
        strategy_options = _unique([*(s.strategy for s in sweep.specs), *_rule_names()])
        attack_options = _unique([*(s.attack_label for s in sweep.specs), *_attack_names()])
        keys = charts.LineKeys().extended(sweep.specs)
        chance = _chance(base)
        super().__init__(
            specs=charts.chart_specs(keys, chance=chance),
            strategy_options=strategy_options,
            attack_options=attack_options,
            option_help=_option_help([*strategy_options, *attack_options]),
            presets=[{"name": p.name, "summary": p.summary} for p in PRESETS],
            attack_strengths=attack_strengths(),
            strategies=_unique(s.strategy for s in sweep.specs),
            attacks=_unique(s.attack_label for s in sweep.specs),
            alpha=alpha_of(base),
            alpha_note=alpha_fixed(base),
            malicious_fraction=max((s.malicious_fraction for s in attacked), default=0.2),
            rounds=base.rounds,
            clients=base.num_clients,
            seeds=len({s.seed for s in sweep.specs}),
            device=base.device,
            device_options=_unique([base.device, *available_devices()]),
            **kwargs,
        )
        self.sweep = sweep
        self.interval = interval
        self._base: RunSpec = base
        self._keys = keys  # which colour and dash each strategy and attack keeps
        self._chance = chance
        self._configs: dict[str, int] = {}  # configuration (RunSpec.config_key) → its number in the rows
        self._config_of_run: dict[int, int] = {}  # run index → its configuration's number
        self._per_client: dict[int, list[dict[str, Any]]] = {}  # run → its rows' per-client columns
        self._clients_stale = False
        self._rows: list[dict[str, Any]] = []  # every row sent, in order (replays come from here)
        self._incoming: deque[dict[str, Any]] = deque()  # filled by the sweep's event thread
        self._latest: dict[int, dict[str, Any]] = {}
        self._rounds_seen: dict[int, int] = {}
        self._rate = RoundRate()
        self._commands: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._labels_stale = True
        self._closed = threading.Event()
        self._flushed = threading.Condition()
        self._flushes = 0
        self._stopping: threading.Thread | None = None
        self._verdict_of: tuple[Any, ...] | None = None  # the statuses and summaries the verdict was computed for

        sweep.on_round(self._on_round, replay=True)  # every round exactly once, however late the panel
        self.on_msg(self._on_front_end_message)
        self.observe(self._on_partition_change, names=["alpha", "clients", "malicious_fraction"])
        self.observe(lambda _change: self._command("shown"), names=["show_setting"])
        self.observe(lambda _change: self._command("clients"), names=["client_run"])
        self._initial = {name: getattr(self, name) for name in CONTROL_TRAITS}  # what Reset returns to
        self._feeder = threading.Thread(target=self._feed, name="velocity-panel", daemon=True)
        self._feeder.start()

    # ------------------------------------------------------------------ validation
    @traitlets.validate("alpha")
    def _check_alpha(self, proposal: Any) -> float | None:
        value = proposal["value"]
        if value is None or math.isinf(value):
            return None
        if not value > 0:
            raise traitlets.TraitError(f"Expected alpha > 0 or None (iid), got {value!r}")
        return float(value)

    @traitlets.validate("device")
    def _check_device(self, proposal: Any) -> str:
        try:
            return device_name(proposal["value"])  # its form; whether this machine has it: when runs are queued
        except ValueError as e:
            raise traitlets.TraitError(str(e)) from None

    @traitlets.validate("shown_runs")
    def _check_shown_runs(self, proposal: Any) -> list[int] | None:
        value = proposal["value"]
        if value is None:
            return None
        if not isinstance(value, list | tuple) or not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
            raise traitlets.TraitError(f"Expected shown_runs as a list of run indices or None, got {value!r}")
        return list(value)

    @traitlets.validate("malicious_fraction")
    def _check_fraction(self, proposal: Any) -> float:
        value = proposal["value"]
        if not 0 <= value < 1:
            raise traitlets.TraitError(f"Expected malicious_fraction in [0, 1), got {value!r}")
        return float(value)

    @traitlets.validate("rounds", "clients", "seeds")
    def _check_positive(self, proposal: Any) -> int:
        value = proposal["value"]
        if value < 1:
            raise traitlets.TraitError(f"Expected {proposal['trait'].name} >= 1, got {value!r}")
        return int(value)

    # ------------------------------------------------------------------ public API
    @property
    def controls(self) -> Controls:
        return Controls(
            strategies=tuple(self.strategies),
            attacks=tuple(self.attacks),
            alpha=self.alpha,
            malicious_fraction=self.malicious_fraction,
            rounds=self.rounds,
            clients=self.clients,
            seeds=self.seeds,
            device=self.device,
        )

    def queue_runs(self) -> list[RunSpec]:
        """What the Run button does: add the runs the controls describe to the sweep (starting it
        if it is idle) and return them. Combinations already in the sweep, or invalid ones, are
        left out and named in ``message``."""
        new, skipped = specs_from_controls(self._base, self.controls, self.sweep.specs)
        problem = self._partition_problem()
        if problem is not None:
            new, skipped = [], [f"the partition cannot be made: {problem}"]
        if new:
            if self._stopping is not None:
                self._stopping.join()  # a Stop still under way must end before runs are added
            self.sweep.add(new)  # into the running sweep, or restarting a finished one
            if not self.sweep.started:
                self.sweep.start()
        text = f"Queued {len(new)} run{'s' if len(new) != 1 else ''}." if new else "Queued nothing."
        if skipped:
            text += " Left out: " + "; ".join(skipped)
        self._command("message", text)
        return new

    def stop(self) -> None:
        """What the Stop button does: cancel the sweep (in the background; rounds already
        finished stay on disk and in the charts)."""
        if self._stopping is not None and self._stopping.is_alive():
            return
        self._stopping = threading.Thread(target=self.sweep.cancel, name="velocity-panel-stop", daemon=True)
        self._stopping.start()
        self._command("message", "Stopping: queued runs will not start, running ones are stopped.")

    def apply_preset(self, name: str) -> None:
        """Set the controls to a preset scenario (``velocity.panel.presets``); Run queues it."""
        from velocity.specs import parse_attack, parse_strategy

        preset = find_preset(name)
        strategies = [parse_strategy(s).text for s in preset.strategies]
        attacks = [a if a == "none" else parse_attack(a).text for a in preset.attacks]
        with self.hold_trait_notifications():
            self._add_options(strategies, attacks)
            self.strategies, self.attacks = strategies, attacks
            self.alpha, self.malicious_fraction = preset.alpha, preset.malicious_fraction
            if preset.clients is not None:
                self.clients = preset.clients
        self.message = f"{preset.name}: {preset.summary} Press Run to queue it."

    def reset_controls(self) -> None:
        """Put the controls back as they were when the panel opened (the runs stay)."""
        with self.hold_trait_notifications():
            for name, value in self._initial.items():
                setattr(self, name, value)
        self.message = "Controls reset to the sweep's own settings."

    def add_attack_strength(self, attack: str, value: float | None) -> str:
        """Add ``attack`` at strength ``value`` (its one parameter, e.g. IPM's ε) to the attack
        choices, ticked; returns its text (``"ipm(epsilon=0.5)"``). ``ValueError`` for an attack
        without such a parameter or a value out of its range."""
        from velocity.specs import parse_attack

        info = next((a for a in self.attack_strengths if a["attack"] == attack), None)
        if info is None:
            raise ValueError(f"Expected one of {', '.join(a['attack'] for a in self.attack_strengths)}, got {attack!r}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            given = "nothing" if value in (None, "") else repr(value)
            raise ValueError(f"Expected a number for {attack}'s {info['param']}, got {given}")
        text = parse_attack(f"{attack}({info['param']}={float(value)!r})").text
        with self.hold_trait_notifications():
            self._add_options([], [text])
            if text not in self.attacks:
                self.attacks = [*self.attacks, text]
        return text

    def _add_options(self, strategies: list[str], attacks: list[str]) -> None:
        """Make these strategies and attacks choices of the panel (with their one-line help)."""
        new_strategies = [s for s in strategies if s not in self.strategy_options]
        new_attacks = [a for a in attacks if a not in self.attack_options]
        if new_strategies:
            self.strategy_options = [*self.strategy_options, *new_strategies]
        if new_attacks:
            self.attack_options = [*self.attack_options, *new_attacks]
        if new_strategies or new_attacks:
            self.option_help = {**self.option_help, **_option_help([*new_strategies, *new_attacks])}

    def sync(self, timeout: float = 10.0) -> SweepPanel:
        """Wait until the feeder has applied everything that arrived before this call."""
        with self._flushed:
            target = self._flushes + 1
            self._commands.put(("flush",))
            if not self._flushed.wait_for(lambda: self._flushes >= target or self._closed.is_set(), timeout):
                raise TimeoutError(f"Expected the panel to update within {timeout} s, it did not")
        return self

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Every round row sent to the charts, in arrival order."""
        return list(self._rows)

    def full_spec(self, chart: charts.ExportName = "all", *, captioned: bool = True) -> dict[str, Any]:
        """A chart's Vega-Lite spec with the current data filled in (``all``: every chart), and,
        unless ``captioned=False``, a caption naming the settings its runs share."""
        specs = dict(self.specs)
        spec = charts.combined(specs) if chart == "all" else specs[chart]
        spec = charts.with_shown_runs(spec, self.shown_runs)
        if captioned:
            spec = charts.with_caption(spec, caption(self.sweep.specs))
        return charts.with_data(
            spec, rounds=list(self._rows), labels=list(self.label_rows), cells=list(self.cells), clients=list(self.client_rows)
        )

    def chart(self, chart: charts.ExportName = "all") -> Any:
        """The chart with its current data as an Altair chart (``.save("x.png")``, ``.show()``…)."""
        return export.altair_chart(self.full_spec(chart))

    def save_chart(self, path: str | Path, chart: charts.ExportName = "all", *, scale: float = 2.0) -> Path:
        """Save a chart with its current data as PNG or SVG (vl-convert: no browser, no network)."""
        return export.save_spec(self.full_spec(chart), path, scale=scale)

    def save_html(self, path: str | Path) -> Path:
        """A static snapshot of the whole panel as one self-contained HTML file (charts, table,
        status; controls shown but inert). It loads nothing from the network."""
        self.sync()
        state = {
            name: getattr(self, name)
            for name in (
                "specs",
                "runs",
                "cells",
                "verdict",
                "counts",
                "running",
                "message",
                "label_rows",
                "label_note",
                "client_run",
                "client_rows",
                "client_note",
                "strategy_options",
                "attack_options",
                "option_help",
                "presets",
                "attack_strengths",
                "alpha",
                "strategies",
                "attacks",
                "malicious_fraction",
                "rounds",
                "clients",
                "seeds",
                "device",
                "device_options",
                "rank_by",
                "show_setting",
                "shown_runs",
                "view",
                "projector",
            )
        }
        return export.write_snapshot(path, title=f"VelocityFL sweep · {self.sweep.out}", state=state, rows=self._rows)

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called (a closed panel no longer follows its sweep)."""
        return self._closed.is_set()

    def close(self) -> None:
        """Stop updating and close the widget (the sweep goes on)."""
        self._closed.set()
        self._commands.put(("close",))
        super().close()

    # ------------------------------------------------------------------ inputs (any thread)
    def _on_round(self, row: dict[str, Any]) -> None:
        if not self._closed.is_set():
            self._incoming.append(row)

    def _on_front_end_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("kind")
        if kind == "replay":
            self._command("replay", int(content.get("have", 0)))
        elif kind == "run":
            controls = content.get("controls")
            self._command("run", controls if isinstance(controls, dict) else {})
        elif kind in ("stop", "reset"):
            self._command(kind)
        elif kind == "preset":
            self._command("preset", str(content.get("name", "")))
        elif kind == "strength":
            self._command("strength", str(content.get("attack", "")), content.get("value"))

    def _on_partition_change(self, _change: Any) -> None:
        self._labels_stale = True
        self._command("labels")

    def _command(self, *command: Any) -> None:
        self._commands.put(command)

    # ------------------------------------------------------------------ the feeder thread
    def _feed(self) -> None:
        next_flush = time.monotonic()
        while not self._closed.is_set():
            try:
                command = self._commands.get(timeout=max(0.0, next_flush - time.monotonic()))
            except queue.Empty:
                command = None
            try:
                if command is not None:
                    self._handle(command)
                if self._labels_stale:
                    self._update_labels()
                if (command is not None and command[0] == "flush") or time.monotonic() >= next_flush:
                    self._flush()
                    next_flush = time.monotonic() + self.interval
            except Exception as e:  # a panel problem must never stop the feeder
                self.message = f"Panel error: {type(e).__name__}: {e}"

    def _handle(self, command: tuple[Any, ...]) -> None:
        kind = command[0]
        if kind == "replay":
            have = max(0, min(command[1], len(self._rows)))
            rows = self._rows[have:]
            for start in range(0, max(len(rows), 1), REPLAY_CHUNK):
                self.send({"kind": "rows", "start": have + start, "rows": rows[start : start + REPLAY_CHUNK]})
        elif kind == "run":
            try:
                self._apply_controls(command[1] if len(command) > 1 else {})
                self.queue_runs()
            except Exception as e:
                self.message = f"Run failed: {type(e).__name__}: {e}"
        elif kind == "stop":
            self.stop()
        elif kind == "reset":
            self.reset_controls()
        elif kind == "preset":
            try:
                self.apply_preset(command[1])
            except ValueError as e:
                self.message = str(e)
        elif kind == "strength":
            try:
                self.message = f"Added {self.add_attack_strength(command[1], command[2])} to the attacks."
            except ValueError as e:
                self.message = str(e)
        elif kind == "message":
            self.message = command[1]
        elif kind == "shown":
            self._update_shown()
        elif kind == "clients":
            self._clients_stale = True

    def _apply_controls(self, controls: dict[str, Any]) -> None:
        """The controls as the front end showed them when Run was pressed. The front end sends
        its state changes one at a time (each waits for the kernel), but the Run message at
        once: a slider moved just before Run may not have arrived yet, and the runs would be
        queued with the α before it."""
        with self.hold_trait_notifications():
            for name in CONTROL_TRAITS:
                if name in controls:
                    setattr(self, name, controls[name])

    def _label_counts(self, alpha: float | None, clients: int) -> Any:
        """The client × class counts of the chosen partition (labels cached per data set)."""
        from velocity.data import partition_label_counts

        keys = partition_keys(self._base, alpha, data_holders(self._base, clients, self.malicious_fraction))
        return partition_label_counts(self._base.dataset, test_fraction=self._base.test_fraction, **keys)

    def _partition_problem(self) -> str | None:
        """Why the chosen α and client count give no partition (too few examples), if they don't."""
        try:
            self._label_counts(self.alpha, self.clients)
        except ValueError as e:
            return str(e)
        return None

    def _update_labels(self) -> None:
        self._labels_stale = False
        alpha, clients = self.alpha, self.clients
        try:
            counts = self._label_counts(alpha, clients)
        except ValueError as e:
            self.label_rows = []
            self.label_note = f"No partition: {e}"
            return
        self.label_rows = label_rows(counts)
        self.label_note = describe_partition(self._base, alpha, clients, counts)

    def _client_view_run(self) -> int | None:
        """The run the per-client view shows: the chosen one, else the first attacked run."""
        if self.client_run is not None:
            return self.client_run
        return next((e["index"] for e in self.runs if e["attack"] != "none"), None)

    def _update_clients(self) -> None:
        self._clients_stale = False
        index = self._client_view_run()
        rows, note = client_rows(self._per_client.get(index, [])) if index is not None else ([], "")
        name = next((e["run"] for e in self.runs if e["index"] == index), None)
        if index is None:
            note = "No run to show yet."
        elif not rows:
            note = f"{name}: no per-client record yet (decentralised runs keep none)"
        else:
            note = f"{name}" + (f" · {note}" if note else "")
        if rows != self.client_rows:
            self.client_rows = rows
        self.client_note = note

    def _update_shown(self) -> None:
        """The runs of the chosen setting; a setting the table no longer names (a sweep that
        now varies the clients names its settings with them) falls back to every setting."""
        shown = self.show_setting
        if shown and not any(entry["setting"] == shown for entry in self.runs):
            self.show_setting = shown = ""
        runs = [entry["index"] for entry in self.runs if entry["setting"] == shown] if shown else None
        if runs != self.shown_runs:
            self.shown_runs = runs

    def _flush(self) -> None:
        new = []
        run_specs: list[RunSpec] = []
        client_view = self._client_view_run()
        while self._incoming:  # each round once: the sweep merges events and files
            row = self._incoming.popleft()
            index = row["index"]
            if index not in self._config_of_run:  # a run's first row: number its configuration once
                if index >= len(run_specs):  # (a run is added before its first row arrives)
                    run_specs = self.sweep.specs
                key = run_specs[index].config_key
                self._config_of_run[index] = self._configs.setdefault(key, len(self._configs))
            config = self._config_of_run[index]
            self._per_client.setdefault(index, []).append({k: row.get(k, "") for k in PER_CLIENT_COLUMNS})
            self._clients_stale = self._clients_stale or index == client_view
            new.append(panel_row(row, config=config))
            self._latest[row["index"]] = row
            self._rounds_seen[row["index"]] = self._rounds_seen.get(row["index"], 0) + 1
        if new:
            start = len(self._rows)
            self._rows.extend(new)
            self._rate.add(len(new))
            self.send({"kind": "rows", "start": start, "rows": new})
            self.row_count = len(self._rows)
        specs, statuses, summaries = self.sweep.snapshot()
        keys = self._keys.extended(specs)
        if keys != self._keys:  # a new strategy or attack: the others keep their colours and dashes
            self._keys = keys
            self.specs = charts.chart_specs(keys, chance=self._chance)
        table = run_table(specs, statuses, summaries, self._latest, self._rounds_seen)
        if table != self.runs:
            self.runs = table
            self._update_shown()
            self._clients_stale = self._clients_stale or self.client_run is None  # the first attacked run may be known now
            cells = heatmap_cells(table)
            if cells != self.cells:
                self.cells = cells
        if self._clients_stale:
            self._update_clients()
        verdict_of = (*statuses, len(summaries))
        if verdict_of != self._verdict_of:  # a run finished (or was added): the verdict may change
            self._verdict_of = verdict_of
            self.verdict = panel_verdict(specs, statuses, summaries)
        running = self.sweep.running
        counts = status_counts(statuses, len(self._rows), self._rate.rate() if running else None)  # no rate once idle
        if counts != self.counts:
            self.counts = counts
        stopped = self._stopping is not None and not self._stopping.is_alive()
        if not running and stopped and self.message.startswith("Stopping"):
            self.message = "Stopped: runs that had not finished are cancelled; their finished rounds are kept."
        if running != self.running:
            if not running and self.message.startswith("Queued"):  # the queued runs are done: so is the message
                self.message = ""
            self.running = running
        with self._flushed:
            self._flushes += 1
            self._flushed.notify_all()
