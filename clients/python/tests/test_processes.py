"""Background processes, ports and a session's network through `Client` and `AsyncClient`, and
`HearthBackend.execute` following a long run as a background process, against a real worker."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from deepagents.backends.protocol import ExecuteResponse

import hearth_client as hc
from harness import TOKEN, WorkerProcess
from hearth_client import Client, HearthBackend
from hearth_client import backend as backend_module
from hearth_client.errors import error_from_response


def _until(what: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    """`what()` once it is truthy, polled."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = what()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def _stdout_until(client: Any, session: str, pid: str, text: str) -> str:
    """The process's stdout from its start, once it holds `text`."""

    def read() -> str | None:
        out: str = client.process_output(session, pid, wait_s=1)["stdout"]["data"]
        return out if text in out else None

    return str(_until(read))


# --- the client ----------------------------------------------------------------------------------


def test_a_background_process_starts_takes_stdin_and_ends(client: Any, session: str) -> None:
    started = client.exec_background(
        session, command="echo ready; read line; echo got:$line; echo oops >&2; exit 3", env={"X": "1"}
    )
    pid = started["id"]
    assert started["state"] == "running" and started["stdin_open"] is True and pid.startswith("p")
    assert [p["id"] for p in client.processes(session)] == [pid]
    assert client.get_session(session)["network"]["running_processes"] == 1

    first = client.process_output(session, pid, wait_s=10)
    assert first["stdout"]["data"] == "ready\n" and first["stdout"]["eof"] is False
    client.write_stdin(session, pid, "hello\n")

    ended = client.process(session, pid, wait_s=10)
    assert (ended["state"], ended["exit_code"], ended["signal"], ended["timed_out"]) == ("exited", 3, None, False)
    assert ended["ended_at"] and ended["stdin_open"] is False

    # The rest, from the cursors of the first read; then both streams are at their end.
    rest = client.process_output(session, pid, stdout=first["stdout"]["next"], stderr=first["stderr"]["next"])
    assert (rest["stdout"]["data"], rest["stderr"]["data"]) == ("got:hello\n", "oops\n")
    assert rest["stdout"]["eof"] and rest["stderr"]["eof"] and rest["process"]["state"] == "exited"
    assert rest["stdout"]["next"] == ended["stdout_bytes"] == len("ready\ngot:hello\n")
    # A small `max_bytes` reads a piece at a time.
    piece = client.process_output(session, pid, max_bytes=4)
    assert piece["stdout"]["data"] == "read" and piece["stdout"]["next"] == 4 and not piece["stdout"]["eof"]

    with pytest.raises(hc.StdinClosed) as closed:
        client.write_stdin(session, pid, "late\n")
    assert closed.value.status == 409 and closed.value.code == "stdin_closed"

    # Killing an ended process forgets it, its output with it.
    assert client.kill_process(session, pid)["exit_code"] == 3
    assert client.processes(session) == []
    with pytest.raises(hc.ProcessNotFound) as gone:
        client.process(session, pid)
    assert gone.value.status == 404 and gone.value.code == "process_not_found"
    with pytest.raises(hc.NotFound):
        client.process_output(session, "p99")
    with pytest.raises(hc.BadRequest):
        client.process(session, "../p1")


def test_stdin_closed_by_the_caller_is_end_of_file(client: Any, session: str) -> None:
    pid = client.exec_background(session, argv=["python3", "-c", "import sys; print(sys.stdin.read().upper())"])["id"]
    assert client.write_stdin(session, pid, "one ")["stdin_open"] is True
    assert client.write_stdin(session, pid, "two", close=True)["stdin_open"] is False
    assert client.process(session, pid, wait_s=10)["exit_code"] == 0
    assert client.process_output(session, pid)["stdout"]["data"] == "ONE TWO\n"


def test_signals_reach_the_program_and_a_kill_ends_it(client: Any, session: str) -> None:
    trapping = client.exec_background(
        session, command="trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.1; done"
    )["id"]
    _stdout_until(client, session, trapping, "ready")
    sent = client.signal_process(session, trapping)  # SIGTERM by default
    assert sent["delivered"] is True
    ended = client.process(session, trapping, wait_s=10)
    assert ended["exit_code"] == 7 and "got TERM" in _stdout_until(client, session, trapping, "got TERM")
    assert client.signal_process(session, trapping, "SIGUSR1")["delivered"] is False  # it had ended

    sleeper = client.exec_background(session, command="sleep 60")["id"]
    killed = client.kill_process(session, sleeper)
    assert killed["state"] == "exited" and killed["signal"] == 9
    assert [p["id"] for p in client.processes(session)] == [trapping]

    with pytest.raises(hc.BadRequest):
        client.signal_process(session, trapping, "SIGSTOP")


