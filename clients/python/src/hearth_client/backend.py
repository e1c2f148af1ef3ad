"""`HearthBackend`: a deepagents 0.7 sandbox backend whose files and programs live on a worker.

```python
from deepagents import create_deep_agent
from hearth_client import HearthBackend

agent = create_deep_agent(model=..., backend=HearthBackend.create(url="http://127.0.0.1:8700"))
```

Each method is exactly one HTTP call to the worker, the built-in tool or route of the same name
(never a shell round-trip for a file operation), and answers in deepagents' own result types.
What a model can act on (a missing file, an ambiguous edit, a path outside the view) comes back as
the result's `error`, as deepagents' own backends do; what only an operator can fix (the worker is
unreachable, the token is wrong, the worker failed, the session is gone) raises `HearthError`.

Every operation is built once, as an `_Op` (the call and how its answer or error becomes a
result); the sync method and its async twin differ only in how the call is sent.

The one exception to "one call": an `execute` with a long timeout (over
`BACKGROUND_AFTER_S`, or 0, the longest the worker allows) runs as a background process the
backend follows, long poll by long poll, so no request waits longer than `FOLLOW_WAIT_S`
(proxies and load balancers cut longer ones). Its answer is the same as a foreground run's. Its
steps are a generator of calls (`_Steps`), sent by the same two senders.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from deepagents.backends.protocol import (
    DeleteResult,
    EditResult,
    ExecuteResponse,
    FileData,
    FileDownloadResponse,
    FileInfo,
    FileUploadResponse,
    GlobResult,
    GrepMatch,
    GrepResult,
    LsResult,
    ReadResult,
    SandboxBackendProtocol,
    WriteResult,
)

from . import routes
from . import types as t
from .client import AsyncClient, Client
from .errors import HearthError, ProcessNotFound, is_for_the_model
from .routes import Call

A = TypeVar("A")
R = TypeVar("R")

# The worker's bounds on a read window and a grep (its tools' input schemas). deepagents sets
# none, so a larger request is clamped to them here rather than refused: the answer's
# `next_offset` / `truncated` still tell the model there is more.
MAX_READ_LINES = 100_000
MAX_GREP_MATCHES = 10_000

# deepagents' convention for a command that ran out of time (`LocalShellBackend` does the same).
TIMEOUT_EXIT_CODE = 124

# An `execute` whose timeout is longer than this (or 0: the longest the worker allows) runs as a
# background process followed by long polls, not as one request that lasts as long as the run.
# (No timeout at all, the worker's `exec.timeout_s`, 120 s by default, stays one request.)
BACKGROUND_AFTER_S = 120.0
# The longest one long poll of a followed run waits (the worker allows 60).
FOLLOW_WAIT_S = 30.0
# How long past its timeout a followed run may still run before the backend kills it itself:
# the worker kills it at its timeout, this is for when that did not happen.
KILL_GRACE_S = 5.0
# What a followed run keeps of each of stdout and stderr, as the worker keeps of a foreground
# run's (its `exec.output_bytes`, by default): the rest is dropped and the answer `truncated`.
OUTPUT_BYTES = 1024 * 1024
# Below this many free bytes a session's volume counts as full, as the worker counts it.
QUOTA_FULL_MARGIN_BYTES = 1 << 20

# A multi-call operation: a generator that yields each call, is sent its answer (or thrown its
# `HearthError`) and returns the result.
_Steps = Generator[Call[Any], Any, R]


@dataclass(frozen=True)
class _Op(Generic[A, R]):
    """One backend operation: the call to send, the result of its answer, the result of an error
    the model can act on."""

    call: Call[A]
    done: Callable[[A], R]
    failed: Callable[[HearthError], R]


def _error_text(e: HearthError) -> str:
    return e.message


def _file_info(entry: t.FileInfo) -> FileInfo:
    # The worker marks directories with a trailing `/`; deepagents' paths never have one (the
    # entry says `is_dir`).
    path = entry["path"]
    if entry["is_dir"] and len(path) > 1:
        path = path.rstrip("/")
    info = FileInfo(path=path, is_dir=entry["is_dir"], size=entry["size"])
    if entry.get("modified_at"):
        info["modified_at"] = cast(str, entry["modified_at"])
    return info


def _ls_result(answer: t.LsAnswer) -> LsResult:
    # A listing cut at the worker's cap is still a listing: deepagents reads any `error` as a
    # failed `ls` and would drop the entries.
    return LsResult(entries=[_file_info(e) for e in answer["entries"]])


def _ls_error(path: str, e: HearthError) -> LsResult:
    """deepagents' own wording where its middleware looks for it (`not_a_directory` tells a
    file from an empty directory before a delete)."""
    if e.code == "file_not_found":
        return LsResult(error=f"Path '{path}': path_not_found")
    if e.code == "invalid_input" and "not a directory" in e.message:
        return LsResult(error=f"Path '{path}': not_a_directory")
    return LsResult(error=_error_text(e))


def _read_error(file_path: str, e: HearthError) -> str:
    """deepagents' wording where its suite and middleware look for it."""
    if e.code == "file_not_found":
        return f"File '{file_path}' not found"
    if e.code == "too_large" and e.message.startswith("Binary file"):
        return f"File '{file_path}': {e.message}"
    return _error_text(e)


