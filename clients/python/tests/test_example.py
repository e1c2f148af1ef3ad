"""The example graph (`examples/planner_coder_validator`) end to end, offline: planner → coder →
validator on the worker, ending with a commit pushed to a loopback git remote and a snapshot."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from types import ModuleType

from harness import REPO, TOKEN, GitServer, WorkerProcess
from hearth_client import Client

EXAMPLE = REPO / "examples" / "planner_coder_validator"


def _load_example() -> ModuleType:
    sys.path.insert(0, str(EXAMPLE))
    spec = importlib.util.spec_from_file_location("example_graph", EXAMPLE / "graph.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # for the type hints LangGraph reads from the state class
    spec.loader.exec_module(module)
    return module


def test_the_example_graph_ends_in_a_pushed_commit_and_a_snapshot(
    worker: WorkerProcess, git_server: GitServer, sync_client: Client
) -> None:
    repo = f"example-{uuid.uuid4().hex[:8]}.git"
    remote = git_server.bare_repo(repo)

    state = _load_example().run(worker.url, TOKEN, remote, model=None)

    report = state["report"]
    assert state["passed"] is True and report["rounds"] == 2  # the first version was rejected
    assert report["summary"] == {"n": 3, "mean": 20.0, "max": 30}

    # The remote has the validated commit, with the multi-file project in it.
    assert git_server.git(repo, "rev-parse", "main").strip() == report["commit"] == report["push"]["head"]
    assert git_server.git(repo, "log", "-1", "--format=%s", "main").strip() == "summary statistics (2 round(s))"
    tree = git_server.git(repo, "ls-tree", "-r", "--name-only", "main").split()
    assert {"utils.py", "main.py", "pkg/__init__.py", "pkg/stats.py"} <= set(tree)
    assert "len(xs) - 1" not in git_server.git(repo, "show", "main:utils.py")

    # The snapshot restores the same project, history included, into a new session.
    restored = sync_client.create_session(from_snapshot=report["snapshot"])["id"]
    assert sync_client.git_log(restored, limit=1)["commits"][0]["id"] == report["commit"]
    run = sync_client.exec(restored, script="/workspace/main.py")
    assert run["stdout"] == '{"n": 4, "mean": 2.5, "max": 4}\n'
