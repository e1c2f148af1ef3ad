"""A real worker process and a loopback git server, for the tests and the benchmark.

Both listen on 127.0.0.1 only. The worker is the `hearth` binary of this repository (built with
cargo when it is missing; `HEARTH_BIN` names another), started with its own data directory,
token and config, and stopped with SIGTERM like an operator would.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
TOKEN = "python-client-tests-token"


def hearth_binary(profile: str = "debug") -> Path:
    """`target/<profile>/hearth`, built (with its jail helper) when missing."""
    if os.environ.get("HEARTH_BIN"):
        return Path(os.environ["HEARTH_BIN"])
    binary = REPO / "target" / profile / "hearth"
    if not binary.exists():
        release = ["--release"] if profile == "release" else []
        subprocess.run(["cargo", "build", "-p", "hearth", *release], cwd=REPO, check=True)
    return binary


def _wait_for_port(port: int, what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start on port {port}") from None
            time.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GitServer:
    """`git daemon` with pushing enabled, serving bare repositories from a temporary directory."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="hearth-git-"))
        self.port = _free_port()
        exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True).stdout.strip()
        # `git daemon` would fork `git-daemon` and leave it behind when killed: run it directly.
        self._process = subprocess.Popen(
            [
                str(Path(exec_path) / "git-daemon"),
                "--reuseaddr",
                "--export-all",
                "--enable=receive-pack",
                "--listen=127.0.0.1",
                f"--port={self.port}",
                f"--base-path={self.root}",
                str(self.root),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, "git daemon")

    @property
    def prefix(self) -> str:
        """What a worker's `git.allowed_remotes` lists to allow this server."""
        return f"git://127.0.0.1:{self.port}/"

    def bare_repo(self, name: str) -> str:
        """A new, empty bare repository on `main`; its URL."""
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", name], cwd=self.root, check=True)
        return self.prefix + name

    def git(self, repo: str, *args: str) -> str:
        """`git --git-dir <repo> args…` on the server side; its stdout."""
        out = subprocess.run(
            ["git", "--git-dir", str(self.root / repo), *args], capture_output=True, text=True, check=True
        )
        return out.stdout

    def stop(self) -> None:
        self._process.kill()
        self._process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


class WorkerProcess:
    """`hearth serve` on 127.0.0.1 with a fresh data directory and the given config."""

    def __init__(self, config: str = "", *, profile: str = "debug") -> None:
        self.data = Path(tempfile.mkdtemp(prefix="hearth-worker-"))
        config_file = self.data / "hearth.toml"
        config_file.write_text(config)
        self._process = subprocess.Popen(
            [
                str(hearth_binary(profile)),
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                str(self.data / "data"),
                "--config",
                str(config_file),
            ],
            env={**os.environ, "HEARTH_TOKEN": TOKEN, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            stdout=subprocess.PIPE,
            stderr=open(self.data / "worker.log", "wb"),  # noqa: SIM115  # closed with the process
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        found = re.search(r"listening on (http://\S+)", line)
        if not found:
            self.stop()
            raise RuntimeError(f"the worker did not start: {line!r}; see {self.data / 'worker.log'}")
        self.url = found.group(1)
        # Nothing else is read from stdout: let it go nowhere rather than fill the pipe.
        self._process.stdout.close()

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        _unmount_all_under(self.data)
        shutil.rmtree(self.data, ignore_errors=True)


def _unmount_all_under(directory: Path) -> None:
    """A worker that was killed, not stopped, leaves its sessions' volumes mounted."""
    root = str(directory.resolve())
    with open("/proc/self/mountinfo") as table:
        points = [line.split(" ")[4] for line in table]
    inside = [p for p in points if p == root or p.startswith(root + "/")]
    for point in sorted(inside, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
