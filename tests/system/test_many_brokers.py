"""Three `runq server` processes on one PostgreSQL schema, workers and a client that list
all three, and brokers killed with SIGKILL (and started again) every few seconds.

PostgreSQL runs at 127.0.0.1:5432 (database ``test``, user ``postgres``, trust auth);
each test gets its own schema, dropped afterwards. Without the server these tests skip,
except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
import pytest

from runq.client import Client
from runq.errors import ConnectionLost, StoreError
from runq.store.migrate import migrations

from .harness import Cli, Procs, Server, wait_until, worker_ids

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
LEASE: Final = ("--lease-timeout", "3")
SUBMIT_BATCH: Final = 100
# A dispatcher reads its clock just before its claim runs, a sweep just before its
# requeue: an attempt may seem to start this much before the one it follows ended.
CLOCK_SLACK: Final = 1.0
TAKEN_BACK: Final = frozenset({"worker_lost", "lease_expired", "released"})


def sql(query: str, *args: Any) -> list[Any]:
    async def go() -> list[Any]:
        conn = await asyncpg.connect(PG_DSN, timeout=5)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


@pytest.fixture
def schema(procs: Procs) -> Iterator[str]:
    try:
        sql("SELECT 1")
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL is not reachable at {PG_DSN}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    name = f"runq_test_{uuid.uuid4().hex[:16]}"
    try:
        yield name
    finally:
        procs.teardown()  # the brokers go first: none sees its tables vanish
        sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def pg_server(
    procs: Procs,
    url: str,
    name: str,
    extra: tuple[str, ...] = (),
    port: int = 0,
    worker_port: int = 0,
) -> Server:
    args = ["server", "--store", url, "--port", str(port), "--worker-port", str(worker_port)]
    proc = procs.spawn(name, [*args, *extra, "--log-level", "info"])
    server = Server(proc.popen, proc.log, proc.name, *procs._ports(proc))
    procs.started[-1] = server
    return server


def test_migrate_then_no_migrate(procs: Procs, cli: Cli, schema: str) -> None:
    url = f"{PG_DSN}?schema={schema}"
    refused = cli("server", "--store", url, "--no-migrate", "--port", 0, ok=False)
    assert refused.err.count("\n") == 1 and "runq migrate" in refused.err
    newest = len(migrations("runq.store.postgres"))
    assert f"to {newest} (the newest)" in cli("migrate", "--store", url).out
    assert f"version {newest} (the newest); nothing to do" in cli("migrate", "--store", url).out
    server = pg_server(procs, url, "server", ("--no-migrate",))
    with server.client() as client:
        job_id = client.submit("echo", "hi")
        assert str(client.get(job_id).state) == "queued"  # stored; no worker yet


@dataclass(frozen=True)
class Chaos:
    """How big a run is, and how often a broker dies in it."""

    jobs: int
    workers: int
    concurrency: int
    job_seconds: float  # each job is the built-in sleep
    submit_seconds: float  # the submits are spread over this long, so kills hit them too
    kill_every: float
    min_kills: int
    budget: float  # seconds every job may take to succeed before the test gives up


SMALL = Chaos(2000, 6, 4, 0.1, 3.0, 2.0, 3, 60.0)
FULL = Chaos(10_000, 20, 4, 0.25, 6.0, 3.0, 8, 400.0)


class Brokers:
    """Three brokers on one schema. ``restart`` kills one with SIGKILL (by the pid we
    started) and starts it again on its two ports, which the workers and the client
    have in their lists."""

    def __init__(self, procs: Procs, url: str) -> None:
        self.procs, self.url = procs, url
        self.now = [pg_server(procs, url, f"server{i}", LEASE) for i in range(3)]

    def restart(self, i: int) -> None:
        old = self.now[i]
        old.kill()
        self.now[i] = pg_server(self.procs, self.url, old.name, LEASE, old.port, old.worker_port)


class Watch:
    """The test's own connection to the schema. Each look is one statement, so one
    snapshot: how many jobs succeeded, and any open attempt (a live fence) that is not
    its job's current fence on a running job, as two live fences of one job would be."""

    LOOK: Final = """
        SELECT (SELECT count(*) FROM jobs WHERE state = 'succeeded'),
               ARRAY(SELECT a.job_id FROM attempts AS a JOIN jobs AS j ON j.id = a.job_id
                     WHERE a.finished_at IS NULL
                       AND (j.state <> 'running' OR j.fence <> a.fence OR j.worker <> a.worker)
                     LIMIT 10)
    """

    def __init__(self, schema: str) -> None:
        self.loop = asyncio.new_event_loop()
        settings = {"search_path": f'"{schema}"'}
        self.conn = self.loop.run_until_complete(
            asyncpg.connect(PG_DSN, timeout=5, server_settings=settings)
        )
        self.looks = 0
        self.strays: set[int] = set()

    def succeeded(self) -> int:
        done, strays = self.loop.run_until_complete(self.conn.fetchrow(self.LOOK))
        self.looks += 1
        self.strays.update(strays)
        return int(done)

    def close(self) -> None:
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()


