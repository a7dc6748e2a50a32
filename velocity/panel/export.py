"""The panel's exports: a chart as PNG/SVG (vl-convert) or as an Altair object, and the whole
panel as one self-contained HTML page that renders with the shipped bundle and loads nothing
from the network."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from velocity.sweep.files import atomic_write_text

#: The built front end (velocity/static/, built from widgets/).
STATIC = Path(__file__).resolve().parent.parent / "static"


def altair_chart(spec: dict[str, Any]) -> Any:
    """A full Vega-Lite spec (data included) as the Altair chart of its kind."""
    import altair as alt

    kinds = (("vconcat", alt.VConcatChart), ("hconcat", alt.HConcatChart), ("facet", alt.FacetChart), ("layer", alt.LayerChart))
    for key, cls in kinds:
        if key in spec:
            return cls.from_dict(spec, validate=False)
    return alt.Chart.from_dict(spec, validate=False)


def save_spec(spec: dict[str, Any], path: str | Path, *, scale: float = 2.0) -> Path:
    """Render a full spec (data included) to PNG or SVG with vl-convert (no browser, no network)."""
    import vl_convert as vlc

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".png":
        path.write_bytes(vlc.vegalite_to_png(spec, scale=scale))
    elif suffix == ".svg":
        path.write_text(vlc.vegalite_to_svg(spec), encoding="utf-8")
    else:
        raise ValueError(f"Expected a chart file ending in .png or .svg, got '{path.name}'")
    return path


def write_snapshot(path: str | Path, *, title: str, state: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    """Write the panel's state and rows as one HTML page that embeds the bundle (base64) and
    renders it with ``renderSnapshot`` (controls inert)."""
    bundle = base64.b64encode((STATIC / "panel.js").read_bytes()).decode("ascii")
    payload = json.dumps({"state": state, "rows": rows}, allow_nan=False).replace("</", "<\\/")
    page = SNAPSHOT_PAGE.format(
        title=html.escape(title), css=(STATIC / "panel.css").read_text(encoding="utf-8"), bundle=bundle, payload=payload
    )
    path = Path(path)
    atomic_write_text(path, page)
    return path


SNAPSHOT_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ margin: 16px; background: #fff; }}
{css}
</style>
</head>
<body>
<div id="velocity-panel"></div>
<script type="application/json" id="velocity-panel-data">{payload}</script>
<script type="text/plain" id="velocity-panel-bundle">{bundle}</script>
<script type="module">
const text = (id) => document.getElementById(id).textContent;
const bytes = Uint8Array.from(atob(text("velocity-panel-bundle")), (c) => c.charCodeAt(0));
const url = URL.createObjectURL(new Blob([bytes], {{ type: "text/javascript" }}));
const panel = await import(url);
const data = JSON.parse(text("velocity-panel-data"));
panel.renderSnapshot(document.getElementById("velocity-panel"), data.state, data.rows);
</script>
</body>
</html>
"""
