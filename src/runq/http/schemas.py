"""Bodies of HTTP requests and replies that are not already model types.

The model's ``JobSpec`` (a submit) and ``Job`` (a job as stored) travel as they are;
msgspec checks every bound while it decodes a request, as it does on the native port.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from runq.errors import ProtocolError
from runq.model import Job
from runq.model.spec import JobSpec, Name
from runq.protocol import limits as L

_encoder = msgspec.msgpack.Encoder()


def storable(value: object, what: str) -> None:
    """Refuse JSON the store cannot keep: integers beyond 64 bits (JSON has no bound)."""
    try:
        _encoder.encode(value)
    except OverflowError:
        raise ProtocolError(
            f"{what} holds an integer beyond 64 bits; send such numbers as strings"
        ) from None


Wait = Annotated[float, Meta(ge=0, le=60)]  # the broker waits at most its max_claim_wait
Fence = Annotated[int, Meta(ge=0, le=2**53 - 1)]


class SubmitBatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    jobs: Annotated[list[JobSpec], Meta(min_length=1, max_length=L.MAX_BATCH)]


class Submitted(msgspec.Struct, frozen=True):
    ids: list[int]
    # positions (from 0) answered with a job that was already there: an idempotency key
    # already used, or a unique job's unfinished twin
    merged: list[int] = []


class MergedJob(Job, frozen=True):
    """The job that was already there (a used idempotency key, or a unique job's
    unfinished twin), answered with 200 instead of 201."""

    merged: bool = True

    @classmethod
    def of(cls, job: Job) -> MergedJob:
        return cls(**msgspec.structs.asdict(job))


class JobPage(msgspec.Struct, frozen=True):
    jobs: list[Job]
    next: int | None  # pass it as ``cursor`` for the next (older) page; None: no more


class RetryFailed(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    queue: Name | None = None  # None: every queue


class Retried(msgspec.Struct, frozen=True):
    ids: list[int]


class ClaimRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    worker: Name
    queues: Annotated[list[Name], Meta(min_length=1, max_length=L.MAX_QUEUES)] = msgspec.field(
        default_factory=lambda: ["default"]
    )
    limit: Annotated[int, Meta(ge=1, le=1000)] = 1
    wait: Wait = 0.0  # seconds to wait for a job when none is ready


class WorkItem(msgspec.Struct, frozen=True):
    """A claimed job: run it, then complete or fail it with its fence."""

    id: int
    fence: int
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    attempt: int
    max_attempts: int
    timeout: float | None
    lease_until: float  # heartbeat before then, or the job goes back to the queue


class Claimed(msgspec.Struct, frozen=True):
    jobs: list[WorkItem]


class Lease(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    worker: Name
    fence: Fence


class Leased(msgspec.Struct, frozen=True):
    id: int
    lease_until: float


class Complete(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    worker: Name
    fence: Fence
    result: Any = None


class Failure(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    worker: Name
    fence: Fence
    message: Annotated[str, Meta(max_length=L.MAX_ERROR_TEXT)]
    code: Annotated[str, Meta(min_length=1, max_length=100)] = "task_failed"
    retryable: bool = True
    traceback: Annotated[str, Meta(max_length=64 * 1024)] | None = None


class Reported(msgspec.Struct, frozen=True):
    id: int
    state: str  # the job's state after the report
