"""Request handlers, routed by message type. Each checks, calls one operation, replies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runq.errors import ProtocolError, Unavailable, UnknownJob
from runq.model import JobState
from runq.protocol import messages as m

if TYPE_CHECKING:
    from runq.broker.connection import Connection, Handler
    from runq.broker.server import Broker


# -- client port ------------------------------------------------------------------------


async def submit(broker: Broker, conn: Connection, msg: m.Submit) -> None:
    if not broker.accepting:
        raise Unavailable("the broker is shutting down; submit to another broker or retry")
    ids = await broker.store.submit_many(msg.jobs, broker.clock())
    conn.send(m.Submitted(msg.req, ids))
    broker.counters["submitted"] += len(ids)
    broker.dispatcher.wake({spec.queue for spec in msg.jobs})


async def get(broker: Broker, conn: Connection, msg: m.Get) -> None:
    job = await broker.store.get(msg.id)
    if job is None:
        raise UnknownJob.for_id(msg.id)
    conn.send(m.JobReply(msg.req, job))


async def wait(broker: Broker, conn: Connection, msg: m.Wait) -> None:
    job = await broker.wait_for(msg.id, msg.timeout)
    conn.send(m.JobReply(msg.req, job))


async def list_jobs(broker: Broker, conn: Connection, msg: m.ListJobs) -> None:
    state = None
    if msg.state is not None:
        try:
            state = JobState(msg.state)
        except ValueError:
            names = ", ".join(s.value for s in JobState)
            raise ProtocolError(f"unknown state {msg.state!r}; one of {names}") from None
    jobs = await broker.store.list_jobs(state, msg.queue, msg.limit, msg.before)
    conn.send(m.JobList(msg.req, jobs))


async def cancel(broker: Broker, conn: Connection, msg: m.Cancel) -> None:
    before = await broker.store.cancel(msg.id, broker.clock())
    if before.state is JobState.RUNNING and before.worker is not None:
        broker.stop_running(before.worker, [before.id])
    broker.counters["cancelled"] += 1
    broker.job_finished([before.id])
    job = await broker.store.get(msg.id)
    if job is None:  # pragma: no cover - a cancelled job is never deleted here
        raise UnknownJob.for_id(msg.id)
    conn.send(m.JobReply(msg.req, job))


async def retry(broker: Broker, conn: Connection, msg: m.Retry) -> None:
    ids = await broker.store.retry(msg.id, msg.queue, broker.clock())
    conn.send(m.Retried(msg.req, ids))
    if ids:
        broker.counters["retried_by_hand"] += len(ids)
        broker.dispatcher.forget_empty()


async def stats(broker: Broker, conn: Connection, msg: m.GetStats) -> None:
    conn.send(m.StatsReply(msg.req, await broker.stats()))


async def workers(broker: Broker, conn: Connection, msg: m.ListWorkers) -> None:
    conn.send(m.WorkerList(msg.req, await broker.cluster.workers()))


# -- worker port ------------------------------------------------------------------------


async def report(broker: Broker, conn: Connection, msg: m.Report) -> None:
    session = conn.session
    assert session is not None
    for outcome in msg.outcomes:
        session.inflight.pop(outcome.id, None)
    broker.dispatcher.wake()  # room was made: claim more while the report commits
    res = await broker.store.report(session.id, msg.outcomes, broker.clock())
    conn.send(m.Reported(msg.seq))
    session.done += len(res.accepted)
    broker.count_report(msg.outcomes, res)
    if res.requeued_queues:
        broker.dispatcher.wake(res.requeued_queues)


async def heartbeat(broker: Broker, conn: Connection, msg: m.Heartbeat) -> None:
    session = conn.session
    assert session is not None
    lease_until = broker.clock() + broker.config.lease
    lost = await broker.store.extend_leases(session.id, msg.running, lease_until)
    if lost:
        for job_id in lost:
            session.inflight.pop(job_id, None)
        conn.send(m.CancelJobs(lost))


async def drain(broker: Broker, conn: Connection, msg: m.Drain) -> None:
    session = conn.session
    assert session is not None
    session.draining = True


async def release(broker: Broker, conn: Connection, msg: m.Release) -> None:
    session = conn.session
    assert session is not None
    for job_id, _ in msg.running:
        session.inflight.pop(job_id, None)
    queues = await broker.store.release(session.id, msg.running, broker.clock())
    conn.send(m.Reported(msg.seq))
    if queues:
        broker.dispatcher.wake(queues)


async def status(broker: Broker, conn: Connection, msg: m.Status) -> None:
    session = conn.session
    assert session is not None
    session.status = msg


CLIENT_HANDLERS: dict[type, Handler] = {
    m.Submit: submit,
    m.Get: get,
    m.Wait: wait,
    m.ListJobs: list_jobs,
    m.Cancel: cancel,
    m.Retry: retry,
    m.GetStats: stats,
    m.ListWorkers: workers,
}

WORKER_HANDLERS: dict[type, Handler] = {
    m.Report: report,
    m.Heartbeat: heartbeat,
    m.Drain: drain,
    m.Release: release,
    m.Status: status,
}
