"""The panel's charts, as Vega-Lite specs built with Altair.

Each chart reads a *named* data set (``rounds`` or ``labels``) instead of carrying its data, so the
front end embeds a spec once and then streams rows into the named set (a Vega changeset), and an
export fills the same names from Python (Vega-Lite's top-level ``datasets``). One spec, both uses.
"""

from __future__ import annotations

from typing import Any, Literal

ChartName = Literal["progress", "heatmap", "labels"]
CHART_NAMES: tuple[ChartName, ...] = ("progress", "heatmap", "labels")
#: The named data sets the charts read; the front end inserts into these by name.
ROUNDS, LABELS = "rounds", "labels"


def _alt() -> Any:
    import altair as alt

    return alt


def progress_chart() -> dict[str, Any]:
    """Test accuracy and global loss per round, one line per run: colour = strategy, dash = attack."""
    alt = _alt()
    base = alt.Chart(alt.Data(name=ROUNDS)).mark_line(strokeWidth=1.8)
    encoding = {
        "x": alt.X("round:Q", title="round", axis=alt.Axis(tickMinStep=1)),
        "color": alt.Color("strategy:N", title="strategy"),
        "strokeDash": alt.StrokeDash("attack:N", title="attack"),
        "detail": alt.Detail("run:N"),
        "tooltip": [
            alt.Tooltip("run:N"),
            alt.Tooltip("round:Q"),
            alt.Tooltip("accuracy:Q", format=".3f"),
            alt.Tooltip("global_loss:Q", title="loss", format=".4g"),
        ],
    }
    accuracy = base.encode(y=alt.Y("accuracy:Q", title="test accuracy", scale=alt.Scale(domain=[0, 1])), **encoding).properties(
        width=300, height=210, title="Test accuracy"
    )
    # Under attack a loss can grow by orders of magnitude; symlog keeps the healthy runs readable.
    loss = base.encode(y=alt.Y("global_loss:Q", title="global loss", scale=alt.Scale(type="symlog", zero=False)), **encoding).properties(
        width=300, height=210, title="Global loss"
    )
    return alt.hconcat(accuracy, loss).resolve_scale(color="shared", strokeDash="shared").to_dict()


def heatmap_chart() -> dict[str, Any]:
    """Latest accuracy of each run, averaged per strategy × attack (so it fills in live)."""
    alt = _alt()
    latest = (
        alt.Chart(alt.Data(name=ROUNDS))
        .transform_filter("isValid(datum.accuracy)")
        .transform_joinaggregate(last_round="max(round)", groupby=["run"])
        .transform_filter("datum.round == datum.last_round")
        .transform_aggregate(accuracy="mean(accuracy)", runs="count()", groupby=["strategy", "attack"])
    )
    axes = {"x": alt.X("attack:N", title="attack", axis=alt.Axis(labelAngle=-30)), "y": alt.Y("strategy:N", title="strategy")}
    cells = latest.mark_rect().encode(
        color=alt.Color("accuracy:Q", title="accuracy", scale=alt.Scale(domain=[0, 1], scheme="viridis")),
        tooltip=["strategy:N", "attack:N", alt.Tooltip("accuracy:Q", format=".3f"), alt.Tooltip("runs:Q", title="runs")],
        **axes,
    )
    text = latest.mark_text(fontSize=11).encode(
        text=alt.Text("accuracy:Q", format=".2f"),
        color=alt.condition("datum.accuracy > 0.6", alt.value("black"), alt.value("white")),
        **axes,
    )
    return (cells + text).properties(title="Final accuracy: strategy × attack", width={"step": 56}, height={"step": 26}).to_dict()


def label_chart() -> dict[str, Any]:
    """How many examples of each class every client holds: α made visible."""
    alt = _alt()
    return (
        alt.Chart(alt.Data(name=LABELS))
        .mark_bar()
        .encode(
            x=alt.X("client:O", title="client"),
            y=alt.Y("count:Q", title="examples", stack="zero"),
            color=alt.Color("class:N", title="class", scale=alt.Scale(scheme="tableau10")),
            tooltip=["client:O", "class:N", "count:Q"],
        )
        .properties(width=320, height=210, title="Label distribution per client")
        .to_dict()
    )


def chart_specs() -> dict[str, dict[str, Any]]:
    """Every chart the panel draws, by name."""
    return {"progress": progress_chart(), "heatmap": heatmap_chart(), "labels": label_chart()}


def with_data(spec: dict[str, Any], rounds: list[dict[str, Any]], labels: list[dict[str, Any]]) -> dict[str, Any]:
    """The spec with its named data sets filled in, for export (PNG/SVG) or a static page."""
    return {**spec, "datasets": {ROUNDS: rounds, LABELS: labels}}


def combined(specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """All charts in one spec: progress on top, heatmap and labels beneath."""
    inner = []
    for name in CHART_NAMES:
        s = {k: v for k, v in specs[name].items() if k not in ("$schema", "config", "datasets")}
        inner.append(s)
    top = {k: v for k, v in specs["progress"].items() if k in ("$schema", "config")}
    return {**top, "vconcat": [inner[0], {"hconcat": inner[1:]}], "resolve": {"scale": {"color": "independent"}}}
