"""The panel in a real JupyterLab in a real browser (Debian's headless Chromium driven by
Playwright): a sweep's charts fill in live, the table ranks its runs, moving the α slider redraws
the label distribution and Run queues new runs into the sweep. Nothing may come from the network.

Needs /usr/bin/chromium (``apt-get install chromium``). Skipped without it, unless
VELOCITY_REQUIRE_BROWSER=1 (as in CI), which turns the skip into a failure. A screenshot is saved
to ``$VELOCITY_ARTIFACTS`` (default ``out/test-artifacts``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("VELOCITY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
ARTIFACTS = Path(os.environ.get("VELOCITY_ARTIFACTS", Path(__file__).resolve().parents[1] / "out" / "test-artifacts"))

pytestmark = pytest.mark.browser


def _require_browser(*modules: str) -> None:
    """Chromium, Playwright and ``modules`` (the notebook server), or a skip (a failure in CI)."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"Chromium at {CHROMIUM}")
    for module in ("playwright", *modules):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"the Python package {module}")
    if missing:
        reason = "the browser test needs " + " and ".join(missing)
        if os.environ.get("VELOCITY_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " (VELOCITY_REQUIRE_BROWSER=1)")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NOTEBOOK_CELLS = [
    # one thread per worker keeps two runs and the kernel from fighting over two cores
    "import os\nos.environ['OMP_NUM_THREADS'] = '1'\n"
    "from velocity import Sweep\n"
    "sweep = Sweep.from_grid(strategies=['FedAvg', 'FedMedian'], attacks=['none', 'sign_flip(scale=4.0)'], rounds=8,\n"
    "                        dataset='digits', model_id='mlp', lr=0.1, momentum=0.9, num_clients=6, out='sweep-out', parallel=2)\n"
    "sweep",  # the panel first, so the test sees every state from empty to full
    "sweep.start();",
]


#: The front ends the panel is tested in: (server module, the notebook's page, its own flags).
FRONT_ENDS = {
    "jupyterlab": (
        "jupyterlab",
        "lab/tree/panel.ipynb",
        [
            "--LabApp.extension_manager=readonly",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
    ),
    "notebook7": ("notebook", "notebooks/panel.ipynb", []),
}


@pytest.fixture(params=sorted(FRONT_ENDS))
def jupyterlab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    module, page_path, app_flags = FRONT_ENDS[request.param]
    _require_browser(module)
    root = tmp_path / "lab"
    root.mkdir()
    notebook = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": f"cell{i}", "metadata": {}, "outputs": [], "source": src}
            for i, src in enumerate(NOTEBOOK_CELLS)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (root / "panel.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')  # no news toast over the panel
    port = _free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
    }
    log = open(tmp_path / "jupyterlab.log", "w")  # noqa: SIM115 (closed in the finally below, after the fixture yields)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            module,
            "--no-browser",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=True",
            f"--ServerApp.root_dir={root}",
            "--allow-root",
            *app_flags,
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise RuntimeError("JupyterLab did not start:\n" + (tmp_path / "jupyterlab.log").read_text()[-3000:]) from None
                time.sleep(0.3)
        yield {"url": url, "root": root, "log": tmp_path / "jupyterlab.log", "page": page_path, "name": request.param}
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _run_cell(page: Any, index: int, attempts: int = 4) -> None:
    """Run cell ``index`` with the toolbar's ▶ (the same in both front ends). Right after a
    notebook opens, a run request can be dropped while its document model initialises (the cell
    advances, nothing executes): then its prompt stays "[ ]" and we ask again."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    prompt = f"document.querySelectorAll('.jp-Notebook .jp-Cell')[{index}]?.querySelector('.jp-InputPrompt')?.textContent ?? ''"
    for _ in range(attempts):
        page.click(f".jp-Notebook .jp-Cell >> nth={index} >> .cm-content")
        page.click("[data-command='notebook:run-cell-and-select-next']")
        try:
            page.wait_for_function(f"() => /\\[(\\*|\\d+)\\]/.test({prompt})", timeout=15_000)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError(f"Expected cell {index} to run, it did not after {attempts} attempts")


def _line_vertices(page: Any, chart: str = "progress") -> int:
    """Vertices of every line in a chart (one per run and round drawn)."""
    return page.evaluate(
        """(chart) => Array.from(document.querySelectorAll(`[data-chart="${chart}"] .mark-line path`))
             .map(p => (p.getAttribute('d') || '').match(/[ML]/g) || []).reduce((n, m) => n + m.length, 0)""",
        chart,
    )


def _table(page: Any) -> list[dict[str, str]]:
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('[data-role="ranking"] tbody tr')).map(tr => ({
             status: tr.dataset.status, run: tr.dataset.run, rank: tr.cells[0].textContent,
             accuracy: tr.cells[3].textContent, leader: tr.classList.contains('vfl-leader') }))"""
    )


