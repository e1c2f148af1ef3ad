"""planner → coder → validator, with the agent's home on a Hearth worker.

The shape of the system Hearth replaces, rebuilt so that the controller holds only the graph:

- the **planner** (a chat model) turns the task into a plan;
- the **coder** (a deepagents agent whose backend is the worker) writes the project file by file
  through the worker's tools: `utils.py`, imported by `main.py` and by the package `pkg/`;
- the **validator** (plain code, no model) runs the project *on the worker*: `main.py` by its path,
  and `pkg.stats:summary` as a `call` for a JSON result. On success it commits, pushes and takes a
  snapshot; otherwise its findings go back to the coder, a bounded number of times.

Offline (the default) both models are `ScriptedChatModel`s playing `scripted.py`; `--model
provider:name` (e.g. `anthropic:claude-sonnet-4-5`, with that provider's package and key) uses a
real one. Every file and every run is on the worker: this process imports nothing of it but
`hearth_client`.

    python examples/planner_coder_validator/graph.py --url http://127.0.0.1:8700 [--remote git://…]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Literal, TypedDict

from deepagents import create_deep_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph

from hearth_client import Client, HearthBackend, HearthError

TASK = """Write a small Python project in /workspace:
- utils.py with mean(xs), the arithmetic mean of a list of numbers;
- a package pkg/ (with __init__.py) whose module pkg/stats.py has summary(xs) returning
  {"n": len(xs), "mean": utils.mean(xs), "max": max(xs)}, importing utils;
- main.py that prints summary([1, 2, 3, 4]) as JSON (json.dumps, keys in that order).
Run `python3 main.py` to check your work before you finish."""

# What the validator demands: `main.py`'s output, and `summary`'s JSON result.
EXPECTED_STDOUT = '{"n": 4, "mean": 2.5, "max": 4}\n'
EXPECTED_SUMMARY = {"n": 3, "mean": 20.0, "max": 30}
SUMMARY_ARGS = {"xs": [10, 20, 30]}


class State(TypedDict, total=False):
    task: str
    plan: str
    feedback: str
    rounds: int
    passed: bool
    report: dict[str, Any]


def build(
    backend: HearthBackend,
    *,
    planner: BaseChatModel,
    coder: BaseChatModel,
    push: bool,
    max_rounds: int = 3,
) -> Any:
    """The compiled graph, for one session (`backend`) on the worker."""
    client = backend.client
    coding_agent = create_deep_agent(
        model=coder,
        backend=backend,
        system_prompt="You write code in /workspace on a remote worker. Use the file tools; "
        "run programs with execute (they run in /workspace).",
    )

    def plan(state: State) -> State:
        answer = planner.invoke(
            [
                SystemMessage(
                    "You are a planner. Reply with a short numbered plan: the files to write and how to check them."
                ),
                HumanMessage(state["task"]),
            ]
        )
        return {"plan": str(answer.content), "rounds": 0}

    def code(state: State) -> State:
        request = f"Task:\n{state['task']}\n\nPlan:\n{state['plan']}"
        if state.get("feedback"):
            request += f"\n\nThe validator rejected the last version:\n{state['feedback']}\nFix it."
        coding_agent.invoke({"messages": [HumanMessage(request)]})
        return {"rounds": state.get("rounds", 0) + 1}

    def validate(state: State) -> State:
        session = backend.id
        problems = []
        run = client.exec(session, script="/workspace/main.py", timeout_s=30)
        if run["exit_code"] != 0 or run["stdout"] != EXPECTED_STDOUT:
            problems.append(
                f"`python3 main.py` exited {run['exit_code']} printing {run['stdout']!r} "
                f"(expected {EXPECTED_STDOUT!r}); stderr: {run['stderr'][-2000:]!r}"
            )
        call = client.exec(session, call="pkg.stats:summary", kwargs=SUMMARY_ARGS, timeout_s=30)
        if call.get("result") != EXPECTED_SUMMARY:
            problems.append(
                f"pkg.stats.summary({SUMMARY_ARGS['xs']}) returned {call.get('result')!r} "
                f"(expected {EXPECTED_SUMMARY!r}); {call.get('result_error', '')} {call['stderr'][-2000:]}"
            )
        if problems:
            return {"passed": False, "feedback": "\n".join(problems)}

        report: dict[str, Any] = {"rounds": state["rounds"], "summary": call["result"]}
        commit = client.git_commit(session, f"summary statistics ({state['rounds']} round(s))")
        report["commit"] = commit.get("commit", {}).get("id") or commit.get("head")
        if push:
            report["push"] = client.git_push(session)
        report["snapshot"] = client.take_snapshot(session)["id"]
        return {"passed": True, "feedback": "", "report": report}

    def after_validation(state: State) -> Literal["code", "__end__"]:
        if state["passed"] or state["rounds"] >= max_rounds:
            return END
        return "code"

    graph = StateGraph(State)
    graph.add_node("plan", plan)
    graph.add_node("code", code)
    graph.add_node("validate", validate)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "code")
    graph.add_edge("code", "validate")
    graph.add_conditional_edges("validate", after_validation)
    return graph.compile()


def models(name: str | None) -> tuple[BaseChatModel, BaseChatModel]:
    """(planner, coder): a real model when named, else the offline script."""
    if name:
        from langchain.chat_models import init_chat_model

        model = init_chat_model(name)
        return model, model
    sys.path.insert(0, str(Path(__file__).parent))
    from scripted import coder_model, planner_model

    return planner_model(), coder_model()


def run(url: str | None, token: str | None, remote: str | None, model: str | None) -> State:
    """Start a session on the worker (a clone of `remote` when given), run the graph, return its
    final state; the session stays on the worker (and in its snapshot)."""
    with Client(url, token=token) as client:
        session = client.create_session(git={"url": remote} if remote else None)["id"]
        backend = HearthBackend(session, client=client)
        planner, coder = models(model)
        graph = build(backend, planner=planner, coder=coder, push=remote is not None)
        state: State = graph.invoke({"task": TASK})
    state["report"] = {"session": session, **state.get("report", {})}
    return state


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="the worker (default: HEARTH_URL, then http://127.0.0.1:8700)")
    parser.add_argument("--token", help="the worker's token (default: HEARTH_TOKEN)")
    parser.add_argument("--remote", help="a git remote the worker may push to (its git.allowed_remotes)")
    parser.add_argument("--model", help="provider:name of a real chat model (default: the offline script)")
    args = parser.parse_args()
    try:
        state = run(args.url, args.token, args.remote, args.model)
    except HearthError as e:
        print(f"worker error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"passed": state.get("passed"), "plan": state.get("plan"), **state["report"]}, indent=2))
    return 0 if state.get("passed") else 1


if __name__ == "__main__":
    sys.exit(main())
