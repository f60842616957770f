"""Drain with 1, 2 and 3 brokers over one PostgreSQL schema (issue 6's scaling figure).

Each run: a fresh schema, N `runq server` processes on it, the queue filled through the
first broker, then 2 worker processes (concurrency 50) per broker spread over them, and
the time from the first job finished to the last.

Usage: python bench/scaling.py [JOBS] [DSN]
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from runq.cli.bench import broker_process
from runq.client import AsyncClient
from runq.model import JobSpec

JOBS = int(sys.argv[1]) if len(sys.argv) > 1 else 60_000
DSN = sys.argv[2] if len(sys.argv) > 2 else "postgresql://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def brokers(n: int, url: str) -> Iterator[list[tuple[int, int]]]:
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        yield [stack.enter_context(broker_process(tmp, "normal", url))[1:] for _ in range(n)]


async def fill(port: int) -> tuple[int, int]:
    specs = [JobSpec("echo", ["x"])] * 1000
    async with AsyncClient(f"127.0.0.1:{port}") as client:
        ids = [i for _ in range(JOBS // 1000) for i in await client.submit_many(specs)]
    return ids[0], ids[-1]


async def drain(port: int, first: int, last: int) -> float:
    async with AsyncClient(f"127.0.0.1:{port}") as client:
        await client.wait(first, 120)
        start = time.perf_counter()
        await client.wait(last, 600)
        return (last - first) / (time.perf_counter() - start)


async def drop(schema: str) -> None:
    conn = await asyncpg.connect(DSN)
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await conn.close()


def run(n: int) -> float:
    schema = f"runq_scaling_{uuid.uuid4().hex[:8]}"
    url = f"{DSN}?schema={schema}"
    try:
        with brokers(n, url) as ports:
            first, last = asyncio.run(fill(ports[0][0]))
            workers = []
            for k in range(2 * n):
                wport = ports[k % n][1]
                cmd = [sys.executable, "-m", "runq", "worker", "--server", f"127.0.0.1:{wport}"]
                cmd += ["--concurrency", "50", "--log-level", "warning"]
                workers.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL))
            try:
                return asyncio.run(drain(ports[-1][0], first, last))
            finally:
                for w in workers:
                    w.send_signal(signal.SIGTERM)
                for w in workers:
                    w.wait(30)
    finally:
        asyncio.run(drop(schema))


def main() -> None:
    for n in (1, 2, 3):
        print(f"{n} broker(s), {2 * n} workers x 50: drain {run(n):,.0f} jobs/s", flush=True)


if __name__ == "__main__":
    main()
