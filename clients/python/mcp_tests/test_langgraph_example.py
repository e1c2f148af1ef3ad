"""`examples/mcp_langgraph`: a LangGraph agent using a session's tools over MCP, offline.
Runs in `target/pymcp-lc` (langchain-mcp-adapters needs mcp<2); see `scripts/mcp.sh`."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from harness import TOKEN, WorkerProcess

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "mcp_langgraph" / "agent.py"


def test_the_agent_writes_runs_and_answers_through_mcp() -> None:
    spec = importlib.util.spec_from_file_location("mcp_agent", EXAMPLE)
    assert spec is not None and spec.loader is not None
    agent = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(agent)
    worker = WorkerProcess("[http]\nrate_per_s = 0\n")
    try:
        created = httpx.post(f"{worker.url}/v1/sessions", json={}, headers={"Authorization": f"Bearer {TOKEN}"})
        session, token = created.json()["id"], created.json()["token"]
        # The session's own token: all the agent's controller needs to hand it.
        state = asyncio.run(agent.run(worker.url, token, session))
        ran = [m for m in state["messages"] if getattr(m, "name", None) == "execute"]
        assert ran and "45" in str(ran[0].content), state["messages"]
        assert state["messages"][-1].content == "The sum is 45."
    finally:
        worker.stop()
