"""Faults, in one process: silent and lost workers, stale reports, retries and the
dead-letter set, timeouts, cancels, graceful stops of workers and brokers, lost answers
and bad input on the worker port.

Where time decides (leases), a FakeClock moves and the test runs the broker's duties
itself; elsewhere the test polls for what another task makes true, briefly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from integration_waiting import eventually, state_is

from runq.broker import Broker, BrokerConfig
from runq.client import AsyncClient
from runq.client.transport import Transport
from runq.clock import FakeClock
from runq.errors import IllegalTransition, Unavailable, UnknownJob
from runq.model import Assignment, ErrorInfo, Job, JobSpec, JobState, Outcome
from runq.protocol import codec
from runq.protocol import limits as L
from runq.protocol import messages as m
from runq.store.sqlite.store import SqliteStore
from runq.testing import RunningBroker, run_broker
from runq.worker.executors.base import InlineExecutor

S = JobState
NO_SUCH_JOB = 999_999


@contextlib.asynccontextmanager
async def quick_broker(tmp_path: Path) -> AsyncIterator[RunningBroker]:
    """Like run_broker, but promoting scheduled jobs every 10 ms (retries wait out short
    back-offs on the real clock without waiting for a 250 ms sweep)."""
    path = tmp_path / "runq.db"
    config = BrokerConfig(port=0, worker_port=0, promote_every=0.01)
    broker = Broker(SqliteStore(str(path)), config)
    await broker.start()
    running = RunningBroker(broker, f"sqlite:///{path}")
    try:
        yield running
    finally:
        await running.stop_workers()
        await broker.stop()


def outcomes_of(job: Job) -> list[str | None]:
    return [a.outcome for a in job.history]


class RawWorker:
    """A worker speaking frames by hand: it says hello, takes assignments, and sends only
    what the test tells it to (no heartbeats, no reports of its own)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = codec.worker_side()
        self.received: list[Any] = []

    @classmethod
    async def connect(
        cls,
        port: int,
        worker_id: str,
        concurrency: int = 1,
        queues: Sequence[str] = ("default",),
        running: Sequence[tuple[int, int]] = (),
    ) -> RawWorker:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        raw = cls(reader, writer)
        hello = m.Hello(
            role="worker",
            version=L.PROTOCOL_VERSION,
            worker_id=worker_id,
            queues=list(queues),
            concurrency=concurrency,
            running=list(running),
        )
        await raw.send(hello)
        await raw.expect(m.Welcome)
        return raw

    async def send(self, msg: Any) -> None:
        self.writer.write(codec.encode(msg))
        await self.writer.drain()

    async def expect(self, kind: type[Any], timeout: float = 5.0) -> Any:
        """The first message of type ``kind`` (others stay in ``received``)."""
        async with asyncio.timeout(timeout):
            while True:
                for n, msg in enumerate(self.received):
                    if isinstance(msg, kind):
                        return self.received.pop(n)
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError(f"the broker closed the connection before a {kind.__name__}")
                self.received += self.decoder.feed(data)

    async def assignment(self) -> Assignment:
        (job,) = (await self.expect(m.Assign)).jobs
        return job

    async def report(self, seq: int, *outcomes: Outcome) -> None:
        """Send one report and wait for the broker's acknowledgement of it."""
        await self.send(m.Report(seq, list(outcomes)))
        assert (await self.expect(m.Reported)).seq == seq

    async def until_closed(self, timeout: float = 5.0) -> list[Any]:
        """Every message until the broker closes the connection."""
        async with asyncio.timeout(timeout):
            while data := await self.reader.read(65536):
                self.received += self.decoder.feed(data)
        out, self.received = self.received, []
        return out

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