def _edit_error(file_path: str, old_string: str, e: HearthError) -> str:
    """deepagents' wording (`BaseSandbox`'s) for a missing file and an ambiguous edit."""
    if e.code == "file_not_found":
        return f"Error: File '{file_path}' not found"
    if e.code == "conflict" and " appears " in e.message:
        return (
            f"Error: String '{old_string}' appears multiple times ({e.message.split(' appears ')[1].split(' in ')[0]})."
            " Use replace_all=True to replace all occurrences, or provide a more specific string with surrounding"
            " context."
        )
    return _error_text(e)


def _read_result(answer: t.ReadAnswer) -> ReadResult:
    content = answer["content"]
    start = answer.get("start_line") or 0
    if answer["encoding"] != "utf-8" or start < 1:
        # A binary file (base64, no lines), or an empty one: no window to describe.
        return ReadResult(file_data=FileData(content=content, encoding=answer["encoding"]))
    # deepagents' page is its lines joined by `\n`: no line ending after the last one (the worker
    # sends the lines as they are in the file).
    if content.endswith("\n"):
        content = content[:-2] if content.endswith("\r\n") else content[:-1]
    file_data = FileData(content=content, encoding=answer["encoding"])
    return ReadResult(
        file_data=file_data,
        start_line=start,
        end_line=answer["end_line"],
        total_lines=answer.get("total_lines"),
        next_offset=answer.get("next_offset"),
    )


def _glob_result(answer: t.GlobAnswer) -> GlobResult:
    truncated = answer["truncated"]
    return GlobResult(
        matches=[_file_info(m) for m in answer["matches"]],
        truncated=truncated,
        truncation_reason="budget" if truncated else None,
    )


def _grep_result(answer: t.GrepAnswer) -> GrepResult:
    matches = [GrepMatch(path=m["path"], line=m["line"], text=m["text"]) for m in answer["matches"]]
    return GrepResult(matches=matches, truncated=answer["truncated"])


def _upload_responses(outcomes: list[t.FileOutcome]) -> list[FileUploadResponse]:
    return [FileUploadResponse(path=o["path"], error=o["error"]) for o in outcomes]


def _download_responses(outcomes: list[t.FileOutcome]) -> list[FileDownloadResponse]:
    return [FileDownloadResponse(path=o["path"], content=routes.decode_content(o), error=o["error"]) for o in outcomes]


def _execute_response(answer: t.ExecResult, timeout_s: float | None) -> ExecuteResponse:
    """deepagents' `execute` answer: stdout, then stderr with each line marked `[stderr]` (as
    `LocalShellBackend` does), and what ended the program when it did not simply exit."""
    parts = [answer["stdout"]] if answer["stdout"] else []
    if answer["stderr"]:
        parts.extend(f"[stderr] {line}" for line in answer["stderr"].rstrip("\n").split("\n"))
    output = "\n".join(parts) if parts else "<no output>"
    exit_code = answer["exit_code"]
    if answer["timed_out"]:
        after = f" after {timeout_s:g} seconds" if timeout_s else ""
        output += f"\n\nError: Command timed out{after}; its processes were killed. Pass a longer timeout."
        exit_code = TIMEOUT_EXIT_CODE
    elif answer["oom_killed"]:
        output += "\n\nError: Command was killed: it ran out of memory."
    if answer.get("quota_exceeded"):
        output += "\n\nError: The session's disk quota is full; delete files to make room."
    if exit_code is None and answer["signal"] is not None:
        exit_code = 128 + answer["signal"]  # the shell's convention for "killed by signal N"
    if answer["truncated"]:
        output += "\n\n... Output truncated at the worker's limit."
    return ExecuteResponse(output=output, exit_code=exit_code, truncated=answer["truncated"])


