"""Recovery benchmark: how fast a job comes back after its worker dies or goes silent.

1. kill -9: a worker running a job is killed; we time from the kill to the job's next
   attempt starting on the other worker (the broker sees the connection close and
   re-queues at once).
2. SIGSTOP: a worker running a job is frozen; we time from the freeze to the job's next
   attempt starting elsewhere. Its last heartbeat came at most lease/5 before the freeze,
   so this is an upper bound of "last heartbeat -> re-queue" (target: lease + 1 s).

Usage: python bench/recovery.py [KILLS] [STOPS] [LEASE]
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runq.cli.bench import LISTEN
from runq.client import Client

KILLS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
STOPS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
LEASE = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0


def start_broker(tmp: Path) -> tuple[subprocess.Popen[str], int, int]:
    cmd = [sys.executable, "-m", "runq", "server", "--store", f"sqlite:///{tmp / 'r.db'}"]
    cmd += ["--port", "0", "--worker-port", "0", "--http-port", "0", "--lease-timeout", str(LEASE)]
    cmd += ["--log-level", "error", "--grace", "0"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        found = LISTEN.search(line)
        if found:
            return proc, int(found.group(1)), int(found.group(2))
    raise SystemExit("broker did not start")


def start_worker(port: int, worker_id: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "runq", "worker", "--server", f"127.0.0.1:{port}"]
    cmd += ["--concurrency", "1", "--id", worker_id, "--log-level", "error"]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_workers(client: Client, ids: set[str]) -> None:
    deadline = time.time() + 10
    while {w.id for w in client.workers()} < ids:
        if time.time() > deadline:
            raise SystemExit(f"workers {ids} did not connect")
        time.sleep(0.02)


def running_on(client: Client, job_id: int) -> str:
    while True:
        job = client.get(job_id)
        if job.state == "running" and job.worker:
            return job.worker
        time.sleep(0.005)


def next_start(client: Client, job_id: int, attempts: int) -> float:
    """Wall time at which attempt number ``attempts + 1`` started."""
    while True:
        job = client.get(job_id)
        if len(job.history) > attempts:
            return job.history[attempts].started_at
        time.sleep(0.005)


def one_round(
    client: Client, wport: int, procs: dict[str, subprocess.Popen[bytes]], sig: int
) -> float:
    job_id = client.submit("sleep", "60", retries=5)
    victim = running_on(client, job_id)
    before = len(client.get(job_id).history)
    t0 = time.time()
    os.kill(procs[victim].pid, sig)
    started = next_start(client, job_id, before)
    client.cancel(job_id)
    if sig == signal.SIGSTOP:
        os.kill(procs[victim].pid, signal.SIGKILL)
    procs[victim].wait()
    procs[victim] = start_worker(wport, victim)
    wait_workers(client, set(procs))
    return started - t0


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="runq-recovery-") as tmp:
        broker, port, wport = start_broker(Path(tmp))
        procs = {wid: start_worker(wport, wid) for wid in ("w-a", "w-b")}
        try:
            with Client(f"127.0.0.1:{port}") as client:
                wait_workers(client, set(procs))
                kills = [one_round(client, wport, procs, signal.SIGKILL) for _ in range(KILLS)]
                stops = [one_round(client, wport, procs, signal.SIGSTOP) for _ in range(STOPS)]
        finally:
            for p in procs.values():
                p.kill()
                p.wait()
            broker.send_signal(signal.SIGTERM)
            broker.wait(10)
    kills.sort()
    print(
        f"kill -9 -> next attempt starts: p50 {statistics.median(kills) * 1000:.0f} ms,"
        f" p99 {kills[min(len(kills) - 1, int(len(kills) * 0.99))] * 1000:.0f} ms,"
        f" max {kills[-1] * 1000:.0f} ms ({len(kills)} runs)"
    )
    print(
        f"SIGSTOP -> next attempt starts (lease {LEASE:g} s):"
        f" median {statistics.median(stops):.2f} s, max {max(stops):.2f} s"
        f" ({len(stops)} runs; target lease + 1 s = {LEASE + 1:g} s)"
    )


if __name__ == "__main__":
    main()