def submit_all(addresses: str, chaos: Chaos, answered: dict[str, int]) -> float:
    """Keyed batches, spread over ``chaos.submit_seconds``. A batch whose broker dies
    before it answers goes again to the next broker; its keys keep it from being stored
    twice. Returns when the last batch was answered (monotonic seconds)."""
    starts = range(0, chaos.jobs, SUBMIT_BATCH)
    with Client(addresses) as client:
        for start in starts:
            keys = [f"job-{n}" for n in range(start, min(start + SUBMIT_BATCH, chaos.jobs))]
            specs = [{"task": "sleep", "args": [chaos.job_seconds], "key": k} for k in keys]
            answered.update(zip(keys, client.submit_many(specs), strict=True))
            time.sleep(chaos.submit_seconds / len(starts))
    return time.monotonic()


def kill_until_done(
    brokers: Brokers, watch: Watch, chaos: Chaos, submitting: Future[float]
) -> list[tuple[float, int]]:
    """Every ``kill_every`` seconds, one broker in turn dies and comes back, until every
    job has succeeded. Each kill as (seconds since the start, jobs succeeded by then)."""
    started = time.monotonic()
    kills: list[tuple[float, int]] = []
    next_kill = started + chaos.kill_every
    while (done := watch.succeeded()) < chaos.jobs:
        now = time.monotonic()
        assert now - started < chaos.budget, f"{done} of {chaos.jobs} done in {chaos.budget} s"
        if submitting.done():
            submitting.result()  # a submit that failed fails the test now
        if now >= next_kill:
            kills.append((now - started, done))
            brokers.restart((len(kills) - 1) % 3)  # 0, 1, 2, 0...: the client's first
            next_kill = max(now + chaos.kill_every, time.monotonic() + chaos.kill_every / 2)
        time.sleep(0.05)
    return kills


def check_history(
    schema: str, answered: dict[str, int]
) -> tuple[collections.Counter[str], float | None]:
    """The promises, from the store's rows: see the test. Returns how the attempts ended
    and the largest seeming overlap of two fences of one job (seconds; None: no job ran
    twice)."""
    jobs = sql(f'SELECT id, key, state, fence, worker FROM "{schema}".jobs')
    assert len(jobs) == len(answered), "a job was lost or stored twice"
    assert {r["key"]: r["id"] for r in jobs} == answered, "not the ids the submits answered"
    assert [r["id"] for r in jobs if r["state"] != "succeeded"] == []
    history: dict[int, list[Any]] = {r["id"]: [] for r in jobs}
    for row in sql(
        "SELECT job_id, fence, worker, started_at, finished_at, outcome"
        f' FROM "{schema}".attempts ORDER BY job_id, fence'
    ):
        history[row["job_id"]].append(row)
    wrong: list[str] = []
    overlaps: list[float] = []
    for job in jobs:
        attempts = history[job["id"]]
        if not attempts:
            wrong.append(f"job {job['id']} has no attempt")
            continue
        last = attempts[-1]
        if (last["outcome"], last["fence"], last["worker"]) != (
            "succeeded",
            job["fence"],
            job["worker"],
        ):
            wrong.append(f"job {job['id']}: last attempt {dict(last)}, job {dict(job)}")
        for before, after in itertools.pairwise(attempts):
            if before["outcome"] not in TAKEN_BACK or before["finished_at"] is None:
                wrong.append(f"job {job['id']}: fence {before['fence']} ended {before['outcome']}")
            else:
                overlaps.append(before["finished_at"] - after["started_at"])
    assert not wrong, f"{len(wrong)} job(s) broke a promise: {wrong[:5]}"
    overlap = max(overlaps, default=None)
    assert overlap is None or overlap <= CLOCK_SLACK, f"two fences overlapped {overlap:.3f} s"
    outcomes = collections.Counter(a["outcome"] for rows in history.values() for a in rows)
    assert outcomes["succeeded"] == len(jobs)
    return outcomes, overlap


def stale_reports(procs: Procs) -> int:
    """How many reports our brokers refused as stale (their logs say)."""
    said = re.compile(r"refused (\d+) stale report")
    brokers = [p for p in procs.started if p.name.startswith("server")]
    return sum(int(n) for p in brokers for n in said.findall(p.text()))


