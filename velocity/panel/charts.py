"""The panel's charts, as Vega-Lite specs built with Altair.

Each chart reads a *named* data set (``rounds``, ``labels`` or ``cells``) instead of carrying its
data, so the front end embeds a spec once and then streams rows into the named set (a Vega
changeset), and an export fills the same names from Python (Vega-Lite's top-level ``datasets``).
One spec, both uses.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from velocity.sweep.spec import RunSpec

ChartName = Literal["progress", "heatmap", "defence", "clients", "labels"]
CHART_NAMES: tuple[ChartName, ...] = ("progress", "heatmap", "defence", "clients", "labels")
#: What an export may name: one chart, or all of them in one figure.
ExportName = Literal["all", "progress", "heatmap", "defence", "clients", "labels"]
#: The named data sets the charts read; the front end inserts into these by name.
ROUNDS, LABELS, CELLS, CLIENTS = "rounds", "labels", "cells", "clients"


def _alt() -> Any:
    import altair as alt

    return alt


#: How the line charts' legend names the runs without an attack.
CLEAN_LABEL = "(no attack)"

#: The strategies' colours, in the order strategies first appear in a panel (Tableau 10, then its
#: lighter twins from Tableau 20).
PALETTE = (
    "#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac",
    "#9ecae9", "#ffbf79", "#ff9d98", "#88d27a", "#83bcb6", "#f2cf5b", "#d6a5c9", "#fcbfd2", "#d8b5a5", "#79706e",
)  # fmt: skip
#: The attacks' dash patterns, in the order attacks first appear; the clean baseline is solid.
DASHES: tuple[tuple[int, ...], ...] = ((6, 3), (2, 2), (8, 3, 2, 3), (1, 3), (12, 4), (4, 2, 1, 2, 1, 2), (3, 5), (10, 2, 2, 2))
SOLID = (1, 0)

#: The line charts' parameter naming the runs drawn (a list of run indices; null: every run).
SHOWN_RUNS = "shown_runs"


@dataclass(frozen=True)
class LineKeys:
    """Which colour each strategy and which dash each attack gets, for the life of a panel.

    A scale that takes its domain from the data reassigns colours and dashes whenever a run
    adds a strategy or attack (ticking ALIE turned the clean baseline from solid to dashed);
    here each keeps the entry of the order it first appeared in, and the clean baseline is
    always solid. Only what the sweep holds is listed, so the legend names no absent run."""

    strategies: tuple[str, ...] = ()
    attacks: tuple[str, ...] = ()
    #: whether a run has a targeted attack: the defence tab then plots its success rate
    targeted: bool = False

    def extended(self, specs: Iterable[RunSpec]) -> LineKeys:
        """These keys with the strategies and attacks of ``specs`` not yet among them appended."""
        strategies, attacks = dict.fromkeys(self.strategies), dict.fromkeys(self.attacks)
        targeted = self.targeted
        for spec in specs:
            strategies.setdefault(spec.strategy_label)  # a rule with and without DP: two colours
            if spec.attack_label not in attacks:
                attacks[spec.attack_label] = None
                targeted = targeted or spec.targeted
        return LineKeys(tuple(strategies), tuple(attacks), targeted)

    def colour_scale(self) -> dict[str, Any]:
        return {"domain": list(self.strategies), "range": [PALETTE[i % len(PALETTE)] for i in range(len(self.strategies))]}

    def dash_scale(self) -> dict[str, Any]:
        attacked = [a for a in self.attacks if a != "none"]
        domain = ([CLEAN_LABEL] if "none" in self.attacks else []) + attacked
        dashes = [list(DASHES[i % len(DASHES)]) for i in range(len(attacked))]
        return {"domain": domain, "range": ([list(SOLID)] if "none" in self.attacks else []) + dashes}


def _run_lines(keys: LineKeys) -> tuple[Any, dict[str, Any]]:
    """The line mark and encoding every per-round chart shares: one line per run drawn
    (:data:`SHOWN_RUNS`), colour = strategy, dash = attack, as ``keys`` assign them."""
    alt = _alt()
    base = (
        alt.Chart(alt.Data(name=ROUNDS))
        .transform_filter(f"{SHOWN_RUNS} == null || indexof({SHOWN_RUNS}, datum.index) >= 0")
        .transform_calculate(dash=f"datum.attack == 'none' ? '{CLEAN_LABEL}' : datum.attack")
        .mark_line()
    )
    # Explicit domains: an empty one (no runs yet) is left to the data.
    colour, dash = keys.colour_scale(), keys.dash_scale()
    encoding = {
        "x": alt.X("round:Q", title="round", axis=alt.Axis(tickMinStep=1)),
        "color": alt.Color(
            "strategy:N",
            title="strategy",
            scale=alt.Scale(**colour) if colour["domain"] else alt.Undefined,
            legend=alt.Legend(
                symbolType="stroke", symbolOpacity=1, symbolStrokeWidth=2.5
            ),  # lines, also where a seed band shares the scale
        ),
        "strokeDash": alt.StrokeDash("dash:N", title="attack", scale=alt.Scale(**dash) if dash["domain"] else alt.Undefined),
        "strokeWidth": alt.condition("datum.attack == 'none'", alt.value(2.6), alt.value(1.6)),
        "detail": alt.Detail("run:N"),
        "tooltip": [
            alt.Tooltip("run:N"),
            alt.Tooltip("round:Q"),
            alt.Tooltip("accuracy:Q", format=".3f"),
            alt.Tooltip("global_loss:Q", title="loss", format=".4g"),
            alt.Tooltip("attack_success:Q", title="attack success (targeted attacks)", format=".3f"),
        ],
    }
    return base, encoding


def _with_run_filter(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with the :data:`SHOWN_RUNS` parameter its filter reads (every run at first)."""
    return {**spec, "params": [*spec.get("params", []), {"name": SHOWN_RUNS, "value": None}]}