def test_a_background_process_has_a_wall_time(client: Any, session: str) -> None:
    pid = client.exec_background(session, command="sleep 30", timeout=1)["id"]
    ended = client.process(session, pid, wait_s=20)
    assert ended["state"] == "exited" and ended["timed_out"] is True and ended["exit_code"] is None
    with pytest.raises(hc.BadRequest) as refused:
        client.exec_background(session, command="true", argv=["true"])
    assert refused.value.code == "invalid_exec"


def test_follow_output_yields_both_streams_to_their_end(client: Any, session: str) -> None:
    program = (
        "import sys, time\n"
        "for i in range(3):\n"
        "    print(f'out {i}', flush=True)\n"
        "    print(f'err {i}', file=sys.stderr, flush=True)\n"
        "    time.sleep(0.3)\n"
        "print('é' * 5000)\n"
    )
    pid = client.exec_background(session, argv=["python3", "-c", program])["id"]
    chunks = list(client.follow_output(session, pid, wait_s=5))
    assert {stream for stream, _ in chunks} == {"stdout", "stderr"}
    assert len(chunks) >= 4  # as it came, not all at the end
    stdout = "".join(text for stream, text in chunks if stream == "stdout")
    stderr = "".join(text for stream, text in chunks if stream == "stderr")
    assert stdout == "out 0\nout 1\nout 2\n" + "é" * 5000 + "\n"
    assert stderr == "err 0\nerr 1\nerr 2\n"
    assert client.process(session, pid)["state"] == "exited"


def test_a_server_of_the_session_is_reached_through_port_url(client: Any, session: str, worker: WorkerProcess) -> None:
    client.write_file(session, "/workspace/site/hello.txt", "hello from the session\n")
    pid = client.exec_background(
        session, command="cd site && exec python3 -m http.server 8765 --bind 127.0.0.1", timeout=120
    )["id"]
    url = client.port_url(session, 8765, "/hello.txt")
    assert url == f"{worker.url}/v1/sessions/{session}/ports/8765/hello.txt"
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def fetched() -> httpx.Response | None:
        response = httpx.get(url, headers=headers, timeout=10)
        if response.status_code == 502:  # not listening yet
            assert isinstance(error_from_response(response), hc.PortUnreachable)
            return None
        return response

    response = _until(fetched)
    assert response.status_code == 200 and response.text == "hello from the session\n"
    listing = httpx.get(client.port_url(session, 8765), headers=headers, timeout=10)
    assert listing.status_code == 200 and "hello.txt" in listing.text
    # The server's own answers come back as they are, a 404 included.
    assert httpx.get(client.port_url(session, 8765, "nothing"), headers=headers, timeout=10).status_code == 404
    assert httpx.get(url, timeout=10).status_code == 401  # no token

    nobody = httpx.get(client.port_url(session, 8766), headers=headers, timeout=10)
    unreachable = error_from_response(nobody)
    assert isinstance(unreachable, hc.PortUnreachable) and unreachable.code == "port_unreachable"
    with pytest.raises(hc.BadRequest):
        client.port_url(session, 0)
    client.kill_process(session, pid)


def test_a_session_network_is_asked_for_at_create(client: Any) -> None:
    session = client.create_session(f"n-{uuid.uuid4().hex[:10]}", network_allow=[])
    assert session["network"]["allow"] == [] and session["network"]["running_processes"] == 0
    assert client.get_session(session["id"])["network"]["allow"] == []
    client.delete_session(session["id"])

    for refused in (["not a host!"], ["example.com"]):  # not a host; not within the worker's list
        with pytest.raises(hc.InvalidNetwork) as raised:
            client.create_session(network_allow=refused)
        assert isinstance(raised.value, hc.BadRequest)
        assert raised.value.status == 400 and raised.value.code == "invalid_network"