def _exec_failed(e: HearthError) -> ExecuteResponse:
    """A run the worker refused, for a reason the model can act on (a timeout beyond the
    worker's longest, say)."""
    return ExecuteResponse(output=f"Error: {e.message}", exit_code=1)


@dataclass
class _Capture:
    """What a followed run keeps of one stream: its first `limit` bytes, as a foreground run's
    answer keeps them."""

    limit: int
    parts: list[str] = field(default_factory=list)
    size: int = 0
    cut: bool = False

    @property
    def full(self) -> bool:
        return self.size >= self.limit

    def add(self, data: str) -> None:
        if not data:
            return
        encoded = data.encode("utf-8", errors="surrogatepass")
        room = self.limit - self.size
        if len(encoded) > room:
            # Cut at the byte limit, a cut character replaced, as the worker's lossy decoding does.
            data = encoded[:room].decode("utf-8", errors="replace")
            encoded, self.cut = encoded[:room], True
        if data:
            self.parts.append(data)
        self.size += len(encoded)

    def skip_to(self, total: int, cursor: int) -> int:
        """The cursor to read on from: past everything written so far (`total`) once the stream
        is kept in full, so no more of it is sent; what is skipped makes the answer truncated."""
        if not self.full or total <= cursor:
            return cursor
        self.cut = True
        return total

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _quota_full(usage: t.QuotaUsage | None) -> bool:
    """Whether a session's volume is full, as the worker decides a run's `quota_exceeded`."""
    if usage is None:
        return False
    return (
        usage["bytes_limit"] - usage["bytes_used"] < QUOTA_FULL_MARGIN_BYTES
        or usage["inodes_used"] >= usage["inodes_limit"]
    )


def _runs_in_background(timeout_s: float | None) -> bool:
    """Whether `execute` follows the run as a background process: a long timeout, or 0 (the
    longest the worker allows)."""
    return timeout_s is not None and (timeout_s == 0 or timeout_s > BACKGROUND_AFTER_S)


@dataclass
class _Followed:
    """A followed run's process, once started, and whether the backend is done with it: what is
    killed when the caller abandons the run (an interrupt, a cancelled task)."""

    pid: str | None = None
    finished: bool = False


