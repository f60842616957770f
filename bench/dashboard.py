"""Dashboard pages over real HTTP with a million jobs in the store.

Fills a SQLite store with JOBS jobs (default 1,000,000) through the store's own
operations — submit_many in batches of 10,000, then claims and reports that finish 90%
of them (a few percent failed, with tracebacks) — starts a broker with its HTTP server on
that store, and times every dashboard page and the JSON the pages poll, from a client in
another thread. Then prints SQLite's EXPLAIN QUERY PLAN of the queries behind them.

    .venv/bin/python bench/dashboard.py                # 1,000,000 jobs, temporary store
    .venv/bin/python bench/dashboard.py --keep big.db  # fill big.db, or reuse it

The broker runs on uvloop, as `runq server` does. Not part of
the test suite: run it by hand. A page is in budget under 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from runq.cli.common import run as run_loop
from runq.model import ErrorInfo, JobSpec, Outcome
from runq.store import rows
from runq.store.sqlite.store import SqliteStore
from runq.testing import RunningBroker, run_broker

BUDGET_MS = 200.0
BATCH = 10_000
QUEUES = ("default", "emails", "reports", "images")
TASKS = ("echo", "wordcount", "send_email", "make_report", "resize")
FINISHED = 0.9  # share of the jobs claimed and reported
FAILED = 0.03  # share of the reports that fail (for good: max_attempts=1)


def specs(start: int, n: int, rand: random.Random) -> list[JobSpec]:
    out = []
    for i in range(start, start + n):
        out.append(
            JobSpec(
                rand.choice(TASKS),
                [f"item {i}", i],
                {"size": i % 7},
                queue=QUEUES[i % len(QUEUES)],
                priority=rand.choice((0, 0, 0, 5)),
                max_attempts=1 if i % 3 == 0 else 3,
                key=f"order-{i}" if i % 100 == 0 else None,
            )
        )
    return out


TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "tasks.py", line 12, in send_email\n'
    "    smtp.send(message)\n"
    "ConnectionRefusedError: [Errno 111] Connection refused\n"
)


def outcome(job_id: int, fence: int, rand: random.Random) -> Outcome:
    if rand.random() < FAILED:
        error = ErrorInfo("error", "ConnectionRefusedError: refused", False, TRACEBACK)
        return Outcome(job_id, fence, False, error=error)
    return Outcome(job_id, fence, True, result=f"done {job_id}")


async def fill(path: Path, total: int) -> None:
    """Submit ``total`` jobs, then finish FINISHED of them through claims and reports."""
    rand = random.Random(1)
    store = SqliteStore(str(path))
    start = time.perf_counter()
    now = time.time() - 3600
    try:
        for done in range(0, total, BATCH):
            n = min(BATCH, total - done)
            await store.submit_many(specs(done, n, rand), now + 3600 * done / total)
        print(f"submitted {total:,} jobs in {time.perf_counter() - start:.1f} s", flush=True)
        start = time.perf_counter()
        finished = 0
        while finished < total * FINISHED:
            now = time.time()
            claimed = await store.claim("w-bench", list(QUEUES), BATCH, now, now + 60)
            if not claimed:
                break
            outcomes = [outcome(a.id, a.fence, rand) for a in claimed]
            await store.report("w-bench", outcomes, now + 0.01)
            finished += len(claimed)
        print(f"finished {finished:,} of them in {time.perf_counter() - start:.1f} s", flush=True)
    finally:
        await store.close()


def pages(conn: sqlite3.Connection) -> list[str]:
    """The pages to time, with ids and keys that exist in this store."""
    (top,) = conn.execute("SELECT max(id) FROM jobs").fetchone()
    (failed,) = conn.execute("SELECT max(id) FROM jobs WHERE state = 'failed'").fetchone()
    (key,) = conn.execute("SELECT key FROM jobs WHERE key IS NOT NULL LIMIT 1").fetchone()
    return [
        "/",
        "/queues",
        "/jobs",
        "/jobs?state=queued",
        "/jobs?state=failed",
        "/jobs?state=succeeded",
        "/jobs?state=succeeded&queue=emails",
        "/jobs?queue=images",
        "/jobs?task=resize",
        "/jobs?task=no-such-task",
        f"/jobs?q={key}",
        f"/jobs?q={top // 2}",
        f"/jobs?cursor={top // 2}",
        f"/jobs/{top // 2}",
        f"/jobs/{failed}",
        f"/jobs/{top + 1000}",
        "/failed",
        "/failed?queue=emails",
        "/workers",
        "/api/v1/stats",
        "/api/v1/queues",
        "/api/v1/activity",
        "/api/v1/workers",
        "/api/v1/jobs?limit=50",
        "/api/v1/jobs?state=failed&limit=50",
        f"/api/v1/jobs/{top // 2}",
    ]


def time_pages(base: str, paths: list[str], repeat: int) -> list[tuple[str, int, int, list[float]]]:
    """Each path ``repeat`` times in turn, over one keep-alive connection."""
    out = []
    with httpx.Client(base_url=base, timeout=60, follow_redirects=False) as http:
        for path in paths:
            times = []
            status = size = 0
            for _ in range(repeat):
                start = time.perf_counter()
                reply = http.get(path)
                times.append((time.perf_counter() - start) * 1000)
                status, size = reply.status_code, len(reply.content)
            out.append((path, status, size, times))
    return out


def report(results: list[tuple[str, int, int, list[float]]]) -> None:
    print(f"\n{'page':<42} {'status':>6} {'KiB':>6} {'first':>8} {'median':>8} {'max':>8}")
    for path, status, size, times in results:
        med = statistics.median(times)
        flag = "" if med < BUDGET_MS else "  <-- over budget"
        print(
            f"{path:<42} {status:>6} {size / 1024:>6.1f} {times[0]:>7.1f}m"
            f" {med:>7.1f}m {max(times):>7.1f}m{flag}"
        )
    print("(times in ms: m)")


def explain(path: Path) -> None:
    """EXPLAIN QUERY PLAN and the time of the SQL behind the pages, on the same store."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    listing = f"SELECT {rows.JOB_COLUMNS} FROM jobs"
    queries = {
        "counts() [/, /queues, /api/v1/stats]": (
            "SELECT queue, state, count(*) FROM jobs GROUP BY state, queue",
            (),
        ),
        "list_jobs() [/jobs]": (f"{listing} ORDER BY id DESC LIMIT 51", ()),
        "list_jobs(state) [/failed]": (
            f"{listing} WHERE state = ? ORDER BY id DESC LIMIT 51",
            ("failed",),
        ),
        "list_jobs(state) [/jobs?state=succeeded]": (
            f"{listing} WHERE +state = ? ORDER BY id DESC LIMIT 51",
            ("succeeded",),
        ),
        "list_jobs(state, queue)": (
            f"{listing} WHERE +state = ? AND queue = ? ORDER BY id DESC LIMIT 51",
            ("succeeded", "emails"),
        ),
        "list_jobs(queue)": (f"{listing} WHERE queue = ? ORDER BY id DESC LIMIT 51", ("images",)),
        "list_jobs(task) [common task]": (
            f"{listing} WHERE task = ? ORDER BY id DESC LIMIT 51",
            ("resize",),
        ),
        "list_jobs(task) [no such task]": (
            f"{listing} WHERE task = ? ORDER BY id DESC LIMIT 51",
            ("nothing",),
        ),
        "list_jobs(key)": (
            f"{listing} WHERE key = ? ORDER BY id DESC LIMIT 51",
            ("order-500",),
        ),
    }
    print()
    for name, (sql, args) in queries.items():
        start = time.perf_counter()
        conn.execute(sql, args).fetchall()
        ms = (time.perf_counter() - start) * 1000
        plan = [r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args)]
        print(f"{name}: {ms:.1f} ms")
        print(f"    {sql}")
        for line in plan:
            print(f"    -> {line}")
    conn.close()


async def serve_and_time(path: Path, repeat: int) -> None:
    async with run_broker(store_url=f"sqlite:///{path}", http=True) as rb:
        await add_idle_worker(rb)
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            paths = pages(conn)
        results = await asyncio.to_thread(time_pages, rb.http_url, paths, repeat)
    report(results)


async def add_idle_worker(rb: RunningBroker) -> None:
    """A worker for the workers page, on a queue of its own so the store stays as filled."""
    await rb.add_worker(concurrency=8, queues=["bench-idle"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20, help="requests per page")
    parser.add_argument("--keep", type=Path, help="store file to fill, or reuse if it exists")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="runq-dash-") as tmp:
        path = args.keep or Path(tmp) / "runq.db"
        if not path.exists():
            asyncio.run(fill(path, args.jobs))
        run_loop(serve_and_time(path, args.repeat))
        explain(path)


if __name__ == "__main__":
    main()
