"""A client holding a stream hears that the tools changed: `notifications/tools/list_changed`
when a tool is installed while it is connected. Runs in `target/pymcp-lc` (mcp 1.x, which
negotiates 2025-11-25: a session with its GET stream); see `scripts/mcp.sh`."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

import httpx
from mcp import ClientSession, types
from mcp.client.streamable_http import streamablehttp_client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from harness import TOKEN, WorkerProcess

OPERATOR = "operator-token-for-the-mcp-test"
COMPONENT = Path(__file__).resolve().parents[3] / "target" / "example-tools" / "json_query_rust.wasm"


async def connected_then_installed(worker: WorkerProcess) -> tuple[set[str], set[str], bool]:
    changed = asyncio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ServerNotification) and isinstance(
            message.root, types.ToolListChangedNotification
        ):
            changed.set()

    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        streamablehttp_client(f"{worker.url}/v1/sessions/c1/mcp", headers=headers) as (read, write, _),
        ClientSession(read, write, message_handler=on_message) as session,
    ):
        await session.initialize()
        before = {tool.name for tool in (await session.list_tools()).tools}
        installed = httpx.put(
            f"{worker.url}/v1/tools/json_query",
            content=COMPONENT.read_bytes(),
            headers={"Authorization": f"Bearer {OPERATOR}", "content-type": "application/wasm"},
            timeout=120,
        )
        assert installed.status_code == 201, installed.text
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout=20)
        after = {tool.name for tool in (await session.list_tools()).tools}
        return before, after, changed.is_set()


def test_a_tool_installed_while_connected_is_announced() -> None:
    assert COMPONENT.is_file(), "run scripts/example-tools.sh first (the workspace tests do)"
    worker = WorkerProcess(f'[http]\nrate_per_s = 0\n[tools]\noperator_token = "{OPERATOR}"\n')
    try:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        created = httpx.post(f"{worker.url}/v1/sessions", json={"id": "c1"}, headers=auth)
        assert created.status_code == 201, created.text
        before, after, announced = asyncio.run(connected_then_installed(worker))
        assert "json_query" not in before
        assert "json_query" in after
        assert announced, "no notifications/tools/list_changed arrived"
    finally:
        worker.stop()
