"""The offline script: what the planner and the coder "say" when no real model is configured.

The coder's first version has a bug (the mean divides by n - 1), so the run shows the whole loop:
the validator rejects it with what it saw on the worker, and the coder's second round finds the
line with grep, fixes it with edit_file and checks it with execute.
"""

from __future__ import annotations

from langchain_core.messages import AIMessage, BaseMessage

from hearth_client.testing import ScriptedChatModel, tool_calls

PLAN = """1. utils.py: mean(xs).
2. pkg/__init__.py and pkg/stats.py: summary(xs) built on utils.mean.
3. main.py: print json.dumps(summary([1, 2, 3, 4])).
4. Run python3 main.py and compare with {"n": 4, "mean": 2.5, "max": 4}."""

UTILS_WITH_A_BUG = "def mean(xs):\n    return sum(xs) / (len(xs) - 1)\n"
STATS = 'import utils\n\n\ndef summary(xs):\n    return {"n": len(xs), "mean": utils.mean(xs), "max": max(xs)}\n'
MAIN = "import json\n\nfrom pkg.stats import summary\n\nprint(json.dumps(summary([1, 2, 3, 4])))\n"


def _second_round(conversation: list[BaseMessage]) -> AIMessage:
    """The coder reads the validator's findings before it looks for the bug."""
    request = str(conversation[-1].content)
    if "The validator rejected" not in request:
        raise AssertionError(f"expected the validator's findings, got: {request[:200]!r}")
    return tool_calls(
        ("grep", {"pattern": "len(xs) - 1", "output_mode": "content"}),
        ("read_file", {"file_path": "/workspace/utils.py"}),
    )


def planner_model() -> ScriptedChatModel:
    return ScriptedChatModel(turns=[AIMessage(content=PLAN)])


def coder_model() -> ScriptedChatModel:
    return ScriptedChatModel(
        turns=[
            # Round 1: the project, with a bug.
            tool_calls(
                ("write_file", {"file_path": "/workspace/utils.py", "content": UTILS_WITH_A_BUG}),
                ("write_file", {"file_path": "/workspace/pkg/__init__.py", "content": ""}),
                ("write_file", {"file_path": "/workspace/pkg/stats.py", "content": STATS}),
                ("write_file", {"file_path": "/workspace/main.py", "content": MAIN}),
            ),
            tool_calls(("ls", {"path": "/workspace"}), ("execute", {"command": "python3 main.py"})),
            AIMessage(content="The project is written."),
            # Round 2: the fix.
            _second_round,
            tool_calls(
                (
                    "edit_file",
                    {"file_path": "/workspace/utils.py", "old_string": "(len(xs) - 1)", "new_string": "len(xs)"},
                )
            ),
            tool_calls(("glob", {"pattern": "*.py"}), ("execute", {"command": "python3 main.py"})),
            AIMessage(content="Fixed: the mean divides by len(xs)."),
        ]
    )
