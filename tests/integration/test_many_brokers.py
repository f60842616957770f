"""Two brokers in one process over one PostgreSQL schema: a client on A, a worker on B.

PostgreSQL runs at 127.0.0.1:5432 (database ``test``, user ``postgres``, trust auth);
each test gets its own schema, dropped afterwards. Without the server these tests skip,
except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from integration_pg import PG_DSN, postgres_or_skip

from runq.client import AsyncClient
from runq.client.transport import parse_server, parse_servers
from runq.errors import ConfigError
from runq.model import Assignment, JobState
from runq.store.postgres.listen import decode
from runq.store.postgres.store import PostgresStore
from runq.testing import RunningBroker, run_broker
from runq.worker import Agent, WorkerConfig
from runq.worker.executors.base import InlineExecutor


class Stamp(InlineExecutor):
    """A task ("stamp") that notes when each job reached the worker."""

    def __init__(self) -> None:
        self.seen: dict[int, float] = {}
        self.arrived = asyncio.Event()

    def knows(self, task: str) -> bool:
        return task == "stamp"

    def start(self, job: Assignment) -> Any:
        self.seen[job.id] = time.perf_counter()
        self.arrived.set()
        return job.id


@pytest.fixture
async def pair(store_url: str) -> AsyncIterator[tuple[RunningBroker, RunningBroker]]:
    async with run_broker(store_url=store_url) as a, run_broker(store_url=store_url) as b:
        yield a, b


async def listening(rb: RunningBroker) -> None:
    store = rb.broker.store
    assert isinstance(store, PostgresStore) and store.listener is not None
    await asyncio.wait_for(store.listener.up.wait(), 10)


async def test_a_job_submitted_on_a_runs_on_a_worker_of_b_and_wait_on_a_returns(
    pair: tuple[RunningBroker, RunningBroker],
) -> None:
    a, b = pair
    stamp = Stamp()
    await b.add_worker(concurrency=4, executors=[stamp])
    async with a.client() as client:
        ids = await client.submit_many([{"task": "stamp", "args": []} for _ in range(50)])
        done = await asyncio.gather(*(client.wait(i, timeout=10) for i in ids))
    assert [j.state for j in done] == [JobState.SUCCEEDED] * 50
    assert set(stamp.seen) == set(ids)
    assert a.broker.dispatcher.sessions == {}  # A has no worker: B ran everything


async def test_a_queue_paused_on_a_stops_on_b_and_resumes_there_too(
    pair: tuple[RunningBroker, RunningBroker],
) -> None:
    # Given: a worker on B, and queue "slow" paused through A.
    a, b = pair
    stamp = Stamp()
    await b.add_worker(concurrency=2, queues=("slow",), executors=[stamp])
    async with a.client() as client:
        assert (await client.pause("slow")).paused
        await asyncio.sleep(1.2)  # B reads the paused queues at least once a second
        assert b.broker.paused_queues == {"slow"}
        # When: a job goes to "slow", then the queue is resumed through A.
        job_id = await client.submit("stamp", queue="slow")
        await asyncio.sleep(0.5)
        assert (await client.get(job_id)).state is JobState.QUEUED  # B held it
        assert [(q.name, q.paused) for q in await client.queues()] == [("slow", True)]
        await client.resume("slow")
        # Then: B runs it once it has read the resume.
        assert (await client.wait(job_id, timeout=5)).state is JobState.SUCCEEDED
    assert set(stamp.seen) == {job_id}


async def test_workers_and_stats_show_the_whole_cluster(
    pair: tuple[RunningBroker, RunningBroker],
) -> None:
    a, b = pair
    # Given: one worker on each broker, and A's record of its worker in the store.
    await a.add_worker(concurrency=2, worker_id="w-on-a")
    await b.add_worker(concurrency=3, worker_id="w-on-b")
    await b.broker.cluster.publish(b.broker.clock())
    # When: A is asked.
    async with a.client() as client:
        ids = {w.id for w in await client.workers()}
        stats = await client.stats()
    # Then: it answers for both brokers.
    assert ids == {"w-on-a", "w-on-b"}
    assert (stats["workers"], stats["worker_slots"]) == (2, 5)
    # And a broker that stops takes its workers out of the view.
    await b.stop_workers()
    await b.broker.stop()
    async with a.client() as client:
        assert {w.id for w in await client.workers()} == {"w-on-a"}


async def test_stats_warn_about_a_transaction_that_holds_back_vacuum(store_url: str) -> None:
    # Given: someone keeps a transaction open on the database.
    store = PostgresStore(store_url)
    other = await asyncpg.connect(PG_DSN)
    try:
        assert await store.warnings(older_than=0.2) == []
        idle = other.transaction()
        await idle.start()
        await other.fetchval("SELECT 1")
        await asyncio.sleep(0.5)
        # When / Then: the store names it.
        (text,) = await store.warnings(older_than=0.2)
        assert "a transaction has been open for" in text and "idle in transaction" in text
        assert str(other.get_server_pid()) in text
        await idle.rollback()
        assert await store.warnings(older_than=0.2) == []
    finally:
        await other.close()
        await store.close()


async def test_brokers_keep_the_database_clock(store_url: str) -> None:
    # The offset to PostgreSQL's clock is measured (here both run on one host: ~0).
    store = PostgresStore(store_url)
    try:
        assert abs(await store.clock_offset()) < 0.5
    finally:
        await store.close()
    # A broker puts every time it writes on the store's clock.
    async with run_broker(store_url=store_url) as rb:
        rb.broker._offset = 100.0  # as if this host's clock were 100 s behind the database
        async with rb.client() as client:
            job = await client.get(await client.submit("echo", "t"))
        assert abs(job.submitted_at - (time.time() + 100.0)) < 5


async def test_cross_broker_wake_up_is_under_50_ms(
    pair: tuple[RunningBroker, RunningBroker],
) -> None:
    a, b = pair
    await asyncio.gather(listening(a), listening(b))
    stamp = Stamp()
    await b.add_worker(concurrency=1, executors=[stamp])
    latencies = []
    async with a.client() as client:
        for _ in range(20):
            await asyncio.sleep(0.05)  # B's worker idle, its queue marked empty
            stamp.arrived.clear()
            sent = time.perf_counter()
            job_id = await client.submit("stamp")
            await asyncio.wait_for(stamp.arrived.wait(), 2)
            latencies.append(stamp.seen[job_id] - sent)
    median, worst = statistics.median(latencies), max(latencies)
    print(f"cross-broker submit->start: median {median * 1000:.1f} ms, max {worst * 1000:.1f} ms")
    assert median < 0.05, latencies


async def test_without_the_listen_connection_claims_still_happen_within_a_second(
    pair: tuple[RunningBroker, RunningBroker],
) -> None:
    a, b = pair
    await listening(b)
    store = b.broker.store
    assert isinstance(store, PostgresStore) and store.listener is not None
    await store.listener.stop()  # B hears nothing from A any more
    stamp = Stamp()
    await b.add_worker(concurrency=1, executors=[stamp])
    await asyncio.sleep(0.2)
    async with a.client() as client:
        sent = time.perf_counter()
        job_id = await client.submit("stamp")
        await asyncio.wait_for(stamp.arrived.wait(), 3)
        assert stamp.seen[job_id] - sent < 1.5
        assert (await client.wait(job_id, timeout=5)).state is JobState.SUCCEEDED


async def test_the_listen_connection_comes_back_after_it_is_killed(
    pair: tuple[RunningBroker, RunningBroker],
) -> None:
    a, b = pair
    await listening(b)
    conn = await postgres_or_skip()
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"
            " AND query LIKE $1",
            f"%{b.store_url.split('schema=')[1]}%",
        )
    finally:
        await conn.close()
    store = b.broker.store
    assert isinstance(store, PostgresStore) and store.listener is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while store.listener.up.is_set() and loop.time() < deadline:
        await asyncio.sleep(0.01)
    await listening(b)
    stamp = Stamp()
    await b.add_worker(concurrency=1, executors=[stamp])
    async with AsyncClient(a.client_address) as client:
        job_id = await client.submit("stamp")
        assert (await client.wait(job_id, timeout=5)).state is JobState.SUCCEEDED


class Gate(InlineExecutor):
    """A task ("gate") that finishes when the test opens the gate."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.started: set[int] = set()

    def knows(self, task: str) -> bool:
        return task == "gate"

    async def start(self, job: Assignment) -> Any:
        self.started.add(job.id)
        await self.opened.wait()
        return job.id


