"""The shapes of the worker's answers, as `TypedDict`s.

They are the JSON the worker sends, unchanged (the OpenAPI document, `docs/openapi.json`, is the
contract): a type checker sees the fields, and nothing is copied into objects on the way.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from typing_extensions import NotRequired


class Mount(TypedDict):
    path: str
    writable: bool


class Snapshot(TypedDict):
    id: str
    """`<session>/<name>`: what `from_snapshot` takes."""
    session: str
    created_at_ms: int
    files: int
    bytes: int
    latest: bool
    uploaded_blobs: int
    uploaded_bytes: int
    multipart_uploads: int
    objects_written: int


class SnapshotState(TypedDict):
    last: Snapshot | None
    pending: bool
    error: str | None


class QuotaUsage(TypedDict):
    """What a session's files take and may take: workspace and /tmp together."""

    bytes_used: int
    bytes_limit: int
    inodes_used: int
    inodes_limit: int


class SessionNetwork(TypedDict):
    """What a session's programs may reach."""

    allow: list[str]
    """The allow-list (`host:port` patterns); empty: nothing outside the session (its runs
    still reach each other on loopback)."""
    proxy: str | None
    """The egress proxy programs reach it through (their `HTTP_PROXY`/`HTTPS_PROXY`); null
    without egress."""
    running_processes: int
    """Background processes running now."""


class NetworkBody(TypedDict):
    """`network` of a session's create: where its programs may connect through the worker's
    egress proxy (`host`, `host:port`, `*.domain`, each within the worker's own `[egress]
    allow`); empty: nowhere."""

    allow: list[str]


class SessionOwner(TypedDict):
    worker: str
    epoch: int
    """The ownership epoch: it grows at every takeover (0: not claimed in the store yet)."""
    url: str | None
    """Where the fleet reaches that worker; None outside a fleet."""


class Session(TypedDict):
    id: str
    created_at: str
    tool_calls: int
    mounts: list[Mount]
    snapshot: SnapshotState
    quota: QuotaUsage | None
    """None on a worker with quotas off."""
    network: SessionNetwork
    owner: SessionOwner
    """Which worker of the fleet serves the session (through any worker's door)."""
    token: NotRequired[str]
    """The session's own token (opens this session's routes and nothing else): in the create
    answer only."""


class SessionToken(TypedDict):
    id: str
    token: str


class FailedTool(TypedDict):
    """A tool that could not be loaded when the worker started (it serves without it)."""

    source: str
    error: str


class Ready(TypedDict):
    ready: bool


class Health(TypedDict):
    status: Literal["ok"]
    version: str
    jail: dict[str, str]
    tools: int
    sessions: int
    tools_failed: list[FailedTool]


class Tool(TypedDict):
    name: str
    description: str
    input_schema: dict[str, Any]
    read_only: bool


class ToolLimits(TypedDict):
    deadline_ms: int
    memory_bytes: int
    result_bytes: int


class ToolDetail(TypedDict):
    """`GET /v1/tools/{name}`: a tool as the operator sees it."""

    name: str
    description: str
    input_schema: dict[str, Any]
    read_only: bool
    version: str
    """The SHA-256 of the component."""
    source: str
    limits: ToolLimits
    mounts: dict[str, str] | None
    env: list[str]
    network: list[str]
    loaded_at_ms: int
    load_ms: int


class ToolInstalled(TypedDict):
    tool: ToolDetail
    previous_version: str | None


class ToolRemoved(TypedDict):
    name: str
    version: str


class FileInfo(TypedDict):
    path: str
    is_dir: bool
    size: int
    modified_at: str | None


class LsAnswer(TypedDict):
    entries: list[FileInfo]
    truncated: bool
    #: Entries whose names are not UTF-8 (made by a program), which a tool cannot return.
    skipped_names: int


class ReadAnswer(TypedDict):
    content: str
    encoding: Literal["utf-8", "base64"]
    start_line: NotRequired[int]
    end_line: NotRequired[int]
    total_lines: NotRequired[int]
    next_offset: NotRequired[int | None]
    truncated: NotRequired[bool]
    size: NotRequired[int]


class WriteAnswer(TypedDict):
    path: str
    bytes_written: int
    created: bool


class EditAnswer(TypedDict):
    path: str
    occurrences: int


class DeleteAnswer(TypedDict):
    path: str
    is_dir: bool


class GlobAnswer(TypedDict):
    matches: list[FileInfo]
    truncated: bool
    skipped_names: int


class GrepMatch(TypedDict):
    path: str
    line: int
    text: str


class GrepAnswer(TypedDict):
    matches: list[GrepMatch]
    truncated: bool
    files_skipped: int
    skipped_names: int


class FileWritten(TypedDict):
    path: str
    size: int
    created: bool


class FileOutcome(TypedDict):
    """One file of `upload`/`download`: `error` is `None` on success, else a code such as
    `file_not_found`, `permission_denied`, `is_directory`, `invalid_path`, `too_large`."""

    path: str
    error: str | None
    content: NotRequired[str | None]


class Author(TypedDict):
    name: str
    email: str


class Commit(TypedDict):
    id: str
    summary: str
    message: str
    author: Author
    time: int
    parents: list[str]


class CommitFailure(TypedDict):
    code: str
    message: str