class FailFirst(InlineExecutor):
    """A user task ("once") that fails the first time each job runs, then succeeds."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def knows(self, task: str) -> bool:
        return task == "once"

    def start(self, job: Assignment) -> Any:
        if job.id not in self.seen:
            self.seen.add(job.id)
            raise RuntimeError("first run fails")
        return f"ok {job.args[0]}"


class QuickSleep(InlineExecutor):
    """Takes over the `sleep` built-in on one worker: returns at once."""

    def knows(self, task: str) -> bool:
        return task == "sleep"

    def start(self, job: Assignment) -> Any:
        return "quick"


# -- leases and fences ----------------------------------------------------------------------


async def test_a_silent_worker_loses_its_job_and_its_late_report_is_refused() -> None:
    """Given a worker that stays connected but never heartbeats nor reports,
    when its lease runs out, the job goes back to the queue, the broker hangs up on the
    silent worker and another worker runs the job;
    then the silent worker's late report (old fence) is refused and counted as stale."""
    clock = FakeClock()
    async with run_broker(clock=clock, lease=10.0) as rb, rb.client() as client:
        silent = await RawWorker.connect(rb.broker.worker_port, "w-silent")
        job_id = await client.submit("echo", "hello")
        assigned = await silent.assignment()
        assert (assigned.id, assigned.fence, assigned.attempt) == (job_id, 1, 1)

        await rb.broker.duties.expire_leases(clock.advance(9))  # within the lease
        assert (await client.get(job_id)).state is S.RUNNING

        await rb.broker.duties.expire_leases(clock.advance(2))  # past it, not a word heard
        job = await client.get(job_id)
        assert (job.state, job.fence, job.attempts, job.lease_until) == (S.QUEUED, 1, 1, None)
        assert job.error is not None and job.error.code == "lease_expired"
        assert outcomes_of(job) == ["lease_expired"]
        await silent.until_closed()  # the broker no longer trusts that connection
        await silent.close()
        assert rb.broker.counters["lease_expiries"] == 1

        await rb.add_worker(concurrency=1, worker_id="w-other")
        assert await client.result(job_id, timeout=5) == "hello"
        job = await client.get(job_id)
        assert (job.worker, job.fence, job.attempts) == ("w-other", 2, 2)
        assert outcomes_of(job) == ["lease_expired", "succeeded"]

        # The silent worker comes back, still believing it runs the job.
        sessions = rb.broker.dispatcher.sessions
        await eventually(lambda: "w-silent" not in sessions, what="the old session to go")
        late = await RawWorker.connect(
            rb.broker.worker_port, "w-silent", running=[(job_id, assigned.fence)]
        )
        try:
            assert (await late.expect(m.CancelJobs)).ids == [job_id]  # it holds it no more
            await late.report(1, Outcome(job_id, assigned.fence, True, "late"))
        finally:
            await late.close()
        assert (await client.stats())["stale_reports"] == 1
        after = await client.get(job_id)
        assert (after.state, after.result, after.worker, after.fence) == (
            S.SUCCEEDED,
            "hello",
            "w-other",
            2,
        )
        assert after.history == job.history


async def test_a_report_with_an_old_fence_is_refused_after_a_requeue(
    rb: RunningBroker, client: AsyncClient
) -> None:
    """Given a job re-queued when its worker's connection dropped and claimed again by
    the same worker id, a report carrying the first fence is refused, before and after
    the report with the current fence is accepted; the accepted result stands."""
    port = rb.broker.worker_port
    first = await RawWorker.connect(port, "w-raw")
    job_id = await client.submit("echo", "x")
    old = await first.assignment()
    await first.close()
    await eventually(lambda: state_is(client, job_id, S.QUEUED), what="the requeue")

    second = await RawWorker.connect(port, "w-raw")  # same worker id, a new connection
    try:
        new = await second.assignment()
        assert (new.id, new.fence, new.attempt) == (job_id, old.fence + 1, 2)

        await second.report(1, Outcome(job_id, old.fence, True, "old"))
        job = await client.get(job_id)
        assert (job.state, job.fence, job.result) == (S.RUNNING, new.fence, None)

        await second.report(2, Outcome(job_id, new.fence, True, "new"))
        await second.report(3, Outcome(job_id, old.fence, False, None, ErrorInfo("e", "old")))
        await second.report(4, Outcome(job_id, new.fence, True, "again"))
    finally:
        await second.close()
    job = await client.get(job_id)
    assert (job.state, job.result, job.error, job.attempts) == (S.SUCCEEDED, "new", None, 2)
    assert outcomes_of(job) == ["worker_lost", "succeeded"]
    assert rb.broker.counters["stale_reports"] == 3
    assert rb.broker.counters["succeeded"] == 1