def test_panel_fills_live_and_queues_runs(jupyterlab: dict[str, Any]) -> None:
    """In JupyterLab and in Notebook 7."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    outside: list[str] = []
    console: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1500})
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            # the front ends' own start-up may log page errors (Notebook 7's collaborative model
            # races its first render); from the moment the panel exists, none is allowed
            panel_shown = {"yes": False}
            panel_errors: list[str] = []
            page.on("pageerror", lambda e: (console.append(f"pageerror: {e}"), panel_shown["yes"] and panel_errors.append(str(e))))

            def only_local(route: Any) -> None:
                if re.match(r"^(https?|wss?)://(127\.0\.0\.1|localhost)[:/]", route.request.url) or route.request.url.startswith(
                    ("data:", "blob:")
                ):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", only_local)
            page.goto(f"{jupyterlab['url']}/{jupyterlab['page']}")
            page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=60_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)  # the kernel is up
            _run_cell(page, 0)
            page.wait_for_selector(".vfl-panel", timeout=120_000)
            panel_shown["yes"] = True
            page.wait_for_selector(".vfl-panel[data-charts-ready='true']", timeout=60_000)
            page.wait_for_function(
                "() => (document.querySelector('[data-role=\"ranking\"] tbody')?.rows.length ?? 0) === 4", timeout=60_000
            )
            assert page.locator('.vfl-panel [data-role="status"]').text_content().startswith("4 queued · 0 running")
            assert _line_vertices(page) == 0

            _run_cell(page, 1)  # sweep.start(): watch the lines grow until every run is done
            seen = [0]
            done = re.compile(r"0 queued · 0 running · 4 done")
            deadline = time.monotonic() + 180
            while not done.search(page.locator('.vfl-panel [data-role="status"]').text_content()):
                assert time.monotonic() < deadline, "Expected the 4 runs to finish within 180 s"
                count = _line_vertices(page)
                if count != seen[-1]:
                    seen.append(count)
                    if len(seen) == 3:
                        page.screenshot(path=str(ARTIFACTS / f"panel-{jupyterlab['name']}-live.png"), full_page=True)
                page.wait_for_timeout(100)
            page.wait_for_timeout(600)  # the last batch of rows
            seen.append(_line_vertices(page))
            # two panels (accuracy, loss) × 4 runs × 8 rounds
            assert seen[-1] == 2 * 4 * 8, f"Expected 64 line vertices after 4 runs × 8 rounds, got {seen[-1]}"
            assert _line_vertices(page, "defence") == 2 * 8, "Expected the 2 attacked runs' malicious share, 8 rounds each"
            assert seen == sorted(seen), f"Expected the lines only to grow, got vertex counts {seen}"
            # here 3–4 intermediate states show up (e.g. [0, 10, 38, 56, 64]); at least one must
            assert len(set(seen)) >= 3, f"Expected the lines to grow in steps as rounds arrive, got vertex counts {seen}"
            heat_cells = page.locator('[data-chart="heatmap"] .mark-rect.role-mark path').count()
            assert heat_cells == 4, f"Expected a 2 × 2 strategy × attack heatmap, got {heat_cells} cells"

            table = _table(page)
            assert [row["rank"] for row in table] == ["★ 1", "2", "3", "4"], table
            accuracies = [float(row["accuracy"]) for row in table]
            assert accuracies == sorted(accuracies, reverse=True), f"Expected the table ranked by accuracy, got {accuracies}"
            assert table[0]["leader"] and all(row["status"] == "finished" for row in table)

            # α: the slider redraws the label distribution at once
            bars_iid = page.locator('[data-chart="labels"] .mark-rect.role-mark path').count()
            note = page.locator('.vfl-panel [data-role="label-note"]')
            assert "iid" in note.text_content()
            page.locator('.vfl-panel input[data-control="alpha"]').fill("20")  # 20 stops = one decade above 0.01
            page.wait_for_function(
                "() => /α = 0\\.1 /.test(document.querySelector('.vfl-panel [data-role=\"label-note\"]').textContent)", timeout=20_000
            )
            assert page.locator('.vfl-panel [data-role="alpha"]').text_content() == "α = 0.1"
            assert page.locator('[data-chart="labels"]').is_visible(), "Expected moving α to show the label distribution"
            assert not page.locator('[data-chart="progress"]').is_visible(), "Expected one chart at a time"
            bars_skewed = page.locator('[data-chart="labels"] .mark-rect.role-mark path').count()
            assert bars_skewed < bars_iid, f"Expected fewer client × class bars at α = 0.1 than iid, got {bars_skewed} vs {bars_iid}"

            # the keyboard moves the slider and stays in the panel: JupyterLab's command-mode
            # shortcuts (← collapses a heading, A inserts a cell) must not see keys pressed in it
            cells = page.locator(".jp-Notebook .jp-Cell").count()
            slider = page.locator('.vfl-panel input[data-control="alpha"]')
            slider.focus()
            slider.press("ArrowLeft")
            page.wait_for_function("() => document.querySelector('.vfl-panel [data-role=\"alpha\"]').textContent === 'α = 0.089'")
            slider.press("a")
            slider.press("ArrowRight")
            page.wait_for_function("() => document.querySelector('.vfl-panel [data-role=\"alpha\"]').textContent === 'α = 0.1'")
            assert page.locator(".jp-Notebook .jp-Cell").count() == cells, "Expected no cell inserted by a key pressed in the panel"
            assert page.locator(".vfl-panel").is_visible(), "Expected the panel still shown (no heading collapsed)"

            # Run queues the chosen strategies × attacks at α = 0.1 into the same sweep
            page.click('.vfl-panel button[data-action="run"]')
            page.wait_for_function(
                "() => /Queued 4 runs/.test(document.querySelector('.vfl-panel [data-role=\"message\"]').textContent)", timeout=30_000
            )
            page.wait_for_function("() => document.querySelector('[data-role=\"ranking\"] tbody').rows.length === 8", timeout=30_000)
            page.wait_for_function(
                '() => document.querySelectorAll(\'[data-role="ranking"] tbody tr[data-run*="α=0.1"]\').length === 4', timeout=30_000
            )
            page.wait_for_function(
                """() => Array.from(document.querySelectorAll('[data-role="ranking"] tbody tr[data-run*="α=0.1"]'))
                     .some(tr => tr.dataset.status === 'running' || tr.dataset.status === 'finished')""",
                timeout=120_000,
            )
            page.click('.vfl-panel button[data-view="progress"]')
            page.screenshot(path=str(ARTIFACTS / f"panel-{jupyterlab['name']}.png"), full_page=True)
            # two settings now: the table and the lines can show one of them
            show = page.locator('.vfl-panel select[data-control="show_setting"]')
            assert show.is_visible(), "Expected the setting filter once the sweep has two settings"
            show.select_option(label="α=0.1")
            page.wait_for_function(
                """() => { const rows = document.querySelectorAll('[data-role="ranking"] tbody tr');
                           return rows.length === 4 && Array.from(rows).every(tr => tr.dataset.run.includes('α=0.1')); }""",
                timeout=30_000,
            )
            # Stop ends the queued runs
            page.click('.vfl-panel button[data-action="stop"]')
            page.wait_for_function("() => document.querySelector('.vfl-panel').dataset.running === 'false'", timeout=60_000)
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / f"panel-{jupyterlab['name']}-failure.png"), full_page=True)
            raise
        finally:
            (ARTIFACTS / f"panel-{jupyterlab['name']}-console.log").write_text("\n".join(console), encoding="utf-8")
            browser.close()

    sweep_dir = jupyterlab["root"] / "sweep-out"
    assert len(list(sweep_dir.glob("*α=0.1*/config.json"))) == 4, "Expected the 4 queued runs' folders in the sweep's directory"
    assert not panel_errors, panel_errors
    assert not outside, f"Expected no request outside localhost, got {outside[:5]}"


def test_the_html_snapshot_renders_offline(tmp_path: Path) -> None:
    """``save_html`` writes one file that draws the same panel from no server at all."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    from velocity import Sweep

    sweep = Sweep.from_grid(
        strategies=["FedAvg", "FedMedian"],
        attacks=["none", "sign_flip"],
        rounds=3,
        out=tmp_path / "sweep",
        dataset="blobs",
        model_id="logreg",
        num_clients=4,
        lr=0.5,
        parallel=2,
    )
    panel = sweep.panel(interval=0.05)
    sweep.run()
    page_file = panel.save_html(tmp_path / "panel.html")
    panel.close()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1300})
            page.on("request", lambda r: requests.append(r.url))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_file.as_uri())
            page.wait_for_selector(".vfl-panel[data-charts-ready='true']", timeout=30_000)
            page.wait_for_function("() => document.querySelector('.vfl-panel').dataset.rowsReceived === '12'", timeout=10_000)
            page.wait_for_timeout(400)
            assert _line_vertices(page) == 2 * 4 * 3  # accuracy and loss of 4 runs × 3 rounds
            assert _line_vertices(page, "defence") == 2 * 3  # the malicious share of the 2 attacked runs
            assert len(_table(page)) == 4
            assert page.locator('.vfl-panel button[data-action="run"]').is_disabled()
            page.screenshot(path=str(ARTIFACTS / "panel-snapshot.png"), full_page=True)
            # the chart menu's PNG: twice the size shown, legend and axis titles included
            shown = page.locator('[data-chart="progress"] svg').first.bounding_box()
            page.locator('[data-chart="progress"] details summary').click()
            with page.expect_download() as download:
                page.locator('[data-chart="progress"] a:has-text("Save as PNG")').click()
            png = download.value.path().read_bytes()
            width, height = struct.unpack(">II", png[16:24])  # the PNG header's IHDR
            # (the view's size is whole pixels; the measured box may be off by a fraction)
            assert abs(width - 2 * shown["width"]) <= 2 and abs(height - 2 * shown["height"]) <= 2, (width, height, shown)
            # the tabs switch charts, also in a static page
            assert not page.locator('[data-chart="heatmap"]').is_visible()
            page.click('.vfl-panel button[data-view="heatmap"]')
            assert page.locator('[data-chart="heatmap"]').is_visible() and not page.locator('[data-chart="progress"]').is_visible()
            # per client: the first attacked run's 4 clients × 3 rounds, its malicious client named
            page.click('.vfl-panel button[data-view="clients"]')
            clients = page.locator('[data-chart="clients"]')
            assert clients.is_visible() and clients.locator(".mark-rect.role-mark path").count() == 4 * 3
            assert "(malicious)" in clients.text_content()
            assert not errors, errors
        finally:
            browser.close()
    assert all(u.startswith(("file:", "blob:", "data:")) for u in requests), f"Expected no network request, got {requests}"
