"""A real `create_deep_agent` run on the worker, driven by a scripted chat model: every tool call
the model makes (`ls`, `write_file`, `edit_file`, `read_file`, `grep`, `glob`, `execute`) lands on
the worker, and comes back to the model in the format deepagents gives it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from deepagents import create_deep_agent
from langchain_core.messages import AIMessage, ToolMessage

from hearth_client import Client, HearthBackend, git_and_snapshot_tools
from hearth_client.testing import ScriptedChatModel, ScriptExhausted, tool_calls

UTILS = "def double(x):\n    return 2 * x\n"
MAIN = "import utils\n\nprint(utils.double(20))\n"


def _script() -> list[Any]:
    return [
        tool_calls(
            ("write_file", {"file_path": "/workspace/utils.py", "content": UTILS}),
            ("write_file", {"file_path": "/workspace/main.py", "content": MAIN}),
        ),
        tool_calls(
            ("edit_file", {"file_path": "/workspace/main.py", "old_string": "double(20)", "new_string": "double(21)"})
        ),
        tool_calls(("ls", {"path": "/workspace"}), ("read_file", {"file_path": "/workspace/main.py"})),
        tool_calls(("grep", {"pattern": "def double", "output_mode": "content"}), ("glob", {"pattern": "*.py"})),
        tool_calls(("execute", {"command": "python3 main.py"})),
        tool_calls(("git_commit", {"message": "double via utils"}), ("take_snapshot", {})),
        AIMessage(content="main.py prints 42."),
    ]


def _tool_answers(messages: list[Any]) -> dict[str, str]:
    return {m.name: m.content for m in messages if isinstance(m, ToolMessage)}


def _check(answers: dict[str, str], client: Client, session: str) -> None:
    assert answers["write_file"] == "Updated file /workspace/main.py"
    assert answers["edit_file"].startswith("Successfully replaced 1 instance")
    assert "/workspace/main.py" in answers["ls"] and "/workspace/utils.py" in answers["ls"]
    # deepagents' middleware heads the page with the window the worker reported.
    assert answers["read_file"] == "@@ lines 1-3 of 3 @@\nimport utils\n\nprint(utils.double(21))"
    assert "/workspace/utils.py" in answers["grep"] and "def double(x):" in answers["grep"]
    assert "/workspace/main.py" in answers["glob"] and "/workspace/utils.py" in answers["glob"]
    assert answers["execute"].startswith("42") and "[Command succeeded with exit code 0]" in answers["execute"]
    assert '"status": "committed"' in answers["git_commit"]
    assert f'"session": "{session}"' in answers["take_snapshot"]

    # And it all happened on the worker.
    assert client.read_file(session, "/workspace/main.py")["content"] == MAIN.replace("20", "21")
    assert client.git_log(session, limit=1)["commits"][0]["summary"] == "double via utils"
    assert len(client.list_snapshots(session)) == 1


def _agent(model: ScriptedChatModel, backend: HearthBackend) -> Any:
    tools = git_and_snapshot_tools(backend, names=["git_commit", "take_snapshot"])
    return create_deep_agent(model=model, backend=backend, tools=tools)


def test_a_deep_agent_lives_on_the_worker(backend: HearthBackend, sync_client: Client) -> None:
    model = ScriptedChatModel(turns=_script())
    state = _agent(model, backend).invoke({"messages": [{"role": "user", "content": "make main.py print 42"}]})
    assert state["messages"][-1].content == "main.py prints 42."
    _check(_tool_answers(state["messages"]), sync_client, backend.id)


def test_the_same_run_through_the_async_twins(backend: HearthBackend, sync_client: Client) -> None:
    async def run() -> dict[str, Any]:
        model = ScriptedChatModel(turns=_script())
        try:
            return await _agent(model, backend).ainvoke({"messages": [{"role": "user", "content": "go"}]})
        finally:
            await backend.aclose()

    state = asyncio.run(run())
    _check(_tool_answers(state["messages"]), sync_client, backend.id)


def test_a_model_error_reaches_the_model_not_the_graph(backend: HearthBackend) -> None:
    model = ScriptedChatModel(
        turns=[
            tool_calls(
                ("read_file", {"file_path": "/etc/shadow"}),
                ("edit_file", {"file_path": "/workspace/none.py", "old_string": "a", "new_string": "b"}),
            ),
            AIMessage(content="could not"),
        ]
    )
    state = _agent(model, backend).invoke({"messages": [{"role": "user", "content": "x"}]})
    answers = _tool_answers(state["messages"])
    assert "outside the session's view" in answers["read_file"]
    assert "not found" in answers["edit_file"]


def test_a_script_that_runs_out_says_so(backend: HearthBackend) -> None:
    model = ScriptedChatModel(turns=[tool_calls(("ls", {"path": "/workspace"}))])
    with pytest.raises(ScriptExhausted):
        _agent(model, backend).invoke({"messages": [{"role": "user", "content": "x"}]})
