"""The deepagents backend method by method, through the sync methods and their async twins, against
a real worker: deepagents' result types, its error literals, and one HTTP call per operation."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx
import pytest
from deepagents.backends.protocol import (
    DeleteResult,
    EditResult,
    ExecuteResponse,
    FileDownloadResponse,
    FileUploadResponse,
    GlobResult,
    GrepResult,
    LsResult,
    ReadResult,
    SandboxBackendProtocol,
    WriteResult,
)

import hearth_client as hc
from harness import TOKEN, WorkerProcess
from hearth_client import Client, HearthBackend


def test_it_is_a_sandbox_backend(backend: HearthBackend, session: str) -> None:
    assert isinstance(backend, SandboxBackendProtocol)
    assert backend.id == session


def test_write_then_read(any_backend: Any) -> None:
    assert any_backend.write("/workspace/notes/a.md", "# title\nline 2\nline 3\n") == WriteResult(
        path="/workspace/notes/a.md"
    )

    whole = any_backend.read("/workspace/notes/a.md")
    assert isinstance(whole, ReadResult) and whole.error is None
    # deepagents' page: the lines joined by "\n", no line ending after the last.
    assert whole.file_data == {"content": "# title\nline 2\nline 3", "encoding": "utf-8"}
    assert (whole.start_line, whole.end_line, whole.total_lines, whole.next_offset) == (1, 3, 3, None)

    window = any_backend.read("/workspace/notes/a.md", offset=1, limit=1)
    assert window.file_data["content"] == "line 2"
    assert (window.start_line, window.end_line, window.next_offset) == (2, 2, 2)

    clamped = any_backend.read("/workspace/notes/a.md", offset=-5, limit=1)
    assert clamped.start_line == 1


def test_read_edge_cases(any_backend: Any) -> None:
    any_backend.write("/workspace/empty.txt", "")
    empty = any_backend.read("/workspace/empty.txt")
    assert empty.error is None and empty.file_data["content"] == "" and empty.start_line is None

    nothing = any_backend.read("/workspace/empty.txt", limit=0)
    assert nothing.no_lines_requested is True

    any_backend.upload_files([("/workspace/logo.png", b"\x89PNG\r\n\x1a\n\x00")])
    binary = any_backend.read("/workspace/logo.png")
    assert binary.file_data["encoding"] == "base64" and binary.start_line is None

    any_backend.write("/workspace/short.txt", "a\nb\n")
    past_end = any_backend.read("/workspace/short.txt", offset=10)
    assert past_end.file_data is None and "exceeds file length (2 lines)" in past_end.error


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/workspace/missing.py", "not found"),
        ("/workspace", "is a directory"),
        ("relative.py", "relative"),
        ("/etc/passwd", "outside the session's view"),
        ("/workspace/../../etc/passwd", "climbs above the root"),
    ],
)
def test_read_errors_are_results_for_the_model(any_backend: Any, path: str, fragment: str) -> None:
    result = any_backend.read(path)
    assert result.file_data is None and fragment in result.error


def test_edit(any_backend: Any) -> None:
    any_backend.write("/workspace/app.py", "x = 1\nx = 1\n")
    ambiguous = any_backend.edit("/workspace/app.py", "x = 1", "x = 2")
    assert ambiguous.path is None and "appears multiple times (2 times)" in ambiguous.error
    assert any_backend.edit("/workspace/app.py", "x = 1", "x = 2", replace_all=True) == EditResult(
        path="/workspace/app.py", occurrences=2
    )
    missing = any_backend.edit("/workspace/app.py", "y = 3", "z")
    assert "not found" in missing.error
    assert any_backend.edit("/workspace/nope.py", "a", "b").error == "Error: File '/workspace/nope.py' not found"
    assert any_backend.read("/workspace/app.py").file_data["content"] == "x = 2\nx = 2"


def test_ls_and_delete(any_backend: Any) -> None:
    any_backend.write("/workspace/pkg/mod.py", "pass\n")
    any_backend.write("/workspace/top.py", "pass\n")
    listing = any_backend.ls("/workspace")
    assert isinstance(listing, LsResult) and listing.error is None
    assert sorted((e["path"], e["is_dir"]) for e in listing.entries) == [
        ("/workspace/pkg", True),
        ("/workspace/skills", True),  # the read-only area's mount point
        ("/workspace/top.py", False),
    ]
    assert all(isinstance(e["size"], int) and e["modified_at"].endswith("Z") for e in listing.entries)
    # deepagents' own wording, which its middleware looks for before a delete.
    assert any_backend.ls("/workspace/nowhere").error == "Path '/workspace/nowhere': path_not_found"
    assert any_backend.ls("/workspace/top.py").error == "Path '/workspace/top.py': not_a_directory"

    assert any_backend.delete("/workspace/pkg") == DeleteResult(path="/workspace/pkg")
    assert "does not exist" in any_backend.delete("/workspace/pkg").error
    assert [e["path"] for e in any_backend.ls("/workspace").entries] == ["/workspace/skills", "/workspace/top.py"]


def test_glob(any_backend: Any) -> None:
    for path in ["/workspace/a.py", "/workspace/src/b.py", "/workspace/src/c.txt", "/workspace/.hidden/d.py"]:
        any_backend.write(path, "\n")
    everywhere = any_backend.glob("*.py")
    assert isinstance(everywhere, GlobResult) and everywhere.truncated is False
    # deepagents' rule: a bare pattern matches basenames at any depth, even under a dot-directory;
    # `**` does not descend into one.
    assert sorted(m["path"] for m in everywhere.matches) == [
        "/workspace/.hidden/d.py",
        "/workspace/a.py",
        "/workspace/src/b.py",
    ]
    assert sorted(m["path"] for m in any_backend.glob("**/*.py").matches) == ["/workspace/a.py", "/workspace/src/b.py"]
    assert [m["path"] for m in any_backend.glob("**/*.txt", path="/workspace/src").matches] == ["/workspace/src/c.txt"]
    assert sorted(m["path"] for m in any_backend.glob("{a,src/b}.py").matches) == [
        "/workspace/a.py",
        "/workspace/src/b.py",
    ]
    refused = any_backend.glob("../*")
    assert refused.matches is None and ".." in refused.error


def test_grep_is_literal_and_capped(any_backend: Any) -> None:
    any_backend.write("/workspace/a.py", "price = 1.5  # TODO(x)\nother\nTODO(x) again\n")
    any_backend.write("/workspace/b.txt", "TODO(x)\n")
    found = any_backend.grep("TODO(x)")
    assert isinstance(found, GrepResult) and found.error is None
    assert sorted((m["path"], m["line"]) for m in found.matches) == [
        ("/workspace/a.py", 1),
        ("/workspace/a.py", 3),
        ("/workspace/b.txt", 1),
    ]
    assert any_backend.grep("1.5", glob="*.py").matches[0]["text"] == "price = 1.5  # TODO(x)"
    assert any_backend.grep("1.5x").matches == []  # literal: `.` is not a wildcard
    capped = any_backend.grep("TODO", max_count=2)
    assert len(capped.matches) == 2 and capped.truncated is True
    assert "does not exist" in any_backend.grep("x", path="/workspace/nowhere").error


def test_upload_and_download_keep_order_and_error_literals(any_backend: Any) -> None:
    uploaded = any_backend.upload_files(
        [("/workspace/data/one.bin", b"\x00\x01"), ("/etc/evil", b"x"), ("relative.txt", b"x"), ("/tmp/t.txt", b"t")]
    )
    assert uploaded == [
        FileUploadResponse(path="/workspace/data/one.bin", error=None),
        FileUploadResponse(path="/etc/evil", error="invalid_path"),
        FileUploadResponse(path="relative.txt", error="invalid_path"),
        FileUploadResponse(path="/tmp/t.txt", error=None),
    ]
    downloaded = any_backend.download_files(
        ["/workspace/data/one.bin", "/workspace/missing", "/workspace/data", "/tmp/t.txt"]
    )
    assert downloaded == [
        FileDownloadResponse(path="/workspace/data/one.bin", content=b"\x00\x01", error=None),
        FileDownloadResponse(path="/workspace/missing", content=None, error="file_not_found"),
        FileDownloadResponse(path="/workspace/data", content=None, error="is_directory"),
        FileDownloadResponse(path="/tmp/t.txt", content=b"t", error=None),
    ]


def test_a_read_only_area_is_read_only(any_backend: Any) -> None:
    assert any_backend.read("/workspace/skills/SKILL.md").file_data["content"] == "# a shared skill"
    assert any_backend.write("/workspace/skills/SKILL.md", "mine now").error
    assert any_backend.edit("/workspace/skills/SKILL.md", "shared", "mine").error
    assert any_backend.delete("/workspace/skills/SKILL.md").error
    assert any_backend.upload_files([("/workspace/skills/new.md", b"x")]) == [
        FileUploadResponse(path="/workspace/skills/new.md", error="permission_denied")
    ]
    ran = any_backend.execute("echo mine > /workspace/skills/SKILL.md")
    assert ran.exit_code != 0 and "Read-only file system" in ran.output
    assert any_backend.read("/workspace/skills/SKILL.md").file_data["content"] == "# a shared skill"
    assert "cannot be deleted" in any_backend.delete("/workspace").error


def test_execute(any_backend: Any) -> None:
    any_backend.write("/workspace/utils.py", "def greet(n):\n    return f'hi {n}'\n")
    ok = any_backend.execute("python3 -c 'import utils; print(utils.greet(\"there\"))'")
    assert ok == ExecuteResponse(output="hi there\n", exit_code=0, truncated=False)

    failed = any_backend.execute("echo partial; echo 'bad thing' >&2; exit 4")
    assert failed.exit_code == 4 and failed.output == "partial\n\n[stderr] bad thing"

    assert any_backend.execute("true").output == "<no output>"

    slow = any_backend.execute("sleep 20", timeout=1)
    assert slow.exit_code == 124 and "timed out after 1 seconds" in slow.output

    beyond = any_backend.execute("true", timeout=999999)
    assert beyond.exit_code == 1 and beyond.output.startswith("Error: ") and "timeout_s" in beyond.output


def test_execute_sees_files_the_tools_wrote_and_the_other_way_round(any_backend: Any) -> None:
    any_backend.write("/tmp/in.txt", "from a tool\n")
    ran = any_backend.execute("cat /tmp/in.txt > /workspace/out.txt && printf '%s' done > /tmp/mark")
    assert ran.exit_code == 0
    assert any_backend.read("/workspace/out.txt").file_data["content"] == "from a tool"
    assert any_backend.download_files(["/tmp/mark"])[0].content == b"done"


def _recording_client(worker: WorkerProcess, sent: list[httpx.Request]) -> Client:
    http = httpx.Client(
        base_url=worker.url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        event_hooks={"request": [sent.append]},
    )
    return Client(http=http)


def test_timeouts_reach_the_worker_and_zero_asks_for_the_longest_run(worker: WorkerProcess, session: str) -> None:
    sent: list[httpx.Request] = []
    backend = HearthBackend(session, client=_recording_client(worker, sent), default_timeout=3)
    assert backend.execute("echo fine", timeout=0).output == "fine\n"  # followed in the background
    backend.execute("true")
    backend.execute("true", timeout=5)
    runs = [json.loads(r.content) for r in sent if r.method == "POST" and r.url.path.endswith("/exec")]
    assert [run["timeout_s"] for run in runs] == [0, 3, 5]
    assert [run.get("background", False) for run in runs] == [True, False, False]
    backend.close()


def test_env_reaches_every_execute_and_nothing_else_does(worker: WorkerProcess, session: str) -> None:
    backend = HearthBackend(session, url=worker.url, token=TOKEN, env={"MODE": "test"})
    assert backend.execute("echo $MODE; env | grep -c HEARTH_TOKEN || true").output == "test\n0\n"
    backend.close()


def test_create_makes_a_session_and_operator_errors_raise(worker: WorkerProcess) -> None:
    backend = HearthBackend.create(url=worker.url, token=TOKEN)
    assert backend.write("/workspace/x.txt", "x").path == "/workspace/x.txt"
    with Client(worker.url, token=TOKEN) as client:
        assert client.get_session(backend.id)["id"] == backend.id
        client.delete_session(backend.id)
    # The session is gone: no other arguments can fix that, so it stops the run.
    with pytest.raises(hc.NotFound) as gone:
        backend.ls("/workspace")
    assert gone.value.code == "session_not_found"
    backend.close()

    wrong_token = HearthBackend("any", url=worker.url, token="wrong")
    with pytest.raises(hc.Unauthorized):
        wrong_token.ls("/workspace")
    nowhere = HearthBackend("any", client=Client("http://127.0.0.1:9", timeout=2))
    with pytest.raises(hc.WorkerUnreachable):
        nowhere.read("/workspace/a")


def test_each_operation_is_one_http_call(worker: WorkerProcess, session: str) -> None:
    requests: list[httpx.Request] = []
    backend = HearthBackend(session, client=_recording_client(worker, requests))
    backend.write("/workspace/a.txt", "a\n")
    backend.read("/workspace/a.txt")
    backend.edit("/workspace/a.txt", "a", "b")
    backend.ls("/workspace")
    backend.glob("*.txt")
    backend.grep("b")
    backend.upload_files([("/workspace/b.txt", b"b")])
    backend.download_files(["/workspace/b.txt"])
    backend.delete("/workspace/b.txt")
    backend.execute("true")
    prefix = f"/v1/sessions/{session}"
    assert [f"{r.method} {r.url.path}" for r in requests] == [
        f"POST {prefix}/tools/write_file",
        f"POST {prefix}/tools/read_file",
        f"POST {prefix}/tools/edit_file",
        f"POST {prefix}/tools/ls",
        f"POST {prefix}/tools/glob",
        f"POST {prefix}/tools/grep",
        f"POST {prefix}/upload",
        f"POST {prefix}/download",
        f"POST {prefix}/tools/delete",
        f"POST {prefix}/exec",
    ]
    backend.close()


def test_a_full_quota_is_an_error_the_model_can_read(worker: WorkerProcess) -> None:
    backend = HearthBackend.create(url=worker.url, token=TOKEN, quota={"bytes": 32 << 20, "inodes": 4096})
    with Client(worker.url, token=TOKEN) as client:
        usage = client.get_session(backend.id)["quota"]
        assert usage is not None and (32 << 20) <= usage["bytes_limit"] < (40 << 20)
        ran = backend.execute("head -c 40000000 /dev/zero > /tmp/zeros")
        assert ran.exit_code != 0 and "quota is full" in ran.output, ran.output
        with pytest.raises(hc.HearthError) as full:
            client.write_file(backend.id, "/workspace/more.txt", "x" * (2 << 20))
        assert full.value.status == 507 and full.value.code == "quota_exceeded"
        client.delete_session(backend.id)
    backend.close()


def test_how_a_run_ended_shows_in_the_answer() -> None:
    """Endings a test cannot cheaply cause (a program is PID 1 of its namespace, where it ignores
    its own signals) are mapped from the worker's answer as the shell would report them."""
    from hearth_client.backend import _execute_response

    ended = {"stdout": "", "stderr": "", "timed_out": False, "truncated": False, "jail": {}, "duration_ms": 1}
    killed = _execute_response({**ended, "exit_code": None, "signal": 9, "oom_killed": True}, None)
    assert killed.exit_code == 137 and "ran out of memory" in killed.output
    clipped = _execute_response(
        {**ended, "stdout": "x" * 10, "exit_code": 0, "signal": None, "oom_killed": False, "truncated": True}, None
    )
    assert clipped.truncated is True and clipped.output.startswith("x" * 10) and "truncated" in clipped.output


