"""Broker, workers and clients in one process, on port 0, through the real protocol."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from integration_waiting import eventually, state_is

from runq.broker import Broker, BrokerConfig
from runq.client import AsyncClient, Client, JobFailed
from runq.clock import FakeClock
from runq.errors import IllegalTransition, ProtocolError, Timeout, UnknownJob
from runq.model import Assignment, JobSpec, JobState, RetryPolicy
from runq.protocol import codec
from runq.protocol import limits as L
from runq.protocol import messages as m
from runq.store.sqlite.store import SqliteStore
from runq.testing import RunningBroker, run_broker
from runq.worker.executors.base import InlineExecutor

S = JobState


class Recorder(InlineExecutor):
    """A user task ("record") that notes the order in which jobs reach the worker."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def knows(self, task: str) -> bool:
        return task == "record"

    def start(self, job: Assignment) -> Any:
        self.seen.append(job.args[0])
        return job.args[0]


class Flaky(InlineExecutor):
    """A user task ("flaky") that fails its first ``failures`` attempts, then succeeds."""

    def __init__(self, failures: int) -> None:
        self.failures = failures

    def knows(self, task: str) -> bool:
        return task == "flaky"

    def start(self, job: Assignment) -> Any:
        if job.attempt <= self.failures:
            raise RuntimeError(f"attempt {job.attempt} failed")
        return f"ok on attempt {job.attempt}"


class Gate(InlineExecutor):
    """A user task ("gate") that finishes only when the test opens its gate."""

    def __init__(self, label: str, open_: bool = False) -> None:
        self.label = label
        self.opened = asyncio.Event()
        if open_:
            self.opened.set()

    def knows(self, task: str) -> bool:
        return task == "gate"

    def start(self, job: Assignment) -> Any:
        async def run() -> str:
            await self.opened.wait()
            return self.label

        return run()


@contextlib.asynccontextmanager
async def fast_retry_broker(tmp_path: Path) -> AsyncIterator[RunningBroker]:
    """Like run_broker, but with a store whose back-off is a millisecond (no src change)."""
    path = tmp_path / "runq.db"
    store = SqliteStore(str(path), retry=RetryPolicy(base=0.002, cap=0.002))
    config = BrokerConfig(port=0, worker_port=0, promote_every=0.01)
    broker = Broker(store, config)
    await broker.start()
    running = RunningBroker(broker, f"sqlite:///{path}")
    try:
        yield running
    finally:
        await running.stop_workers()
        await broker.stop()


# -- the walk-through and the built-ins ---------------------------------------------------


async def test_walk_through(rb: RunningBroker, client: AsyncClient) -> None:
    agent = await rb.add_worker(concurrency=2)
    job_id = await client.submit("wordcount", "the quick brown fox jumps")
    assert await client.result(job_id, timeout=10) == "word count: 5"

    job = await client.get(job_id)
    assert (job.state, job.attempts, job.worker, job.error) == (S.SUCCEEDED, 1, agent.id, None)
    assert job.submitted_at <= job.started_at <= job.finished_at
    stats = await client.stats()
    assert stats["jobs"]["succeeded"] == 1 and stats["workers"] == 1
    (info,) = await client.workers()
    assert (info.id, info.concurrency, info.done) == (agent.id, 2, 1)


@pytest.mark.parametrize(
    ("task", "args", "result"),
    [
        ("echo", ["hello", "world"], "hello world"),
        ("echo", [], ""),
        ("wordcount", ["one two  three\tfour\nfive"], "word count: 5"),
        ("wordcount", [""], "word count: 0"),
        ("charcount", ["a b  c"], "char count: 3"),
        ("charcount", ["hello world"], "char count: 10"),
        ("capitalize", ["hello World"], "HELLO WORLD"),
        ("sleep", ["0.01"], "slept 0.01"),
        ("sleep", [0], "slept 0"),
    ],
)
async def test_builtin_results(
    rb: RunningBroker, client: AsyncClient, task: str, args: list[Any], result: str
) -> None:
    await rb.add_worker(concurrency=1)
    job_id = await client.submit(task, *args)
    assert await client.result(job_id, timeout=10) == result