async def test_a_returning_worker_hears_its_welcome_before_any_assignment(
    rb: RunningBroker, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a worker that comes over from a broker that died, with a job it still runs,
    and a job ready here; when a dispatch round runs while this broker is still
    extending the worker's leases (its hello is not done), then the worker hears its
    welcome first and its assignment after it. (An assignment ahead of the welcome made
    the worker hang up, and the broker put the jobs it still ran back in the queue.)"""
    job_id = await client.submit("echo", "ready")
    store = rb.broker.store
    real_extend = store.extend_leases
    extending, go_on = asyncio.Event(), asyncio.Event()

    async def extend_then_wait(*args: Any) -> list[int]:
        extending.set()
        await go_on.wait()
        return await real_extend(*args)

    monkeypatch.setattr(store, "extend_leases", extend_then_wait)
    raw = RawWorker(*await asyncio.open_connection("127.0.0.1", rb.broker.worker_port))
    try:
        await raw.send(
            m.Hello(
                role="worker",
                version=L.PROTOCOL_VERSION,
                worker_id="w-back",
                queues=["default"],
                concurrency=1,
                running=[(NO_SUCH_JOB, 1)],
            )
        )
        await asyncio.wait_for(extending.wait(), 5)
        await rb.broker.dispatcher._round()  # a round while the hello waits on the store
        go_on.set()
        async with asyncio.timeout(5):
            while not raw.received:
                raw.received += raw.decoder.feed(await raw.reader.read(65536))
        assert isinstance(raw.received[0], m.Welcome), raw.received
        assert (await raw.expect(m.CancelJobs)).ids == [NO_SUCH_JOB]  # it holds it no more
        assert (await raw.assignment()).id == job_id
    finally:
        await raw.close()


# -- retries and the dead-letter set ------------------------------------------------------


async def test_fail_is_retried_with_back_off_then_ends_failed(tmp_path: Path) -> None:
    base = 0.1
    async with quick_broker(tmp_path) as rb, rb.client() as client:
        await rb.add_worker(concurrency=1)
        job_id = await client.submit("fail", "nope", retries=2, backoff=base)
        job = await client.wait(job_id, timeout=10)
    assert (job.state, job.attempts, job.max_attempts) == (S.FAILED, 3, 3)
    assert job.error is not None and (job.error.code, job.error.message) == ("task_failed", "nope")
    assert outcomes_of(job) == ["failed"] * 3
    assert [a.attempt for a in job.history] == [1, 2, 3]
    assert [a.fence for a in job.history] == [1, 2, 3]
    assert all(a.error is not None and a.error.code == "task_failed" for a in job.history)
    for n, (prev, nxt) in enumerate(zip(job.history, job.history[1:], strict=False), start=1):
        lower = base * 2 ** (n - 1) / 2  # the least back-off after attempt n
        assert prev.finished_at is not None
        assert nxt.started_at - prev.finished_at >= lower - 1e-6, (n, prev, nxt)
        assert nxt.started_at - prev.started_at >= lower - 1e-6
    assert job.finished_at == job.history[-1].finished_at


async def test_failed_jobs_are_retried_by_hand(rb: RunningBroker, client: AsyncClient) -> None:
    """Failed jobs (the dead-letter set) go back with fresh attempts, one by id or all of a
    queue, and run again; a retry that makes no sense raises and changes nothing."""
    once = FailFirst()
    await rb.add_worker(concurrency=3, queues=["a", "b"], executors=[once])
    one, two, three = await client.submit_many(
        [
            {"task": "once", "args": ["one"], "queue": "a", "max_attempts": 1},
            {"task": "once", "args": ["two"], "queue": "a", "max_attempts": 1},
            {"task": "once", "args": ["three"], "queue": "b", "max_attempts": 1},
        ]
    )
    for job_id in (one, two, three):
        job = await client.wait(job_id, timeout=5)
        assert (job.state, job.attempts) == (S.FAILED, 1)
    await rb.stop_workers()  # so that the retried jobs can be seen waiting

    assert await client.retry(one) == one
    job = await client.get(one)
    assert (job.state, job.attempts, job.finished_at, job.lease_until) == (S.QUEUED, 0, None, None)
    assert await client.retry_failed("a") == [two]
    assert (await client.get(two)).state is S.QUEUED
    assert (await client.get(three)).state is S.FAILED  # another queue
    assert await client.retry_failed() == [three]
    assert await client.retry_failed() == []

    await rb.add_worker(concurrency=3, queues=["a", "b"], executors=[once])
    for job_id, name in ((one, "one"), (two, "two"), (three, "three")):
        assert await client.result(job_id, timeout=5) == f"ok {name}"
        job = await client.get(job_id)
        assert (job.attempts, job.fence) == (1, 2)  # attempts started over
        assert outcomes_of(job) == ["failed", "succeeded"]
        assert [a.attempt for a in job.history] == [1, 1]

    before = [await client.get(i) for i in (one, two, three)]
    counts = await rb.broker.store.counts()
    with pytest.raises(IllegalTransition, match="only failed jobs can be retried"):
        await client.retry(one)
    with pytest.raises(UnknownJob, match=f"no job with id {NO_SUCH_JOB}"):
        await client.retry(NO_SUCH_JOB)
    assert [await client.get(i) for i in (one, two, three)] == before
    assert await rb.broker.store.counts() == counts


async def test_a_job_retried_during_a_dispatch_round_is_still_dispatched(
    rb: RunningBroker, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a dispatch round whose claim ran just before a retry by hand committed,
    when the round ends after the retry was answered, the retried job still reaches the
    worker (the round must not mark its queue empty)."""
    await rb.add_worker(concurrency=1, queues=["b"])
    failed = await client.submit("fail", queue="b", retries=0)
    assert (await client.wait(failed, timeout=5)).state is S.FAILED
    await rb.stop_workers()
    ready = await client.submit("echo", "a1", queue="a")
    await client.submit("echo", "later", queue="b", delay=3600)  # "b" is not known empty

    store = rb.broker.store
    real_claim = store.claim
    parked, go_on = asyncio.Event(), asyncio.Event()

    async def claim_then_wait(*args: Any) -> list[Assignment]:
        jobs = await real_claim(*args)  # the claim runs before the retry commits...
        if not go_on.is_set():
            parked.set()
            await go_on.wait()  # ...and its round ends after the retry was answered
        return jobs

    monkeypatch.setattr(store, "claim", claim_then_wait)
    await rb.add_worker(concurrency=3, queues=["a", "b"])
    await asyncio.wait_for(parked.wait(), 5)
    assert await client.retry_failed("b") == [failed]
    go_on.set()

    assert await client.result(ready, timeout=5) == "a1"
    job = await client.wait(failed, timeout=3)  # runs again (and fails again)
    assert (job.attempts, outcomes_of(job)) == (1, ["failed", "failed"])


async def test_a_job_past_its_timeout_fails_with_timeout_and_is_retried(
    tmp_path: Path,
) -> None:
    async with quick_broker(tmp_path) as rb, rb.client() as client:
        agent = await rb.add_worker(concurrency=1)
        job_id = await client.submit("sleep", 5, timeout=0.2, retries=1, backoff=0.01)
        job = await client.wait(job_id, timeout=10)
        assert not agent.running
    assert (job.state, job.attempts) == (S.FAILED, 2)
    assert job.error is not None and (job.error.code, job.error.retryable) == ("timeout", True)
    assert outcomes_of(job) == ["failed", "failed"]
    for attempt in job.history:
        assert attempt.error is not None and attempt.error.code == "timeout"
        assert attempt.finished_at is not None
        assert 0.2 - 1e-3 <= attempt.finished_at - attempt.started_at < 2.0


# -- cancel ---------------------------------------------------------------------------------


async def test_cancel_a_running_job(rb: RunningBroker, client: AsyncClient) -> None:
    agent = await rb.add_worker(concurrency=1)
    job_id = await client.submit("sleep", 60)
    await eventually(lambda: job_id in agent.running, what="the job to start")

    job = await client.cancel(job_id)
    assert (job.state, job.lease_until) == (S.CANCELLED, None)
    assert job.finished_at is not None
    await eventually(lambda: job_id not in agent.running, timeout=1, what="the worker to stop it")
    job = await client.get(job_id)
    assert (job.state, job.attempts) == (S.CANCELLED, 1)
    assert outcomes_of(job) == ["cancelled"]

    with pytest.raises(IllegalTransition, match="already cancelled"):
        await client.cancel(job_id)
    done = await client.submit("echo", "done")
    assert await client.result(done, timeout=5) == "done"  # the slot is free again
    finished = await client.get(done)
    with pytest.raises(IllegalTransition, match="already succeeded"):
        await client.cancel(done)
    assert await client.get(done) == finished
    assert await client.get(job_id) == job
    assert rb.broker.counters["stale_reports"] == 0  # the cancelled sleep never reported


# -- graceful stops -------------------------------------------------------------------------


async def test_a_draining_worker_finishes_short_jobs_and_hands_back_long_ones(
    rb: RunningBroker, client: AsyncClient
) -> None:
    draining = await rb.add_worker(concurrency=2, worker_id="w-draining")
    short = await client.submit("sleep", 0.3)
    long_ = await client.submit("sleep", 30)
    await eventually(lambda: {short, long_} <= set(draining.running), what="both to start")

    stopping = asyncio.ensure_future(draining.shutdown(grace=1.0))
    session = rb.broker.dispatcher.sessions["w-draining"]
    await eventually(lambda: session.draining, what="the broker to see the drain")
    job = await client.wait(short, timeout=5)
    assert (job.state, job.worker, job.result) == (S.SUCCEEDED, "w-draining", "slept 0.3")
    # A slot is free now, but a draining worker gets nothing new.
    later = await client.submit_many([{"task": "echo", "args": [i]} for i in range(3)])
    await asyncio.wait_for(stopping, 5)

    job = await client.get(long_)
    assert (job.state, job.attempts, job.fence, job.lease_until) == (S.QUEUED, 0, 1, None)
    assert outcomes_of(job) == ["released"]
    assert job.history[0].worker == "w-draining"
    for job_id in later:
        job = await client.get(job_id)
        assert (job.state, job.history) == (S.QUEUED, [])

    await rb.add_worker(concurrency=2, worker_id="w-second", executors=[QuickSleep()])
    assert await client.result(long_, timeout=5) == "quick"
    job = await client.get(long_)
    assert (job.worker, job.attempts, job.fence) == ("w-second", 1, 2)
    assert outcomes_of(job) == ["released", "succeeded"]
    for job_id in later:
        assert (await client.wait(job_id, timeout=5)).worker == "w-second"
    assert draining.done == 1
    assert rb.broker.counters["stale_reports"] == 0


async def test_a_graceful_broker_stop_waits_for_running_jobs(tmp_path: Path) -> None:
    path = tmp_path / "runq.db"
    async with run_broker(store_url=f"sqlite:///{path}") as rb, rb.client() as client:
        agent = await rb.add_worker(concurrency=1)
        job_id = await client.submit("sleep", 0.3)
        await eventually(lambda: job_id in agent.running, what="the job to start")

        loop = asyncio.get_running_loop()
        started = loop.time()
        stopping = asyncio.ensure_future(rb.broker.stop(grace=10.0))
        await eventually(lambda: not rb.broker.accepting, what="the broker to start stopping")
        with pytest.raises(Unavailable):
            await client.submit("echo", "too late")
        await asyncio.wait_for(stopping, 10)
        took = loop.time() - started
        assert 0.1 < took < 5.0, took  # it waited for the report, not for the whole grace

    store = SqliteStore(str(path))
    try:
        job = await store.get(job_id)
        assert job is not None
        assert (job.state, job.result, job.attempts) == (S.SUCCEEDED, "slept 0.3", 1)
        assert await store.counts() == {"default": {"succeeded": 1}}
    finally:
        await store.close()


# -- keyed submits and lost connections -----------------------------------------------------


async def test_a_keyed_submit_whose_answer_is_lost_is_stored_once(
    rb: RunningBroker, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a broker that commits a keyed submit and then loses the connection before
    answering, the client sends it again and gets the same id; one job exists."""
    store = rb.broker.store
    real_submit = store.submit_many
    answers: list[list[int]] = []

    async def commit_then_hang_up(specs: Sequence[JobSpec], now: float) -> list[int]:
        ids = await real_submit(specs, now)
        answers.append(ids)
        if len(answers) == 1:  # committed, but the answer never reaches the client
            for conn in list(rb.broker.connections):
                if conn.role == "client":
                    conn.close()
        return ids

    monkeypatch.setattr(store, "submit_many", commit_then_hang_up)
    job_id = await client.submit("echo", "once", key="order-7")
    assert answers == [[job_id], [job_id]]  # sent twice, stored once
    assert [j.id for j in await store.list_jobs() if j.key == "order-7"] == [job_id]
    assert await store.counts() == {"default": {"queued": 1}}

    unkeyed = await client.submit("echo", "plain")
    assert answers[-1] == [unkeyed] and len(answers) == 3  # no resend without a key


@pytest.mark.parametrize("how", ["submit", "submit_many"])
async def test_a_keyed_submit_gets_through_a_broker_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Given a keyed job stored by one broker, a submit of the same key made while the
    broker restarts on the same store rides out the restart and gets the same id."""
    path = tmp_path / "runq.db"
    first = Broker(SqliteStore(str(path)), BrokerConfig(port=0, worker_port=0))
    await first.start()
    port = first.client_port
    tries: list[bool] = []
    real_open = Transport.open

    async def counting_open(*args: Any) -> Transport:
        try:
            proto = await real_open(*args)
        except BaseException:
            tries.append(False)
            raise
        tries.append(True)
        return proto

    monkeypatch.setattr(Transport, "open", counting_open)
    client = AsyncClient(f"127.0.0.1:{port}")
    second: Broker | None = None
    try:
        job_id = await client.submit("echo", "a", key="k-restart")
        await first.stop()
        if how == "submit":
            again = asyncio.ensure_future(client.submit("echo", "a", key="k-restart"))
        else:
            spec = {"task": "echo", "args": ["a"], "key": "k-restart"}
            again = asyncio.ensure_future(client.submit_many([spec]))
        await eventually(lambda: False in tries, what="a failed connection attempt")
        second = Broker(SqliteStore(str(path)), BrokerConfig(port=port, worker_port=0))
        await second.start()
        answer = await asyncio.wait_for(again, 10)
        assert answer == (job_id if how == "submit" else [job_id])
        assert await second.store.counts() == {"default": {"queued": 1}}
    finally:
        await client.close()
        if second is not None:
            await second.stop()
        await first.stop()


# -- bad input on the worker port -----------------------------------------------------------


async def test_bad_reports_on_the_worker_port_change_nothing(
    rb: RunningBroker, client: AsyncClient
) -> None:
    port = rb.broker.worker_port
    raw = await RawWorker.connect(port, "w-raw", concurrency=2)
    job_id = await client.submit("echo", "mine")
    held = await raw.assignment()
    idle = await client.submit("echo", "idle", queue="idle", delay=60)
    store = rb.broker.store
    counts = await store.counts()
    jobs = {i: await client.get(i) for i in (job_id, idle)}

    # Reports for unknown ids, wrong fences and jobs the worker does not hold: all stale.
    await raw.report(
        1,
        Outcome(NO_SUCH_JOB, 1, True, "nobody"),
        Outcome(job_id, held.fence + 1, True, "future fence"),
        Outcome(job_id, 0, False, None, ErrorInfo("task_failed", "no fence")),
        Outcome(idle, 1, True, "not running"),
    )
    assert (await client.stats())["stale_reports"] == 4
    # Heartbeats and hand-backs of what it does not hold change nothing either.
    await raw.send(m.Heartbeat([(NO_SUCH_JOB, 1), (idle, 1)]))
    assert (await raw.expect(m.CancelJobs)).ids == [NO_SUCH_JOB, idle]
    await raw.send(m.Release(2, [(job_id, held.fence + 1), (NO_SUCH_JOB, 1)]))
    assert (await raw.expect(m.Reported)).seq == 2

    # A client's message on the worker port: an error, and the connection is closed.
    rude = await RawWorker.connect(port, "w-rude", queues=["nothing-here"])
    await rude.send(m.Submit(1, [JobSpec("echo")]))
    (error,) = await rude.until_closed()
    await rude.close()
    assert isinstance(error, m.Error)
    assert (error.code, error.message) == (
        "protocol_error",
        "message 'submit' is not accepted here",
    )

    # Cancel, retry and get of ids that do not exist.
    for ask in (client.cancel, client.retry, client.get):
        with pytest.raises(UnknownJob, match=f"no job with id {NO_SUCH_JOB}"):
            await ask(NO_SUCH_JOB)

    assert await store.counts() == counts
    assert {i: await client.get(i) for i in jobs} == jobs
    assert (await client.stats())["stale_reports"] == 4

    # The well-behaved part of the conversation still works.
    await raw.report(3, Outcome(job_id, held.fence, True, "mine"))
    await raw.close()
    assert await client.result(job_id, timeout=5) == "mine"
    assert rb.broker.counters["stale_reports"] == 4
