"""Three `runq server` processes on one PostgreSQL schema, workers spread over them with
comma lists of brokers, and one broker killed with SIGKILL midway.

PostgreSQL runs at 127.0.0.1:5432 (database ``test``, user ``postgres``, trust auth);
each test gets its own schema, dropped afterwards. Without the server these tests skip,
except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from runq.client import Client
from runq.errors import ConnectionLost, StoreError
from runq.store.migrate import migrations

from .harness import Cli, Procs, Server, wait_until, worker_ids

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
JOBS = 2000


def sql(query: str, *args: Any) -> list[Any]:
    async def go() -> list[Any]:
        conn = await asyncpg.connect(PG_DSN, timeout=5)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


@pytest.fixture
def schema() -> Iterator[str]:
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
        sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def pg_server(procs: Procs, url: str, name: str, extra: tuple[str, ...] = ()) -> Server:
    args = ["server", "--store", url, "--port", "0", "--worker-port", "0", *extra]
    proc = procs.spawn(name, [*args, "--log-level", "info"])
    port, worker_port = procs._ports(proc)
    server = Server(proc.popen, proc.log, proc.name, port, worker_port)
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


def test_three_brokers_one_killed_every_job_succeeds_exactly_once(
    procs: Procs, cli: Cli, schema: str
) -> None:
    url = f"{PG_DSN}?schema={schema}"
    cli("migrate", "--store", url)
    servers = [pg_server(procs, url, f"server{i}", ("--lease-timeout", "3")) for i in range(3)]
    ids_by_server: list[set[str]] = [set(), set(), set()]
    for i in range(6):
        home = i % 3
        order = [servers[(home + k) % 3].worker_address for k in range(3)]
        args = ["worker", "--server", ",".join(order), "--concurrency", "4", "--id", f"w{i}"]
        procs.spawn(f"worker-w{i}", [*args, "--log-level", "info"])
        ids_by_server[home].add(f"w{i}")
    for server, ids in zip(servers, ids_by_server, strict=True):
        wait_until(lambda s=server, w=ids: w <= worker_ids(s), 20, what="workers")

    victim, survivors = servers[0], servers[1:]
    addresses = ",".join(s.address for s in survivors)
    started = time.monotonic()
    with Client(addresses) as client:
        client.submit_many([{"task": "sleep", "args": [0.02]} for _ in range(JOBS)])

        def succeeded() -> int:
            return int(client.stats()["jobs"]["succeeded"])

        wait_until(lambda: succeeded() >= JOBS // 4, 60, what="a quarter done")
        victim.kill()  # SIGKILL, midway
        at_kill = succeeded()
        wait_until(lambda: succeeded() == JOBS, 120, what="every job done")
        assert client.stats()["jobs"]["succeeded"] == JOBS
        moved = {w.id for w in client.workers()}
    elapsed = time.monotonic() - started
    assert ids_by_server[0] <= moved  # the victim's workers failed over
    assert at_kill < JOBS  # the kill really was midway

    per_job = sql(
        f"SELECT j.id, j.state, count(a.*) FILTER (WHERE a.outcome = 'succeeded')"
        f' FROM "{schema}".jobs j LEFT JOIN "{schema}".attempts a ON a.job_id = j.id'
        " GROUP BY j.id, j.state"
    )
    assert len(per_job) == JOBS
    assert all(r[1] == "succeeded" and r[2] == 1 for r in per_job)
    print(f"{JOBS} jobs over 3 brokers, one killed after {at_kill}: {elapsed:.1f} s")


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
