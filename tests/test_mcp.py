"""The agent tools end to end: ``velocity mcp`` started as a subprocess and driven over stdio by
the MCP SDK's own client — validate, start a sweep in the background, follow it, read its
comparison and a leaderboard; paths outside the root and sweeps over the budget are refused."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

mcp = pytest.importorskip("mcp", reason="the agents extra (mcp) is not installed")

from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402

EXPERIMENT = """
[shared]
dataset = "blobs(classes=4, dim=8, per_class=60)"
model_id = "mlp-16"
num_clients = 6
rounds = 3
lr = 0.1
malicious_fraction = 0.34

[matrix]
strategies = ["FedAvg", "FedMedian"]
attacks = ["none", "sign_flip"]
"""


def _data(result: Any) -> dict[str, Any]:
    """A tool's answer: its structured content, or the JSON of its text."""
    if result.structured_content is not None:
        return dict(result.structured_content)
    return json.loads(result.content[0].text)


def _error(result: Any) -> str:
    assert result.is_error, result
    return " ".join(c.text for c in result.content)


async def _session(root: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "velocity.cli", "mcp", "--root", str(root), "--budget", "20"], cwd=str(root)
    )
    async with Client(params) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert tools == {"list_components", "validate_experiment", "sweep_run", "sweep_status", "sweep_compare", "leaderboard"}

        comps = _data(await client.call_tool("list_components", {}))["components"]
        assert {"FedMedian", "alie"} <= {c["name"] for c in comps}
        krum = next(c for c in comps if c["name"] == "Krum")
        assert krum["reference"] and any(p["name"] == "f" for p in krum["params"])

        ok = _data(await client.call_tool("validate_experiment", {"toml": EXPERIMENT}))
        assert ok["valid"] and ok["runs"] == 4 and ok["run_rounds"] == 12 and ok["within_budget"]
        bad = _data(await client.call_tool("validate_experiment", {"toml": EXPERIMENT.replace("FedMedian", "FedMedain")}))
        assert not bad["valid"] and "FedMedain" in bad["error"]

        # refused: outside the root, over the budget, both inputs at once
        assert "inside the root" in _error(await client.call_tool("sweep_run", {"out": "../elsewhere", "toml": EXPERIMENT}))
        big = EXPERIMENT.replace("rounds = 3", "rounds = 30")
        assert "budget of 20 run-rounds, got 4 runs and 120" in _error(await client.call_tool("sweep_run", {"out": "big", "toml": big}))
        assert "exactly one of toml" in _error(
            await client.call_tool("sweep_run", {"out": "x", "toml": EXPERIMENT, "config_path": "e.toml"})
        )
        assert "inside the root" in _error(await client.call_tool("sweep_status", {"sweep": "/"}))

        started = _data(await client.call_tool("sweep_run", {"out": "sweeps/first", "toml": EXPERIMENT}))
        assert started["state"] == "started" and started["runs"] == 4
        deadline = time.monotonic() + 240
        while True:
            status = _data(await client.call_tool("sweep_status", {"sweep": "sweeps/first"}))
            if status["state"] != "running" or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        assert status["state"] == "finished", status
        assert status["counts"] == {"finished": 4} and status["runs"] == 4

        comp = _data(await client.call_tool("sweep_compare", {"sweep": "sweeps/first"}))
        assert {row["strategy"] for row in comp["verdict"]} == {"FedAvg", "FedMedian"} and comp["failed"] == []
        board = _data(await client.call_tool("leaderboard", {"metric": "worst-case"}))
        assert board["metric"] == "worst-case" and len(board["entries"]) == 2 and board["skipped"] == []

        registry = await client.read_resource("velocity://registry")
        assert "FedMedian" in registry.contents[0].text
        resource = await client.read_resource("velocity://comparison/sweeps%2Ffirst")
        assert "FedMedian" in resource.contents[0].text


def test_an_agent_runs_a_sweep_and_reads_its_verdict_over_stdio(tmp_path: Path) -> None:
    asyncio.run(_session(tmp_path))