class HearthBackend(SandboxBackendProtocol):
    """A session on a Hearth worker, as deepagents' backend.

    Paths are the session's view: `/workspace/...` (the project, where programs run) and
    `/tmp/...` (scratch), plus any read-only areas the worker mounts.
    """

    def __init__(
        self,
        session_id: str,
        *,
        url: str | None = None,
        token: str | None = None,
        client: Client | None = None,
        async_client: AsyncClient | None = None,
        default_timeout: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Attach to an existing session (`HearthBackend.create` makes one).

        Args:
            session_id: The worker's session id.
            url, token: The worker (default `HEARTH_URL` / `HEARTH_TOKEN`, then loopback), unless
                `client` is given.
            client: The sync client; the async twins use `client.async_twin()`, one per event
                loop, unless `async_client` is given (then that one, in every loop).
            default_timeout: `execute`'s deadline when the call names none (default: the
                worker's `exec.timeout_s`).
            env: Environment variables of every `execute` (the jail starts from an empty one).
        """
        self._session = session_id
        self._client = client or Client(url, token=token)
        self._async_client = async_client
        self._async_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        self._async_lock = threading.Lock()
        self._default_timeout = default_timeout
        self._env = dict(env) if env else None

    @classmethod
    def create(
        cls,
        session_id: str | None = None,
        *,
        url: str | None = None,
        token: str | None = None,
        git: Mapping[str, str] | None = None,
        from_snapshot: str | None = None,
        quota: Mapping[str, int] | None = None,
        network_allow: Sequence[str] | None = None,
        **options: Any,
    ) -> HearthBackend:
        """A new session on the worker (empty, cloned from `git`, or restored `from_snapshot`;
        `quota` as `{"bytes"?, "inodes"?}`; `network_allow` where its programs may connect, `[]`
        nowhere) and a backend on it; `options` are those of the constructor."""
        client = options.pop("client", None) or Client(url, token=token)
        session = client.create_session(
            session_id, git=git, from_snapshot=from_snapshot, quota=quota, network_allow=network_allow
        )
        return cls(session["id"], url=url, token=token, client=client, **options)

    @property
    def id(self) -> str:
        return self._session

    @property
    def client(self) -> Client:
        return self._client

    @property
    def async_client(self) -> AsyncClient:
        """The async client of the running event loop (an httpx connection pool belongs to one
        loop): the one given, or this loop's twin of the sync client, made on first use."""
        if self._async_client is not None:
            return self._async_client
        loop = asyncio.get_running_loop()
        with self._async_lock:
            client = self._async_by_loop.get(loop)
            if client is None:
                client = self._async_by_loop[loop] = self._client.async_twin()
            return client

    def close(self) -> None:
        """Close the sync client's connections (the session stays on the worker)."""
        self._client.close()

    async def aclose(self) -> None:
        """Close the running loop's async client (the session stays on the worker)."""
        with self._async_lock:
            client = self._async_by_loop.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    # --- sending: the one place sync and async differ

    def _run(self, op: _Op[A, R]) -> R:
        try:
            answer = self._client.send(op.call)
        except HearthError as e:
            if not is_for_the_model(e):
                raise
            return op.failed(e)
        return op.done(answer)

    async def _arun(self, op: _Op[A, R]) -> R:
        try:
            answer = await self.async_client.send(op.call)
        except HearthError as e:
            if not is_for_the_model(e):
                raise
            return op.failed(e)
        return op.done(answer)

    # --- the operations, each one call

    def _ls(self, path: str) -> _Op[t.LsAnswer, LsResult]:
        return _Op(routes.ls(self._session, path), _ls_result, lambda e: _ls_error(path, e))

    def _read(self, file_path: str, offset: int, limit: int) -> _Op[t.ReadAnswer, ReadResult]:
        window = {"offset": max(int(offset), 0), "limit": min(int(limit), MAX_READ_LINES)}
        call = routes.read_file(self._session, file_path, **window)
        return _Op(call, _read_result, lambda e: ReadResult(error=_read_error(file_path, e)))

    def _write(self, file_path: str, content: str) -> _Op[t.WriteAnswer, WriteResult]:
        call = routes.write_file(self._session, file_path, content)
        return _Op(call, lambda a: WriteResult(path=a["path"]), lambda e: WriteResult(error=_error_text(e)))

    def _edit(self, file_path: str, old: str, new: str, replace_all: bool) -> _Op[t.EditAnswer, EditResult]:
        call = routes.edit_file(self._session, file_path, old, new, replace_all=replace_all)
        return _Op(
            call,
            lambda a: EditResult(path=a["path"], occurrences=a["occurrences"]),
            lambda e: EditResult(error=_edit_error(file_path, old, e)),
        )

    def _delete(self, file_path: str) -> _Op[t.DeleteAnswer, DeleteResult]:
        call = routes.delete(self._session, file_path)
        return _Op(call, lambda a: DeleteResult(path=a["path"]), lambda e: DeleteResult(error=_error_text(e)))

    def _glob(self, pattern: str, path: str | None) -> _Op[t.GlobAnswer, GlobResult]:
        call = routes.glob(self._session, pattern, path=path)
        return _Op(call, _glob_result, lambda e: GlobResult(error=_error_text(e)))

    def _grep(
        self, pattern: str, path: str | None, glob: str | None, max_count: int | None
    ) -> _Op[t.GrepAnswer, GrepResult]:
        cap = None if max_count is None else min(max_count, MAX_GREP_MATCHES)
        call = routes.grep(self._session, pattern, path=path, glob=glob, max_count=cap)
        return _Op(call, _grep_result, lambda e: GrepResult(error=_error_text(e)))

    def _upload(self, files: Sequence[tuple[str, bytes]]) -> _Op[list[t.FileOutcome], list[FileUploadResponse]]:
        return _Op(
            routes.upload(self._session, files),
            _upload_responses,
            lambda e: [FileUploadResponse(path=p, error=e.code) for p, _ in files],
        )

    def _download(self, paths: Sequence[str]) -> _Op[list[t.FileOutcome], list[FileDownloadResponse]]:
        return _Op(
            routes.download(self._session, paths),
            _download_responses,
            lambda e: [FileDownloadResponse(path=p, error=e.code) for p in paths],
        )

    def _timeout_s(self, timeout: int | None) -> float | None:
        # 0 is deepagents' "no timeout": the worker reads it as the longest run it allows.
        return self._default_timeout if timeout is None else timeout

    def _execute(self, command: str, timeout_s: float | None) -> _Op[t.ExecResult, ExecuteResponse]:
        body = cast(t.ExecBody, {"command": command, "timeout_s": timeout_s, "env": self._env})
        return _Op(
            routes.exec_program(self._session, body),
            lambda a: _execute_response(a, timeout_s),
            _exec_failed,
        )

    def _follow(self, command: str, timeout_s: float, run: _Followed) -> _Steps[ExecuteResponse]:
        """`execute` as a background process: started, its output read by long polls of at most
        `FOLLOW_WAIT_S` (each stream kept as a foreground run keeps it), killed if it outlives
        its timeout, then its end and the session's quota read, and the process forgotten."""
        session = self._session
        started = time.monotonic()
        # 0 is the worker's longest run, which only the worker knows: it alone ends it then.
        deadline = started + timeout_s + KILL_GRACE_S if timeout_s else None
        try:
            # The worker keeps each stream's first bytes, as a foreground run's answer does:
            # however far this follower falls behind, it reads them whole.
            process: t.ProcessInfo = yield routes.exec_background(
                session, command=command, timeout=timeout_s, env=self._env, keep_output="first"
            )
        except HearthError as e:
            if e.code == "process_limit":
                # The session runs as many background processes as it may: one long request,
                # as before background processes.
                return (yield from self._foreground(command, timeout_s))
            if not is_for_the_model(e):
                raise
            return _exec_failed(e)
        run.pid = pid = process["id"]
        follower = routes.OutputFollower(session, pid)
        stdout, stderr = _Capture(OUTPUT_BYTES), _Capture(OUTPUT_BYTES)
        killed = False
        try:
            while not follower.done:
                wait = FOLLOW_WAIT_S
                if deadline is not None and not killed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        # Its output still comes, to its end: the kill closes the streams.
                        yield routes.signal_process(session, pid, "SIGKILL")
                        killed = True
                    else:
                        wait = min(wait, left)
                answer: t.ProcessOutput = yield follower.call(wait_s=wait)
                for stream, data in follower.take(answer):
                    (stdout if stream == "stdout" else stderr).add(data)
                # A stream kept in full is skipped to its end: nothing more of it is kept.
                follower.stdout = stdout.skip_to(answer["process"]["stdout_bytes"], follower.stdout)
                follower.stderr = stderr.skip_to(answer["process"]["stderr_bytes"], follower.stderr)
            end = follower.process or process
            while end["state"] == "running":  # the streams close as it ends: not for long
                end = yield routes.get_process(session, pid, wait_s=FOLLOW_WAIT_S)
            with contextlib.suppress(ProcessNotFound):
                yield routes.kill_process(session, pid)  # forget it: the answer has it all
            run.finished = True
            info: t.Session = yield routes.get_session(session)
        except HearthError as e:
            if not is_for_the_model(e):
                raise
            if not run.finished:
                with contextlib.suppress(HearthError):
                    yield routes.kill_process(session, pid)
                run.finished = True
            return _exec_failed(e)
        answer_of_run: t.ExecResult = {
            "exit_code": end["exit_code"],
            "signal": end["signal"],
            "stdout": stdout.text,
            "stderr": stderr.text,
            "timed_out": end["timed_out"] or killed,
            "oom_killed": end["oom_killed"],
            "quota_exceeded": _quota_full(info["quota"]),
            "truncated": stdout.cut or stderr.cut or follower.missed > 0,
            "duration_ms": end["duration_ms"],
            "jail": {},
        }
        return _execute_response(answer_of_run, timeout_s)

    def _foreground(self, command: str, timeout_s: float | None) -> _Steps[ExecuteResponse]:
        op = self._execute(command, timeout_s)
        try:
            answer = yield op.call
        except HearthError as e:
            if not is_for_the_model(e):
                raise
            return op.failed(e)
        return op.done(answer)

    def _drive(self, steps: _Steps[R], run: _Followed) -> R:
        """Sends each call of `steps` and hands it its answer or error. A run the caller abandons
        (an interrupt) is killed."""
        try:
            call = next(steps)
            while True:
                try:
                    answer = self._client.send(call)
                except HearthError as e:
                    call = steps.throw(e)
                else:
                    call = steps.send(answer)
        except StopIteration as done:
            return cast(R, done.value)
        except BaseException:
            if run.pid is not None and not run.finished:
                with contextlib.suppress(Exception):
                    self._client.send(routes.kill_process(self._session, run.pid))
            raise

    async def _adrive(self, steps: _Steps[R], run: _Followed) -> R:
        """`_drive`, awaited. A run whose task is cancelled is killed."""
        try:
            call = next(steps)
            while True:
                try:
                    answer = await self.async_client.send(call)
                except HearthError as e:
                    call = steps.throw(e)
                else:
                    call = steps.send(answer)
        except StopIteration as done:
            return cast(R, done.value)
        except BaseException:
            if run.pid is not None and not run.finished:
                with contextlib.suppress(Exception):
                    await self.async_client.send(routes.kill_process(self._session, run.pid))
            raise

    # --- deepagents' protocol

    def ls(self, path: str) -> LsResult:
        return self._run(self._ls(path))

    async def als(self, path: str) -> LsResult:
        return await self._arun(self._ls(path))

    def read(self, file_path: str, offset: int = 0, limit: int = 2000) -> ReadResult:
        if limit <= 0:
            return ReadResult(file_data=FileData(content="", encoding="utf-8"), no_lines_requested=True)
        return self._run(self._read(file_path, offset, limit))

    async def aread(self, file_path: str, offset: int = 0, limit: int = 2000) -> ReadResult:
        if limit <= 0:
            return ReadResult(file_data=FileData(content="", encoding="utf-8"), no_lines_requested=True)
        return await self._arun(self._read(file_path, offset, limit))

    def write(self, file_path: str, content: str) -> WriteResult:
        return self._run(self._write(file_path, content))

    async def awrite(self, file_path: str, content: str) -> WriteResult:
        return await self._arun(self._write(file_path, content))

    def edit(self, file_path: str, old_string: str, new_string: str, replace_all: bool = False) -> EditResult:
        return self._run(self._edit(file_path, old_string, new_string, replace_all))

    async def aedit(self, file_path: str, old_string: str, new_string: str, replace_all: bool = False) -> EditResult:
        return await self._arun(self._edit(file_path, old_string, new_string, replace_all))

    def delete(self, file_path: str) -> DeleteResult:
        return self._run(self._delete(file_path))

    async def adelete(self, file_path: str) -> DeleteResult:
        return await self._arun(self._delete(file_path))

    def glob(self, pattern: str, path: str | None = None) -> GlobResult:
        return self._run(self._glob(pattern, path))

    async def aglob(self, pattern: str, path: str | None = None) -> GlobResult:
        return await self._arun(self._glob(pattern, path))

    def grep(
        self, pattern: str, path: str | None = None, glob: str | None = None, *, max_count: int | None = None
    ) -> GrepResult:
        return self._run(self._grep(pattern, path, glob, max_count))

    async def agrep(
        self, pattern: str, path: str | None = None, glob: str | None = None, *, max_count: int | None = None
    ) -> GrepResult:
        return await self._arun(self._grep(pattern, path, glob, max_count))

    def upload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        return self._run(self._upload(files))

    async def aupload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        return await self._arun(self._upload(files))

    def download_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        return self._run(self._download(paths))

    async def adownload_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        return await self._arun(self._download(paths))

    def execute(self, command: str, *, timeout: int | None = None) -> ExecuteResponse:
        timeout_s = self._timeout_s(timeout)
        if timeout_s is not None and _runs_in_background(timeout_s):
            run = _Followed()
            return self._drive(self._follow(command, timeout_s, run), run)
        return self._run(self._execute(command, timeout_s))

    async def aexecute(self, command: str, *, timeout: int | None = None) -> ExecuteResponse:
        timeout_s = self._timeout_s(timeout)
        if timeout_s is not None and _runs_in_background(timeout_s):
            run = _Followed()
            return await self._adrive(self._follow(command, timeout_s, run), run)
        return await self._arun(self._execute(command, timeout_s))
