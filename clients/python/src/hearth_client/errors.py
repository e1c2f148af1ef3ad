"""The worker's errors as exceptions.

Every error the worker answers is `{"error": {"code", "message", "details"?}}` with an HTTP status.
The status picks the exception class (so `except NotFound` reads like the HTTP contract), the
`code` says exactly what went wrong (`file_not_found`, `merge_conflict`, …) and is always on the
exception. Two git outcomes a caller acts on get their own classes, with their details as
attributes, and so do the codes of background processes, ports and a session's network (each a
subclass of its status's class).
"""

from __future__ import annotations

from typing import Any

import httpx


class HearthError(Exception):
    """An error answered by the worker (or the failure to reach it).

    Attributes:
        status: The HTTP status, or `None` when no answer came (`WorkerUnreachable`).
        code: The worker's stable snake_case code, e.g. `file_not_found`.
        message: The worker's message, written for a person (or a model).
        details: Extra fields some errors carry, e.g. `conflicts` of a `merge_conflict`.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details: dict[str, Any] = details or {}


class BadRequest(HearthError):
    """400: the request itself is wrong (an invalid path, argument or exec body)."""


class Unauthorized(HearthError):
    """401: no token, or the wrong one."""


class Forbidden(HearthError):
    """403: the worker's policy refuses it (a remote not on the list, a read-only area)."""


class NotFound(HearthError):
    """404: no such session, tool, file, snapshot, commit or remote branch."""


class Conflict(HearthError):
    """409: the session's state forbids it now (it exists, a merge is under way, …)."""


class TooManyRequests(HearthError):
    """429: too many requests for this token (`rate_limited`, `Retry-After` says when to try
    again), or too many background processes running (`process_limit`)."""


class PayloadTooLarge(HearthError):
    """413: the body or the file is over the worker's limit."""


class Unprocessable(HearthError):
    """422: the tool refused the input (string not found in an edit, a corrupt snapshot, …)."""


class RemoteError(HearthError):
    """502: a git remote or the object store failed."""


class Unavailable(HearthError):
    """503: the worker cannot take this now (exec is off here, or the worker is draining)."""


class Draining(Unavailable):
    """503 `draining`: the worker is stopping and takes no more work; retry on another worker
    (its sessions are served from their last snapshots)."""


class OwnerUnreachable(Unavailable):
    """503 `owner_unreachable`: the session's owner (another worker of the fleet) did not answer
    and its lease has not lapsed; `details["retry_after_ms"]` says when any worker takes the
    session over. Retrying then, through any worker, reaches it."""


class DeadlineExceeded(HearthError):
    """504: the tool or operation ran out of time."""


class QuotaExceeded(HearthError):
    """507: a quota of the worker or the session is used up."""


class WorkerUnreachable(HearthError):
    """No answer: the connection failed or timed out before the worker replied."""


class MergeConflict(Conflict):
    """409 `merge_conflict`: the files in `conflicts` hold conflict markers to resolve."""

    @property
    def conflicts(self) -> list[str]:
        return list(self.details.get("conflicts", []))


class PushRejected(Conflict):
    """409 `push_rejected`: the remote refused the update, for `reason`."""

    @property
    def reason(self) -> str:
        return str(self.details.get("reason", self.message))


class InvalidNetwork(BadRequest):
    """400 `invalid_network`: a network allow-list entry that is not `host[:port]` (or
    `*.domain`), or one the worker's own `[egress] allow` does not cover."""


class ProcessNotFound(NotFound):
    """404 `process_not_found`: no background process by this id in the session (it was never
    started, was killed and forgotten, or is older than the ended ones the session keeps)."""


class StdinClosed(Conflict):
    """409 `stdin_closed`: the process's stdin is closed (it ended, or was closed), or the
    program has not read it for 10 s (the write still waits for it)."""


class ProcessLimit(TooManyRequests):
    """429 `process_limit`: the session (or the worker) runs as many background processes as it
    may; wait for one to end or kill one."""


class PortUnreachable(RemoteError):
    """502 `port_unreachable`: nothing in the session answers on the port (no server started
    yet, or it does not listen there)."""


_BY_STATUS: dict[int, type[HearthError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: Unprocessable,
    429: TooManyRequests,
    502: RemoteError,
    503: Unavailable,
    504: DeadlineExceeded,
    507: QuotaExceeded,
}

_BY_CODE: dict[str, type[HearthError]] = {
    "merge_conflict": MergeConflict,
    "push_rejected": PushRejected,
    "invalid_network": InvalidNetwork,
    "process_not_found": ProcessNotFound,
    "stdin_closed": StdinClosed,
    "process_limit": ProcessLimit,
    "port_unreachable": PortUnreachable,
    "draining": Draining,
    "owner_unreachable": OwnerUnreachable,
}


def error_from_response(response: httpx.Response) -> HearthError:
    """The exception for a non-2xx answer.

    A body that is not the worker's error shape (a proxy's HTML page, say) still becomes a
    `HearthError`, with code `http_<status>` and the start of the body as its message.
    """
    status = response.status_code
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
        details = error.get("details") if isinstance(error.get("details"), dict) else None
    except (ValueError, KeyError, TypeError):
        code, message, details = f"http_{status}", response.text[:500], None
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status, HearthError)
    return cls(code, message, status=status, details=details)


def error_from_event(error: dict[str, Any]) -> HearthError:
    """The exception for an `{"event": "error"}` line of a stream (no HTTP status of its own)."""
    code = str(error.get("code", "stream_error"))
    cls = _BY_CODE.get(code, HearthError)
    details = error.get("details")
    return cls(code, str(error.get("message", "")), details=details if isinstance(details, dict) else None)


# Statuses of errors a model can act on by calling again differently (another path, a unique
# edit string, resolving a conflict). The rest (401, 5xx, no answer, a session that is gone)
# only an operator can fix.
_FOR_THE_MODEL = frozenset({400, 403, 404, 409, 413, 422, 504, 507})


def is_for_the_model(e: HearthError) -> bool:
    """Whether an agent should see `e` as a tool's answer rather than have its run stopped."""
    return e.status in _FOR_THE_MODEL and e.code != "session_not_found"


def unreachable(exc: httpx.TransportError, url: str) -> WorkerUnreachable:
    """The exception for a request that got no answer."""
    return WorkerUnreachable("unreachable", f"no answer from {url}: {exc!r}")
