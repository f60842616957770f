"""Workers over HTTP: claim jobs (long-polling), heartbeat them, complete or fail them,
each with its fence, under the same leases as native workers. For workers written in
any language; see examples/http-worker.sh."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, post
from litestar.openapi import ResponseSpec

from runq.broker import operations as ops
from runq.errors import Conflict, StaleFence
from runq.model import ErrorInfo, Outcome
from runq.protocol import limits as L

from .access import check_queues, check_work_job
from .bodies import read
from .deps import BrokerDep, JobIdParam
from .errors import ERRORS
from .schemas import (
    Claimed,
    ClaimRequest,
    Complete,
    Failure,
    Lease,
    Leased,
    Reported,
    WorkItem,
    storable,
)


def _check_worker(broker: BrokerDep, worker: str) -> None:
    if worker in broker.dispatcher.sessions:
        raise Conflict(f"worker id {worker!r} belongs to a connected native worker")


class Work(Controller):
    path = "/work"
    tags = ["work"]

    @post(
        "/claim",
        summary="Claim ready jobs, waiting up to `wait` seconds; 204 when there is none",
        status_code=200,
        responses={**ERRORS, 204: ResponseSpec(None, description="No job became ready in time")},
        opt={"access": "work"},
    )
    async def claim(
        self, broker: BrokerDep, request: Request[Any, Any, Any]
    ) -> Response[Claimed | None]:
        data = await read(request, ClaimRequest)
        check_queues(request, data.queues)
        _check_worker(broker, data.worker)
        queues = list(dict.fromkeys(data.queues))[: L.MAX_QUEUES]
        wait = min(data.wait, broker.config.max_claim_wait)
        jobs = await ops.claim(broker, data.worker, queues, data.limit, wait)
        if not jobs:
            return Response(None, status_code=204)
        lease_until = broker.clock() + broker.config.lease
        items = [
            WorkItem(
                j.id,
                j.fence,
                j.task,
                j.args,
                j.kwargs,
                j.attempt,
                j.max_attempts,
                j.timeout,
                lease_until,
            )
            for j in jobs
        ]
        return Response(Claimed(items))

    @post(
        "/{job_id:int}/heartbeat",
        summary="Extend the lease of a running job",
        status_code=200,
        responses=ERRORS,
        opt={"access": "work"},
    )
    async def heartbeat(
        self, broker: BrokerDep, job_id: JobIdParam, request: Request[Any, Any, Any]
    ) -> Leased:
        data = await read(request, Lease)
        await check_work_job(request, broker, job_id)
        lost = await ops.heartbeat(broker, data.worker, [(job_id, data.fence)])
        if lost:
            raise StaleFence(
                f"job {job_id} is no longer held by {data.worker} with fence {data.fence}:"
                " stop running it"
            )
        return Leased(job_id, broker.clock() + broker.config.lease)

    @post(
        "/{job_id:int}/complete",
        summary="Report a job's success and result",
        status_code=200,
        responses=ERRORS,
        opt={"access": "work"},
    )
    async def complete(
        self, broker: BrokerDep, job_id: JobIdParam, request: Request[Any, Any, Any]
    ) -> Reported:
        data = await read(request, Complete)
        await check_work_job(request, broker, job_id)
        storable(data.result, "the result")
        outcome = Outcome(job_id, data.fence, True, data.result)
        return await _report(broker, data.worker, outcome)

    @post(
        "/{job_id:int}/fail",
        summary="Report a failed attempt",
        status_code=200,
        responses=ERRORS,
        opt={"access": "work"},
    )
    async def fail(
        self, broker: BrokerDep, job_id: JobIdParam, request: Request[Any, Any, Any]
    ) -> Reported:
        data = await read(request, Failure)
        await check_work_job(request, broker, job_id)
        error = ErrorInfo(data.code, data.message, data.retryable, data.traceback)
        outcome = Outcome(job_id, data.fence, False, error=error)
        return await _report(broker, data.worker, outcome)


async def _report(broker: BrokerDep, worker: str, outcome: Outcome) -> Reported:
    res = await ops.report(broker, worker, [outcome])
    if not res.accepted:
        raise StaleFence(
            f"report for job {outcome.id} refused: it is not running for {worker}"
            f" with fence {outcome.fence}"
        )
    job = await ops.get(broker, outcome.id)
    return Reported(job.id, job.state.value)
