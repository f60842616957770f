"""The REST API under /api/v1: submit, read, list, cancel and retry jobs; stats,
workers and queues. Each route checks its input, calls one broker operation, answers."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.openapi import ResponseSpec
from litestar.params import Parameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from runq.broker import operations as ops
from runq.broker.access import check_job
from runq.broker.activity import KEEP, Point
from runq.model import Job, JobState
from runq.model.spec import JobSpec
from runq.protocol import limits as L
from runq.protocol import messages as m

from .access import check_submit, grant_of
from .bodies import read
from .deps import BrokerDep, JobIdParam
from .errors import ERRORS
from .schemas import JobPage, MergedJob, Retried, RetryFailed, SubmitBatch, Submitted, storable

SUBMIT_RESPONSES = {
    **ERRORS,
    200: ResponseSpec(
        MergedJob,
        description="The job was already there (its idempotency key was used, or it is a"
        " unique job whose unfinished twin was submitted less than unique_for ago): no new"
        " job was made; `merged` is true",
    ),
}


class Jobs(Controller):
    path = "/jobs"
    tags = ["jobs"]

    @post(
        "/",
        summary="Submit one job",
        status_code=201,
        responses=SUBMIT_RESPONSES,
        opt={"access": "submit"},
    )
    async def submit(self, broker: BrokerDep, request: Request[Any, Any, Any]) -> Response[Job]:
        data = await read(request, JobSpec)
        check_submit(request, [data.queue])
        storable(data, "the job")
        ids = await ops.submit(broker, [data])
        job = await ops.get(broker, ids[0])
        if ids.merged:  # the job was already there: no new one was made
            return Response(MergedJob.of(job), status_code=HTTP_200_OK)
        return Response(job, status_code=HTTP_201_CREATED)

    @post(
        "/batch",
        summary="Submit many jobs in one transaction",
        status_code=201,
        responses=ERRORS,
        opt={"access": "submit"},
    )
    async def submit_batch(self, broker: BrokerDep, request: Request[Any, Any, Any]) -> Submitted:
        data = await read(request, SubmitBatch)
        check_submit(request, {spec.queue for spec in data.jobs})
        storable(data, "the batch")
        ids = await ops.submit(broker, data.jobs)
        return Submitted(ids, ids.merged)

    @get(
        "/{job_id:int}",
        summary="One job: state, args, result, error and attempts",
        responses=ERRORS,
        opt={"access": "job"},
    )
    async def one(
        self, broker: BrokerDep, job_id: JobIdParam, request: Request[Any, Any, Any]
    ) -> Job:
        await check_job(broker, grant_of(request), job_id)
        return await ops.get(broker, job_id)

    @get("/", summary="Jobs, newest first, a page at a time", responses=ERRORS)
    async def list(
        self,
        broker: BrokerDep,
        job_state: Annotated[
            JobState | None, QueryParameter(name="state", description="only jobs in this state")
        ] = None,
        queue: Annotated[str | None, Parameter(max_length=200)] = None,
        task: Annotated[str | None, Parameter(max_length=200)] = None,
        key: Annotated[str | None, Parameter(max_length=200, description="idempotency key")] = None,
        since: Annotated[
            float | None, Parameter(le=2**40, description="submitted at or after (epoch s)")
        ] = None,
        until: Annotated[
            float | None, Parameter(le=2**40, description="submitted before (epoch s)")
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

    @post(
        "/{job_id:int}/cancel",
        summary="Cancel a job that has not finished",
        status_code=200,
        responses=ERRORS,
        opt={"access": "cancel"},
    )
    async def cancel(
        self, broker: BrokerDep, job_id: JobIdParam, request: Request[Any, Any, Any]
    ) -> Job:
        await check_job(broker, grant_of(request), job_id)
        return await ops.cancel(broker, job_id)

    @post(
        "/{job_id:int}/retry", summary="Queue a failed job again", status_code=200, responses=ERRORS
    )
    async def retry(self, broker: BrokerDep, job_id: JobIdParam) -> Job:
        await ops.retry(broker, job_id, None)
        return await ops.get(broker, job_id)

    @post(
        "/retry-failed",
        summary="Queue every failed job (of one queue) again",
        status_code=200,
        responses=ERRORS,
    )
    async def retry_failed(self, broker: BrokerDep, request: Request[Any, Any, Any]) -> Retried:
        data = await read(request, RetryFailed)
        return Retried(await ops.retry(broker, None, data.queue))


@get("/stats", tags=["cluster"], summary="Counts, throughput and warnings", responses=ERRORS)
async def stats(broker: BrokerDep) -> dict[str, Any]:
    return await broker.stats()


@get(
    "/workers",
    tags=["cluster"],
    summary="Every worker of every broker on the store",
    responses=ERRORS,
)
async def workers(broker: BrokerDep) -> list[m.WorkerInfo]:
    return await broker.cluster.workers()


@get(
    "/queues", tags=["queues"], summary="Every queue with its job counts by state", responses=ERRORS
)
async def queues(broker: BrokerDep) -> list[m.QueueInfo]:
    return await ops.queues(broker)


QueueName = Annotated[str, Parameter(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:@/-]+$")]


@post(
    "/queues/{name:str}/pause",
    tags=["queues"],
    summary="Stop dispatching a queue",
    status_code=200,
    responses=ERRORS,
)
async def pause(broker: BrokerDep, name: QueueName) -> m.QueueInfo:
    return await _pause(broker, name, True)


@post(
    "/queues/{name:str}/resume",
    tags=["queues"],
    summary="Dispatch a queue again",
    status_code=200,
    responses=ERRORS,
)
async def resume(broker: BrokerDep, name: QueueName) -> m.QueueInfo:
    return await _pause(broker, name, False)


async def _pause(broker: BrokerDep, name: str, paused: bool) -> m.QueueInfo:
    await ops.pause_queue(broker, name, paused)
    own = await broker.store.retention_overrides()
    kept = own.get(name, broker.config.retention)
    return m.QueueInfo(name, (await broker.store.counts()).get(name, {}), paused, kept, name in own)


@get(
    "/activity",
    tags=["cluster"],
    summary="Jobs submitted, started, succeeded and failed per minute",
    responses=ERRORS,
)
async def activity(
    broker: BrokerDep, minutes: Annotated[int, Parameter(ge=1, le=KEEP)] = KEEP
) -> list[Point]:
    return broker.activity.series(broker.clock(), minutes)


ROUTES: list[Any] = [Jobs, stats, workers, queues, pause, resume, activity]
