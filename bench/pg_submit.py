"""Where the time of a batch submit into PostgreSQL goes.

A `runq server` on a fresh schema, then batches of 1,000 `echo` jobs submitted one after
another (as `runq bench` does); for each run the rate, the wall time of a batch and the
CPU time a batch costs in the client (this process), the broker process and the
broker's PostgreSQL backends. The three CPU times add up to about the wall time: a
batch goes through them one after the other.

Usage: python bench/pg_submit.py [RUNS] [BATCHES] [DSN]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import psutil

from runq.cli.bench import broker_process, fill

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
BATCHES = int(sys.argv[2]) if len(sys.argv) > 2 else 200
DSN = sys.argv[3] if len(sys.argv) > 3 else "postgresql://postgres@127.0.0.1:5432/test"


def cpu(procs: list[psutil.Process]) -> float:
    return sum(p.cpu_times().user + p.cpu_times().system for p in procs)


async def backends(broker: psutil.Process) -> list[psutil.Process]:
    """The server processes of the broker's pooled connections."""
    ports = [c.laddr.port for c in broker.net_connections("tcp") if c.raddr]
    conn = await asyncpg.connect(DSN)
    try:
        found = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1::int[])", ports
        )
    finally:
        await conn.close()
    return [psutil.Process(r[0]) for r in found]


async def drop(schema: str) -> None:
    conn = await asyncpg.connect(DSN)
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await conn.close()


def run() -> str:
    schema = f"runq_pg_submit_{uuid.uuid4().hex[:8]}"
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            broker_process(Path(tmp), "normal", f"{DSN}?schema={schema}") as (proc, port, _),
        ):
            address = f"127.0.0.1:{port}"
            asyncio.run(fill(address, 20_000, 1000))  # the pool's connections are open
            broker = psutil.Process(proc.pid)
            server = asyncio.run(backends(broker))
            before = cpu([broker]), cpu(server), time.process_time(), time.perf_counter()
            rate = asyncio.run(fill(address, BATCHES * 1000, 1000))
            after = cpu([broker]), cpu(server), time.process_time(), time.perf_counter()
    finally:
        asyncio.run(drop(schema))
    b, s, c, wall = (1000 * (a - z) / BATCHES for a, z in zip(after, before, strict=True))
    return (
        f"{rate:>9,.0f} jobs/s   a batch: {wall:.2f} ms wall; CPU: client {c:.2f} ms,"
        f" broker {b:.2f} ms, PostgreSQL {s:.2f} ms"
    )


def main() -> None:
    print(f"batches of 1,000 jobs, {BATCHES} a run, fresh schema each run")
    for _ in range(RUNS):
        print(run(), flush=True)


if __name__ == "__main__":
    main()
