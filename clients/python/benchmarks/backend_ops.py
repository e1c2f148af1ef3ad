"""What an agent pays for living on a worker: the deepagents backend's per-operation cost (write,
read, edit, grep) on a Hearth worker over loopback HTTP, beside deepagents' own local
`FilesystemBackend`, in the same run, on the same kind of project.

    target/pyvenv/bin/python clients/python/benchmarks/backend_ops.py [--iterations 300]

It starts a release worker (`cargo build --release` first, or set HEARTH_BIN) on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepagents.backends.filesystem import FilesystemBackend

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from harness import TOKEN, WorkerProcess
from hearth_client import HearthBackend

FILE = "".join(f"line {i}: some ordinary source text for the agent to read\n" for i in range(40))  # ~2.2 KiB
PROJECT_FILES = 100


def _timed(operation: Callable[[int], Any], iterations: int) -> list[float]:
    for i in range(10):  # warm-up: connections, caches, compiled tools
        operation(i)
    samples = []
    for i in range(iterations):
        started = time.perf_counter()
        operation(i)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _check(result: Any) -> Any:
    error = getattr(result, "error", None)
    if error:
        raise RuntimeError(error)
    return result


def measure(backend: Any, root: str, iterations: int) -> dict[str, list[float]]:
    """The four operations against `backend`, whose project lives under `root`."""
    for i in range(PROJECT_FILES):
        _check(backend.write(f"{root}/src/module_{i:03}.py", FILE.replace("line 7:", f"needle {i}:")))
    _check(backend.write(f"{root}/edit.txt", "state: even\n" + FILE))
    states = ("even", "odd")

    def edit(i: int) -> None:
        old, new = states[i % 2], states[(i + 1) % 2]
        _check(backend.edit(f"{root}/edit.txt", f"state: {old}", f"state: {new}"))

    def grep(_: int) -> None:
        result = _check(backend.grep("needle 4", path=f"{root}/src"))
        assert len(result.matches) == 11, result.matches  # needle 4, needle 40…49

    return {
        "write (2 KiB)": _timed(lambda i: _check(backend.write(f"{root}/out/file_{i}.py", FILE)), iterations),
        "read (40 lines)": _timed(lambda _: _check(backend.read(f"{root}/src/module_001.py")), iterations),
        "edit (1 replacement)": _timed(edit, iterations),
        f"grep ({PROJECT_FILES} files)": _timed(grep, iterations),
    }


def _row(name: str, hearth: list[float], local: list[float]) -> str:
    def p(samples: list[float], q: float) -> float:
        return statistics.quantiles(samples, n=100)[int(q) - 1]

    h50, l50 = statistics.median(hearth), statistics.median(local)
    return (
        f"| {name} | {h50:.2f} | {p(hearth, 95):.2f} | {l50:.3f} | {p(local, 95):.3f} | "
        f"{h50 - l50:+.2f} ms ({h50 / l50:.1f}×) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()

    worker = WorkerProcess("[snapshots]\nauto_delay_s = 0\n", profile="release")
    local_root = tempfile.mkdtemp(prefix="hearth-bench-local-")
    try:
        hearth = HearthBackend.create(url=worker.url, token=TOKEN)
        hearth_ms = measure(hearth, "/workspace", args.iterations)
        round_trip = statistics.median(_timed(lambda _: hearth.client.health(), args.iterations))
        hearth.close()
        local = FilesystemBackend(root_dir=local_root, virtual_mode=True)
        local_ms = measure(local, "", args.iterations)
    finally:
        worker.stop()
        shutil.rmtree(local_root, ignore_errors=True)

    print(f"deepagents backend, {args.iterations} calls per operation (ms); ripgrep: {bool(shutil.which('rg'))}")
    print(f"an HTTP round trip to the worker (GET /v1/health), p50: {round_trip:.2f} ms")
    print("| operation | Hearth p50 | Hearth p95 | FilesystemBackend p50 | FilesystemBackend p95 | difference |")
    print("|---|---|---|---|---|---|")
    for name in hearth_ms:
        print(_row(name, hearth_ms[name], local_ms[name]))


if __name__ == "__main__":
    main()