async def test_the_fail_builtin_fails_with_its_message(
    rb: RunningBroker, client: AsyncClient
) -> None:
    await rb.add_worker(concurrency=1)
    job_id = await client.submit("fail", "on", "purpose", retries=0)
    with pytest.raises(JobFailed, match="task_failed: on purpose") as info:
        await client.result(job_id, timeout=10)
    job = info.value.job
    assert (job.state, job.attempts, job.max_attempts) == (S.FAILED, 1, 1)
    assert job.error is not None
    assert (job.error.code, job.error.message, job.error.retryable) == (
        "task_failed",
        "on purpose",
        True,
    )


@pytest.mark.parametrize(
    ("task", "args", "code"),
    [
        ("no_such_task", [], "unknown_task"),
        ("sleep", ["soon"], "invalid_arguments"),
        ("echo", [{"not": "text"}], "invalid_arguments"),
    ],
)
async def test_a_non_retryable_error_fails_at_once(
    rb: RunningBroker, client: AsyncClient, task: str, args: list[Any], code: str
) -> None:
    await rb.add_worker(concurrency=1)
    job_id = await client.submit(task, *args, retries=5)
    job = await client.wait(job_id, timeout=10)
    assert (job.state, job.attempts, job.max_attempts) == (S.FAILED, 1, 6)
    assert job.error is not None
    assert (job.error.code, job.error.retryable) == (code, False)


async def test_fail_is_retried_up_to_max_attempts(tmp_path: Path) -> None:
    async with fast_retry_broker(tmp_path) as rb, rb.client() as client:
        agent = await rb.add_worker(concurrency=1)
        job_id = await client.submit("fail", retries=2)
        job = await client.wait(job_id, timeout=10)
        assert (job.state, job.attempts, job.max_attempts) == (S.FAILED, 3, 3)
        assert job.error is not None and job.error.code == "task_failed"
        assert agent.done == 3
        assert rb.broker.counters["failed_attempts"] == 3


async def test_a_flaky_task_succeeds_on_a_later_attempt(tmp_path: Path) -> None:
    async with fast_retry_broker(tmp_path) as rb, rb.client() as client:
        await rb.add_worker(concurrency=1, executors=[Flaky(failures=2)])
        job_id = await client.submit("flaky", retries=3)
        assert await client.result(job_id, timeout=10) == "ok on attempt 3"
        job = await client.get(job_id)
        assert (job.attempts, job.error) == (3, None)


# -- routing ------------------------------------------------------------------------------


async def test_a_single_worker_sees_jobs_in_priority_order(
    rb: RunningBroker, client: AsyncClient
) -> None:
    priorities = [0, 5, -2, 5, 100, 0, 7, -2, 5]
    ids = await client.submit_many(
        [{"task": "record", "args": [i], "priority": p} for i, p in enumerate(priorities)]
    )
    recorder = Recorder()
    await rb.add_worker(concurrency=1, executors=[recorder])
    await asyncio.gather(*(client.result(i, timeout=10) for i in ids))
    expected = sorted(range(len(priorities)), key=lambda i: (-priorities[i], i))
    assert recorder.seen == expected


async def test_workers_get_only_jobs_of_their_queues(
    rb: RunningBroker, client: AsyncClient
) -> None:
    a_ids = await client.submit_many(
        [{"task": "echo", "args": [i], "queue": "a"} for i in range(5)]
    )
    b_ids = await client.submit_many(
        [{"task": "echo", "args": [i], "queue": "b"} for i in range(5)]
    )
    worker_a = await rb.add_worker(concurrency=2, queues=["a"])
    for job_id in a_ids:
        job = await client.wait(job_id, timeout=10)
        assert (job.state, job.worker) == (S.SUCCEEDED, worker_a.id)
    for job_id in b_ids:
        job = await client.get(job_id)
        assert (job.state, job.worker, job.attempts) == (S.QUEUED, None, 0)

    worker_b = await rb.add_worker(concurrency=2, queues=["b"])
    for job_id in b_ids:
        job = await client.wait(job_id, timeout=10)
        assert (job.state, job.worker) == (S.SUCCEEDED, worker_b.id)
    assert worker_a.done == 5 and worker_b.done == 5


