"""A test guest in Python: answers what it was given — the mounts of the call, the environment,
and whether a path can be opened — so the worker tests can check a tool's policy from inside.
`PROBE_SCHEMA` replaces its schema (the build makes a variant with one outside the subset)."""

import json
import os

import wit_world
from componentize_py_types import Err
from wit_world.imports import types

SCHEMA = {
    "type": "object",
    "properties": {"open": {"type": "string"}},
    "additionalProperties": False,
}


class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.Metadata:
        return types.Metadata(
            name="probe",
            description="Says what this call was granted: its mounts, its environment, and whether `open` can be read.",
            input_schema=json.dumps(SCHEMA),
            read_only=False,
        )

    def invoke(self, context: types.CallContext, args: str) -> str:
        try:
            asked = json.loads(args)
            opened = None
            if "open" in asked:
                try:
                    with open(asked["open"], "rb") as f:
                        opened = len(f.read())
                except OSError as e:
                    opened = type(e).__name__
            return json.dumps(
                {
                    "mounts": {m.path: m.writable for m in context.mounts},
                    "env": dict(os.environ),
                    "opened": opened,
                }
            )
        except Exception as e:  # noqa: BLE001
            raise Err(types.ToolError_Other(f"{type(e).__name__}: {e}")) from None