def progress_chart(keys: LineKeys = LineKeys(), *, chance: float | None = None) -> dict[str, Any]:
    """Test accuracy and global loss per round, one line per run: colour = strategy, dash =
    attack; a configuration run with several seeds gets a band, its mean ± the 95 % interval
    over them; ``chance``, a uniform guess's accuracy, is drawn as a reference line."""
    alt = _alt()
    base, encoding = _run_lines(keys)
    size = {"width": 300, "height": 210}
    y = alt.Y("accuracy:Q", title="test accuracy", scale=alt.Scale(domain=[0, 1]))
    layers = [_seed_band(base, encoding), base.encode(y=y, **encoding)]
    if chance is not None:
        layers.append(_chance_line(chance))
    accuracy = alt.layer(*layers).properties(title="Test accuracy", **size)
    loss = _loss_chart(base, encoding).properties(title=f"Global loss (✕: beyond {LOSS_CEILING:g}× the first round's)", **size)
    return _with_run_filter(alt.hconcat(accuracy, loss).resolve_scale(color="shared", strokeDash="shared").to_dict())


#: Student-t 97.5 % quantiles for 1..100 degrees of freedom: the band's interval is the one the
#: verdict computes (``velocity.sweep.verdict.mean_ci``); beyond 100 seeds the last one serves.
@functools.cache  # (a chart's spec is rebuilt whenever a strategy or attack is added)
def _t975() -> tuple[float, ...]:
    from scipy.stats import t

    return tuple(round(float(t.ppf(0.975, df)), 4) for df in range(1, 101))


def _seed_band(base: Any, encoding: dict[str, Any]) -> Any:
    """Per configuration with several seeds (the rows' ``config``) and round: the mean accuracy
    ± the half-width of its 95 % Student-t interval over the seeds, as a shaded band."""
    alt = _alt()
    quantiles = list(_t975())  # a Vega array literal
    return (
        base.transform_filter("isValid(datum.accuracy)")
        .transform_aggregate(
            mean="mean(accuracy)", sd="stdev(accuracy)", seeds="count()", groupby=["config", "round", "strategy", "attack"]
        )
        .transform_filter("datum.seeds >= 2")
        .transform_calculate(half=f"{quantiles}[min(datum.seeds - 2, {len(quantiles) - 1})] * datum.sd / sqrt(datum.seeds)")
        .transform_calculate(low="max(0, datum.mean - datum.half)", high="min(1, datum.mean + datum.half)")
        .mark_area(opacity=0.18)
        .encode(
            x=encoding["x"],
            y=alt.Y("low:Q", title="test accuracy"),
            y2="high:Q",
            color=encoding["color"],
            detail=alt.Detail("config:N"),
            tooltip=[
                alt.Tooltip("strategy:N"),
                alt.Tooltip("attack:N"),
                alt.Tooltip("round:Q"),
                alt.Tooltip("mean:Q", title="mean over seeds", format=".3f"),
                alt.Tooltip("half:Q", title="± (95 % interval)", format=".3f"),
                alt.Tooltip("seeds:Q"),
            ],
        )
    )