async def test_a_delayed_job_waits_for_the_clock() -> None:
    clock = FakeClock()
    async with run_broker(clock=clock) as rb, rb.client() as client:
        agent = await rb.add_worker(concurrency=1)
        job_id = await client.submit("echo", "later", delay=60)
        job = await client.get(job_id)
        assert (job.state, job.run_at) == (S.SCHEDULED, clock.now + 60)
        now = await client.submit("echo", "now")
        assert await client.result(now, timeout=10) == "now"
        assert (await client.get(job_id)).state is S.SCHEDULED  # the worker was free

        clock.advance(60)
        assert await client.result(job_id, timeout=10) == "later"
        job = await client.get(job_id)
        assert (job.started_at, job.worker) == (clock.now, agent.id)


async def test_a_retry_waits_out_its_back_off_on_the_broker_clock() -> None:
    clock = FakeClock()
    async with run_broker(clock=clock) as rb, rb.client() as client:
        await rb.add_worker(concurrency=1)
        job_id = await client.submit("fail", "again", retries=1)
        await eventually(
            lambda: state_is(client, job_id, S.SCHEDULED), what="the first attempt to fail"
        )
        job = await client.get(job_id)
        assert job.attempts == 1
        assert clock.now + 0.5 <= job.run_at <= clock.now + 1.0  # default base: 1 s

        clock.advance(1.0)
        job = await client.wait(job_id, timeout=10)
        assert (job.state, job.attempts) == (S.FAILED, 2)
        assert job.error is not None and job.error.message == "again"


# -- cancelling and waiting ---------------------------------------------------------------


async def test_cancel_a_queued_job(rb: RunningBroker, client: AsyncClient) -> None:
    job_id = await client.submit("echo", "never")
    job = await client.cancel(job_id)
    assert (job.state, job.attempts) == (S.CANCELLED, 0)
    with pytest.raises(JobFailed, match="cancelled"):
        await client.result(job_id, timeout=1)

    await rb.add_worker(concurrency=1)
    other = await client.submit("echo", "after")
    assert await client.result(other, timeout=10) == "after"
    job = await client.get(job_id)
    assert (job.state, job.attempts, job.worker) == (S.CANCELLED, 0, None)


async def test_cancel_a_running_job_stops_it_and_frees_the_slot(
    rb: RunningBroker, client: AsyncClient
) -> None:
    agent = await rb.add_worker(concurrency=1)
    job_id = await client.submit("sleep", 60)
    await eventually(lambda: job_id in agent.running, what="the sleep job to start")

    job = await client.cancel(job_id)
    assert (job.state, job.worker, job.attempts) == (S.CANCELLED, agent.id, 1)
    await eventually(lambda: not agent.running, what="the worker to drop the job")

    other = await client.submit("echo", "next")
    assert await client.result(other, timeout=5) == "next"  # the only slot is free again
    (info,) = await client.workers()
    assert info.running == 0
    assert (await client.get(job_id)).state is S.CANCELLED
    assert rb.broker.counters["stale_reports"] == 0


async def test_cancel_twice_is_an_illegal_transition(client: AsyncClient) -> None:
    job_id = await client.submit("echo")
    await client.cancel(job_id)
    with pytest.raises(IllegalTransition, match="already cancelled"):
        await client.cancel(job_id)


async def test_wait_with_a_timeout_raises_timeout(client: AsyncClient) -> None:
    job_id = await client.submit("echo", "nobody runs me")  # no worker
    with pytest.raises(Timeout, match=f"job {job_id} is still queued"):
        await client.wait(job_id, timeout=0.05)
    with pytest.raises(Timeout):
        await client.result(job_id, timeout=0)
    assert (await client.get(job_id)).state is S.QUEUED


async def test_unknown_job_ids_raise_unknown_job(client: AsyncClient) -> None:
    for call in (client.get, client.cancel, client.wait):
        with pytest.raises(UnknownJob, match="no job with id 987654"):
            await call(987654)
    job_id = await client.submit("echo")  # the connection still serves
    assert (await client.get(job_id)).id == job_id


async def test_list_with_an_unknown_state_is_refused_and_the_connection_kept(
    client: AsyncClient,
) -> None:
    with pytest.raises(ProtocolError, match="unknown state 'bogus'"):
        await client.list(state="bogus")
    job_id = await client.submit("echo")
    assert [j.id for j in await client.list(state="queued")] == [job_id]


