"""Every route of the worker's HTTP API, as a request description (no I/O).

Each function here returns a `Call`: method, path, body and how to decode the answer. The sync
`Client` and the `AsyncClient` only *send* calls, so a route's path, body and decoding are written
once, here, whichever way it is sent; `Client.send(call)` also takes a call directly.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast
from urllib.parse import quote

import httpx

from . import types as t
from .errors import BadRequest, error_from_event

T = TypeVar("T")

# How much longer than its own deadline the client waits for a program's answer: the jail's set-up,
# the kill of the process tree, and the trip back.
EXEC_ANSWER_MARGIN_S = 30.0
# The wait when a run names no deadline: the worker's own maximum (`exec.max_timeout_s`) is at most
# this much by default.
EXEC_UNBOUNDED_WAIT_S = 3600.0


def _json(response: httpx.Response) -> Any:
    return response.json()


def _result(response: httpx.Response) -> Any:
    return response.json()["result"]


def _bytes(response: httpx.Response) -> bytes:
    return response.content


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request to the worker and how its answer becomes a `T`."""

    method: str
    path: str
    json: Any = None
    params: Mapping[str, Any] | None = None
    content: bytes | None = None
    files: Mapping[str, Any] | None = None
    """Parts of a `multipart/form-data` body."""
    headers: Mapping[str, str] | None = None
    timeout: float | None = None
    """Seconds to wait for the answer when the client's default is not enough (exec)."""
    decode: Callable[[httpx.Response], T] = field(default=cast(Callable[[httpx.Response], T], _json))


_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _session(session: str) -> str:
    """A session's route. Checked here because an id like `..` would be a different route once
    the URL is normalised, not a bad id the worker could refuse."""
    if not _SESSION_ID.fullmatch(session):
        raise BadRequest("invalid_session_id", f"`{session}` is not a session id", status=None)
    return f"/v1/sessions/{session}"


