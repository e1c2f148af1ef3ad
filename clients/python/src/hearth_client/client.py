"""`Client` and `AsyncClient`: the worker's HTTP API, sync and async.

The two have the same methods (as `httpx.Client` and `httpx.AsyncClient` do); each method is one
line that sends the `Call` its route builds in `routes`, where paths, bodies and decoding live.
Failures raise `HearthError` subclasses carrying the worker's code (`errors`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import httpx
from typing_extensions import Unpack

from . import routes
from . import types as t
from .errors import HearthError, error_from_response, unreachable
from .routes import Call

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8700"


# How long any call waits for its answer by default. Long, because a call can queue behind a
# program running in the same session (writers hold the session, and a run may last the worker's
# `exec.max_timeout_s`, 3600 s by default); the worker itself bounds every tool and run.
DEFAULT_TIMEOUT_S = routes.EXEC_UNBOUNDED_WAIT_S + routes.EXEC_ANSWER_MARGIN_S
CONNECT_TIMEOUT_S = 10.0


def _timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(seconds, CONNECT_TIMEOUT_S))


def _settings(url: str | None, token: str | None, timeout: float) -> dict[str, Any]:
    """httpx's arguments: the URL and token fall back to `HEARTH_URL` / `HEARTH_TOKEN`, as the
    `hearth` CLI does."""
    token = token if token is not None else os.environ.get("HEARTH_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return {
        "base_url": url or os.environ.get("HEARTH_URL") or DEFAULT_URL,
        "headers": headers,
        "timeout": _timeout(timeout),
    }


def _request_args(call: Call[Any]) -> dict[str, Any]:
    args: dict[str, Any] = {"params": call.params}
    if call.json is not None:
        args["json"] = call.json
    if call.content is not None:
        args["content"] = call.content
    if call.files is not None:
        args["files"] = call.files
    if call.headers is not None:
        args["headers"] = call.headers
    if call.timeout is not None:
        args["timeout"] = _timeout(call.timeout)
    return args


@contextlib.contextmanager
def _answered(url: str) -> Iterator[None]:
    """Turns "no answer" (connection refused, reset, timed out) into `WorkerUnreachable`."""
    try:
        yield
    except httpx.TransportError as e:
        raise unreachable(e, url) from e


def _decode(call: Call[T], response: httpx.Response) -> T:
    if response.is_error:
        raise error_from_response(response)
    try:
        return call.decode(response)
    except (ValueError, KeyError, TypeError) as e:
        raise HearthError(
            "invalid_answer", f"the worker's answer could not be read: {e!r}", status=response.status_code
        ) from e


def _stream_args(session: str, body: t.ExecBody) -> dict[str, Any]:
    call = routes.exec_program(session, body)
    return {"method": "POST", "url": routes.exec_stream_path(session), "json": call.json, "timeout": call.timeout}


def _port_url(base: str, session: str, port: int, path: str) -> str:
    return base.rstrip("/") + routes.port_path(session, port, path)


class Client:
    """A worker, synchronously.

    ```python
    with Client("http://127.0.0.1:8700", token=...) as hearth:
        session = hearth.create_session()["id"]
        hearth.write_file(session, "/workspace/main.py", "print('hi')\\n")
        print(hearth.exec(session, command="python main.py")["stdout"])
    ```
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        http: httpx.Client | None = None,
    ) -> None:
        """`timeout` bounds the wait for each answer (an `exec` waits at least its program's
        deadline); `http` replaces the underlying `httpx.Client` (a custom transport, proxies)."""
        self._http = http or httpx.Client(**_settings(url, token, timeout))

    @property
    def url(self) -> str:
        return str(self._http.base_url)

    def async_twin(self) -> AsyncClient:
        """An `AsyncClient` to the same worker, with the same token and timeouts."""
        return AsyncClient(
            http=httpx.AsyncClient(base_url=self._http.base_url, headers=self._http.headers, timeout=self._http.timeout)
        )

    def send(self, call: Call[T]) -> T:
        """Send one call (see `routes`) and decode its answer, or raise the worker's error."""
        with _answered(self.url):
            response = self._http.request(call.method, call.path, **_request_args(call))
        return _decode(call, response)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the worker

    def health(self) -> t.Health:
        return self.send(routes.health())

    def ready(self) -> t.Ready:
        return self.send(routes.ready())

    def tools(self) -> list[t.Tool]:
        return self.send(routes.tools())

    def tool(self, name: str) -> t.ToolDetail:
        return self.send(routes.get_tool(name))

    def install_tool(self, name: str, component: bytes, manifest: str | None = None) -> t.ToolInstalled:
        return self.send(routes.install_tool(name, component, manifest))

    def remove_tool(self, name: str) -> t.ToolRemoved:
        return self.send(routes.remove_tool(name))

    def openapi(self) -> dict[str, Any]:
        return self.send(routes.openapi())

    def metrics(self) -> str:
        return self.send(routes.metrics())

    # --- sessions

    def create_session(
        self,
        id: str | None = None,
        *,
        git: Mapping[str, str] | None = None,
        from_snapshot: str | None = None,
        quota: Mapping[str, int] | None = None,
        network_allow: Sequence[str] | None = None,
    ) -> t.Session:
        """A new session (see `routes.create_session`); `network_allow` is where its programs may
        connect (`[]`: nowhere; `None`: what the worker allows every session)."""
        call = routes.create_session(id, git=git, from_snapshot=from_snapshot, quota=quota, network_allow=network_allow)
        return self.send(call)

    def list_sessions(self) -> list[t.Session]:
        return self.send(routes.list_sessions())

    def get_session(self, session: str) -> t.Session:
        return self.send(routes.get_session(session))

    def replace_token(self, session: str) -> t.SessionToken:
        return self.send(routes.replace_token(session))

    def delete_session(self, session: str, *, snapshot: bool | None = None) -> None:
        return self.send(routes.delete_session(session, snapshot=snapshot))

    # --- tools

    def call_tool(self, session: str, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        return self.send(routes.call_tool(session, name, arguments))

    def ls(self, session: str, path: str) -> t.LsAnswer:
        return self.send(routes.ls(session, path))

    def read_file(self, session: str, file_path: str, *, offset: int = 0, limit: int = 2000) -> t.ReadAnswer:
        return self.send(routes.read_file(session, file_path, offset=offset, limit=limit))

    def write_file(self, session: str, file_path: str, content: str | bytes) -> t.WriteAnswer:
        return self.send(routes.write_file(session, file_path, content))

    def edit_file(
        self, session: str, file_path: str, old_string: str, new_string: str, *, replace_all: bool = False
    ) -> t.EditAnswer:
        return self.send(routes.edit_file(session, file_path, old_string, new_string, replace_all=replace_all))

    def delete(self, session: str, file_path: str) -> t.DeleteAnswer:
        return self.send(routes.delete(session, file_path))

    def glob(self, session: str, pattern: str, *, path: str | None = None) -> t.GlobAnswer:
        return self.send(routes.glob(session, pattern, path=path))

    def grep(
        self,
        session: str,
        pattern: str,
        *,
        path: str | None = None,
        glob: str | None = None,
        max_count: int | None = None,
    ) -> t.GrepAnswer:
        return self.send(routes.grep(session, pattern, path=path, glob=glob, max_count=max_count))

    # --- files

    def put_file(self, session: str, path: str, content: bytes) -> t.FileWritten:
        return self.send(routes.put_file(session, path, content))

    def get_file(self, session: str, path: str) -> bytes:
        return self.send(routes.get_file(session, path))

    def upload(self, session: str, files: Sequence[tuple[str, bytes]]) -> list[t.FileOutcome]:
        return self.send(routes.upload(session, files))

    def download(self, session: str, paths: Sequence[str]) -> list[t.FileOutcome]:
        return self.send(routes.download(session, paths))

    # --- programs

    def exec(self, session: str, **body: Unpack[t.ExecBody]) -> t.ExecResult:
        """Run `command`, `argv`, `script` or `call` in the session's jail (see `ExecBody`)."""
        return self.send(routes.exec_program(session, body))

    def exec_stream(self, session: str, **body: Unpack[t.ExecBody]) -> Iterator[t.OutputChunk | t.ExecResult]:
        """Like `exec`, yielding output chunks (`{"stream", "data"}`) as the program writes them,
        then the final answer (`"event": "exit"`)."""
        with _answered(self.url), self._http.stream(**_stream_args(session, body)) as response:
            if response.is_error:
                response.read()
                raise error_from_response(response)
            for line in response.iter_lines():
                event = routes.stream_event(line)
                if event is not None:
                    yield event

    # --- background processes

    def exec_background(
        self,
        session: str,
        *,
        command: str | None = None,
        argv: Sequence[str] | None = None,
        script: str | None = None,
        args: Sequence[str] | None = None,
        timeout: float | None = None,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        keep_output: t.KeepOutput | None = None,
    ) -> t.ProcessInfo:
        """Start `command`, `argv` or `script` (with `args`) as a background process and answer at
        once with it; `timeout` is its wall time in seconds (default: the worker's
        `exec.background_timeout_s`; 0: the longest it allows); `keep_output` is which bytes of
        each stream the worker keeps for readers (`"last"`, the default, or `"first"`)."""
        call = routes.exec_background(
            session,
            command=command,
            argv=argv,
            script=script,
            args=args,
            timeout=timeout,
            stdin=stdin,
            env=env,
            keep_output=keep_output,
        )
        return self.send(call)

    def processes(self, session: str) -> list[t.ProcessInfo]:
        return self.send(routes.list_processes(session))

    def process(self, session: str, pid: str, wait_s: float | None = None) -> t.ProcessInfo:
        """The process's state; with `wait_s` (0 to 30), once it ended or the wait is over."""
        return self.send(routes.get_process(session, pid, wait_s=wait_s))

    def process_output(
        self,
        session: str,
        pid: str,
        stdout: int = 0,
        stderr: int = 0,
        max_bytes: int | None = None,
        wait_s: float | None = None,
    ) -> t.ProcessOutput:
        """Each stream from its cursor (`next` of the previous read); with `wait_s`, a long poll."""
        return self.send(
            routes.process_output(session, pid, stdout=stdout, stderr=stderr, max_bytes=max_bytes, wait_s=wait_s)
        )

    def follow_output(
        self, session: str, pid: str, *, wait_s: float = routes.FOLLOW_WAIT_S
    ) -> Iterator[tuple[t.StreamName, str]]:
        """The process's output as it comes, as `(stream, text)` chunks, from its start (what the
        worker still keeps of it) until it ended and both streams were read to their end: long
        polls of at most `wait_s` each."""
        follower = routes.OutputFollower(session, pid, wait_s=wait_s)
        while not follower.done:
            yield from follower.take(self.send(follower.call()))

    def write_stdin(self, session: str, pid: str, data: str, close: bool = False) -> t.ProcessInfo:
        return self.send(routes.write_stdin(session, pid, data, close=close))

    def signal_process(self, session: str, pid: str, signal: t.SignalName = "SIGTERM") -> t.SignalOutcome:
        return self.send(routes.signal_process(session, pid, signal))

    def kill_process(self, session: str, pid: str) -> t.ProcessInfo:
        """Kill the process (if it runs) and forget it: its last state."""
        return self.send(routes.kill_process(session, pid))

    def port_url(self, session: str, port: int, path: str = "") -> str:
        """The URL of a server a program of the session runs on `port`, through the worker: send
        this client's token (or the session's) with requests to it."""
        return _port_url(self.url, session, port, path)

    # --- git

    def git_status(self, session: str) -> t.GitStatus:
        return self.send(routes.git_status(session))

    def git_log(
        self, session: str, *, revision: str | None = None, skip: int | None = None, limit: int | None = None
    ) -> t.GitLog:
        return self.send(routes.git_log(session, revision=revision, skip=skip, limit=limit))

    def git_diff(self, session: str, *, from_: str | None = None, to: str | None = None) -> t.GitDiff:
        return self.send(routes.git_diff(session, from_=from_, to=to))

    def git_commit(self, session: str, message: str, *, author: t.Author | None = None) -> t.CommitOutcome:
        return self.send(routes.git_commit(session, message, author=author))

    def git_push(
        self, session: str, *, remote: str | None = None, branch: str | None = None, author: t.Author | None = None
    ) -> t.PushOutcome:
        return self.send(routes.git_push(session, remote=remote, branch=branch, author=author))

    def git_pull(
        self, session: str, *, remote: str | None = None, branch: str | None = None, author: t.Author | None = None
    ) -> t.MergeOutcome:
        return self.send(routes.git_pull(session, remote=remote, branch=branch, author=author))

    def git_merge_continue(
        self, session: str, *, message: str | None = None, author: t.Author | None = None
    ) -> t.MergeContinued:
        return self.send(routes.git_merge_continue(session, message=message, author=author))

    def git_merge_abort(self, session: str) -> t.HeadMoved:
        return self.send(routes.git_merge_abort(session))

    def git_reset(self, session: str, *, commit: str | None = None, clean: bool | None = None) -> t.HeadMoved:
        return self.send(routes.git_reset(session, commit=commit, clean=clean))

    def git_set_remote(self, session: str, name: str, url: str) -> t.Remotes:
        return self.send(routes.git_set_remote(session, name, url))

    # --- snapshots

    def take_snapshot(self, session: str) -> t.Snapshot:
        return self.send(routes.take_snapshot(session))

    def list_snapshots(self, session: str) -> list[t.Snapshot]:
        return self.send(routes.list_snapshots(session))

    def export(self, session: str) -> bytes:
        return self.send(routes.export(session))

    def store_export(self, session: str) -> t.ExportStored:
        return self.send(routes.store_export(session))

    def list_exports(self, session: str) -> list[t.ExportInfo]:
        return self.send(routes.list_exports(session))

    def download_export(self, session: str, name: str) -> bytes:
        return self.send(routes.download_export(session, name))

    def collect_garbage(self, *, grace_s: int | None = None) -> t.GcOutcome:
        return self.send(routes.collect_garbage(grace_s=grace_s))


class AsyncClient:
    """A worker, from asyncio: the methods of `Client`, awaited."""

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._http = http or httpx.AsyncClient(**_settings(url, token, timeout))

    @property
    def url(self) -> str:
        return str(self._http.base_url)

    async def send(self, call: Call[T]) -> T:
        """Send one call (see `routes`) and decode its answer, or raise the worker's error."""
        with _answered(self.url):
            response = await self._http.request(call.method, call.path, **_request_args(call))
        return _decode(call, response)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- the worker

    async def health(self) -> t.Health:
        return await self.send(routes.health())

    async def ready(self) -> t.Ready:
        return await self.send(routes.ready())

    async def tools(self) -> list[t.Tool]:
        return await self.send(routes.tools())

    async def tool(self, name: str) -> t.ToolDetail:
        return await self.send(routes.get_tool(name))

    async def install_tool(self, name: str, component: bytes, manifest: str | None = None) -> t.ToolInstalled:
        return await self.send(routes.install_tool(name, component, manifest))

    async def remove_tool(self, name: str) -> t.ToolRemoved:
        return await self.send(routes.remove_tool(name))

    async def openapi(self) -> dict[str, Any]:
        return await self.send(routes.openapi())

    async def metrics(self) -> str:
        return await self.send(routes.metrics())

    # --- sessions

    async def create_session(
        self,
        id: str | None = None,
        *,
        git: Mapping[str, str] | None = None,
        from_snapshot: str | None = None,
        quota: Mapping[str, int] | None = None,
        network_allow: Sequence[str] | None = None,
    ) -> t.Session:
        """A new session (see `routes.create_session`); `network_allow` is where its programs may
        connect (`[]`: nowhere; `None`: what the worker allows every session)."""
        call = routes.create_session(id, git=git, from_snapshot=from_snapshot, quota=quota, network_allow=network_allow)
        return await self.send(call)

    async def list_sessions(self) -> list[t.Session]:
        return await self.send(routes.list_sessions())

    async def get_session(self, session: str) -> t.Session:
        return await self.send(routes.get_session(session))

    async def replace_token(self, session: str) -> t.SessionToken:
        return await self.send(routes.replace_token(session))

    async def delete_session(self, session: str, *, snapshot: bool | None = None) -> None:
        return await self.send(routes.delete_session(session, snapshot=snapshot))

    # --- tools

    async def call_tool(self, session: str, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        return await self.send(routes.call_tool(session, name, arguments))

    async def ls(self, session: str, path: str) -> t.LsAnswer:
        return await self.send(routes.ls(session, path))

    async def read_file(self, session: str, file_path: str, *, offset: int = 0, limit: int = 2000) -> t.ReadAnswer:
        return await self.send(routes.read_file(session, file_path, offset=offset, limit=limit))

    async def write_file(self, session: str, file_path: str, content: str | bytes) -> t.WriteAnswer:
        return await self.send(routes.write_file(session, file_path, content))

    async def edit_file(
        self, session: str, file_path: str, old_string: str, new_string: str, *, replace_all: bool = False
    ) -> t.EditAnswer:
        return await self.send(routes.edit_file(session, file_path, old_string, new_string, replace_all=replace_all))

    async def delete(self, session: str, file_path: str) -> t.DeleteAnswer:
        return await self.send(routes.delete(session, file_path))

    async def glob(self, session: str, pattern: str, *, path: str | None = None) -> t.GlobAnswer:
        return await self.send(routes.glob(session, pattern, path=path))

    async def grep(
        self,
        session: str,
        pattern: str,
        *,
        path: str | None = None,
        glob: str | None = None,
        max_count: int | None = None,
    ) -> t.GrepAnswer:
        return await self.send(routes.grep(session, pattern, path=path, glob=glob, max_count=max_count))

    # --- files

    async def put_file(self, session: str, path: str, content: bytes) -> t.FileWritten:
        return await self.send(routes.put_file(session, path, content))

    async def get_file(self, session: str, path: str) -> bytes:
        return await self.send(routes.get_file(session, path))

    async def upload(self, session: str, files: Sequence[tuple[str, bytes]]) -> list[t.FileOutcome]:
        return await self.send(routes.upload(session, files))

    async def download(self, session: str, paths: Sequence[str]) -> list[t.FileOutcome]:
        return await self.send(routes.download(session, paths))

    # --- programs

    async def exec(self, session: str, **body: Unpack[t.ExecBody]) -> t.ExecResult:
        return await self.send(routes.exec_program(session, body))

    async def exec_stream(
        self, session: str, **body: Unpack[t.ExecBody]
    ) -> AsyncIterator[t.OutputChunk | t.ExecResult]:
        """Like `Client.exec_stream`. Stopping early? Close the iterator
        (`contextlib.aclosing`) so the connection is released at once."""
        with _answered(self.url):
            async with self._http.stream(**_stream_args(session, body)) as response:
                if response.is_error:
                    await response.aread()
                    raise error_from_response(response)
                async for line in response.aiter_lines():
                    event = routes.stream_event(line)
                    if event is not None:
                        yield event

    # --- background processes

    async def exec_background(
        self,
        session: str,
        *,
        command: str | None = None,
        argv: Sequence[str] | None = None,
        script: str | None = None,
        args: Sequence[str] | None = None,
        timeout: float | None = None,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        keep_output: t.KeepOutput | None = None,
    ) -> t.ProcessInfo:
        call = routes.exec_background(
            session,
            command=command,
            argv=argv,
            script=script,
            args=args,
            timeout=timeout,
            stdin=stdin,
            env=env,
            keep_output=keep_output,
        )
        return await self.send(call)

    async def processes(self, session: str) -> list[t.ProcessInfo]:
        return await self.send(routes.list_processes(session))

    async def process(self, session: str, pid: str, wait_s: float | None = None) -> t.ProcessInfo:
        return await self.send(routes.get_process(session, pid, wait_s=wait_s))

    async def process_output(
        self,
        session: str,
        pid: str,
        stdout: int = 0,
        stderr: int = 0,
        max_bytes: int | None = None,
        wait_s: float | None = None,
    ) -> t.ProcessOutput:
        return await self.send(
            routes.process_output(session, pid, stdout=stdout, stderr=stderr, max_bytes=max_bytes, wait_s=wait_s)
        )

    async def follow_output(
        self, session: str, pid: str, *, wait_s: float = routes.FOLLOW_WAIT_S
    ) -> AsyncIterator[tuple[t.StreamName, str]]:
        """Like `Client.follow_output`, an async iterator."""
        follower = routes.OutputFollower(session, pid, wait_s=wait_s)
        while not follower.done:
            for chunk in follower.take(await self.send(follower.call())):
                yield chunk

    async def write_stdin(self, session: str, pid: str, data: str, close: bool = False) -> t.ProcessInfo:
        return await self.send(routes.write_stdin(session, pid, data, close=close))

    async def signal_process(self, session: str, pid: str, signal: t.SignalName = "SIGTERM") -> t.SignalOutcome:
        return await self.send(routes.signal_process(session, pid, signal))

    async def kill_process(self, session: str, pid: str) -> t.ProcessInfo:
        return await self.send(routes.kill_process(session, pid))

    def port_url(self, session: str, port: int, path: str = "") -> str:
        return _port_url(self.url, session, port, path)

    # --- git

    async def git_status(self, session: str) -> t.GitStatus:
        return await self.send(routes.git_status(session))

    async def git_log(
        self, session: str, *, revision: str | None = None, skip: int | None = None, limit: int | None = None
    ) -> t.GitLog:
        return await self.send(routes.git_log(session, revision=revision, skip=skip, limit=limit))

    async def git_diff(self, session: str, *, from_: str | None = None, to: str | None = None) -> t.GitDiff:
        return await self.send(routes.git_diff(session, from_=from_, to=to))

    async def git_commit(self, session: str, message: str, *, author: t.Author | None = None) -> t.CommitOutcome:
        return await self.send(routes.git_commit(session, message, author=author))

    async def git_push(
        self, session: str, *, remote: str | None = None, branch: str | None = None, author: t.Author | None = None
    ) -> t.PushOutcome:
        return await self.send(routes.git_push(session, remote=remote, branch=branch, author=author))

    async def git_pull(
        self, session: str, *, remote: str | None = None, branch: str | None = None, author: t.Author | None = None
    ) -> t.MergeOutcome:
        return await self.send(routes.git_pull(session, remote=remote, branch=branch, author=author))

    async def git_merge_continue(
        self, session: str, *, message: str | None = None, author: t.Author | None = None
    ) -> t.MergeContinued:
        return await self.send(routes.git_merge_continue(session, message=message, author=author))

    async def git_merge_abort(self, session: str) -> t.HeadMoved:
        return await self.send(routes.git_merge_abort(session))

    async def git_reset(self, session: str, *, commit: str | None = None, clean: bool | None = None) -> t.HeadMoved:
        return await self.send(routes.git_reset(session, commit=commit, clean=clean))

    async def git_set_remote(self, session: str, name: str, url: str) -> t.Remotes:
        return await self.send(routes.git_set_remote(session, name, url))

    # --- snapshots

    async def take_snapshot(self, session: str) -> t.Snapshot:
        return await self.send(routes.take_snapshot(session))

    async def list_snapshots(self, session: str) -> list[t.Snapshot]:
        return await self.send(routes.list_snapshots(session))

    async def export(self, session: str) -> bytes:
        return await self.send(routes.export(session))

    async def store_export(self, session: str) -> t.ExportStored:
        return await self.send(routes.store_export(session))

    async def list_exports(self, session: str) -> list[t.ExportInfo]:
        return await self.send(routes.list_exports(session))

    async def download_export(self, session: str, name: str) -> bytes:
        return await self.send(routes.download_export(session, name))

    async def collect_garbage(self, *, grace_s: int | None = None) -> t.GcOutcome:
        return await self.send(routes.collect_garbage(grace_s=grace_s))