async def test_the_blocking_client_from_a_thread(rb: RunningBroker) -> None:
    await rb.add_worker(concurrency=1)

    def use() -> tuple[Any, ...]:
        with Client(rb.client_address) as c:
            job_id = c.submit("capitalize", "quiet")
            ids = c.submit_many([{"task": "echo", "args": [i]} for i in range(3)])
            results = [c.result(i, timeout=10) for i in ids]
            return c.result(job_id, timeout=10), results, c.get(job_id).state, len(c.workers())

    assert await asyncio.to_thread(use) == ("QUIET", ["0", "1", "2"], S.SUCCEEDED, 1)


# -- volume and failures ------------------------------------------------------------------


async def test_a_thousand_jobs_over_four_workers_all_succeed_exactly_once(
    rb: RunningBroker, client: AsyncClient
) -> None:
    agents = [await rb.add_worker(concurrency=8) for _ in range(4)]
    ids = await client.submit_many([{"task": "echo", "args": [i]} for i in range(1000)])
    assert len(set(ids)) == 1000

    results = await asyncio.gather(*(client.result(i, timeout=30) for i in ids))
    assert results == [str(i) for i in range(1000)]
    jobs = await client.list(limit=1000)
    assert len(jobs) == 1000
    assert all(j.state is S.SUCCEEDED and j.attempts == 1 for j in jobs)
    assert sum(a.done for a in agents) == 1000
    assert all(a.done > 0 for a in agents)
    assert rb.broker.counters["succeeded"] == 1000
    assert rb.broker.counters["stale_reports"] == 0
    stats = await client.stats()
    assert stats["jobs"]["succeeded"] == 1000 and stats["processed"] == 1000


async def test_a_disconnected_worker_s_job_is_finished_by_another(
    rb: RunningBroker, client: AsyncClient
) -> None:
    first = await rb.add_worker(concurrency=1, worker_id="w-first")
    job_id = await client.submit("sleep", 0.2)
    await eventually(lambda: job_id in first.running, what="the job to start")

    first.stop()  # its connection drops; the broker gives the job back at once
    await eventually(lambda: state_is(client, job_id, S.QUEUED), what="the job to be re-queued")
    second = await rb.add_worker(concurrency=1, worker_id="w-second")
    assert await client.result(job_id, timeout=10) == "slept 0.2"

    job = await client.get(job_id)
    assert (job.worker, job.attempts, job.fence) == ("w-second", 2, 2)
    assert second.done == 1
    assert [w.id for w in await client.workers()] == ["w-second"]


async def test_a_job_past_its_timeout_fails_with_timeout(
    rb: RunningBroker, client: AsyncClient
) -> None:
    agent = await rb.add_worker(concurrency=1)
    job_id = await client.submit("sleep", 60, timeout=0.05, retries=0)
    job = await client.wait(job_id, timeout=10)
    assert (job.state, job.attempts) == (S.FAILED, 1)
    assert job.error is not None
    assert (job.error.code, job.error.retryable) == ("timeout", True)
    assert "0.05" in job.error.message
    assert not agent.running


async def test_an_expired_lease_moves_the_job_and_fences_off_the_late_report() -> None:
    """Given a worker that holds a job but has gone quiet past its lease,
    when the lease sweep runs, the job goes to another worker,
    and the first worker's late report is refused as stale."""
    clock = FakeClock()
    async with run_broker(clock=clock) as rb, rb.client() as client:
        slow_gate = Gate("slow")
        slow = await rb.add_worker(concurrency=1, executors=[slow_gate], worker_id="w-slow")
        job_id = await client.submit("gate")
        await eventually(lambda: job_id in slow.running, what="the slow worker to start")

        clock.advance(rb.broker.config.lease + 1)  # no heartbeat in between: fake time
        await rb.broker.duties.expire_leases(clock())
        job = await client.get(job_id)
        assert (job.state, job.fence) == (S.QUEUED, 1)
        assert job.error is not None and job.error.code == "lease_expired"

        await rb.add_worker(concurrency=1, executors=[Gate("fast", open_=True)])
        assert await client.result(job_id, timeout=10) == "fast"

        slow_gate.opened.set()  # the slow worker finally reports, with the old fence
        await eventually(lambda: rb.broker.counters["stale_reports"] == 1, what="stale report")
        job = await client.get(job_id)
        assert (job.state, job.result, job.attempts, job.fence) == (S.SUCCEEDED, "fast", 2, 2)
        assert job.worker != "w-slow"


