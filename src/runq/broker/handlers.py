"""Request handlers, routed by message type. Each checks, calls one operation, replies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runq.broker import access, files, retention, tokens
from runq.broker import operations as ops
from runq.protocol import messages as m

if TYPE_CHECKING:
    from runq.broker.connection import Connection, Handler
    from runq.broker.server import Broker


# -- client port ------------------------------------------------------------------------


async def submit(broker: Broker, conn: Connection, msg: m.Submit) -> None:
    ids = await ops.submit(broker, msg.jobs)
    conn.send(m.Submitted(msg.req, ids, ids.merged))


async def get(broker: Broker, conn: Connection, msg: m.Get) -> None:
    await access.check_job(broker, conn.grant, msg.id)
    conn.send(m.JobReply(msg.req, await ops.get(broker, msg.id)))


async def wait(broker: Broker, conn: Connection, msg: m.Wait) -> None:
    await access.check_job(broker, conn.grant, msg.id)
    job = await broker.wait_for(msg.id, msg.timeout)
    conn.send(m.JobReply(msg.req, job))


async def list_jobs(broker: Broker, conn: Connection, msg: m.ListJobs) -> None:
    state = ops.parse_state(msg.state)
    jobs = await broker.store.list_jobs(state, msg.queue, msg.limit, msg.before)
    conn.send(m.JobList(msg.req, jobs))


async def cancel(broker: Broker, conn: Connection, msg: m.Cancel) -> None:
    await access.check_job(broker, conn.grant, msg.id)
    conn.send(m.JobReply(msg.req, await ops.cancel(broker, msg.id)))


async def retry(broker: Broker, conn: Connection, msg: m.Retry) -> None:
    conn.send(m.Retried(msg.req, await ops.retry(broker, msg.id, msg.queue)))


async def stats(broker: Broker, conn: Connection, msg: m.GetStats) -> None:
    conn.send(m.StatsReply(msg.req, await broker.stats()))


async def workers(broker: Broker, conn: Connection, msg: m.ListWorkers) -> None:
    conn.send(m.WorkerList(msg.req, await broker.cluster.workers()))


async def queues(broker: Broker, conn: Connection, msg: m.ListQueues) -> None:
    conn.send(m.QueueList(msg.req, await ops.queues(broker)))


async def read_logs(broker: Broker, conn: Connection, msg: m.ReadLogs) -> None:
    conn.send(m.LogsReply(msg.req, await ops.logs(broker, msg.id, msg.after, msg.limit)))


async def pause(broker: Broker, conn: Connection, msg: m.PauseQueue) -> None:
    await ops.pause_queue(broker, msg.queue, msg.paused)
    conn.send(m.QueueList(msg.req, [q for q in await ops.queues(broker) if q.name == msg.queue]))


async def add_schedule(broker: Broker, conn: Connection, msg: m.AddSchedule) -> None:
    conn.send(m.ScheduleList(msg.req, [await ops.add_schedule(broker, msg.schedule)]))


async def list_schedules(broker: Broker, conn: Connection, msg: m.ListSchedules) -> None:
    conn.send(m.ScheduleList(msg.req, await ops.schedules(broker)))


async def remove_schedule(broker: Broker, conn: Connection, msg: m.RemoveSchedule) -> None:
    conn.send(m.ScheduleList(msg.req, [await ops.remove_schedule(broker, msg.name)]))


async def pause_schedule(broker: Broker, conn: Connection, msg: m.PauseSchedule) -> None:
    found = await ops.pause_schedule(broker, msg.name, msg.paused)
    conn.send(m.ScheduleList(msg.req, [found]))


async def set_retention(broker: Broker, conn: Connection, msg: m.SetRetention) -> None:
    await retention.set_retention(broker, msg.queue, msg.retention, msg.reset)
    found = [q for q in await ops.queues(broker) if q.name == msg.queue]
    empty = m.QueueInfo(msg.queue, {}, retention=broker.config.retention)  # reset, no jobs
    conn.send(m.QueueList(msg.req, found or [empty]))


async def purge(broker: Broker, conn: Connection, msg: m.Purge) -> None:
    gone = await retention.purge(broker, msg.older_than, msg.state, msg.queue)
    conn.send(m.Purged(msg.req, gone))


async def explain(broker: Broker, conn: Connection, msg: m.Explain) -> None:
    conn.send(m.Explanation(msg.req, msg.id, await ops.explain(broker, msg.id)))


async def make_token(broker: Broker, conn: Connection, msg: m.MakeToken) -> None:
    made = await tokens.create(broker, msg.scopes, msg.name, msg.ttl)
    conn.send(m.TokenMade(msg.req, made.info, made.text))


async def list_tokens(broker: Broker, conn: Connection, msg: m.ListTokens) -> None:
    conn.send(m.TokenList(msg.req, await broker.store.tokens()))


async def revoke_token(broker: Broker, conn: Connection, msg: m.RevokeToken) -> None:
    info = await tokens.revoke(broker, msg.token)
    conn.send(m.TokenList(msg.req, [info]))
    tokens.close_connections(broker, info.id)  # this one too, once it has its answer


# -- files (both ports: inputs from clients, artifacts from workers) -------------------


async def open_upload(broker: Broker, conn: Connection, msg: m.OpenUpload) -> None:
    info = await files.open_upload(broker, conn, msg.name, msg.size, msg.sha256)
    conn.send(m.UploadState(msg.req, info.id, 0))


async def open_artifact(broker: Broker, conn: Connection, msg: m.OpenArtifact) -> None:
    attempt = (msg.job, msg.fence)
    info = await files.open_upload(broker, conn, msg.name, msg.size, msg.sha256, attempt)
    conn.send(m.UploadState(msg.req, info.id, 0))


async def resume_upload(broker: Broker, conn: Connection, msg: m.ResumeUpload) -> None:
    info = await files.resume(broker, conn, msg.blob)
    conn.send(m.UploadState(msg.req, info.id, info.size if info.complete else info.received))


async def upload_chunk(broker: Broker, conn: Connection, msg: m.UploadChunk) -> None:
    received = await files.write(broker, conn, msg.blob, msg.offset, msg.data)
    conn.send(m.UploadState(msg.req, msg.blob, received))


async def finish_upload(broker: Broker, conn: Connection, msg: m.FinishUpload) -> None:
    conn.send(m.Uploaded(msg.req, await files.finish(broker, conn, msg.blob)))


async def read_file(broker: Broker, conn: Connection, msg: m.ReadFile) -> None:
    data, info = await files.read(broker, conn, msg.blob, msg.offset, msg.length, msg.job)
    conn.send(m.FileData(msg.req, info.id, msg.offset, data, info.size))


# -- worker port ------------------------------------------------------------------------


async def task_schedules(broker: Broker, conn: Connection, msg: m.TaskSchedules) -> None:
    await ops.declare_schedules(broker, msg.schedules)


async def report(broker: Broker, conn: Connection, msg: m.Report) -> None:
    session = conn.session
    assert session is not None
    for outcome in msg.outcomes:
        session.inflight.pop(outcome.id, None)
    broker.dispatcher.wake()  # room was made: claim more while the report commits
    if session.output_lock.locked():  # the lines the job wrote before it ended go first
        async with session.output_lock:
            pass
    res = await ops.report(broker, session.id, msg.outcomes)
    conn.send(m.Reported(msg.seq))
    session.done += len(res.accepted)


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
    broker.metrics.forget(job_id for job_id, _ in msg.running)
    queues = await broker.store.release(session.id, msg.running, broker.clock())
    conn.send(m.Reported(msg.seq))
    if queues:
        broker.dispatcher.wake(queues)


async def output(broker: Broker, conn: Connection, msg: m.Output) -> None:
    session = conn.session
    assert session is not None
    async with session.output_lock:
        await broker.store.append_output(session.id, msg.batches, broker.clock())


async def set_limit(broker: Broker, conn: Connection, msg: m.SetRateLimit) -> None:
    await ops.set_rate_limit(broker, msg.limit)
    conn.send(m.RateLimitList(msg.req, [msg.limit]))


async def remove_limit(broker: Broker, conn: Connection, msg: m.RemoveRateLimit) -> None:
    removed = await ops.remove_rate_limit(broker, msg.scope, msg.name)
    conn.send(m.RateLimitList(msg.req, [removed]))


async def list_limits(broker: Broker, conn: Connection, msg: m.ListRateLimits) -> None:
    conn.send(m.RateLimitList(msg.req, await broker.store.rate_limits()))


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
    m.ListQueues: queues,
    m.PauseQueue: pause,
    m.ReadLogs: read_logs,
    m.AddSchedule: add_schedule,
    m.ListSchedules: list_schedules,
    m.RemoveSchedule: remove_schedule,
    m.PauseSchedule: pause_schedule,
    m.SetRateLimit: set_limit,
    m.RemoveRateLimit: remove_limit,
    m.ListRateLimits: list_limits,
    m.SetRetention: set_retention,
    m.Purge: purge,
    m.Explain: explain,
    m.MakeToken: make_token,
    m.ListTokens: list_tokens,
    m.RevokeToken: revoke_token,
    m.OpenUpload: open_upload,
    m.ResumeUpload: resume_upload,
    m.UploadChunk: upload_chunk,
    m.FinishUpload: finish_upload,
    m.ReadFile: read_file,
}

WORKER_HANDLERS: dict[type, Handler] = {
    m.Report: report,
    m.Heartbeat: heartbeat,
    m.Drain: drain,
    m.Release: release,
    m.Status: status,
    m.Output: output,
    m.TaskSchedules: task_schedules,
    m.OpenArtifact: open_artifact,
    m.ResumeUpload: resume_upload,
    m.UploadChunk: upload_chunk,
    m.FinishUpload: finish_upload,
    m.ReadFile: read_file,
}