class CommitOutcome(TypedDict):
    status: Literal["committed", "nothing_to_commit", "skipped", "failed"]
    commit: NotRequired[Commit]
    files_changed: NotRequired[int]
    head: NotRequired[str | None]
    reason: NotRequired[str]
    """Why an exec's commit was `skipped` (the program did not pass)."""
    error: NotRequired[CommitFailure]
    """Why an exec's commit `failed` (the program's answer still stands)."""


class ExecResult(TypedDict):
    exit_code: int | None
    signal: int | None
    stdout: str
    stderr: str
    timed_out: bool
    oom_killed: bool
    quota_exceeded: bool
    """The session's volume was full when the run ended: the program's writes got ENOSPC."""
    truncated: bool
    duration_ms: int
    jail: dict[str, str]
    result: NotRequired[Any]
    result_error: NotRequired[str]
    commit: NotRequired[CommitOutcome]


KeepOutput = Literal["last", "first"]


class ExecBody(TypedDict, total=False):
    """What `/exec` runs: exactly one of `command` (a shell line, as deepagents' `execute`),
    `argv`, `script` (a view path, with `args`) or `call` (`"module:function"`, with JSON `kwargs`;
    its return value comes back as `result`). `commit` (`{"message", "author"?}`) commits the
    workspace when the program exits 0."""

    command: str
    argv: list[str]
    script: str
    args: list[str]
    call: str
    kwargs: dict[str, Any]
    timeout_s: float
    stdin: str
    env: dict[str, str]
    commit: dict[str, Any]
    background: bool
    """Answer at once (202) with the started `ProcessInfo` (`Client.exec_background`)."""
    keep_output: KeepOutput
    """With `background`: which bytes of each stream the worker keeps for readers."""


StreamName = Literal["stdout", "stderr"]


class OutputChunk(TypedDict):
    """A piece of a running program's output, from `exec_stream`."""

    stream: StreamName
    data: str


ProcessState = Literal["running", "exited", "lost"]
"""`lost`: it was running when the worker restarted."""

SignalName = Literal[
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGCONT", "SIGWINCH", "SIGALRM", "SIGKILL"
]
"""The signals a background process may be sent: all but `SIGKILL` go to the program's process
group (its handlers decide); `SIGKILL` ends every process of the run."""


class ProcessInfo(TypedDict):
    """A session's background process, running or ended."""

    id: str
    """`p1`, `p2`, …: what the `processes` routes take (never reused by the session)."""
    command: str
    state: ProcessState
    exit_code: int | None
    signal: int | None
    """The signal that ended it, when one did."""
    timed_out: bool
    """Killed at its wall time."""
    oom_killed: bool
    started_at: str
    ended_at: str | None
    duration_ms: int
    """So far, while it runs."""
    stdout_bytes: int
    """Written on stdout so far: the `next` cursor of a read that caught up."""
    stderr_bytes: int
    stdin_open: bool


class ProcessList(TypedDict):
    processes: list[ProcessInfo]


class OutputRead(TypedDict):
    """One stream's part of a read of a background process's output."""

    data: str
    cursor: int
    """The offset `data` starts at: the asked cursor, or the oldest byte the ring still keeps."""
    next: int
    """The cursor of the next read."""
    missed: int
    """Bytes between the asked cursor and `cursor` that the ring no longer held."""
    eof: bool
    """The stream is closed (the process ended) and everything in it was read."""


class ProcessOutput(TypedDict):
    stdout: OutputRead
    stderr: OutputRead
    process: ProcessInfo
    """The process as of this read."""


class StdinBody(TypedDict, total=False):
    data: str
    close: bool


class SignalBody(TypedDict):
    signal: SignalName


class SignalOutcome(TypedDict):
    delivered: bool
    """False when the process had already ended (nothing was sent)."""
    process: ProcessInfo


class Change(TypedDict):
    path: str
    change: Literal["added", "modified", "deleted", "renamed", "typechange", "conflicted"]


class Remote(TypedDict):
    name: str
    url: str


class GitStatus(TypedDict):
    branch: str | None
    head: str | None
    state: Literal["clean", "merging"]
    changes: list[Change]
    conflicts: list[str]
    remotes: list[Remote]


class GitLog(TypedDict):
    commits: list[Commit]
    next_skip: int | None


class DiffFile(TypedDict):
    path: str
    old_path: str | None
    change: str
    additions: int
    deletions: int
    binary: bool


class GitDiff(TypedDict):
    files: list[DiffFile]
    patch: str
    truncated: bool


class PushOutcome(TypedDict):
    status: Literal["pushed", "up_to_date"]
    remote: str
    branch: str
    head: str
    merged: NotRequired[bool]
    fast_forwarded: NotRequired[bool]


class MergeOutcome(TypedDict):
    status: Literal["up_to_date", "fast_forward", "merged"]
    head: str


class MergeContinued(TypedDict):
    status: Literal["merged"]
    commit: Commit


class HeadMoved(TypedDict):
    """What `merge/abort` (`status: aborted`) and `reset` (`status: reset`) answer."""

    status: Literal["aborted", "reset"]
    head: Commit


class Remotes(TypedDict):
    remotes: list[Remote]


class SnapshotList(TypedDict):
    snapshots: list[Snapshot]


class ExportStored(TypedDict):
    key: str
    bytes: int


class ExportInfo(TypedDict):
    key: str
    name: str
    """What `download_export` takes."""
    bytes: int
    created_at_ms: int


class GcOutcome(TypedDict):
    blobs: int
    deleted: int
    kept_recent: int
    manifests: int
    in_progress: int
