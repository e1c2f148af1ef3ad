"""Hearth's MCP endpoint through the official Python `mcp` SDK (run by `scripts/mcp.sh`, in a
virtualenv of its own: the SDK's 2.x is not what langchain-mcp-adapters pins).

Over streamable HTTP and over the stdio bridge (`hearth mcp`): initialize, list the tools, write a
file, run it, read it back; an invalid path is a tool error; a missing or wrong token is refused.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from harness import TOKEN, WorkerProcess, hearth_binary

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def worker() -> Iterator[WorkerProcess]:
    process = WorkerProcess("[http]\nrate_per_s = 0\n")
    try:
        created = httpx2.post(
            f"{process.url}/v1/sessions", json={"id": "m1"}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert created.status_code == 201, created.text
        yield process
    finally:
        process.stop()


@asynccontextmanager
async def over_http(worker: WorkerProcess, token: str | None = TOKEN) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    endpoint = f"{worker.url}/v1/sessions/m1/mcp"
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(endpoint, http_client=http) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        yield session


@asynccontextmanager
async def over_stdio(worker: WorkerProcess) -> AsyncIterator[ClientSession]:
    parameters = StdioServerParameters(
        command=str(hearth_binary()),
        args=["mcp", "--url", worker.url, "--session", "m1"],
        env={"HEARTH_TOKEN": TOKEN},
    )
    async with stdio_client(parameters) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def text(result: Any) -> str:
    return "".join(block.text for block in result.content if getattr(block, "type", "") == "text")


@pytest.mark.parametrize("transport", ["http", "stdio"])
async def test_an_agent_writes_runs_and_reads_through_mcp(worker: WorkerProcess, transport: str) -> None:
    connect = over_http if transport == "http" else over_stdio
    async with connect(worker) as session:
        names = {tool.name for tool in (await session.list_tools()).tools}
        git = {"git_status", "git_commit", "git_log", "git_diff", "git_push", "git_pull"}
        assert {"write_file", "read_file", "ls", "execute"} | git <= names, names
        path = f"/workspace/{transport}.py"
        written = await session.call_tool("write_file", {"file_path": path, "content": "print(6 * 7)\n"})
        assert not written.is_error, text(written)
        ran = await session.call_tool("execute", {"command": f"python3 {path}"})
        assert not ran.is_error, text(ran)
        assert ran.structured_content is not None and ran.structured_content["stdout"] == "42\n", text(ran)
        read = await session.call_tool("read_file", {"file_path": path})
        assert "print(6 * 7)" in text(read)
        committed = await session.call_tool("git_commit", {"message": f"over {transport}"})
        assert not committed.is_error, text(committed)
        log = await session.call_tool("git_log", {"limit": 1})
        assert log.structured_content is not None, text(log)
        assert log.structured_content["commits"][0]["summary"] == f"over {transport}", text(log)
        refused = await session.call_tool("read_file", {"file_path": "relative.py"})
        assert refused.is_error and "invalid_path" in text(refused), text(refused)
        missing = await session.call_tool("read_file", {"file_path": "/workspace/nope.py"})
        assert missing.is_error and "not found" in text(missing).lower(), text(missing)


async def test_without_the_token_nothing_is_served(worker: WorkerProcess) -> None:
    for token in [None, "wrong"]:
        with pytest.raises(Exception):  # noqa: B017 - the SDK's error type for a refused connection varies
            async with over_http(worker, token) as session:
                await session.list_tools()
        answer = httpx2.post(
            f"{worker.url}/v1/sessions/m1/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Authorization": f"Bearer {token}"} if token else {},
        )
        assert answer.status_code == 401, answer.text