async def test_a_second_worker_with_the_same_id_is_refused(rb: RunningBroker) -> None:
    agent = await rb.add_worker(concurrency=1, worker_id="w-one")
    raw = await Raw.connect(rb.broker.worker_port)
    try:
        hello = m.Hello(role="worker", version=L.PROTOCOL_VERSION, worker_id="w-one")
        await raw.send(codec.encode(hello))
        (error,) = await raw.until_closed()
    finally:
        await raw.close()
    assert isinstance(error, m.Error)
    assert error.code == "protocol_error" and "already connected" in error.message
    assert rb.broker.dispatcher.sessions["w-one"].conn.transport is not None
    client = rb.client()
    async with client:
        job_id = await client.submit("echo", "still served")
        assert (await client.wait(job_id, timeout=10)).worker == agent.id


# -- bad input on the wire ----------------------------------------------------------------


class Raw:
    """A bare socket speaking frames, for sending what a real client never would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = codec.client_side()
        self.received: list[Any] = []

    @classmethod
    async def connect(cls, port: int) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def hello(self, role: str = "client") -> None:
        await self.send(codec.encode(m.Hello(role=role, version=L.PROTOCOL_VERSION, worker_id="x")))
        assert isinstance(await self.next(), m.Welcome)

    async def next(self) -> Any:
        while not self.received:
            data = await asyncio.wait_for(self.reader.read(65536), 5)
            if not data:
                raise EOFError("the broker closed the connection")
            self.received += self.decoder.feed(data)
        return self.received.pop(0)

    async def until_closed(self) -> list[Any]:
        """Every message until the broker closes the connection."""
        while True:
            data = await asyncio.wait_for(self.reader.read(65536), 5)
            if not data:
                break
            self.received += self.decoder.feed(data)
        out, self.received = self.received, []
        return out

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(L.HEADER_SIZE, "big") + body


def deep_submit() -> bytes:
    body = msgspec.msgpack.encode(["submit", 1, [{"task": "echo", "args": [None]}]])
    return frame(body[: -len(b"\x91\xc0")] + b"\x91" * 5_000 + b"\xc0")


BAD_INPUT: dict[str, tuple[bool, bytes, str, str]] = {
    # name: (hello first?, bytes sent, error code, error text)
    "garbage frame": (True, frame(b"\xc1\xc1\xc1"), "protocol_error", "malformed frame"),
    "garbage before hello": (False, frame(b"\xc1"), "protocol_error", "malformed frame"),
    "oversized frame": (
        True,
        (L.MAX_FRAME + 1).to_bytes(L.HEADER_SIZE, "big"),  # the body never comes
        "frame_too_large",
        f"exceeds the limit of {L.MAX_FRAME} bytes",
    ),
    "worker message on the client port": (
        True,
        codec.encode(m.Heartbeat([(1, 1)])),
        "protocol_error",
        "message 'heartbeat' is not accepted here",
    ),
    "report on the client port": (
        True,
        codec.encode(m.Report(1, [])),
        "protocol_error",
        "message 'report' is not accepted here",
    ),
    "submit before hello": (
        False,
        codec.encode(m.Submit(1, [JobSpec("echo")])),
        "protocol_error",
        "the first message must be hello",
    ),
    "second hello": (
        True,
        codec.encode(m.Hello(role="client", version=L.PROTOCOL_VERSION)),
        "protocol_error",
        "hello was already sent",
    ),
    "submit with a bad task name": (
        True,
        frame(msgspec.msgpack.encode(["submit", 1, [{"task": "rm -rf /"}]])),
        "protocol_error",
        "invalid message",
    ),
    "submit nested past the recursion limit": (
        True,
        deep_submit(),
        "protocol_error",
        "",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
async def test_bad_input_gets_an_error_frame_and_changes_nothing(
    rb: RunningBroker, client: AsyncClient, case: str
) -> None:
    await rb.add_worker(concurrency=2)
    done = await client.submit("echo", "before")
    await client.result(done, timeout=10)
    waiting = await client.submit("echo", "waiting", queue="idle")
    counts = await rb.broker.store.counts()

    greet, data, code, text = BAD_INPUT[case]
    raw = await Raw.connect(rb.broker.client_port)
    try:
        if greet:
            await raw.hello()
        await raw.send(data)
        replies = await raw.until_closed()
    finally:
        await raw.close()
    assert len(replies) == 1, replies
    (error,) = replies
    assert isinstance(error, m.Error)
    assert (error.req, error.code) == (0, code)
    assert text in error.message

    assert await rb.broker.store.counts() == counts
    assert (await client.get(waiting)).state is S.QUEUED
    after = await client.submit("echo", "after")  # the open client is still served
    assert await client.result(after, timeout=10) == "after"
    async with rb.client() as fresh:  # and new ones are welcome
        assert (await fresh.get(done)).result == "before"


async def test_a_client_hello_on_the_worker_port_is_refused(rb: RunningBroker) -> None:
    raw = await Raw.connect(rb.broker.worker_port)
    try:
        await raw.send(codec.encode(m.Hello(role="client", version=L.PROTOCOL_VERSION)))
        (error,) = await raw.until_closed()
    finally:
        await raw.close()
    assert isinstance(error, m.Error)
    assert (error.code, error.message) == ("auth_error", "this port serves workers, not clients")
    assert rb.broker.dispatcher.sessions == {}


async def test_a_client_message_on_the_worker_port_is_not_accepted(rb: RunningBroker) -> None:
    raw = await Raw.connect(rb.broker.worker_port)
    try:
        await raw.hello(role="worker")
        await raw.send(codec.encode(m.Submit(1, [JobSpec("echo")])))
        (error,) = await raw.until_closed()
    finally:
        await raw.close()
    assert isinstance(error, m.Error)
    assert error.message == "message 'submit' is not accepted here"
    assert await rb.broker.store.counts() == {}


async def test_requests_sent_right_behind_hello_wait_for_the_welcome(
    rb: RunningBroker,
) -> None:
    raw = await Raw.connect(rb.broker.client_port)
    try:
        hello = m.Hello(role="client", version=L.PROTOCOL_VERSION)
        await raw.send(  # one write: the broker reads it all while hello is being served
            codec.encode(hello)
            + codec.encode(m.Submit(1, [JobSpec("echo", args=["x"])]))
            + codec.encode(m.Get(2, 999))
            + codec.encode(m.GetStats(3))
        )
        welcome = await raw.next()
        replies = {r.req: r for r in [await raw.next() for _ in range(3)]}  # any order (§6)
    finally:
        await raw.close()
    assert isinstance(welcome, m.Welcome)
    assert replies[1] == m.Submitted(1, [1])
    assert replies[2] == m.Error(2, "unknown_job", "no job with id 999")
    assert isinstance(replies[3], m.StatsReply)
    job = await rb.broker.store.get(1)
    assert job is not None and job.args == ["x"]


async def test_a_hello_with_another_protocol_version_is_refused(rb: RunningBroker) -> None:
    raw = await Raw.connect(rb.broker.client_port)
    try:
        await raw.send(codec.encode(m.Hello(role="client", version=L.PROTOCOL_VERSION + 1)))
        (error,) = await raw.until_closed()
    finally:
        await raw.close()
    assert isinstance(error, m.Error)
    assert error.code == "protocol_error" and "is not supported" in error.message


async def test_a_waiter_learns_when_a_lost_worker_fails_the_last_attempt(
    rb: RunningBroker, client: AsyncClient
) -> None:
    agent = await rb.add_worker(concurrency=1)
    job_id = await client.submit("sleep", 60, retries=0)
    await eventually(lambda: job_id in agent.running, what="the job to start")
    waiting = asyncio.ensure_future(client.wait(job_id, timeout=30))
    # The broker holds the WAIT (white-box: its table of waiters) before the worker goes.
    await eventually(lambda: job_id in rb.broker._waiters, what="the broker to hold the wait")
    agent.stop()

    job = await asyncio.wait_for(waiting, 5)  # told at once, not at the end of the wait
    assert (job.state, job.attempts) == (S.FAILED, 1)
    assert job.error is not None and job.error.code == "worker_lost"
