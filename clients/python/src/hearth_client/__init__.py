"""Hearth, from the controller: the worker's HTTP API (`Client`, `AsyncClient`), a deepagents
backend (`HearthBackend`) and LangChain tools for git and snapshots.

The deepagents and LangChain parts import their libraries only when used, so the client alone
needs nothing but httpx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import routes, types
from .client import AsyncClient, Client
from .errors import (
    BadRequest,
    Conflict,
    DeadlineExceeded,
    Draining,
    Forbidden,
    HearthError,
    InvalidNetwork,
    MergeConflict,
    NotFound,
    OwnerUnreachable,
    PayloadTooLarge,
    PortUnreachable,
    ProcessLimit,
    ProcessNotFound,
    PushRejected,
    QuotaExceeded,
    RemoteError,
    StdinClosed,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    Unprocessable,
    WorkerUnreachable,
)

if TYPE_CHECKING:
    from .backend import HearthBackend
    from .tools import git_and_snapshot_tools

__all__ = [
    "AsyncClient",
    "BadRequest",
    "Client",
    "Conflict",
    "DeadlineExceeded",
    "Draining",
    "Forbidden",
    "HearthBackend",
    "HearthError",
    "InvalidNetwork",
    "MergeConflict",
    "NotFound",
    "OwnerUnreachable",
    "PayloadTooLarge",
    "PortUnreachable",
    "ProcessLimit",
    "ProcessNotFound",
    "PushRejected",
    "QuotaExceeded",
    "RemoteError",
    "StdinClosed",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
    "WorkerUnreachable",
    "git_and_snapshot_tools",
    "routes",
    "types",
]

_LAZY = {"HearthBackend": "backend", "git_and_snapshot_tools": "tools"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
