"""Request bodies, decoded strictly by msgspec as on the native port: a string is not a
number and 0 is not false. (Litestar's own conversion is lenient.) Each route that takes
a body names its type in BODIES, which also puts the body's schema in the document."""

from __future__ import annotations

from typing import Any, Final, TypeVar

import msgspec
from litestar import Request

from runq.errors import ProtocolError
from runq.model import JobSpec
from runq.model.flow import RateLimit
from runq.model.schedule import ScheduleSpec

from . import schemas as s

T = TypeVar("T")


class Malformed(ProtocolError):
    """The body is not JSON at all (400; a body of the wrong shape is 422)."""


# (method, path) -> the type of its JSON body
BODIES: Final[dict[tuple[str, str], type[msgspec.Struct]]] = {
    ("post", "/api/v1/jobs"): JobSpec,
    ("post", "/api/v1/jobs/batch"): s.SubmitBatch,
    ("post", "/api/v1/jobs/retry-failed"): s.RetryFailed,
    ("post", "/api/v1/work/claim"): s.ClaimRequest,
    ("post", "/api/v1/schedules"): ScheduleSpec,
    ("put", "/api/v1/limits"): RateLimit,
    ("post", "/api/v1/work/{job_id}/heartbeat"): s.Lease,
    ("post", "/api/v1/work/{job_id}/complete"): s.Complete,
    ("post", "/api/v1/work/{job_id}/fail"): s.Failure,
}


async def read(request: Request[Any, Any, Any], type_: type[T]) -> T:
    raw = await request.body()
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        raise ProtocolError(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise Malformed(f"the body is not JSON: {exc}") from None