def test_the_routes_send_what_the_contract_says() -> None:
    from hearth_client import routes

    created = routes.create_session("s", network_allow=("a.example:443",))
    assert created.json == {"id": "s", "network": {"allow": ["a.example:443"]}}
    assert routes.create_session("s").json == {"id": "s"}
    started = routes.exec_background("s", argv=("ls",), timeout=0, env={"A": "b"})
    assert started.json == {"argv": ["ls"], "timeout_s": 0, "env": {"A": "b"}, "background": True}
    read = routes.process_output("s", "p1", stdout=5, wait_s=30)
    assert read.params == {"stdout": 5, "stderr": 0, "wait_s": 30} and read.timeout and read.timeout > 30
    assert routes.signal_process("s", "p1").json == {"signal": "SIGTERM"}
    assert routes.write_stdin("s", "p1", "x", close=True).json == {"data": "x", "close": True}
    assert routes.port_path("s", 80) == "/v1/sessions/s/ports/80/"


# --- the deepagents backend: a long execute follows a background process --------------------------


def _recording_client(worker: WorkerProcess, sent: list[httpx.Request]) -> Client:
    http = httpx.Client(
        base_url=worker.url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        event_hooks={"request": [sent.append]},
    )
    return Client(http=http)


@pytest.fixture
def low_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any `execute` with a timeout over 2 s takes the background path; long polls of 1 s."""
    monkeypatch.setattr(backend_module, "BACKGROUND_AFTER_S", 2.0)
    monkeypatch.setattr(backend_module, "FOLLOW_WAIT_S", 1.0)


COMMANDS = [
    "echo partial; echo 'bad thing' >&2; exit 4",
    "true",
    "printf 'no newline'",
    "python3 -c \"import sys, time; print('één'); sys.stdout.flush(); time.sleep(1.5); print('two', file=sys.stderr)\"",
    "kill -9 $$",
    # Over the worker's 1 MiB of each stream: cut at the same byte, both `truncated`.
    "python3 -c \"import sys; sys.stdout.write('a' + 'é' * 700000); sys.stderr.write('e' * 10)\"",
]


@pytest.mark.usefixtures("low_threshold")
@pytest.mark.parametrize("command", COMMANDS)
def test_a_long_execute_answers_as_the_foreground_one(any_backend: Any, command: str) -> None:
    foreground = any_backend.execute(command)  # no timeout: the worker's default, one request
    background = any_backend.execute(command, timeout=60)
    assert background == foreground
    assert isinstance(background, ExecuteResponse)


@pytest.mark.usefixtures("low_threshold")
def test_a_follower_that_falls_behind_still_answers_as_the_foreground_one(worker: WorkerProcess, session: str) -> None:
    # The run writes 1.4 MB at once while its follower waits a second before its first read: a
    # ring of the last 1 MiB would have lost the start by then; the first bytes are kept instead.
    def late_first_read(request: httpx.Request) -> None:
        if request.url.path.endswith("/output") and request.url.params.get("stdout", "0") == "0":
            time.sleep(1.0)

    http = httpx.Client(
        base_url=worker.url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        event_hooks={"request": [late_first_read]},
    )
    backend = HearthBackend(session, client=Client(http=http))
    command = COMMANDS[-1]
    assert backend.execute(command, timeout=60) == backend.execute(command)
    backend.close()


@pytest.mark.usefixtures("low_threshold")
def test_a_long_execute_is_a_followed_background_process(worker: WorkerProcess, session: str) -> None:
    sent: list[httpx.Request] = []
    backend = HearthBackend(session, client=_recording_client(worker, sent), env={"MODE": "bg"})
    ran = backend.execute("echo $MODE; sleep 2.5; echo late >&2; exit 2", timeout=30)
    assert ran == ExecuteResponse(output="bg\n\n[stderr] late", exit_code=2, truncated=False)

    prefix = f"/v1/sessions/{session}"
    calls = [f"{r.method} {r.url.path}" for r in sent]
    assert calls[0] == f"POST {prefix}/exec" and calls[-2:] == [f"DELETE {prefix}/processes/p1", f"GET {prefix}"]
    assert json.loads(sent[0].content) == {
        "command": "echo $MODE; sleep 2.5; echo late >&2; exit 2",
        "timeout_s": 30,
        "env": {"MODE": "bg"},
        "background": True,
        "keep_output": "first",
    }
    polls = [r for r in sent if r.url.path.endswith("/output")]
    assert len(polls) >= 2  # it waited across more than one long poll
    assert all(0 <= float(r.url.params["wait_s"]) <= 1.0 for r in polls)
    # The process is forgotten: nothing left in the session's list.
    assert backend.client.processes(session) == []

    # Deepagents' 0 ("no timeout", the worker's longest) is followed too, sent as 0.
    sent.clear()
    assert backend.execute("echo fine", timeout=0).output == "fine\n"
    assert json.loads(sent[0].content)["timeout_s"] == 0 and len(sent) > 1
    backend.close()


@pytest.mark.usefixtures("low_threshold")
def test_a_followed_run_that_outlives_its_timeout_is_killed(any_backend: Any) -> None:
    # The worker kills it at its wall time...
    begun = time.monotonic()
    slow = any_backend.execute("echo before; sleep 30", timeout=3)
    assert slow.exit_code == 124 and slow.output.startswith("before\n") and "timed out after 3 seconds" in slow.output
    assert time.monotonic() - begun < 15


@pytest.mark.usefixtures("low_threshold")
def test_the_backend_kills_a_run_past_its_timeout_itself(
    monkeypatch: pytest.MonkeyPatch, worker: WorkerProcess, session: str
) -> None:
    # ...and should it not have (here the backend's deadline comes first), the backend does.
    monkeypatch.setattr(backend_module, "KILL_GRACE_S", -2.0)
    sent: list[httpx.Request] = []
    backend = HearthBackend(session, client=_recording_client(worker, sent))
    begun = time.monotonic()
    slow = backend.execute("echo before; sleep 30", timeout=4)
    assert time.monotonic() - begun < 4  # before the worker's own wall time
    assert slow.exit_code == 124 and slow.output.startswith("before\n") and "timed out after 4 seconds" in slow.output
    signals = [json.loads(r.content) for r in sent if r.url.path.endswith("/signal")]
    assert signals == [{"signal": "SIGKILL"}]
    assert backend.client.processes(session) == []
    backend.close()


@pytest.mark.usefixtures("low_threshold")
def test_a_followed_run_refused_is_an_error_the_model_reads(any_backend: Any) -> None:
    beyond = any_backend.execute("true", timeout=999999)
    assert beyond.exit_code == 1 and beyond.output.startswith("Error: ") and "timeout_s" in beyond.output


@pytest.mark.usefixtures("low_threshold")
def test_at_the_process_limit_a_long_execute_runs_in_the_foreground(worker: WorkerProcess, session: str) -> None:
    sent: list[httpx.Request] = []
    backend = HearthBackend(session, client=_recording_client(worker, sent))
    sleepers = []
    with pytest.raises(hc.ProcessLimit) as full:  # the worker's `exec.max_background`, 8 by default
        for _ in range(64):
            sleepers.append(backend.client.exec_background(session, command="sleep 60")["id"])
    assert isinstance(full.value, hc.TooManyRequests) and full.value.status == 429
    sent.clear()
    assert backend.execute("echo fine", timeout=60).output == "fine\n"
    bodies = [json.loads(r.content) for r in sent]
    assert [b.get("background", False) for b in bodies] == [True, False]
    for pid in sleepers:
        backend.client.kill_process(session, pid)
    backend.close()


@pytest.mark.usefixtures("low_threshold")
def test_a_followed_run_that_fills_the_quota_says_so(worker: WorkerProcess) -> None:
    backend = HearthBackend.create(url=worker.url, token=TOKEN, quota={"bytes": 32 << 20, "inodes": 4096})
    ran = backend.execute("head -c 40000000 /dev/zero > /tmp/zeros", timeout=60)
    assert ran.exit_code != 0 and "quota is full" in ran.output, ran.output
    backend.client.delete_session(backend.id)
    backend.close()


@pytest.mark.usefixtures("low_threshold")
def test_a_followed_run_the_caller_abandons_is_killed(
    backend: HearthBackend, session: str, loop: asyncio.AbstractEventLoop
) -> None:
    with pytest.raises(asyncio.TimeoutError):
        loop.run_until_complete(asyncio.wait_for(backend.aexecute("sleep 30", timeout=60), 1.5))
    assert backend.client.processes(session) == []  # killed and forgotten
    loop.run_until_complete(backend.aclose())
