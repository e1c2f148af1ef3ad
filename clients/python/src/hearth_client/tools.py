"""LangChain tools for the git and snapshot operations an agent (or a graph) may call.

```python
from deepagents import create_deep_agent
from hearth_client import HearthBackend, git_and_snapshot_tools

backend = HearthBackend.create()
agent = create_deep_agent(model=..., backend=backend, tools=git_and_snapshot_tools(backend))
```

Each tool sends one route of the worker for the backend's session and answers the worker's JSON,
as text for the model. An error the model can act on (a merge conflict, nothing to continue, a
remote that refused) is answered as `Error: <code>: <message>` with its details, not raised;
what only an operator can fix (a wrong token, a worker failing or gone) raises, as in the backend.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from . import routes
from .backend import HearthBackend
from .errors import HearthError, is_for_the_model
from .routes import Call


class _NoArgs(BaseModel):
    pass


class _CommitArgs(BaseModel):
    message: str = Field(description="The commit message: what changed and why.")


class _PushArgs(BaseModel):
    remote: str | None = Field(None, description="Remote name (default: origin).")
    branch: str | None = Field(None, description="Remote branch (default: the current branch).")


class _LogArgs(BaseModel):
    limit: int = Field(10, ge=1, le=200, description="How many commits, newest first.")
    skip: int = Field(0, ge=0, description="How many to skip (next_skip of the previous page).")


class _DiffArgs(BaseModel):
    from_commit: str | None = Field(None, description="Compare from this commit (default: HEAD).")
    to_commit: str | None = Field(None, description="Compare to this commit (default: the workspace).")


class _ResetArgs(BaseModel):
    commit: str | None = Field(
        None, description="Commit to roll back to (default: HEAD, discarding uncommitted changes)."
    )


@dataclass(frozen=True)
class _Spec:
    name: str
    description: str
    args: type[BaseModel]
    call: Callable[..., Call[Any]]
    """(session, **arguments) → the call to send."""


_SPECS = (
    _Spec(
        "git_status",
        "Show the workspace's git status: branch, HEAD, changed files, merge state.",
        _NoArgs,
        lambda s: routes.git_status(s),
    ),
    _Spec(
        "git_diff",
        "Show what changed in the workspace since HEAD (or between two commits), with the patch.",
        _DiffArgs,
        lambda s, from_commit=None, to_commit=None: routes.git_diff(s, from_=from_commit, to=to_commit),
    ),
    _Spec(
        "git_log",
        "Show the commit history, newest first.",
        _LogArgs,
        lambda s, limit=10, skip=0: routes.git_log(s, limit=limit, skip=skip),
    ),
    _Spec(
        "git_commit",
        "Commit every change in the workspace (.gitignore honoured).",
        _CommitArgs,
        lambda s, message: routes.git_commit(s, message),
    ),
    _Spec(
        "git_push",
        "Push the current branch. If the remote moved, its commits are merged first; a conflict "
        "leaves markers in the files: fix them, then call git_merge_continue and push again.",
        _PushArgs,
        lambda s, remote=None, branch=None: routes.git_push(s, remote=remote, branch=branch),
    ),
    _Spec(
        "git_pull",
        "Fetch and merge the remote branch into the workspace.",
        _PushArgs,
        lambda s, remote=None, branch=None: routes.git_pull(s, remote=remote, branch=branch),
    ),
    _Spec(
        "git_merge_continue",
        "Finish a merge once no conflict markers are left.",
        _NoArgs,
        lambda s: routes.git_merge_continue(s),
    ),
    _Spec(
        "git_merge_abort",
        "Abandon a merge: the workspace returns to HEAD.",
        _NoArgs,
        lambda s: routes.git_merge_abort(s),
    ),
    _Spec(
        "git_reset",
        "Roll the workspace back to a commit, discarding later changes.",
        _ResetArgs,
        lambda s, commit=None: routes.git_reset(s, commit=commit),
    ),
    _Spec(
        "take_snapshot",
        "Save the workspace and its git history to durable storage; answers once saved.",
        _NoArgs,
        lambda s: routes.take_snapshot(s),
    ),
    _Spec("list_snapshots", "List the saved snapshots of this workspace.", _NoArgs, lambda s: routes.list_snapshots(s)),
)


def _as_text(answer: Any) -> str:
    return json.dumps(answer, indent=1, ensure_ascii=False)


def _error_text(e: HearthError) -> str:
    details = f" {json.dumps(e.details, ensure_ascii=False)}" if e.details else ""
    return f"Error: {e.code}: {e.message}{details}"


def _tool(spec: _Spec, backend: HearthBackend) -> BaseTool:
    def run(**arguments: Any) -> str:
        try:
            return _as_text(backend.client.send(spec.call(backend.id, **arguments)))
        except HearthError as e:
            if not is_for_the_model(e):
                raise
            return _error_text(e)

    async def arun(**arguments: Any) -> str:
        try:
            return _as_text(await backend.async_client.send(spec.call(backend.id, **arguments)))
        except HearthError as e:
            if not is_for_the_model(e):
                raise
            return _error_text(e)

    return StructuredTool.from_function(
        func=run, coroutine=arun, name=spec.name, description=spec.description, args_schema=spec.args
    )


def git_and_snapshot_tools(backend: HearthBackend, *, names: list[str] | None = None) -> list[BaseTool]:
    """The git and snapshot tools for `backend`'s session (all, or only `names`)."""
    unknown = set(names or ()) - {s.name for s in _SPECS}
    if unknown:
        raise ValueError(f"no such tool: {sorted(unknown)}")
    return [_tool(s, backend) for s in _SPECS if names is None or s.name in names]