def _chance_line(chance: float) -> Any:
    """A grey reference line at a uniform guess's accuracy."""
    alt = _alt()
    line = alt.Chart(alt.Data(values=[{"chance": chance}]))
    return alt.layer(
        line.mark_rule(color="#888", strokeDash=[2, 2]).encode(y="chance:Q"),
        line.mark_text(align="left", baseline="bottom", dx=3, dy=-2, color="#888", fontSize=10).encode(
            y="chance:Q", x=alt.value(0), text=alt.value(f"chance ({chance:.2g})")
        ),
    )


#: The loss chart's ceiling, in multiples of the first round's median loss: one diverging run
#: (losses of 1e23 were seen) would otherwise squash every healthy run against the axis.
LOSS_CEILING = 10


def _loss_chart(base: Any, encoding: dict[str, Any]) -> Any:
    """Loss per round, drawn up to :data:`LOSS_CEILING` × the first round's median loss; a loss
    beyond it, or not finite (NaN arrives as null), sits on the ceiling marked ✕ and the tooltip
    keeps its value."""
    alt = _alt()
    capped = (
        base.transform_calculate(first="datum.round == 1 && isFinite(datum.global_loss) ? datum.global_loss : null")
        .transform_joinaggregate(start="median(first)")
        .transform_calculate(ceiling=f"{LOSS_CEILING} * datum.start")
        .transform_calculate(
            diverged="!isFinite(datum.global_loss) || datum.global_loss > datum.ceiling",
            shown="isFinite(datum.global_loss) ? min(datum.global_loss, datum.ceiling) : datum.ceiling",
        )
    )
    y = alt.Y("shown:Q", title="global loss", scale=alt.Scale(type="symlog", zero=False))
    lines = capped.encode(y=y, **encoding)
    marks = (
        capped.transform_filter("datum.diverged")
        .mark_point(shape="cross", size=60, filled=True)
        .encode(
            x=encoding["x"],
            y=y,
            color=encoding["color"],
            tooltip=[alt.Tooltip("run:N"), alt.Tooltip("round:Q"), alt.Tooltip("global_loss:Q", title="loss (diverged)", format=".3g")],
        )
    )
    return alt.layer(lines, marks)


def defence_chart(keys: LineKeys = LineKeys()) -> dict[str, Any]:
    """What the defence let through: the malicious updates' share of the aggregate per round, one
    line per attacked run. 0: they had no part in it; their weight share (the tooltip): the rule
    treated them as anyone else, as FedAvg does. Beside it, when a run has a targeted attack
    (``keys.targeted``), that attack's success rate per round."""
    alt = _alt()
    base, encoding = _run_lines(keys)
    encoding["tooltip"] = [
        *encoding["tooltip"][:2],
        alt.Tooltip("malicious_share:Q", title="malicious share of the aggregate", format=".3f"),
        alt.Tooltip("malicious_weight:Q", title="their share of the weights", format=".3f"),
        alt.Tooltip("clipped:Q", title="updates clipped"),
        alt.Tooltip("selected_malicious:Q", title="malicious among the selected"),
    ]
    size = {"width": 220, "height": 180}
    # A clean run's share is 0 of 0: no line (blanked rather than filtered out, so the legend
    # matches the progress charts').
    share = (
        base.transform_calculate(share="datum.malicious_weight > 0 ? datum.malicious_share : null")
        .encode(y=alt.Y("share:Q", title="malicious share of the aggregate", scale=alt.Scale(domain=[0, 1], clamp=True)), **encoding)
        .properties(title="What the defence let through", **size)
    )
    if not keys.targeted:
        return _with_run_filter(share.to_dict())
    success_encoding = {
        **encoding,
        "tooltip": [*encoding["tooltip"][:2], alt.Tooltip("attack_success:Q", title="attack success", format=".3f")],
    }
    success = base.encode(
        y=alt.Y("attack_success:Q", title="attack success rate", scale=alt.Scale(domain=[0, 1], clamp=True)), **success_encoding
    ).properties(
        title=alt.TitleParams(
            "Targeted attack success",
            subtitle="backdoor: triggered test inputs classified as the target; targeted flipping: the source class",
            subtitleFontSize=9,
        ),
        **size,
    )
    return _with_run_filter(alt.hconcat(share, success).resolve_scale(color="shared", strokeDash="shared").to_dict())


