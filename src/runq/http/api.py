"""The REST API under /api/v1: submit, read, list, cancel and retry jobs; stats,
workers and queues. Each route checks its input, calls one broker operation, answers."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.params import Parameter

from runq.broker import Broker
from runq.broker import operations as ops
from runq.broker.activity import KEEP, Point
from runq.model import Job, JobState
from runq.model.spec import JobSpec
from runq.protocol import limits as L
from runq.protocol import messages as m

from .schemas import JobPage, QueueInfo, Retried, RetryFailed, SubmitBatch, Submitted

JobIdParam = Annotated[int, Parameter(ge=1, le=2**62, description="a job id")]


class Jobs(Controller):
    path = "/jobs"
    tags = ["jobs"]

    @post("/", summary="Submit one job", status_code=201)
    async def submit(self, broker: Broker, data: JobSpec) -> Job:
        [job_id] = await ops.submit(broker, [data])
        return await ops.get(broker, job_id)

    @post("/batch", summary="Submit many jobs in one transaction", status_code=201)
    async def submit_batch(self, broker: Broker, data: SubmitBatch) -> Submitted:
        return Submitted(await ops.submit(broker, data.jobs))

    @get("/{job_id:int}", summary="One job: state, args, result, error and attempts")
    async def one(self, broker: Broker, job_id: JobIdParam) -> Job:
        return await ops.get(broker, job_id)

    @get("/", summary="Jobs, newest first, a page at a time")
    async def list(
        self,
        broker: Broker,
        job_state: Annotated[
            JobState | None, Parameter(query="state", description="only jobs in this state")
        ] = None,
        queue: Annotated[str | None, Parameter(max_length=200)] = None,
        task: Annotated[str | None, Parameter(max_length=200)] = None,
        key: Annotated[str | None, Parameter(max_length=200, description="idempotency key")] = None,
        since: Annotated[
            float | None, Parameter(ge=0, le=2**40, description="submitted at or after (epoch s)")
        ] = None,
        until: Annotated[
            float | None, Parameter(ge=0, le=2**40, description="submitted before (epoch s)")
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=L.MAX_LIST)] = 50,
        cursor: Annotated[
            int | None, Parameter(ge=1, description="the `next` of the previous page")
        ] = None,
    ) -> JobPage:
        found = await broker.store.list_jobs(
            job_state, queue, limit + 1, cursor, task=task, key=key, since=since, until=until
        )
        jobs = found[:limit]
        more = len(found) > limit
        return JobPage(jobs, jobs[-1].id if more and jobs else None)

    @post("/{job_id:int}/cancel", summary="Cancel a job that has not finished", status_code=200)
    async def cancel(self, broker: Broker, job_id: JobIdParam) -> Job:
        return await ops.cancel(broker, job_id)

    @post("/{job_id:int}/retry", summary="Queue a failed job again", status_code=200)
    async def retry(self, broker: Broker, job_id: JobIdParam) -> Job:
        await ops.retry(broker, job_id, None)
        return await ops.get(broker, job_id)

    @post("/retry-failed", summary="Queue every failed job (of one queue) again", status_code=200)
    async def retry_failed(self, broker: Broker, data: RetryFailed) -> Retried:
        return Retried(await ops.retry(broker, None, data.queue))


@get("/stats", tags=["cluster"], summary="Counts, throughput and warnings")
async def stats(broker: Broker) -> dict[str, Any]:
    return await broker.stats()


@get("/workers", tags=["cluster"], summary="Every worker of every broker on the store")
async def workers(broker: Broker) -> list[m.WorkerInfo]:
    return await broker.cluster.workers()


@get("/queues", tags=["queues"], summary="Every queue with its job counts by state")
async def queues(broker: Broker) -> list[QueueInfo]:
    counts = await broker.store.counts()
    names = sorted(set(counts) | broker.paused_queues)
    return [QueueInfo(n, counts.get(n, {}), n in broker.paused_queues) for n in names]


QueueName = Annotated[str, Parameter(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:@/-]+$")]


@post(
    "/queues/{name:str}/pause", tags=["queues"], summary="Stop dispatching a queue", status_code=200
)
async def pause(broker: Broker, name: QueueName) -> QueueInfo:
    await ops.pause_queue(broker, name, True)
    return QueueInfo(name, (await broker.store.counts()).get(name, {}), True)


@post(
    "/queues/{name:str}/resume", tags=["queues"], summary="Dispatch a queue again", status_code=200
)
async def resume(broker: Broker, name: QueueName) -> QueueInfo:
    await ops.pause_queue(broker, name, False)
    return QueueInfo(name, (await broker.store.counts()).get(name, {}), False)


@get(
    "/activity",
    tags=["cluster"],
    summary="Jobs submitted, started, succeeded and failed per minute",
)
async def activity(
    broker: Broker, minutes: Annotated[int, Parameter(ge=1, le=KEEP)] = KEEP
) -> list[Point]:
    return broker.activity.series(broker.clock(), minutes)


ROUTES: list[Any] = [Jobs, stats, workers, queues, pause, resume, activity]