@pytest.mark.parametrize(
    "chaos",
    [
        pytest.param(SMALL, id="small"),
        pytest.param(FULL, id="full", marks=[pytest.mark.soak, pytest.mark.timeout(900)]),
    ],
)
def test_brokers_killed_every_few_seconds_every_job_succeeds_exactly_once(
    procs: Procs, cli: Cli, schema: str, chaos: Chaos
) -> None:
    # Given: three brokers on one schema (leases of 3 s); workers that each list all
    #   three, starting from a different one; a client listing all three that submits
    #   keyed jobs (the built-in sleep) in paced batches.
    # When: every few seconds, from the first submit until the last job has succeeded,
    #   one broker in turn is killed with SIGKILL and started again on its ports (the
    #   first is the client's, while it submits). Each kill sends the victim's workers,
    #   with their running jobs and unacknowledged reports, to the next broker.
    # Then, from the store's rows, which every broker writes to:
    #   - No job lost: one job per key, with the id its submit was answered with, and
    #     every one succeeded.
    #   - Exactly one accepted completion: the statement that accepts a report (fence
    #     and worker still current) also closes that attempt as `succeeded`; each job has
    #     exactly one such attempt, and it is its last fence, on the worker the job names.
    #   - Never two live fences: a claim opens an attempt with a new fence, and whatever
    #     ends a fence (report, requeue, release, cancel) closes its attempt in the
    #     statement that changes the job. So: (a) in every look during the run (one
    #     snapshot each, several a second) every open attempt is its job's current fence,
    #     on a running job: no job ever had two open; (b) afterwards, every attempt but
    #     the last was taken back (worker lost, lease expired, released), so no report of
    #     an older fence was accepted, and it was closed before the next one was opened
    #     (to within CLOCK_SLACK: a broker reads its clock just before its statement).
    #   - Fail-over keeps the work: no broker turns a worker away (no error in any
    #     worker's log), so a worker keeps the jobs it runs when it changes brokers.
    #   Not checkable, nor promised: a worker whose fence died may still be running the
    #   job (execution is at least once); its report is refused as stale.
    url = f"{PG_DSN}?schema={schema}"
    cli("migrate", "--store", url)
    brokers = Brokers(procs, url)
    servers = brokers.now
    workers = []
    for i in range(chaos.workers):
        order = [servers[(i + k) % 3].worker_address for k in range(3)]
        args = ["worker", "--server", ",".join(order), "--id", f"w{i}"]
        args += ["--concurrency", str(chaos.concurrency), "--log-level", "info"]
        workers.append(procs.spawn(f"worker-w{i}", args))
    for n, server in enumerate(servers):
        ids = {f"w{i}" for i in range(n, chaos.workers, 3)}
        wait_until(lambda s=server, w=ids: w <= worker_ids(s), 20, what="workers")

    watch = Watch(schema)
    answered: dict[str, int] = {}
    started = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        submitting = pool.submit(submit_all, ",".join(s.address for s in servers), chaos, answered)
        try:
            kills = kill_until_done(brokers, watch, chaos, submitting)
        finally:
            watch.close()
        submitted = submitting.result() - started
    elapsed = time.monotonic() - started

    assert len(kills) >= chaos.min_kills, kills
    assert kills[0][0] < submitted, "no broker died while the client submitted"
    assert not watch.strays, f"jobs with an open attempt not their current fence: {watch.strays}"
    assert all(p.alive for p in [*brokers.now, *workers])
    connects = [w.text().count(" connected to ") for w in workers]
    assert min(connects) > 1, connects  # every worker failed over
    turned_away = [line for w in workers for line in w.text().splitlines() if " ERROR " in line]
    assert not turned_away, turned_away[:5]
    outcomes, overlap = check_history(schema, answered)
    stale = stale_reports(procs)
    print(
        f"{chaos.jobs} jobs, {chaos.workers} workers, 3 brokers: {len(kills)} kills"
        f" (at s, jobs done: {[(round(t, 1), d) for t, d in kills]}), all succeeded in"
        f" {elapsed:.1f} s; attempts {dict(outcomes)}, {stale} stale report(s)"
        f" refused, {sum(connects)} worker connections, {watch.looks} looks without two live"
        f" fences, largest seeming overlap {'none' if overlap is None else f'{overlap:.3f} s'}"
    )


def restart_postgresql() -> None:
    """Restart this machine's PostgreSQL cluster (it is back when this returns)."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.mark.soak  # restarts the machine's PostgreSQL: `make soak`, not the main suite
def test_a_postgresql_restart_loses_no_answered_submit_and_the_broker_recovers(
    procs: Procs, cli: Cli, schema: str
) -> None:
    if shutil.which("pg_ctlcluster") is None or not os.path.isdir("/etc/postgresql"):
        if os.environ.get("CI") == "true":
            pytest.fail("pg_ctlcluster is needed to restart PostgreSQL")
        pytest.skip("pg_ctlcluster is not on this machine")
    url = f"{PG_DSN}?schema={schema}"
    server = pg_server(procs, url, "server")
    procs.worker(server, "w-pg", concurrency=4)
    answered: list[int] = []
    refused: list[str] = []
    with server.client() as client:
        # Given: jobs submitted before, while and after PostgreSQL restarts.
        restart = threading.Thread(target=restart_postgresql)
        for n in range(60):
            if n == 10:
                restart.start()  # the submits go on while it is down
            try:
                answered.append(client.submit("echo", str(n)))
            except (StoreError, ConnectionLost) as exc:
                refused.append(exc.message)  # a clear refusal, never a false answer
            time.sleep(0.05)
        restart.join()
        answered.append(client.submit("echo", "after"))
        # Then: every answered submit ends succeeded, and the broker took new work again.
        for job_id in answered:
            assert client.wait(job_id, timeout=30).state == "succeeded", job_id
    assert len(answered) >= 20, refused
    print(f"answered {len(answered)}, refused {len(refused)}: {refused[:2]}")
    assert all("PostgreSQL" in text or "store" in text for text in refused), refused
    # (the harness checks every process's log for a traceback at teardown)
