"""The teaching notebooks' figures load nothing from the network: a classroom may be offline.

The notebooks that draw Altair charts are executed (as nbmake does, but keeping their outputs and
widget state) and every output and widget model is searched for a script a browser would fetch
from a CDN. Altair's default renderer loads vega from jsDelivr, its JupyterChart from esm.sh; the
notebooks enable the offline renderer (vega from the installed vl-convert) and the panel bundles
its own.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
#: Where a browser would fetch JavaScript from: the hosts Altair, vega-embed and anywidget use.
CDN = re.compile(r"https?://(?:cdn\.jsdelivr\.net|esm\.sh|unpkg\.com|cdnjs\.cloudflare\.com|cdn\.skypack\.dev)[^\s\"'<>)]*")


def network_scripts(nb: Any) -> list[str]:
    """CDN URLs in a notebook's outputs and saved widget state (its sources may mention anything)."""
    found: list[str] = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            found += CDN.findall(json.dumps(output))
    found += CDN.findall(json.dumps(nb.metadata.get("widgets", {})))
    return found


def test_the_search_finds_altairs_default_renderer() -> None:
    """The check can fail: a chart shown with Altair's default renderer is caught."""
    import altair as alt

    chart = alt.Chart(alt.Data(values=[{"x": 1}])).mark_point().encode(x="x:Q")
    with alt.renderers.enable("html"):
        bundle = chart._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle  # (data, metadata) or data
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output("display_data", data=data)])])
    assert any("cdn.jsdelivr.net" in url for url in network_scripts(nb))


@pytest.mark.parametrize("name", ["02-attacks-and-defences", "03-heterogeneity"])
def test_notebook_figures_load_nothing_from_the_network(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}, store_widget_state=True
    ).execute()
    charts = sum("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert charts >= 1, f"Expected {name} to draw its figures, found no chart output"
    assert not network_scripts(nb), f"Expected {name}'s outputs to load nothing from the network, got {network_scripts(nb)[:3]}"
