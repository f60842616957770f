"""What a client may ask for, with the bounds every value must keep.

msgspec checks these bounds while it decodes, so a bad value is refused at the edge.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from runq.model.files import MAX_FILES, FileRef

DEFAULT_QUEUE: Final = "default"
COMMAND_TASK: Final = "runq.command"  # the task name of command jobs
DEFAULT_MAX_ATTEMPTS: Final = 3
MAX_NAME: Final = 200
MAX_ATTEMPTS: Final = 1_000
MAX_PRIORITY: Final = 1_000_000
TEN_YEARS: Final = 10 * 365 * 86400.0

Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME, pattern=r"^[A-Za-z0-9_.:@/-]+$")]
Key = Annotated[str, Meta(min_length=1, max_length=MAX_NAME)]
MAX_JOB_ID: Final = 2**62
JobId = Annotated[int, Meta(ge=1, le=MAX_JOB_ID)]
MAX_AFTER: Final = 1_000  # jobs one job may depend on
Priority = Annotated[int, Meta(ge=-MAX_PRIORITY, le=MAX_PRIORITY)]
Attempts = Annotated[int, Meta(ge=1, le=MAX_ATTEMPTS)]
Seconds = Annotated[float, Meta(ge=0, le=TEN_YEARS)]
Timeout = Annotated[float, Meta(gt=0, le=TEN_YEARS)]
Timestamp = Annotated[float, Meta(ge=0, le=2**40)]
MAX_CONCURRENT: Final = 100_000  # a concurrency key's bound
MaxConcurrent = Annotated[int, Meta(ge=1, le=MAX_CONCURRENT)]
UniqueMode = Literal["merge", "refuse"]  # what a unique job's twin gets: its id, or an error


class JobSpec(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """One job as a client submits it. ``delay`` is relative, ``run_at`` absolute."""

    task: Name
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    queue: Name = DEFAULT_QUEUE
    priority: Priority = 0
    run_at: Timestamp | None = None
    delay: Seconds | None = None
    max_attempts: Attempts = DEFAULT_MAX_ATTEMPTS
    timeout: Timeout | None = None
    key: Key | None = None
    backoff: Annotated[float, Meta(gt=0, le=86400)] | None = None  # retry back-off base, s
    # a unique job: a twin submitted within this many seconds, while this job has not
    # finished, is merged into it or refused (model/unique.py)
    unique_for: Timeout | None = None
    unique_mode: UniqueMode = "merge"
    # dependencies (model/deps.py): wait until these jobs have succeeded (after_any:
    # finished, however they ended); pass_results puts their results in kwargs["previous"]
    after: Annotated[list[JobId], Meta(max_length=MAX_AFTER)] = []
    after_any: bool = False
    pass_results: bool = False
    # flow control: jobs sharing a concurrency key run at most max_concurrent at a time,
    # over every worker and broker (both or neither; docs/scheduling.md)
    concurrency_key: Key | None = None
    max_concurrent: MaxConcurrent | None = None
    files: Annotated[list[FileRef], Meta(max_length=MAX_FILES)] = []  # uploaded inputs

    def __post_init__(self) -> None:
        if self.after and self.unique_for is not None:
            raise ValueError("a job with dependencies (after) cannot also be unique")
        if (self.concurrency_key is None) != (self.max_concurrent is None):
            raise ValueError("concurrency_key and max_concurrent go together")

    def ready_at(self, now: float) -> float:
        """When the job may first run."""
        if self.run_at is not None:
            return max(self.run_at, now) if self.delay is None else self.run_at + self.delay
        return now + (self.delay or 0.0)


def validate(spec: JobSpec) -> JobSpec:
    """Check the bounds of a spec built in Python (decoding checks them already)."""
    return msgspec.convert(msgspec.to_builtins(spec), JobSpec)