async def test_a_worker_fails_over_to_the_next_broker_and_keeps_its_running_job(
    store_url: str,
) -> None:
    gate = Gate()
    async with run_broker(store_url=store_url) as b, run_broker(store_url=store_url) as a:
        config = WorkerConfig(
            queues=("default",),
            concurrency=2,
            servers=(a.worker_address, b.worker_address),
            reconnect_min=0.01,
        )
        agent = Agent(config, [gate])
        task = asyncio.ensure_future(agent.run())
        try:
            await asyncio.wait_for(agent.connected.wait(), 5)
            async with AsyncClient(f"{a.client_address},{b.client_address}") as client:
                job_id = await client.submit("gate")
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 5
                while job_id not in gate.started and loop.time() < deadline:
                    await asyncio.sleep(0.01)
                assert job_id in gate.started
                await a.broker.stop()  # the worker's broker (and the client's) goes
                deadline = loop.time() + 5
                while agent.id not in b.broker.dispatcher.sessions:
                    assert loop.time() < deadline, "the worker did not move to B"
                    await asyncio.sleep(0.01)
                gate.opened.set()
                # the client moves to B for new requests
                job = await client.wait(job_id, timeout=10)
                assert job.state is JobState.SUCCEEDED
                assert [h.outcome for h in job.history] == ["succeeded"]
                assert client.port == b.broker.client_port
        finally:
            agent.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def test_a_comma_list_of_servers_parses_in_order_and_one_address_is_as_before() -> None:
    assert parse_servers("a:1,b,[::1]:3", 9) == [("a", 1), ("b", 9), ("::1", 3)]
    assert parse_server("a:1", 9) == ("a", 1)
    with pytest.raises(ConfigError):
        parse_servers(" , ", 9)


def test_notification_payloads_decode_and_unknown_ones_are_ignored() -> None:
    assert decode('r["a","b,c"]') == ("r", {"a", "b,c"})
    assert decode("f[1,2]") == ("f", [1, 2])
    assert decode("r*") == ("r", None)
    assert decode("f*") == ("f", None)
    assert decode("fnot json") == ("f", None)
    assert decode("x[1]") == ("", None)