def test_a_truncated_listing_is_still_a_listing() -> None:
    """deepagents' middleware reads any `error` of `ls` as a failure and drops the entries."""
    from hearth_client.backend import _ls_result

    entry = {"path": "/workspace/a", "is_dir": False, "size": 1, "modified_at": None}
    listing = _ls_result({"entries": [entry], "truncated": True})
    assert listing.error is None and listing.entries == [{"path": "/workspace/a", "is_dir": False, "size": 1}]


def test_the_async_twins_follow_the_sync_clients_worker_and_token(
    worker: WorkerProcess, session: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No token in the environment: the async side must take the one the sync client was given,
    and work from one event loop after another."""
    monkeypatch.delenv("HEARTH_TOKEN", raising=False)
    backend = HearthBackend(session, client=Client(worker.url, token=TOKEN))

    async def write_then_read(n: int) -> str:
        await backend.awrite(f"/workspace/loop{n}.txt", f"loop {n}\n")
        answer = await backend.aread(f"/workspace/loop{n}.txt")
        await backend.aclose()
        return answer.file_data["content"]

    assert asyncio.run(write_then_read(1)) == "loop 1"
    assert asyncio.run(write_then_read(2)) == "loop 2"
    backend.close()


def test_a_tool_call_is_answered_while_a_program_runs(backend: HearthBackend) -> None:
    backend.write("/workspace/slow.txt", "before\n")
    results: dict[str, Any] = {}
    running = threading.Thread(
        target=lambda: results.update(run=backend.execute("sleep 2; echo after > /workspace/slow.txt"))
    )
    running.start()
    time.sleep(0.5)  # the program runs now, holding nothing
    started = time.monotonic()
    results["read"] = backend.read("/workspace/slow.txt")
    answered_in = time.monotonic() - started
    running.join()
    assert results["run"].exit_code == 0
    # The read did not wait for the program (as beside a shell) and saw the file as it was.
    assert results["read"].file_data["content"] == "before"
    assert answered_in < 1.0
    assert backend.read("/workspace/slow.txt").file_data["content"] == "after"


def test_paths_and_ids_that_would_change_the_route_are_refused_before_sending(
    sync_client: Client, session: str
) -> None:
    for path in ["/workspace/../../export", "/workspace/./a", "workspace/a", "/workspace//a"]:
        with pytest.raises(hc.BadRequest) as raised:
            sync_client.get_file(session, path)
        assert raised.value.code == "invalid_path" and raised.value.status is None
    with pytest.raises(hc.BadRequest) as raised:
        sync_client.get_session("..")
    assert raised.value.code == "invalid_session_id"
