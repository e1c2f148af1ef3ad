"""deepagents' standard sandbox suite (`langchain-tests`' `SandboxIntegrationTests`, the suite Modal,
Daytona and the other providers run) against `HearthBackend` on a real worker process.

Run by `scripts/conformance.sh`, in its own virtualenv: `langchain-tests` brings pytest plugins
(pytest-socket, pytest-recording, syrupy) that the client's own tests should not load.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from deepagents.backends.protocol import (
    ExecuteResponse,
    FileDownloadResponse,
    FileUploadResponse,
    SandboxBackendProtocol,
)
from deepagents.backends.sandbox import BaseSandbox
from langchain_tests.integration_tests import SandboxIntegrationTests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import TOKEN, WorkerProcess
from hearth_client import HearthBackend


@pytest.fixture(scope="module")
def worker() -> Iterator[WorkerProcess]:
    process = WorkerProcess("[snapshots]\nauto_delay_s = 0\n")
    yield process
    process.stop()


class TestHearthStandardSandbox(SandboxIntegrationTests):
    @pytest.fixture(scope="class")
    def sandbox(self, worker: WorkerProcess) -> Iterator[SandboxBackendProtocol]:
        backend = HearthBackend.create(url=worker.url, token=TOKEN)
        try:
            yield backend
        finally:
            backend.close()


if os.environ.get("HEARTH_CONFORMANCE_PEER"):
    # The peer, in the same run: deepagents' own `BaseSandbox`, its `execute` a subprocess on
    # this machine (the suite's files under /tmp/test_sandbox_ops). Not a test of Hearth: its
    # count goes in the README beside Hearth's, and its failures are deepagents'.

    class SubprocessSandbox(BaseSandbox):
        @property
        def id(self) -> str:
            return "subprocess"

        def execute(self, command: str, *, timeout: int | None = None) -> ExecuteResponse:
            ran = subprocess.run(
                ["bash", "-c", command], capture_output=True, text=True, timeout=timeout or 120, check=False
            )
            return ExecuteResponse(output=ran.stdout + ran.stderr, exit_code=ran.returncode, truncated=False)

        def upload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
            answers = []
            for path, content in files:
                if not path.startswith("/"):
                    answers.append(FileUploadResponse(path=path, error="invalid_path"))
                    continue
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_bytes(content)
                answers.append(FileUploadResponse(path=path, error=None))
            return answers

        def download_files(self, paths: list[str]) -> list[FileDownloadResponse]:
            answers = []
            for path in paths:
                file = Path(path)
                if not path.startswith("/"):
                    answers.append(FileDownloadResponse(path=path, content=None, error="invalid_path"))
                elif not file.is_file():
                    answers.append(FileDownloadResponse(path=path, content=None, error="file_not_found"))
                else:
                    answers.append(FileDownloadResponse(path=path, content=file.read_bytes(), error=None))
            return answers

    class TestPeerBaseSandbox(SandboxIntegrationTests):
        @pytest.fixture(scope="class")
        def sandbox(self) -> Iterator[SandboxBackendProtocol]:
            shutil.rmtree("/tmp/test_sandbox_ops", ignore_errors=True)
            yield SubprocessSandbox()
