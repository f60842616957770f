"""Broker memory with a deep queue, and claim latency at growing queue depths.

Starts `runq server` on a temporary store, fills it to each depth with submit_many,
reads the broker's RSS (psutil) and times claims made by a real worker connection:
the submit -> result latency of a top-priority job claimed from the front of a queue
of DEPTH jobs (a worker with concurrency 1 on that queue).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

from runq.cli.bench import broker_process, start_workers, stop_workers
from runq.client import AsyncClient
from runq.model import JobSpec

DEPTHS = [int(d) for d in sys.argv[1:]] or [1_000, 100_000, 1_000_000]


async def fill(client: AsyncClient, n: int) -> None:
    specs = [JobSpec("echo", ["x"], queue="deep") for _ in range(1000)]
    for done in range(0, n, 1000):
        await client.submit_many(specs[: min(1000, n - done)])


async def claim_latency(client: AsyncClient, samples: int = 200) -> list[float]:
    """A top-priority job in the deep queue: it is claimed ahead of the DEPTH others."""
    out = []
    for _ in range(samples):
        start = time.perf_counter()
        job_id = await client.submit_one("echo", "p", queue="deep", priority=1000)
        await client.wait(job_id, 10)
        out.append((time.perf_counter() - start) * 1000)
    return out


async def run(address: str, pid: int, worker_port: int) -> None:
    proc = psutil.Process(pid)
    depth = 0
    async with AsyncClient(address) as client:
        for target in DEPTHS:
            await fill(client, target - depth)
            depth = target
            rss = proc.memory_info().rss / 2**20
            workers = start_workers(1, worker_port, 1, queues="deep")
            try:
                await asyncio.sleep(1.0)
                lat = await claim_latency(client)
            finally:
                stop_workers(workers)
            p50, p99 = statistics.median(lat), sorted(lat)[int(len(lat) * 0.99)]
            print(
                f"depth {depth:>9,}: broker RSS {rss:6.1f} MiB,"
                f" submit->result p50 {p50:.3f} ms, p99 {p99:.3f} ms",
                flush=True,
            )


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="runq-depth-") as tmp,
        broker_process(Path(tmp), "normal") as (proc, port, worker_port),
    ):
        asyncio.run(run(f"127.0.0.1:{port}", proc.pid, worker_port))


if __name__ == "__main__":
    main()
