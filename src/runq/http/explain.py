"""Why a job is not running yet over HTTP: GET /api/v1/jobs/{id}/explain answers one
sentence (the broker operation `runq explain` calls)."""

from __future__ import annotations

import msgspec
from litestar import get

from runq.broker import operations as ops

from .deps import BrokerDep, JobIdParam
from .errors import ERRORS


class Explanation(msgspec.Struct, frozen=True):
    id: int
    text: str  # one sentence: why the job is not running yet, or what it does instead


@get(
    "/jobs/{job_id:int}/explain",
    tags=["jobs"],
    summary="Why a job is not running yet, in one sentence",
    responses=ERRORS,
)
async def explain(broker: BrokerDep, job_id: JobIdParam) -> Explanation:
    return Explanation(job_id, await ops.explain(broker, job_id))


ROUTES = [explain]