def _drop_none(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


# --- the worker ----------------------------------------------------------------------------------


def health() -> Call[t.Health]:
    return Call("GET", "/v1/health")


def ready() -> Call[t.Ready]:
    """Whether the worker takes work (a `Draining` error, 503, once it stops)."""
    return Call("GET", "/v1/ready")


def tools() -> Call[list[t.Tool]]:
    return Call("GET", "/v1/tools")


def openapi() -> Call[dict[str, Any]]:
    return Call("GET", "/v1/openapi.json")


def metrics() -> Call[str]:
    return Call("GET", "/metrics", decode=lambda r: r.text)


# --- sessions ------------------------------------------------------------------------------------


def create_session(
    id: str | None = None,
    *,
    git: Mapping[str, str] | None = None,
    from_snapshot: str | None = None,
    quota: Mapping[str, int] | None = None,
    network_allow: Sequence[str] | None = None,
) -> Call[t.Session]:
    """A new session: empty, cloned from `git` (`{"url", "branch"?}`), or restored `from_snapshot`
    (`"<session>"` for its latest, or a snapshot id `"<session>/<name>"`); `quota`
    (`{"bytes"?, "inodes"?}`) sets its limits within the worker's maximum; `network_allow` is
    where its programs may connect through the worker's egress proxy (`host`, `host:port`,
    `*.domain`, each within the worker's `[egress] allow`; `[]`: nowhere; `None`: what the worker
    allows every session)."""
    network: t.NetworkBody | None = None if network_allow is None else {"allow": list(network_allow)}
    body = _drop_none(
        id=id,
        git=dict(git) if git else None,
        from_snapshot=from_snapshot,
        quota=dict(quota) if quota else None,
        network=network,
    )
    return Call("POST", "/v1/sessions", json=body)


def list_sessions() -> Call[list[t.Session]]:
    return Call("GET", "/v1/sessions", decode=lambda r: r.json()["sessions"])


def get_session(session: str) -> Call[t.Session]:
    return Call("GET", _session(session))


def replace_token(session: str) -> Call[t.SessionToken]:
    """A new token for the session, revoking the one it had (the operator's token only)."""
    return Call("POST", f"{_session(session)}/token")


def delete_session(session: str, *, snapshot: bool | None = None) -> Call[None]:
    """Delete a session; `snapshot=True` takes a last snapshot first (and keeps the session if
    that fails)."""
    params = None if snapshot is None else {"snapshot": "true" if snapshot else "false"}
    return Call("DELETE", _session(session), params=params, decode=lambda _: None)


# --- tools ---------------------------------------------------------------------------------------


def _tool(name: str) -> str:
    return f"/v1/tools/{quote(name, safe='')}"


def get_tool(name: str) -> Call[t.ToolDetail]:
    """A tool's version (its component's SHA-256), origin, policy and limits."""
    return Call("GET", _tool(name))


def install_tool(name: str, component: bytes, manifest: str | None = None) -> Call[t.ToolInstalled]:
    """Installs `component` as tool `name`, or upgrades it (the client's token must be the
    operator's); `manifest` is its `tool.toml`."""
    if manifest is None:
        return Call("PUT", _tool(name), content=component, headers={"content-type": "application/wasm"})
    files = {"component": ("tool.wasm", component, "application/wasm"), "manifest": (None, manifest)}
    return Call("PUT", _tool(name), files=files)


def remove_tool(name: str) -> Call[t.ToolRemoved]:
    """Removes an installed tool (the operator's token)."""
    return Call("DELETE", _tool(name))


def call_tool(session: str, name: str, arguments: Mapping[str, Any]) -> Call[dict[str, Any]]:
    """Any tool, built-in or not: the body is its arguments, the answer its `result`."""
    return Call("POST", f"{_session(session)}/tools/{quote(name, safe='')}", json=dict(arguments), decode=_result)


def ls(session: str, path: str) -> Call[t.LsAnswer]:
    return cast(Call[t.LsAnswer], call_tool(session, "ls", {"path": path}))


def read_file(session: str, file_path: str, *, offset: int = 0, limit: int = 2000) -> Call[t.ReadAnswer]:
    arguments = {"file_path": file_path, "offset": offset, "limit": limit}
    return cast(Call[t.ReadAnswer], call_tool(session, "read_file", arguments))


def write_file(session: str, file_path: str, content: str | bytes) -> Call[t.WriteAnswer]:
    """Write text, or bytes (sent base64)."""
    if isinstance(content, bytes):
        arguments = {"file_path": file_path, "content": base64.b64encode(content).decode(), "encoding": "base64"}
    else:
        arguments = {"file_path": file_path, "content": content}
    return cast(Call[t.WriteAnswer], call_tool(session, "write_file", arguments))


def edit_file(
    session: str, file_path: str, old_string: str, new_string: str, *, replace_all: bool = False
) -> Call[t.EditAnswer]:
    arguments = {"file_path": file_path, "old_string": old_string, "new_string": new_string, "replace_all": replace_all}
    return cast(Call[t.EditAnswer], call_tool(session, "edit_file", arguments))


def delete(session: str, file_path: str) -> Call[t.DeleteAnswer]:
    return cast(Call[t.DeleteAnswer], call_tool(session, "delete", {"file_path": file_path}))


def glob(session: str, pattern: str, *, path: str | None = None) -> Call[t.GlobAnswer]:
    return cast(Call[t.GlobAnswer], call_tool(session, "glob", _drop_none(pattern=pattern, path=path)))


def grep(
    session: str,
    pattern: str,
    *,
    path: str | None = None,
    glob: str | None = None,
    max_count: int | None = None,
) -> Call[t.GrepAnswer]:
    """A literal (not regex) search."""
    arguments = _drop_none(pattern=pattern, path=path, glob=glob, max_count=max_count)
    return cast(Call[t.GrepAnswer], call_tool(session, "grep", arguments))


# --- files ---------------------------------------------------------------------------------------


def _file_path(session: str, path: str) -> str:
    """The files route of a view path. `.` and `..` segments are refused here, since the URL
    would be normalised into another route before the worker saw them."""
    segments = path.lstrip("/").split("/")
    if not path.startswith("/") or any(segment in ("", ".", "..") for segment in segments):
        raise BadRequest("invalid_path", f"`{path}` is not an absolute, normalised view path", status=None)
    return f"{_session(session)}/files/{quote('/'.join(segments))}"


def put_file(session: str, path: str, content: bytes) -> Call[t.FileWritten]:
    """Raw bytes to a view path (`/workspace/data.bin`): parents created, replaced atomically."""
    return Call("PUT", _file_path(session, path), content=content)


def get_file(session: str, path: str) -> Call[bytes]:
    return Call("GET", _file_path(session, path), decode=_bytes)


def upload(session: str, files: Sequence[tuple[str, bytes]]) -> Call[list[t.FileOutcome]]:
    """Many files at once; one outcome each, in order (a failure does not stop the others)."""
    body = {"files": [{"path": p, "content": base64.b64encode(c).decode()} for p, c in files]}
    return Call("POST", f"{_session(session)}/upload", json=body, decode=lambda r: r.json()["files"])


def download(session: str, paths: Sequence[str]) -> Call[list[t.FileOutcome]]:
    """Many files at once; `content` is base64 (see `decode_content`), one outcome each, in order."""
    return Call(
        "POST", f"{_session(session)}/download", json={"paths": list(paths)}, decode=lambda r: r.json()["files"]
    )


def decode_content(outcome: t.FileOutcome) -> bytes | None:
    """The bytes of a downloaded file, or `None` when it failed."""
    content = outcome.get("content")
    return None if content is None else base64.b64decode(content)


# --- programs ------------------------------------------------------------------------------------


def exec_program(session: str, body: t.ExecBody) -> Call[t.ExecResult]:
    """Run a program in the session's jail."""
    body = cast(t.ExecBody, _drop_none(**body))
    return Call("POST", f"{_session(session)}/exec", json=body, timeout=exec_wait(body))


def exec_wait(body: t.ExecBody) -> float:
    """How long to wait for the answer of a run with this body."""
    return float(body.get("timeout_s") or EXEC_UNBOUNDED_WAIT_S) + EXEC_ANSWER_MARGIN_S


def exec_stream_path(session: str) -> str:
    """The streaming twin of `exec`: NDJSON lines (see `Client.exec_stream`)."""
    return f"{_session(session)}/exec/stream"


def stream_event(line: str) -> t.OutputChunk | t.ExecResult | None:
    """One NDJSON line of `/exec/stream`: a chunk of output, or the final answer (`"event":
    "exit"`, the fields of `ExecResult`); an `"event": "error"` line raises its error."""
    if not line.strip():
        return None
    event = json.loads(line)
    if event.get("event") == "error":
        raise error_from_event(event.get("error") or {})
    return cast("t.OutputChunk | t.ExecResult", event)


# --- background processes ------------------------------------------------------------------------

# The longest a follower of a process's output waits in one long poll (the worker allows 60).
FOLLOW_WAIT_S = 30.0

_PROCESS_ID = re.compile(r"p[0-9]{1,19}")


def _process(session: str, pid: str) -> str:
    """A process's route; its id is checked here, like a session's, so that it cannot name
    another route."""
    if not _PROCESS_ID.fullmatch(pid):
        raise BadRequest("invalid_path", f"`{pid}` is not a process id (`p1`, `p2`, …)", status=None)
    return f"{_session(session)}/processes/{pid}"


def _waiting(wait_s: float | None) -> float | None:
    """The answer's wait for a long poll of `wait_s` seconds: the poll, and the trip back."""
    return None if wait_s is None else float(wait_s) + EXEC_ANSWER_MARGIN_S


def exec_background(
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
) -> Call[t.ProcessInfo]:
    """Start one of `command`, `argv` or `script` (with `args`) as a background process: the
    answer (202) is the started process, which runs on. `timeout` is its wall time in seconds
    (default: the worker's `exec.background_timeout_s`; 0: the longest it allows); `stdin` is
    written first and stdin stays open (`write_stdin`); `keep_output` is which bytes of each
    stream the worker keeps for readers (`"last"`, the default, or `"first"`)."""
    body = _drop_none(
        command=command,
        argv=None if argv is None else list(argv),
        script=script,
        args=None if args is None else list(args),
        timeout_s=timeout,
        stdin=stdin,
        env=None if env is None else dict(env),
        background=True,
        keep_output=keep_output,
    )
    return Call("POST", f"{_session(session)}/exec", json=body)


def list_processes(session: str) -> Call[list[t.ProcessInfo]]:
    """The session's background processes, running and ended (its last 32 ended), oldest first."""
    return Call("GET", f"{_session(session)}/processes", decode=lambda r: r.json()["processes"])


def get_process(session: str, pid: str, *, wait_s: float | None = None) -> Call[t.ProcessInfo]:
    """A process's state; with `wait_s` (0 to 30), answered when it ends or the wait is over."""
    return Call("GET", _process(session, pid), params=_drop_none(wait_s=wait_s), timeout=_waiting(wait_s))


def process_output(
    session: str,
    pid: str,
    *,
    stdout: int = 0,
    stderr: int = 0,
    max_bytes: int | None = None,
    wait_s: float | None = None,
) -> Call[t.ProcessOutput]:
    """Each stream from its byte cursor (the `next` of the previous read), at most `max_bytes`
    of each (4 B to 1 MiB, the default); with `wait_s` (0 to 30), a long poll answered as soon as
    there is output past the cursors, or the end."""
    params = _drop_none(stdout=stdout, stderr=stderr, max_bytes=max_bytes, wait_s=wait_s)
    return Call("GET", f"{_process(session, pid)}/output", params=params, timeout=_waiting(wait_s))


def write_stdin(session: str, pid: str, data: str, *, close: bool = False) -> Call[t.ProcessInfo]:
    """`data` to the process's stdin, as it is (add the `\\n` a line needs); `close` closes stdin
    after it. A program that does not read within 10 s gets a 409 `stdin_closed`."""
    body: t.StdinBody = {"data": data, "close": close}
    return Call("POST", f"{_process(session, pid)}/stdin", json=body)


def signal_process(session: str, pid: str, signal: t.SignalName = "SIGTERM") -> Call[t.SignalOutcome]:
    """To the program's process group (its handlers decide); `SIGKILL` ends every process of
    the run. `delivered` is false when it had already ended."""
    body: t.SignalBody = {"signal": signal}
    return Call("POST", f"{_process(session, pid)}/signal", json=body)


def kill_process(session: str, pid: str) -> Call[t.ProcessInfo]:
    """Kill the process (if it runs) and forget it, its output with it: the answer is its last
    state."""
    return Call("DELETE", _process(session, pid))


class OutputFollower:
    """Where a reader of a background process's output is, between long polls: the cursor of each
    stream, and whether both reached their end (which comes when the process ended). What the
    clients' `follow_output` and the backend's long `execute` send, written once."""

    def __init__(
        self,
        session: str,
        pid: str,
        *,
        stdout: int = 0,
        stderr: int = 0,
        wait_s: float = FOLLOW_WAIT_S,
        max_bytes: int | None = None,
    ) -> None:
        self.session, self.pid = session, pid
        self.stdout, self.stderr = stdout, stderr
        self.wait_s, self.max_bytes = wait_s, max_bytes
        self.eof = (False, False)
        """Whether stdout and stderr reached their end."""
        self.missed = 0
        """Bytes the rings dropped before they were read (both streams)."""
        self.process: t.ProcessInfo | None = None
        """The process as of the last read."""

    @property
    def done(self) -> bool:
        return all(self.eof)

    def call(self, wait_s: float | None = None) -> Call[t.ProcessOutput]:
        """The next read: a long poll of `wait_s` (default the follower's) from the cursors."""
        wait = self.wait_s if wait_s is None else wait_s
        return process_output(
            self.session, self.pid, stdout=self.stdout, stderr=self.stderr, max_bytes=self.max_bytes, wait_s=wait
        )

    def take(self, answer: t.ProcessOutput) -> list[tuple[t.StreamName, str]]:
        """The chunks a read brought (stdout's, then stderr's), with the cursors moved past them."""
        out, err = answer["stdout"], answer["stderr"]
        self.process = answer["process"]
        self.stdout, self.stderr = out["next"], err["next"]
        self.eof = (out["eof"], err["eof"])
        self.missed += out["missed"] + err["missed"]
        chunks: list[tuple[t.StreamName, str]] = []
        if out["data"]:
            chunks.append(("stdout", out["data"]))
        if err["data"]:
            chunks.append(("stderr", err["data"]))
        return chunks


def port_path(session: str, port: int, path: str = "") -> str:
    """The route at which a server a program of the session runs on `port` (inside the
    session) is reached: any method, and WebSockets, with the worker's or the session's token."""
    if not 1 <= port <= 65535:
        raise BadRequest("invalid_path", f"{port} is not a port (1 to 65535)", status=None)
    return f"{_session(session)}/ports/{port}/{path.lstrip('/')}"


# --- git -----------------------------------------------------------------------------------------


def git_status(session: str) -> Call[t.GitStatus]:
    return Call("GET", f"{_session(session)}/git/status")


def git_log(
    session: str, *, revision: str | None = None, skip: int | None = None, limit: int | None = None
) -> Call[t.GitLog]:
    """History, newest first, a page at a time (`next_skip` is the next page's `skip`)."""
    return Call("GET", f"{_session(session)}/git/log", params=_drop_none(revision=revision, skip=skip, limit=limit))


def git_diff(session: str, *, from_: str | None = None, to: str | None = None) -> Call[t.GitDiff]:
    """The workspace against HEAD (or `from_`), or commit `from_` against commit `to`."""
    return Call("GET", f"{_session(session)}/git/diff", params=_drop_none(**{"from": from_, "to": to}))


def git_commit(session: str, message: str, *, author: t.Author | None = None) -> Call[t.CommitOutcome]:
    return Call("POST", f"{_session(session)}/git/commit", json=_drop_none(message=message, author=author))


def git_push(
    session: str, *, remote: str | None = None, branch: str | None = None, author: t.Author | None = None
) -> Call[t.PushOutcome]:
    """Push; if the remote moved, its commits are merged first (`author` signs that merge)."""
    body = _drop_none(remote=remote, branch=branch, author=author)
    return Call("POST", f"{_session(session)}/git/push", json=body)


def git_pull(
    session: str, *, remote: str | None = None, branch: str | None = None, author: t.Author | None = None
) -> Call[t.MergeOutcome]:
    body = _drop_none(remote=remote, branch=branch, author=author)
    return Call("POST", f"{_session(session)}/git/pull", json=body)


def git_merge_continue(
    session: str, *, message: str | None = None, author: t.Author | None = None
) -> Call[t.MergeContinued]:
    """Commit the resolved merge (`message` defaults to git's merge message)."""
    body = _drop_none(message=message, author=author)
    return Call("POST", f"{_session(session)}/git/merge/continue", json=body)


def git_merge_abort(session: str) -> Call[t.HeadMoved]:
    return Call("POST", f"{_session(session)}/git/merge/abort", json={})


def git_reset(session: str, *, commit: str | None = None, clean: bool | None = None) -> Call[t.HeadMoved]:
    """Roll the workspace and branch back to `commit` (default HEAD); `clean` removes untracked files."""
    return Call("POST", f"{_session(session)}/git/reset", json=_drop_none(commit=commit, clean=clean))


def git_set_remote(session: str, name: str, url: str) -> Call[t.Remotes]:
    return Call("POST", f"{_session(session)}/git/remotes", json={"name": name, "url": url})


# --- snapshots -----------------------------------------------------------------------------------


def take_snapshot(session: str) -> Call[t.Snapshot]:
    """Answers once the snapshot is durable in the object store."""
    return Call("POST", f"{_session(session)}/snapshots", json={})


def list_snapshots(session: str) -> Call[list[t.Snapshot]]:
    return Call("GET", f"{_session(session)}/snapshots", decode=lambda r: r.json()["snapshots"])


def export(session: str) -> Call[bytes]:
    """The whole session (workspace and git directory) as one `.tar.zst`."""
    return Call("GET", f"{_session(session)}/export", decode=_bytes)


def store_export(session: str) -> Call[t.ExportStored]:
    """The same archive, put in the object store instead."""
    return Call("POST", f"{_session(session)}/export", json={})


def list_exports(session: str) -> Call[list[t.ExportInfo]]:
    """The exports `store_export` put in the store, oldest first."""
    return Call("GET", f"{_session(session)}/exports", decode=lambda r: r.json()["exports"])


def download_export(session: str, name: str) -> Call[bytes]:
    """A stored export's archive, by the `name` `list_exports` gives."""
    if not re.fullmatch(r"[0-9]{13}\.tar\.zst", name):
        raise BadRequest("invalid_export_name", f"`{name}` is not an export's name", status=None)
    return Call("GET", f"{_session(session)}/exports/{name}", decode=_bytes)


def collect_garbage(*, grace_s: int | None = None) -> Call[t.GcOutcome]:
    return Call("POST", "/v1/snapshots/gc", json=_drop_none(grace_s=grace_s))
