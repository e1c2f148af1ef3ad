"""Fuzz the worker's HTTP contract with schemathesis (run by `scripts/fuzz.sh`).

Starts a real worker, gives it a session `s1` with a file and a commit, runs schemathesis over
every operation of `docs/openapi.json` with a fixed seed and example budget, and checks: no 5xx,
no status, content type or body outside the document, valid data accepted and invalid data
refused. `DELETE /v1/sessions/{id}` works on a session of its own (`doomed`), so `s1` stays for
the operations after it. Prints one line in pytest's form, one test per operation:
`N passed, M failed in Xs`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from harness import TOKEN, WorkerProcess  # noqa: E402
from hearth_client import Client  # noqa: E402

ROOT = HERE.parent.parent.parent


def main() -> int:
    started = time.monotonic()
    # Runs end well within the fuzzer's read timeout (60 s), whatever command it comes up with.
    worker = WorkerProcess("[http]\nrate_per_s = 0\n[snapshots]\nauto_delay_s = 0\n[exec]\ntimeout_s = 20\n")
    report = Path(tempfile.mkdtemp(prefix="hearth-fuzz-")) / "junit.xml"
    try:
        with Client(worker.url, token=TOKEN) as client:
            client.create_session("s1")
            client.write_file("s1", "/workspace/a.py", "x = 1\n")
            client.git_commit("s1", "first")
            client.create_session("doomed")
        # A background process `p1` for the process routes to reach (the fuzzer may signal,
        # feed and kill it: every answer after that is still a documented one). `cat` waits on
        # its stdin in the background, and ends at once where the fuzzer replays its command.
        start = urllib.request.Request(
            f"{worker.url}/v1/sessions/s1/exec",
            data=json.dumps({"command": "cat", "background": True}).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(start) as answer:
            assert answer.status == 202
        ran = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "--config-file",
                str(HERE / "schemathesis.toml"),
                "run",
                str(ROOT / "docs" / "openapi.json"),
                "--url",
                worker.url,
                "--header",
                f"Authorization: Bearer {TOKEN}",
                "--max-examples",
                "20",
                "--seed",
                "1",
                "--request-timeout",
                "60",
                "--workers",
                "1",
                "--report",
                "junit",
                "--report-junit-path",
                str(report),
            ],
            check=False,
            # schemathesis keeps a cache of what it found in its working directory.
            cwd=report.parent,
        )
    finally:
        worker.stop()
    cases = ET.parse(report).getroot().iter("testcase")
    outcomes = [not any(child.tag in ("failure", "error") for child in case) for case in cases]
    shutil.rmtree(report.parent, ignore_errors=True)
    passed, failed = outcomes.count(True), outcomes.count(False)
    print(f"{passed} passed, {failed} failed in {time.monotonic() - started:.1f}s (schemathesis, one per operation)")
    return 0 if failed == 0 and ran.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
