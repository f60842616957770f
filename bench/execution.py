"""Execution benchmark: a no-op Python task through the task-process pool, and a `true`
command job, each drained by one worker on a temporary broker.

Usage: python bench/execution.py [PY_JOBS] [CMD_JOBS] [CONCURRENCY]
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runq.cli.bench import broker_process
from runq.client import AsyncClient
from runq.model import JobSpec
from runq.model.spec import COMMAND_TASK

PY_JOBS = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
CMD_JOBS = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000
CONCURRENCY = sys.argv[3] if len(sys.argv) > 3 else "2"
PREFETCH = sys.argv[4] if len(sys.argv) > 4 else "64"
TASKS = "import runq\n\n\n@runq.task\ndef noop() -> None:\n    return None\n"


async def fill(address: str, specs: list[JobSpec]) -> tuple[int, int]:
    async with AsyncClient(address) as client:
        ids = await client.submit_many(specs)
    return ids[0], ids[-1]


async def drain(address: str, first: int, last: int, n: int) -> float:
    async with AsyncClient(address) as client:
        await client.wait(first, 120)
        start = time.perf_counter()
        await client.wait(last, 600)
        elapsed = time.perf_counter() - start
        failed = (await client.stats())["jobs"]["failed"]
        if failed:
            raise SystemExit(f"{failed} jobs failed")
    return (n - 1) / elapsed


def measure(tmp: Path, specs: list[JobSpec], worker_args: list[str]) -> float:
    with broker_process(tmp, "normal") as (_, port, wport):
        address = f"127.0.0.1:{port}"
        first, last = asyncio.run(fill(address, specs))
        cmd = [sys.executable, "-m", "runq", "worker", *worker_args]
        cmd += ["--server", f"127.0.0.1:{wport}", "-c", CONCURRENCY, "--log-level", "warning"]
        cmd += ["--prefetch", PREFETCH]
        worker = subprocess.Popen(cmd, cwd=tmp, stdin=subprocess.DEVNULL)
        try:
            return asyncio.run(drain(address, first, last, len(specs)))
        finally:
            worker.terminate()
            worker.wait(30)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="runq-exec-") as tmp:
        (Path(tmp) / "benchtasks.py").write_text(TASKS)
        py = measure(Path(tmp), [JobSpec("benchtasks.noop")] * PY_JOBS, ["benchtasks"])
        print(f"python no-op task, {CONCURRENCY} task processes: {py:,.0f} jobs/s ({PY_JOBS} jobs)")
    with tempfile.TemporaryDirectory(prefix="runq-exec-") as tmp:
        specs = [JobSpec(COMMAND_TASK, ["true"])] * CMD_JOBS
        cmd = measure(Path(tmp), specs, ["--allow-cmd", "true"])
        print(f"`true` command job, concurrency {CONCURRENCY}: {cmd:,.0f} jobs/s ({CMD_JOBS} jobs)")


if __name__ == "__main__":
    main()
