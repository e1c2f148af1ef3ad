"""Every route of the HTTP API through the client, once with `Client` and once with `AsyncClient`,
against a real worker process; errors come back as the typed exceptions with the worker's code."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

import hearth_client as hc
from harness import TOKEN, GitServer, WorkerProcess
from hearth_client import routes


def _new_session(client: Any, **kwargs: Any) -> str:
    return client.create_session(f"c-{uuid.uuid4().hex[:10]}", **kwargs)["id"]


# --- the worker ----------------------------------------------------------------------------------


def test_health_tools_openapi_and_metrics(client: Any) -> None:
    health = client.health()
    assert health["status"] == "ok"
    assert health["jail"]["mount_namespace"] == "enforced"

    tools = {tool["name"]: tool for tool in client.tools()}
    assert {"ls", "read_file", "write_file", "edit_file", "delete", "glob", "grep"} <= tools.keys()
    assert tools["read_file"]["read_only"] is True
    assert "file_path" in tools["write_file"]["input_schema"]["properties"]

    assert "/v1/sessions/{id}/exec" in client.openapi()["paths"]
    assert "hearth_" in client.metrics()


def test_a_wrong_token_is_unauthorized_and_a_dead_worker_unreachable(worker: WorkerProcess) -> None:
    with hc.Client(worker.url, token="not-the-token") as bad:
        assert bad.health()["status"] == "ok"  # the one route without a token
        with pytest.raises(hc.Unauthorized) as raised:
            bad.list_sessions()
    assert raised.value.status == 401

    with (
        hc.Client("http://127.0.0.1:9", token=TOKEN, timeout=2) as nowhere,
        pytest.raises(hc.WorkerUnreachable) as raised,
    ):
        nowhere.health()
    assert raised.value.code == "unreachable" and raised.value.status is None


# --- sessions ------------------------------------------------------------------------------------


def test_a_session_token_opens_its_session_only(worker: WorkerProcess) -> None:
    with hc.Client(worker.url, token=TOKEN) as operator:
        created = operator.create_session()
        token = created["token"]
        assert "token" not in operator.get_session(created["id"])
        with hc.Client(worker.url, token=token) as scoped:
            scoped.write_file(created["id"], "/workspace/a.txt", "a")
            assert scoped.get_session(created["id"])["id"] == created["id"]
            with pytest.raises(hc.Forbidden) as refused:
                scoped.list_sessions()
            assert refused.value.code == "token_scope"
            with pytest.raises(hc.Forbidden):
                scoped.replace_token(created["id"])
        replaced = operator.replace_token(created["id"])["token"]
        with hc.Client(worker.url, token=token) as revoked, pytest.raises(hc.Unauthorized):
            revoked.get_session(created["id"])
        with hc.Client(worker.url, token=replaced) as scoped:
            assert scoped.read_file(created["id"], "/workspace/a.txt")["content"] == "a"
        operator.delete_session(created["id"])


def test_session_lifecycle(client: Any) -> None:
    session = _new_session(client)
    info = client.get_session(session)
    assert info["id"] == session
    assert {"path": "/workspace", "writable": True} in info["mounts"]
    assert session in [s["id"] for s in client.list_sessions()]

    with pytest.raises(hc.Conflict) as raised:
        client.create_session(session)
    assert raised.value.status == 409

    client.delete_session(session)
    with pytest.raises(hc.NotFound) as raised:
        client.get_session(session)
    assert raised.value.code == "session_not_found"


def test_a_bad_session_id_is_a_bad_request(client: Any) -> None:
    with pytest.raises(hc.BadRequest) as raised:
        client.create_session("../etc")
    assert raised.value.status == 400 and raised.value.message


# --- tools ---------------------------------------------------------------------------------------


def test_the_built_in_tools(client: Any, session: str) -> None:
    text = "import os\nprint('héllo')\n"
    written = client.write_file(session, "/workspace/src/app.py", text)
    assert written == {"path": "/workspace/src/app.py", "bytes_written": len(text.encode()), "created": True}

    page = client.read_file(session, "/workspace/src/app.py", offset=1, limit=1)
    assert page["content"] == "print('héllo')\n"
    assert (page["start_line"], page["end_line"], page["total_lines"]) == (2, 2, 2)

    assert client.edit_file(session, "/workspace/src/app.py", "héllo", "world")["occurrences"] == 1
    assert [e["path"] for e in client.ls(session, "/workspace")["entries"]] == ["/workspace/skills/", "/workspace/src/"]
    assert [m["path"] for m in client.glob(session, "*.py")["matches"]] == ["/workspace/src/app.py"]
    grep = client.grep(session, "world", path="/workspace", glob="*.py", max_count=5)
    assert grep["matches"] == [{"path": "/workspace/src/app.py", "line": 2, "text": "print('world')"}]

    assert client.call_tool(session, "ls", {"path": "/workspace/src"})["entries"][0]["size"] == len(text.encode()) - 1
    assert client.delete(session, "/workspace/src")["path"] == "/workspace/src"
    assert [e["path"] for e in client.ls(session, "/workspace")["entries"]] == ["/workspace/skills/"]


def test_binary_content_round_trips_base64(client: Any, session: str) -> None:
    client.write_file(session, "/workspace/blob.bin", b"\x00\xff\x10")
    answer = client.read_file(session, "/workspace/blob.bin")
    assert answer["encoding"] == "base64" and answer["content"] == "AP8Q"


@pytest.mark.parametrize(
    ("call", "error", "code"),
    [
        (lambda c, s: c.read_file(s, "/workspace/missing.py"), hc.NotFound, "file_not_found"),
        (lambda c, s: c.read_file(s, "relative.py"), hc.BadRequest, "invalid_path"),
        (lambda c, s: c.write_file(s, "/etc/passwd", "x"), hc.BadRequest, "invalid_path"),
        (lambda c, s: c.ls(s, "/workspace/../.."), hc.BadRequest, "invalid_path"),
        (lambda c, s: c.call_tool(s, "no_such_tool", {}), hc.NotFound, "unknown_tool"),
        (lambda c, s: c.call_tool(s, "ls", {"pth": "/workspace"}), hc.BadRequest, "invalid_arguments"),
        (lambda c, s: c.delete(s, "/workspace"), hc.Forbidden, "permission_denied"),
        (lambda c, s: c.ls("no-such-session", "/workspace"), hc.NotFound, "session_not_found"),
    ],
)
def test_tool_errors_carry_the_worker_code(client: Any, session: str, call: Any, error: type, code: str) -> None:
    with pytest.raises(error) as raised:
        call(client, session)
    assert raised.value.code == code
    assert raised.value.message


def test_an_ambiguous_edit_is_a_conflict_naming_the_count(client: Any, session: str) -> None:
    client.write_file(session, "/workspace/a.txt", "x\nx\n")
    with pytest.raises(hc.Conflict) as raised:
        client.edit_file(session, "/workspace/a.txt", "x", "y")
    assert "2 times" in raised.value.message
    assert client.edit_file(session, "/workspace/a.txt", "x", "y", replace_all=True)["occurrences"] == 2


# --- files ---------------------------------------------------------------------------------------


def test_raw_files_and_batches(client: Any, session: str) -> None:
    put = client.put_file(session, "/workspace/data/naïve file.bin", b"\x01\x02")
    assert put["created"] is True and put["size"] == 2
    assert client.get_file(session, "/workspace/data/naïve file.bin") == b"\x01\x02"
    with pytest.raises(hc.NotFound):
        client.get_file(session, "/workspace/none.bin")

    uploaded = client.upload(session, [("/tmp/a.txt", b"A"), ("/etc/b.txt", b"B"), ("/workspace/c.txt", b"C")])
    assert [(o["path"], o["error"]) for o in uploaded] == [
        ("/tmp/a.txt", None),
        ("/etc/b.txt", "invalid_path"),
        ("/workspace/c.txt", None),
    ]
    downloaded = client.download(session, ["/workspace/c.txt", "/workspace/none", "/workspace", "/tmp/a.txt"])
    assert [o["error"] for o in downloaded] == [None, "file_not_found", "is_directory", None]
    assert [routes.decode_content(o) for o in downloaded] == [b"C", None, None, b"A"]


# --- programs ------------------------------------------------------------------------------------


def test_exec_every_form(client: Any, session: str) -> None:
    client.write_file(session, "/workspace/utils.py", "def double(x):\n    return 2 * x\n")
    client.write_file(session, "/workspace/pkg/__init__.py", "")
    client.write_file(
        session,
        "/workspace/pkg/stats.py",
        "import utils\ndef summary(xs):\n    return {'sum': sum(xs), 'twice': utils.double(len(xs))}\n",
    )
    client.write_file(
        session, "/workspace/main.py", "import sys, utils\nprint(utils.double(int(sys.argv[1])), sys.stdin.read())\n"
    )

    shell = client.exec(session, command="echo out; echo err >&2; exit 3")
    assert (shell["exit_code"], shell["stdout"], shell["stderr"]) == (3, "out\n", "err\n")
    assert shell["jail"]["network_namespace"] == "enforced: the session's own"

    script = client.exec(session, script="/workspace/main.py", args=["21"], stdin="from stdin")
    assert script["stdout"] == "42 from stdin\n"

    argv = client.exec(
        session, argv=["python3", "-c", "import os; print(os.environ['GREETING'])"], env={"GREETING": "héllo"}
    )
    assert argv["stdout"] == "héllo\n"

    call = client.exec(session, call="pkg.stats:summary", kwargs={"xs": [1, 2, 3]})
    assert call["result"] == {"sum": 6, "twice": 6}

    slow = client.exec(session, command="sleep 30", timeout_s=1)
    assert slow["timed_out"] is True and slow["exit_code"] is None

    with pytest.raises(hc.BadRequest) as raised:
        client.exec(session, command="true", argv=["true"])
    assert raised.value.code == "invalid_exec"


def test_exec_commits_on_success(client: Any, session: str) -> None:
    answer = client.exec(session, command="echo v1 > out.txt", commit={"message": "produce out.txt"})
    assert answer["commit"]["status"] == "committed"
    assert client.git_log(session, limit=1)["commits"][0]["summary"] == "produce out.txt"


def test_exec_stream_sends_output_then_the_answer(client: Any, session: str) -> None:
    events = list(client.exec_stream(session, command="echo one; echo two >&2; sleep 0.2; echo three"))
    chunks = [e for e in events if "stream" in e]
    assert "".join(c["data"] for c in chunks if c["stream"] == "stdout") == "one\nthree\n"
    assert "".join(c["data"] for c in chunks if c["stream"] == "stderr") == "two\n"
    final = events[-1]
    assert final["event"] == "exit" and final["exit_code"] == 0

    with pytest.raises(hc.NotFound):
        list(client.exec_stream("no-such-session", command="true"))


# --- git -----------------------------------------------------------------------------------------


def test_git_commit_status_log_diff_and_reset(client: Any, session: str) -> None:
    client.write_file(session, "/workspace/a.txt", "one\n")
    status = client.git_status(session)
    assert status["state"] == "clean" and {"path": "a.txt", "change": "added"} in status["changes"]

    first = client.git_commit(session, "add a", author={"name": "Ada", "email": "ada@example.com"})
    assert first["status"] == "committed" and first["commit"]["author"]["name"] == "Ada"
    assert client.git_commit(session, "again")["status"] == "nothing_to_commit"

    client.edit_file(session, "/workspace/a.txt", "one", "two")
    diff = client.git_diff(session)
    assert diff["files"][0]["path"] == "a.txt" and "+two" in diff["patch"]
    second = client.git_commit(session, "two")["commit"]["id"]
    between = client.git_diff(session, from_=first["commit"]["id"], to=second)
    assert between["files"][0]["additions"] == 1

    page = client.git_log(session, limit=1)
    assert page["commits"][0]["id"] == second and page["next_skip"] == 1
    assert client.git_log(session, skip=1, limit=1)["commits"][0]["summary"] == "add a"

    reset = client.git_reset(session, commit=first["commit"]["id"])
    assert reset["status"] == "reset" and reset["head"] == first["commit"]
    assert client.read_file(session, "/workspace/a.txt")["content"] == "one\n"

    with pytest.raises(hc.NotFound):
        client.git_reset(session, commit="0" * 40)


def test_git_push_pull_and_a_merge_conflict(client: Any, git_server: GitServer) -> None:
    url = git_server.bare_repo(f"r-{uuid.uuid4().hex[:8]}.git")
    alice = _new_session(client, git={"url": url})
    client.write_file(alice, "/workspace/shared.txt", "base\n")
    client.git_commit(alice, "base")
    pushed = client.git_push(alice)
    assert pushed["status"] == "pushed" and pushed["branch"] == "main"
    assert "base" in git_server.git(url.rsplit("/", 1)[1], "log", "--format=%s", "main").splitlines()

    bob = _new_session(client, git={"url": url})
    assert client.read_file(bob, "/workspace/shared.txt")["content"] == "base\n"
    client.edit_file(bob, "/workspace/shared.txt", "base", "bob")
    client.git_commit(bob, "bob")
    client.git_push(bob)

    assert client.git_pull(alice)["status"] == "fast_forward"
    client.edit_file(alice, "/workspace/shared.txt", "bob", "alice")
    client.git_commit(alice, "alice")
    client.edit_file(bob, "/workspace/shared.txt", "bob", "bob again")
    client.git_commit(bob, "bob again")
    client.git_push(bob)

    with pytest.raises(hc.MergeConflict) as raised:
        client.git_push(alice)
    assert raised.value.conflicts == ["shared.txt"] and raised.value.status == 409
    assert client.git_status(alice)["state"] == "merging"
    assert client.git_merge_abort(alice)["status"] == "aborted"
    assert client.git_status(alice)["state"] == "clean"

    with pytest.raises(hc.MergeConflict):
        client.git_pull(alice)
    with pytest.raises(hc.Conflict) as unresolved:
        client.git_merge_continue(alice)
    assert unresolved.value.code == "unresolved_conflicts"
    client.write_file(alice, "/workspace/shared.txt", "alice and bob\n")
    merged = client.git_merge_continue(alice)
    assert merged["status"] == "merged" and len(merged["commit"]["parents"]) == 2
    assert client.git_push(alice)["status"] == "pushed"

    remotes = client.git_set_remote(alice, "mirror", url)
    assert {"name": "mirror", "url": url} in remotes["remotes"]
    with pytest.raises(hc.Forbidden) as forbidden:
        client.git_set_remote(alice, "evil", "git://127.0.0.1:1/evil.git")
    assert forbidden.value.code == "remote_not_allowed"


# --- snapshots -----------------------------------------------------------------------------------


def test_snapshots_restore_export_and_gc(client: Any, session: str) -> None:
    client.write_file(session, "/workspace/keep.txt", "kept\n")
    client.git_commit(session, "keep")
    snapshot = client.take_snapshot(session)
    assert snapshot["session"] == session and snapshot["latest"] is True and snapshot["files"] >= 1
    assert [s["id"] for s in client.list_snapshots(session)] == [snapshot["id"]]

    restored = _new_session(client, from_snapshot=snapshot["id"])
    assert client.read_file(restored, "/workspace/keep.txt")["content"] == "kept\n"
    assert client.git_log(restored, limit=1)["commits"][0]["summary"] == "keep"
    with pytest.raises(hc.NotFound):
        client.create_session(from_snapshot=f"{session}/no-such-snapshot")

    archive = client.export(session)
    assert archive[:4] == b"\x28\xb5\x2f\xfd"  # zstd's magic number
    stored = client.store_export(session)
    assert stored["key"].startswith(f"exports/{session}/") and stored["bytes"] > 0
    (listed,) = [e for e in client.list_exports(session) if e["key"] == stored["key"]]
    fetched = client.download_export(session, listed["name"])
    assert len(fetched) == stored["bytes"] == listed["bytes"] and fetched[:4] == b"\x28\xb5\x2f\xfd"

    gc = client.collect_garbage(grace_s=0)
    assert gc["manifests"] >= 1 and gc["deleted"] >= 0

    client.write_file(session, "/workspace/late.txt", "late\n")
    client.delete_session(session, snapshot=True)
    latest = _new_session(client, from_snapshot=session)
    assert client.read_file(latest, "/workspace/late.txt")["content"] == "late\n"


def _template(path: str) -> str:
    """A concrete path of the calls below as the OpenAPI document writes it."""
    path = re.sub(r"^/v1/sessions/s(?=/|$)", "/v1/sessions/{id}", path)
    path = re.sub(r"/exports/[0-9]{13}\.tar\.zst$", "/exports/{name}", path)
    path = re.sub(r"/processes/p1(?=/|$)", "/processes/{process}", path)
    path = re.sub(r"/ports/1/p$", "/ports/{port}/{path}", path)
    return re.sub(r"/tools/n$", "/tools/{name}", re.sub(r"/files/p$", "/files/{path}", path))


def test_the_routes_module_names_every_route_of_the_contract(client: Any) -> None:
    """A route added to the worker without a client method fails here."""
    documented = {
        (method.upper(), path)
        for path, operations in client.openapi()["paths"].items()
        for method in operations
        if method != "parameters"
    }
    calls = [
        routes.health(),
        routes.ready(),
        routes.tools(),
        routes.get_tool("n"),
        routes.install_tool("n", b""),
        routes.remove_tool("n"),
        routes.openapi(),
        routes.metrics(),
        routes.create_session(),
        routes.list_sessions(),
        routes.get_session("s"),
        routes.delete_session("s"),
        routes.call_tool("s", "n", {}),
        routes.get_file("s", "/p"),
        routes.put_file("s", "/p", b""),
        routes.upload("s", []),
        routes.download("s", []),
        routes.exec_program("s", {"command": "c"}),
        routes.exec_background("s", command="c"),
        routes.list_processes("s"),
        routes.get_process("s", "p1"),
        routes.process_output("s", "p1"),
        routes.write_stdin("s", "p1", ""),
        routes.signal_process("s", "p1"),
        routes.kill_process("s", "p1"),
        routes.git_status("s"),
        routes.git_log("s"),
        routes.git_diff("s"),
        routes.git_commit("s", "m"),
        routes.git_push("s"),
        routes.git_pull("s"),
        routes.git_merge_continue("s"),
        routes.git_merge_abort("s"),
        routes.git_reset("s"),
        routes.git_set_remote("s", "n", "u"),
        routes.take_snapshot("s"),
        routes.list_snapshots("s"),
        routes.export("s"),
        routes.store_export("s"),
        routes.list_exports("s"),
        routes.download_export("s", "1796000000000.tar.zst"),
        routes.replace_token("s"),
        routes.collect_garbage(),
    ]
    templated = {(c.method, _template(c.path)) for c in calls}
    templated.add(("POST", _template(routes.exec_stream_path("s"))))
    templated.add(("GET", _template(routes.port_path("s", 1, "p"))))  # any method; GET is documented
    assert documented == templated, json.dumps(sorted(documented ^ templated))
