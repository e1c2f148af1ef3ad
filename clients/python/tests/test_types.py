"""The client's `TypedDict`s against the generated OpenAPI document (`docs/openapi.json`).

The document is generated from the worker's wire types; these tests fail when a `TypedDict`
names a field the answer does not have, misses one it always has, or allows a literal the
schema does not (or the other way round). Tools' own answers (`LsAnswer`, …) are the tools'
output schemas, not the HTTP contract's, and are not checked here.
"""

from __future__ import annotations

import json
import types as builtin_types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest

from hearth_client import types

DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"
SCHEMAS: dict[str, Any] = json.loads(DOCUMENT.read_text())["components"]["schemas"]

#: Each `TypedDict` and the schemas whose answers it reads (more than one: it reads any of them).
CHECKED: dict[type, tuple[str, ...]] = {
    types.Mount: ("Mount",),
    types.Snapshot: ("SnapshotInfo",),
    types.SnapshotState: ("SnapshotState",),
    types.QuotaUsage: ("QuotaUsage",),
    types.Session: ("SessionInfo", "CreatedSession"),
    types.SessionToken: ("SessionToken",),
    types.Health: ("Health",),
    types.FailedTool: ("FailedTool",),
    types.Tool: ("ToolInfo",),
    types.ToolDetail: ("ToolDetail",),
    types.ToolLimits: ("ToolLimits",),
    types.ToolInstalled: ("ToolInstalled",),
    types.ToolRemoved: ("ToolRemoved",),
    types.FileWritten: ("FileWritten",),
    types.FileOutcome: ("UploadOutcome", "DownloadOutcome"),
    types.Author: ("Author",),
    types.Commit: ("CommitInfo",),
    types.CommitOutcome: ("ExecCommitOutcome",),
    types.ExecResult: ("ExecResult",),
    types.ExecBody: ("ExecRequest",),
    types.OutputChunk: ("OutputChunk",),
    types.Change: ("FileChange",),
    types.Remote: ("RemoteInfo",),
    types.GitStatus: ("Status",),
    types.GitLog: ("LogPage",),
    types.DiffFile: ("DiffFile",),
    types.GitDiff: ("Diff",),
    types.PushOutcome: ("PushOutcome",),
    types.MergeOutcome: ("MergeOutcome",),
    types.MergeContinued: ("MergeContinued",),
    types.HeadMoved: ("HeadMoved",),
    types.Remotes: ("Remotes",),
    types.SnapshotList: ("SnapshotList",),
    types.ExportStored: ("ExportStored",),
    types.ExportInfo: ("ExportInfo",),
    types.GcOutcome: ("GcReport",),
    types.SessionNetwork: ("SessionNetwork",),
    types.SessionOwner: ("SessionOwner",),
    types.NetworkBody: ("NetworkRequest",),
    types.ProcessInfo: ("ProcessInfo",),
    types.ProcessList: ("ProcessList",),
    types.OutputRead: ("OutputRead",),
    types.ProcessOutput: ("ProcessOutput",),
    types.StdinBody: ("StdinRequest",),
    types.SignalBody: ("SignalRequest",),
    types.SignalOutcome: ("SignalOutcome",),
}

#: Each `Literal` alias and the enum schema it spells out.
ENUMS: dict[str, Any] = {
    "ProcessState": types.ProcessState,
    "SignalName": types.SignalName,
}


def variants(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The object shapes a schema allows: `oneOf` branches apart, `allOf` parts merged."""
    if "$ref" in schema:
        return variants(SCHEMAS[schema["$ref"].rsplit("/", 1)[1]])
    if "oneOf" in schema:
        return [v for branch in schema["oneOf"] for v in variants(branch)]
    if "allOf" in schema:
        merged: dict[str, Any] = {"properties": {}, "required": []}
        for part in schema["allOf"]:
            for shape in variants(part):
                merged["properties"].update(shape.get("properties", {}))
                merged["required"] += shape.get("required", [])
        return [merged]
    return [schema]


def literals(annotation: Any) -> set[str] | None:
    """The strings a `Literal[...]` annotation (possibly `NotRequired`) allows."""
    while get_origin(annotation) in (typing.Union, builtin_types.UnionType) or str(get_origin(annotation)).endswith(
        "NotRequired"
    ):
        annotation = get_args(annotation)[0]
    if get_origin(annotation) is Literal:
        return {a for a in get_args(annotation) if isinstance(a, str)}
    return None


def allowed(prop: dict[str, Any]) -> set[str] | None:
    """The strings a property's schema allows, when it is an enum (a tagged union's variants
    each have an enum of one)."""
    for shape in variants(prop) if ("$ref" in prop or "oneOf" in prop) else [prop]:
        if "enum" in shape:
            return set(shape["enum"])
    return None


@pytest.mark.parametrize("typed", list(CHECKED), ids=lambda t: t.__name__)
def test_a_typed_dict_reads_what_its_schemas_say(typed: type) -> None:
    shapes = [v for name in CHECKED[typed] for v in variants(SCHEMAS[name])]
    properties: dict[str, list[dict[str, Any]]] = {}
    for shape in shapes:
        for key, prop in shape.get("properties", {}).items():
            properties.setdefault(key, []).append(prop)
    hints = typing.get_type_hints(typed, include_extras=True)
    unknown = set(hints) - set(properties)
    assert not unknown, f"{typed.__name__} names fields no answer has: {sorted(unknown)}"
    # A field every variant requires is always there: the TypedDict must not lose it.
    always = set.intersection(*(set(s.get("required", [])) for s in shapes))
    missing = always - set(hints)
    assert not missing, f"{typed.__name__} lacks fields every answer has: {sorted(missing)}"
    optional = always & typed.__optional_keys__  # type: ignore[attr-defined]
    assert not optional, f"{typed.__name__} marks always-present fields optional: {optional}"
    # A tag (`status`, `state`, …): the client knows no literal the schema does not have. (It
    # may know fewer: a push's `conflict` is answered as a 409, never as this answer.)
    for key, annotation in hints.items():
        mine = literals(annotation)
        if mine is None:
            continue
        theirs: set[str] = set()
        for prop in properties[key]:
            theirs |= allowed(prop) or set()
        if theirs:
            assert mine <= theirs, f"{typed.__name__}.{key}: {sorted(mine - theirs)} not in {sorted(theirs)}"


@pytest.mark.parametrize("name", list(ENUMS))
def test_a_literal_alias_is_its_enum(name: str) -> None:
    assert set(get_args(ENUMS[name])) == set(SCHEMAS[name]["enum"])
