"""Fixtures: one worker process and one git server for the whole test session, and a fresh
session per test, reached through the sync client, the async client, or the deepagents backend."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hearth_client as hc
from harness import TOKEN, GitServer, WorkerProcess
from hearth_client import AsyncClient, Client, HearthBackend


@pytest.fixture(scope="session")
def git_server() -> Iterator[GitServer]:
    server = GitServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def worker(git_server: GitServer) -> Iterator[WorkerProcess]:
    # Snapshots only on demand, so a background one never races a test's own; a read-only area
    # at /workspace/skills, as an operator would mount shared skills.
    skills = Path(tempfile.mkdtemp(prefix="hearth-skills-"))
    (skills / "SKILL.md").write_text("# a shared skill\n")
    config = (
        f'[git]\nallowed_remotes = ["{git_server.prefix}"]\n\n'
        "[snapshots]\nauto_delay_s = 0\n\n"
        f'[[read_only_areas]]\npath = "/workspace/skills"\nsource = "{skills}"\n'
    )
    process = WorkerProcess(config)
    yield process
    process.stop()
    shutil.rmtree(skills, ignore_errors=True)


@pytest.fixture
def sync_client(worker: WorkerProcess) -> Iterator[Client]:
    with Client(worker.url, token=TOKEN) as client:
        yield client


class Awaited:
    """An async object driven from sync test code: every coroutine method is run to completion
    on one event loop, and async iterators are collected into lists. So a test written once runs
    against `Client` and `AsyncClient` (or a backend's `ls` and `als`) alike."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._target, self._loop = target, loop

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if inspect.isasyncgenfunction(attribute):
            return lambda *a, **k: self._loop.run_until_complete(_collect(attribute(*a, **k)))
        if inspect.iscoroutinefunction(attribute):
            return lambda *a, **k: self._loop.run_until_complete(attribute(*a, **k))
        return attribute


async def _collect(iterator: Any) -> list[Any]:
    return [item async for item in iterator]


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(params=["sync", "async"])
def client(request: pytest.FixtureRequest, worker: WorkerProcess, loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    """The worker through `Client`, then through `AsyncClient` (as `Awaited`)."""
    if request.param == "sync":
        with Client(worker.url, token=TOKEN) as client:
            yield client
    else:
        client = AsyncClient(worker.url, token=TOKEN)
        yield Awaited(client, loop)
        loop.run_until_complete(client.aclose())


@pytest.fixture
def session(sync_client: Client) -> Iterator[str]:
    """A fresh session, deleted after the test."""
    session_id = f"t-{uuid.uuid4().hex[:12]}"
    sync_client.create_session(session_id)
    yield session_id
    with contextlib.suppress(hc.NotFound):  # the test may have deleted it
        sync_client.delete_session(session_id)


@pytest.fixture
def backend(worker: WorkerProcess, session: str) -> Iterator[HearthBackend]:
    backend = HearthBackend(session, url=worker.url, token=TOKEN)
    yield backend
    backend.close()


class AsyncTwins:
    """A backend whose protocol methods are its async twins (`ls` → `als`, …), run to completion."""

    def __init__(self, backend: HearthBackend, loop: asyncio.AbstractEventLoop) -> None:
        self._backend, self._loop = backend, loop

    def __getattr__(self, name: str) -> Any:
        twin = getattr(self._backend, f"a{name}")  # no twin: the test is wrong, not the backend
        assert inspect.iscoroutinefunction(twin), f"a{name} is not async"
        return lambda *a, **k: self._loop.run_until_complete(twin(*a, **k))


@pytest.fixture(params=["sync", "async"])
def any_backend(request: pytest.FixtureRequest, backend: HearthBackend, loop: asyncio.AbstractEventLoop) -> Any:
    """The deepagents backend through its sync methods, then through their async twins."""
    if request.param == "sync":
        yield backend
        return
    yield AsyncTwins(backend, loop)
    loop.run_until_complete(backend.aclose())
