"""``runq bench``: start a broker on a temporary store, load it, print the figures."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from runq.cli.common import handle_errors, positive, run
from runq.cli.render import to_json
from runq.client import AsyncClient, Client
from runq.errors import RunqError
from runq.model import JobSpec

LISTEN = re.compile(r"clients on [^:]+:(\d+), workers on [^:]+:(\d+)")


@contextlib.contextmanager
def broker_process(
    tmp: Path, durability: str, store: str | None = None
) -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    """A `runq server` on ports 0: on a SQLite file in ``tmp``, or on ``store``."""
    url = store or f"sqlite:///{tmp / 'bench.db'}"
    cmd = [sys.executable, "-m", "runq", "server", "--store", url]
    cmd += [
        "--port",
        "0",
        "--worker-port",
        "0",
        "--http-port",
        "0",
        "--durability",
        durability,
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            found = LISTEN.search(line)
            if found:
                yield proc, int(found.group(1)), int(found.group(2))
                break
        else:
            raise RunqError("the benchmark broker did not start")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def start_workers(
    n: int, worker_port: int, concurrency: int, queues: str = "default"
) -> list[subprocess.Popen[bytes]]:
    cmd = [sys.executable, "-m", "runq", "worker", "--server", f"127.0.0.1:{worker_port}"]
    cmd += ["--concurrency", str(concurrency), "--queues", queues, "--log-level", "warning"]
    return [subprocess.Popen(cmd, stdin=subprocess.DEVNULL) for _ in range(n)]


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


async def fill(address: str, jobs: int, batch: int) -> float:
    """Batch submit: ``submit_many`` calls of ``batch`` jobs, one after another."""
    specs = [JobSpec("echo", [str(i)]) for i in range(batch)]
    async with AsyncClient(address) as client:
        start = time.perf_counter()
        for done in range(0, jobs, batch):
            await client.submit_many(specs[: min(batch, jobs - done)])
        return jobs / (time.perf_counter() - start)


async def drain(address: str, first: int, last: int, jobs: int, workers: list[Any]) -> float:
    async with AsyncClient(address) as client:
        await client.wait(first, 120)
        start = time.perf_counter()
        await client.wait(last, 600)
        elapsed = time.perf_counter() - start
        for _ in range(600):
            counts = (await client.stats())["jobs"]
            if counts["succeeded"] + counts["failed"] >= jobs:
                break
            await asyncio.sleep(0.05)
        return jobs / elapsed


async def pipelined(address: str, jobs: int) -> float:
    async with AsyncClient(address) as client:
        start = time.perf_counter()
        await asyncio.gather(*(client.submit("echo", "p") for _ in range(jobs)))
        return jobs / (time.perf_counter() - start)


async def latency(address: str, samples: int) -> tuple[list[float], list[float]]:
    """Milliseconds from submit to the result in the client's hands, and from the
    broker's submit to the result stored (the job's finished_at - submitted_at)."""
    client_ms, stored_ms = [], []
    async with AsyncClient(address) as client:
        for _ in range(samples):
            start = time.perf_counter()
            job_id = await client.submit_one("echo", "l")
            job = await client.wait(job_id, 10)
            client_ms.append((time.perf_counter() - start) * 1000)
            stored_ms.append(((job.finished_at or 0) - job.submitted_at) * 1000)
    return client_ms, stored_ms


def blocking(address: str, jobs: int) -> float:
    with Client(address) as client:
        start = time.perf_counter()
        for _ in range(jobs):
            client.submit("echo", "b")
        return jobs / (time.perf_counter() - start)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


@click.command()
@click.option("--jobs", "-n", default=100_000, show_default=True, type=int, callback=positive)
@click.option(
    "--workers", "-w", "n_workers", default=2, show_default=True, type=click.IntRange(1, 64)
)
@click.option("--concurrency", "-c", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--batch", default=1000, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--latency-samples", default=1000, show_default=True, type=click.IntRange(1))
@click.option(
    "--durability", type=click.Choice(["normal", "full"]), default="normal", show_default=True
)
@click.option(
    "--store",
    default=None,
    help="Benchmark this store (e.g. a PostgreSQL URL with a fresh ?schema=) instead of"
    " a temporary SQLite file.",
)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def bench(
    jobs: int,
    n_workers: int,
    concurrency: int,
    batch: int,
    latency_samples: int,
    durability: str,
    store: str | None,
    as_json: bool,
) -> None:
    """Measure submit rate, drain rate and latency against a broker on a temporary store."""
    with (
        tempfile.TemporaryDirectory(prefix="runq-bench-") as tmp,
        broker_process(Path(tmp), durability, store) as (
            _,
            port,
            worker_port,
        ),
    ):
        address = f"127.0.0.1:{port}"

        def say(text: str) -> None:
            if not as_json:
                click.echo(text, err=True)

        say(f"filling the queue with {jobs} echo jobs in batches of {batch} ...")
        submit_rate = run(fill(address, jobs, batch))
        n_pipe, n_block = min(jobs, 50_000), min(jobs, 10_000)
        say(f"{n_pipe} pipelined single submits ...")
        pipe_rate = run(pipelined(address, n_pipe))
        say(f"{n_block} blocking single submits ...")
        block_rate = blocking(address, n_block)
        total = jobs + n_pipe + n_block
        say(f"draining {total} jobs with {n_workers} worker(s) x {concurrency} ...")
        procs = start_workers(n_workers, worker_port, concurrency)
        try:
            drain_rate = run(drain(address, 1, total, total, procs))
            say("submit -> result latency ...")
            lat, stored = run(latency(address, latency_samples))
        finally:
            stop_workers(procs)
    lat_ms = {"p50": round(statistics.median(lat), 3), "p99": round(pct(lat, 0.99), 3)}
    stored_ms = {"p50": round(statistics.median(stored), 3), "p99": round(pct(stored, 0.99), 3)}
    figures: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": sys.platform,
        },
        "jobs": jobs,
        "workers": n_workers,
        "concurrency": concurrency,
        "batch_submit_per_s": round(submit_rate),
        "drain_per_s": round(drain_rate),
        "pipelined_submit_per_s": round(pipe_rate),
        "blocking_submit_per_s": round(block_rate),
        "latency_ms": lat_ms,
        "stored_latency_ms": stored_ms,
    }
    if as_json:
        click.echo(to_json(figures))
        return
    click.echo(
        f"batch submit ({batch}/call)   {figures['batch_submit_per_s']:>10,} jobs/s\n"
        f"drain (echo)                {figures['drain_per_s']:>10,} jobs/s\n"
        f"pipelined single submit     {figures['pipelined_submit_per_s']:>10,} jobs/s\n"
        f"blocking single submit      {figures['blocking_submit_per_s']:>10,} jobs/s\n"
        f"submit -> result in client  p50 {lat_ms['p50']} ms, p99 {lat_ms['p99']} ms\n"
        f"submit -> result stored     p50 {stored_ms['p50']} ms, p99 {stored_ms['p99']} ms"
    )
