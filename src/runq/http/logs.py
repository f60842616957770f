"""A job's output over HTTP: GET /api/v1/jobs/{id}/logs?after=SEQ answers the lines past
``after`` with the job's state and progress; poll again with ``next`` to follow it."""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.params import Parameter

from runq.broker import operations as ops
from runq.model.output import MAX_LINES, JobLogs

from .deps import MAX_JSON_INT, BrokerDep, JobIdParam
from .errors import ERRORS


@get(
    "/jobs/{job_id:int}/logs",
    tags=["jobs"],
    summary="A job's output lines past a seq, with its state and progress",
    responses=ERRORS,
)
async def job_logs(
    broker: BrokerDep,
    job_id: JobIdParam,
    after: Annotated[
        int, Parameter(ge=0, le=MAX_JSON_INT, description="the `next` of the previous answer")
    ] = 0,
    limit: Annotated[int, Parameter(ge=1, le=MAX_LINES)] = MAX_LINES,
) -> JobLogs:
    return await ops.logs(broker, job_id, after, limit)


ROUTES = [job_logs]