def heatmap_chart() -> dict[str, Any]:
    """Accuracy per strategy × attack, one panel per setting (α, and clients or rounds when the
    sweep varies them): the mean over the cell's seeds, ± the half-width of its 95 % interval.
    Python computes the cells (``velocity.panel.state.heatmap_cells``) as runs progress."""
    alt = _alt()
    axes = {
        "x": alt.X("attack:N", title="attack", axis=alt.Axis(labelAngle=-30), sort=alt.EncodingSortField("attack_order", op="min")),
        "y": alt.Y("strategy:N", title="strategy"),
    }
    tooltip = [
        "strategy:N",
        "attack:N",
        "setting:N",
        alt.Tooltip("accuracy:Q", format=".3f"),
        alt.Tooltip("ci95:Q", title="± (95 % interval)", format=".3f"),
        alt.Tooltip("runs:Q", title="runs"),
    ]
    base = alt.Chart()
    cells = base.mark_rect().encode(
        color=alt.Color("accuracy:Q", title="accuracy", scale=alt.Scale(domain=[0, 1], scheme="viridis")),
        tooltip=tooltip,
        **axes,
    )
    ink = alt.condition("datum.accuracy > 0.6", alt.value("black"), alt.value("white"))
    value = base.mark_text(fontSize=11, baseline="bottom", dy=2).encode(text=alt.Text("accuracy:Q", format=".2f"), color=ink, **axes)
    interval = (
        base.transform_filter("isValid(datum.ci95)")
        .transform_calculate(interval="'±' + format(datum.ci95, '.2f')")
        .mark_text(fontSize=9, baseline="top", dy=2)
        .encode(text="interval:N", color=ink, **axes)
    )
    return (
        alt.layer(cells, value, interval, data=alt.Data(name=CELLS))
        .properties(width={"step": 58}, height={"step": 32})
        .facet(column=alt.Column("setting:N", title=None))
        .properties(title="Final accuracy: strategy × attack (± 95 % interval over seeds)")
        .to_dict()
    )


def client_chart() -> dict[str, Any]:
    """One run per client (``velocity.panel.state.client_rows``): each client's share of the
    aggregate per round (0: the defence left it out; the malicious clients' rows are labelled),
    and the norm of the update each sent, malicious ones in red."""
    alt = _alt()
    base = alt.Chart(alt.Data(name=CLIENTS)).transform_calculate(
        who="datum.role == 'malicious' ? datum.client + ' (malicious)' : '' + datum.client"
    )
    tooltip = [
        alt.Tooltip("client:O"),
        alt.Tooltip("role:N"),
        alt.Tooltip("round:O"),
        alt.Tooltip("share:Q", title="share of the aggregate", format=".3f"),
        alt.Tooltip("norm:Q", title="update norm", format=".4g"),
    ]
    shares = base.mark_rect().encode(
        x=alt.X("round:O", title="round", axis=alt.Axis(labelOverlap=True)),
        y=alt.Y("who:N", title="client", sort=alt.EncodingSortField("client", op="min")),
        # white: no part in the aggregate
        color=alt.Color("share:Q", title="share", scale=alt.Scale(range=["#ffffff", "#08519c"], domainMin=0)),
        tooltip=tooltip,
    )
    norms = base.mark_line(point=False, strokeWidth=1.4).encode(
        x=alt.X("round:Q", title="round", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("norm:Q", title="update norm", scale=alt.Scale(type="symlog")),
        detail="client:N",
        color=alt.Color("role:N", title="client", scale=alt.Scale(domain=["honest", "malicious"], range=["#9a9a9a", "#d62728"])),
        tooltip=tooltip,
    )
    return (
        alt.hconcat(
            shares.properties(width=360, height={"step": 14}, title="Share of the aggregate (0: left out)"),
            norms.properties(width=260, height=220, title="Norm of each update sent"),
        )
        .resolve_scale(color="independent")
        .to_dict()
    )


def label_distribution(data: Any, *, percent: bool = False) -> Any:
    """How many examples of each class every client holds (rows ``client``, ``class``,
    ``count``): α made visible. ``percent``: each client's bar is its label mix, summing to 100."""
    alt = _alt()
    y = (
        alt.Y("count:Q", title="share of the client's examples (%)", stack="normalize", axis=alt.Axis(format="%"))
        if percent
        else alt.Y("count:Q", title="examples", stack="zero")
    )
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("client:O", title="client"),
            y=y,
            color=alt.Color("class:N", title="class", scale=alt.Scale(scheme="tableau10")),
            tooltip=["client:O", "class:N", "count:Q"],
        )
        .properties(width=320, height=210, title="Label distribution per client")
    )


