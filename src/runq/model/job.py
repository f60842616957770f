"""Job records, their states and the one table of legal transitions."""

from __future__ import annotations

import enum
from typing import Any, Final

import msgspec

from runq.errors import IllegalTransition
from runq.model.files import FileRef


class JobState(enum.StrEnum):
    WAITING = "waiting"  # for the jobs it depends on (JobSpec.after) to finish
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


S = JobState
TRANSITIONS: Final[dict[JobState, frozenset[JobState]]] = {
    # waiting -> cancelled also when a job it depends on fails (model/deps.py)
    S.WAITING: frozenset({S.QUEUED, S.SCHEDULED, S.CANCELLED}),
    S.SCHEDULED: frozenset({S.QUEUED, S.CANCELLED}),
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED}),
    # running -> queued: lost worker or expired lease; running -> scheduled: retry back-off
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED, S.QUEUED, S.SCHEDULED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset({S.QUEUED}),  # retried by hand from the dead-letter set
    S.CANCELLED: frozenset(),
}
TERMINAL_STATES: Final = frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED})


def transition(current: JobState, target: JobState) -> JobState:
    """Return ``target`` if moving there from ``current`` is legal, else raise."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"a {current} job cannot become {target}")
    return target


def sources(target: JobState) -> tuple[JobState, ...]:
    """Every state from which ``target`` may be reached (for guarded writes)."""
    return tuple(s for s, targets in TRANSITIONS.items() if target in targets)


class ErrorInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    """Why an attempt failed: a stable code, a message and whether to retry."""

    code: str
    message: str
    retryable: bool = True
    traceback: str | None = None


class AttemptInfo(msgspec.Struct, frozen=True):
    """One attempt of a job: who ran it, when, and how it ended."""

    attempt: int
    worker: str
    fence: int
    started_at: float
    finished_at: float | None = None
    # succeeded, failed, worker_lost, lease_expired, cancelled, released; None: running
    outcome: str | None = None
    error: ErrorInfo | None = None


class Job(msgspec.Struct, frozen=True, omit_defaults=False):
    """A job as the store keeps it."""

    id: int
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    queue: str
    priority: int
    state: JobState
    attempts: int
    max_attempts: int
    run_at: float
    submitted_at: float
    timeout: float | None = None
    key: str | None = None
    result: Any = None
    error: ErrorInfo | None = None
    worker: str | None = None
    fence: int = 0
    lease_until: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    backoff: float | None = None
    history: list[AttemptInfo] = []  # filled by a single-job read, empty in lists
    # the attempt's last runq.progress(fraction, message); single-job reads only
    progress: float | None = None
    progress_message: str | None = None
    after: list[int] = []  # the jobs it depends on (JobSpec.after); single-job reads only
    files: list[FileRef] = []  # its input files (JobSpec.files)

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES


class Assignment(msgspec.Struct, frozen=True, array_like=True):
    """One claimed job as a worker needs it."""

    id: int
    fence: int
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    attempt: int
    max_attempts: int
    timeout: float | None = None
    queue: str = ""  # the job's queue (for the broker's figures; workers need not look)
    files: list[FileRef] = []  # input files the worker downloads before it starts the job
    workdir: str | None = None  # set by the worker itself: where the job's files are


class Outcome(msgspec.Struct, frozen=True, array_like=True, omit_defaults=True):
    """A worker's report for one attempt: a result, or an error."""

    id: int
    fence: int
    ok: bool
    result: Any = None
    error: ErrorInfo | None = None