def label_chart() -> dict[str, Any]:
    """The panel's label chart, fed by the front end (the named data set ``labels``)."""
    return label_distribution(_alt().Data(name=LABELS)).to_dict()


#: Data arrive after a chart is embedded (and facets, legends and labels grow with them): the view
#: must re-measure its size on every change, or what grows past its first size is clipped.
AUTOSIZE = {"type": "pad", "resize": True}


def chart_specs(keys: LineKeys = LineKeys(), *, chance: float | None = None) -> dict[str, dict[str, Any]]:
    """Every chart the panel draws, by name; the line charts colour and dash runs by ``keys``,
    the accuracy chart draws ``chance`` as a reference line."""
    specs = {
        "progress": progress_chart(keys, chance=chance),
        "heatmap": heatmap_chart(),
        "defence": defence_chart(keys),
        "clients": client_chart(),
        "labels": label_chart(),
    }
    return {name: {**spec, "autosize": AUTOSIZE} for name, spec in specs.items()}


def with_data(
    spec: dict[str, Any],
    *,
    rounds: list[dict[str, Any]],
    labels: list[dict[str, Any]],
    cells: list[dict[str, Any]],
    clients: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The spec with its named data sets filled in, for export (PNG/SVG) or a static page."""
    return {**spec, "datasets": {ROUNDS: rounds, LABELS: labels, CELLS: cells, CLIENTS: clients or []}}


def with_caption(spec: dict[str, Any], text: str) -> dict[str, Any]:
    """The spec with ``text`` as a caption beneath its title (a top-level subtitle)."""
    if not text:
        return spec
    title = spec.get("title") or "VelocityFL sweep"  # Vega draws no subtitle under an empty title
    title = dict(title) if isinstance(title, dict) else {"text": title}
    return {**spec, "title": {**title, "subtitle": text, "anchor": "start", "subtitleColor": "#555"}}


def with_shown_runs(spec: dict[str, Any], runs: list[int] | None) -> dict[str, Any]:
    """The spec drawing only the runs with these indices in its line charts (None: every run)."""
    params = [{**p, "value": runs} if p.get("name") == SHOWN_RUNS else p for p in spec.get("params", [])]
    return {**spec, "params": params} if params else spec


def combined(specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """All charts in one spec: progress on top, heatmap, defence and labels beneath, the
    per-client view at the bottom."""
    inner, params = [], {}
    for name in CHART_NAMES:
        s = {k: v for k, v in specs[name].items() if k not in ("$schema", "config", "datasets", "autosize", "params")}
        inner.append(s)
        params.update({p["name"]: p for p in specs[name].get("params", [])})  # variable parameters live at the top
    top = {k: v for k, v in specs["progress"].items() if k in ("$schema", "config")}
    by_name = dict(zip(CHART_NAMES, inner, strict=True))
    rows = [by_name["progress"], {"hconcat": [by_name["heatmap"], by_name["defence"], by_name["labels"]]}, by_name["clients"]]
    out = {**top, "vconcat": rows, "resolve": {"scale": {"color": "independent"}}}
    return {**out, "params": list(params.values())} if params else out
