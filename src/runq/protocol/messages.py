"""Typed messages. Each is a frozen, tagged msgspec Struct encoded as a msgpack array.

Decoding validates types and bounds, so a handler only ever sees well-formed values.
See docs/protocol.md for the wire format and which message is valid when.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

from runq.model.flow import RateLimit, Scope
from runq.model.job import Assignment, ErrorInfo, Job, Outcome
from runq.model.output import MAX_LINES, JobLogs, OutputBatch
from runq.model.schedule import Schedule, ScheduleSpec
from runq.model.spec import TEN_YEARS, JobId, JobSpec, Name, Seconds
from runq.model.token import MAX_TOKEN_TEXT
from runq.protocol import limits as L
from runq.protocol.base import Base, ReqId
from runq.protocol.files import (
    FileData,
    FinishUpload,
    OpenArtifact,
    OpenUpload,
    ReadFile,
    ResumeUpload,
    UploadChunk,
    Uploaded,
    UploadState,
)
from runq.protocol.tokens import ListTokens, MakeToken, RevokeToken, TokenList, TokenMade

# -- handshake (both ports) -------------------------------------------------------------


class Hello(Base, frozen=True, tag="hello"):
    role: str  # "client" or "worker"
    version: int
    token: Annotated[str, Meta(max_length=MAX_TOKEN_TEXT)] | None = None
    worker_id: Name | None = None
    queues: Annotated[list[Name], Meta(max_length=L.MAX_QUEUES)] = []
    concurrency: Annotated[int, Meta(ge=1, le=L.MAX_CONCURRENCY)] = 1
    running: Annotated[list[tuple[JobId, int]], Meta(max_length=L.MAX_CONCURRENCY)] = []
    info: dict[str, str | int | float] = {}


class Welcome(Base, frozen=True, tag="welcome"):
    version: int
    server: str
    lease: float = 30.0
    max_frame: int = L.MAX_FRAME


class Error(Base, frozen=True, tag="error"):
    req: int
    code: str
    message: str


# -- client requests --------------------------------------------------------------------


class Submit(Base, frozen=True, tag="submit"):
    req: ReqId
    jobs: Annotated[list[JobSpec], Meta(min_length=1, max_length=L.MAX_BATCH)]


class Get(Base, frozen=True, tag="get"):
    req: ReqId
    id: JobId


class Wait(Base, frozen=True, tag="wait"):
    req: ReqId
    id: JobId
    timeout: Seconds


class ListJobs(Base, frozen=True, tag="list"):
    req: ReqId
    state: str | None = None
    queue: Name | None = None
    limit: Annotated[int, Meta(ge=1, le=L.MAX_LIST)] = 50
    before: JobId | None = None


class Cancel(Base, frozen=True, tag="cancel"):
    req: ReqId
    id: JobId


class Retry(Base, frozen=True, tag="retry"):
    """Queue failed jobs again: job ``id``, or with ``id`` nil every failed job of
    ``queue`` (of all queues when ``queue`` is nil too)."""

    req: ReqId
    id: JobId | None = None
    queue: Name | None = None


class GetStats(Base, frozen=True, tag="stats"):
    req: ReqId


class ListWorkers(Base, frozen=True, tag="workers"):
    req: ReqId


class ListQueues(Base, frozen=True, tag="queues"):
    req: ReqId


class ReadLogs(Base, frozen=True, tag="logs"):
    """A job's output lines with ``seq`` past ``after`` (poll again with the answer's
    ``next`` to follow it)."""

    req: ReqId
    id: JobId
    after: Annotated[int, Meta(ge=0, le=2**62)] = 0
    limit: Annotated[int, Meta(ge=1, le=MAX_LINES)] = MAX_LINES


class SetRateLimit(Base, frozen=True, tag="setlimit"):
    """Add or change the rate limit of a queue or a task (for every broker)."""

    req: ReqId
    limit: RateLimit


class RemoveRateLimit(Base, frozen=True, tag="unlimit"):
    req: ReqId
    scope: Scope
    name: Name


class ListRateLimits(Base, frozen=True, tag="limits"):
    req: ReqId


class RateLimitList(Base, frozen=True, tag="limitlist"):
    """The answer to the three above: the limit set or removed, or every limit."""

    req: int
    limits: list[RateLimit]


class PauseQueue(Base, frozen=True, tag="pause"):
    """Stop (``paused`` true) or start again dispatching the jobs of ``queue``."""

    req: ReqId
    queue: Name
    paused: bool


class SetRetention(Base, frozen=True, tag="setretention"):
    """Keep the finished jobs of ``queue`` ``retention`` seconds (nil: forever); with
    ``reset`` true the queue follows the broker's retention again."""

    req: ReqId
    queue: Name
    retention: Annotated[float, Meta(gt=0, le=TEN_YEARS)] | None = None
    reset: bool = False


class Purge(Base, frozen=True, tag="purge"):
    """Delete finished jobs that finished more than ``older_than`` seconds ago, of
    ``state`` (succeeded, failed or cancelled; nil: all three) and ``queue`` (nil: all)."""

    req: ReqId
    older_than: Seconds
    state: str | None = None
    queue: Name | None = None


class Explain(Base, frozen=True, tag="explain"):
    """Why job ``id`` is not running yet, in one sentence."""

    req: ReqId
    id: JobId


# -- replies to clients -----------------------------------------------------------------


class Submitted(Base, frozen=True, tag="submitted"):
    req: int
    ids: list[int]
    # positions (from 0) answered with a job that was already there: an idempotency key
    # already used, or a unique job's unfinished twin (a later field: old peers skip it)
    merged: list[int] = []


class Retried(Base, frozen=True, tag="retried"):
    req: int
    ids: list[int]


class JobReply(Base, frozen=True, tag="job"):
    req: int
    job: Job


class JobList(Base, frozen=True, tag="jobs"):
    req: int
    jobs: list[Job]


class ProcInfo(msgspec.Struct, frozen=True):
    """One task process of a worker, as the worker last described it."""

    pid: int
    state: str  # idle, busy, retiring
    jobs: int  # jobs it has run
    rss_mb: float


class WorkerInfo(msgspec.Struct, frozen=True):
    id: str
    queues: list[str]
    concurrency: int
    running: int
    done: int
    connected_at: float
    info: dict[str, str | int | float] = {}
    draining: bool = False
    rss_mb: float = 0.0  # the worker process's memory, from its last status
    procs: list[ProcInfo] = []


class WorkerList(Base, frozen=True, tag="workerlist"):
    req: int
    workers: list[WorkerInfo]


class LogsReply(Base, frozen=True, tag="logsreply"):
    req: int
    logs: JobLogs


class StatsReply(Base, frozen=True, tag="statsreply"):
    req: int
    stats: dict[str, Any]


class QueueInfo(msgspec.Struct, frozen=True):
    name: str
    counts: dict[str, int]  # jobs by state
    paused: bool = False
    # seconds its finished jobs are kept (None: forever), and whether that is the
    # queue's own setting rather than the broker's --retention
    retention: float | None = None
    retention_set: bool = False


class QueueList(Base, frozen=True, tag="queuelist"):
    req: int
    queues: list[QueueInfo]


class Purged(Base, frozen=True, tag="purged"):
    req: int
    count: int  # jobs deleted


class Explanation(Base, frozen=True, tag="explanation"):
    req: int
    id: int
    text: str


# -- worker port ------------------------------------------------------------------------


class Assign(Base, frozen=True, tag="assign"):
    jobs: list[Assignment]


class Report(Base, frozen=True, tag="report"):
    seq: Annotated[int, Meta(ge=0)]
    outcomes: Annotated[list[Outcome], Meta(max_length=L.MAX_CONCURRENCY)]

    def __post_init__(self) -> None:
        # Error texts past their bounds are cut, not refused: a refused report would
        # close the connection, and the worker would send the same report again.
        for n, outcome in enumerate(self.outcomes):
            if outcome.error is not None and _too_long(outcome.error):
                self.outcomes[n] = msgspec.structs.replace(outcome, error=_cut(outcome.error))


def _too_long(error: ErrorInfo) -> bool:
    tb = error.traceback
    return (
        len(error.message) > L.MAX_ERROR_TEXT
        or len(error.code) > L.MAX_ERROR_CODE
        or (tb is not None and len(tb) > L.MAX_TRACEBACK)
    )


def _cut(error: ErrorInfo) -> ErrorInfo:
    tb = error.traceback
    return ErrorInfo(
        error.code[: L.MAX_ERROR_CODE],
        error.message[: L.MAX_ERROR_TEXT],
        error.retryable,
        None if tb is None else tb[-L.MAX_TRACEBACK :],
    )


class Reported(Base, frozen=True, tag="reported"):
    seq: int


class Heartbeat(Base, frozen=True, tag="heartbeat"):
    running: Annotated[list[tuple[JobId, int]], Meta(max_length=L.MAX_CONCURRENCY)]


class Drain(Base, frozen=True, tag="drain"):
    """The worker is stopping: assign it nothing more."""


class Release(Base, frozen=True, tag="release"):
    """Jobs the worker gives back unfinished; acknowledged with ``reported(seq)``."""

    seq: Annotated[int, Meta(ge=0)]
    running: Annotated[list[tuple[JobId, int]], Meta(max_length=L.MAX_CONCURRENCY)]


class Status(Base, frozen=True, tag="status"):
    """The worker's own memory and its task processes, every few seconds."""

    rss_mb: Annotated[float, Meta(ge=0)]
    procs: Annotated[list[ProcInfo], Meta(max_length=L.MAX_CONCURRENCY)] = []


class Output(Base, frozen=True, tag="output"):
    """What running jobs wrote since the last one: lines and progress, one batch a job
    attempt. Not acknowledged; a batch of an attempt the worker no longer holds is
    dropped."""

    batches: Annotated[list[OutputBatch], Meta(min_length=1, max_length=L.MAX_CONCURRENCY)]


class CancelJobs(Base, frozen=True, tag="canceljobs"):
    ids: list[int]


# -- periodic schedules (cron) ----------------------------------------------------------

MAX_SCHEDULES: Final = 1_000  # schedules a worker declares in one message


class AddSchedule(Base, frozen=True, tag="schedule"):
    """Fire ``schedule.job`` at each tick of its cron; a name in use is a conflict."""

    req: ReqId
    schedule: ScheduleSpec


class ListSchedules(Base, frozen=True, tag="schedules"):
    req: ReqId


class RemoveSchedule(Base, frozen=True, tag="unschedule"):
    req: ReqId
    name: Name


class PauseSchedule(Base, frozen=True, tag="pauseschedule"):
    """Stop (``paused`` true) or start again firing a schedule's ticks."""

    req: ReqId
    name: Name
    paused: bool


class ScheduleList(Base, frozen=True, tag="schedulelist"):
    req: int
    schedules: list[Schedule]


class TaskSchedules(Base, frozen=True, tag="taskschedules"):
    """The schedules of a worker's ``@runq.task(cron=...)`` tasks, sent after welcome:
    the broker adds or updates each by name (``task:<task name>``)."""

    schedules: Annotated[list[ScheduleSpec], Meta(max_length=MAX_SCHEDULES)]


ClientRequest = (
    Submit
    | Get
    | Wait
    | ListJobs
    | Cancel
    | Retry
    | GetStats
    | ListWorkers
    | ListQueues
    | PauseQueue
    | ReadLogs
    | AddSchedule
    | ListSchedules
    | RemoveSchedule
    | PauseSchedule
    | SetRateLimit
    | RemoveRateLimit
    | ListRateLimits
    | SetRetention
    | Purge
    | Explain
    | MakeToken
    | ListTokens
    | RevokeToken
    | OpenUpload
    | ResumeUpload
    | UploadChunk
    | FinishUpload
    | ReadFile
)
ClientReply = (
    Submitted
    | Retried
    | JobReply
    | JobList
    | WorkerList
    | StatsReply
    | QueueList
    | LogsReply
    | ScheduleList
    | RateLimitList
    | Purged
    | Explanation
    | TokenMade
    | TokenList
    | UploadState
    | Uploaded
    | FileData
    | Error
)
WorkerMessage = (
    Report
    | Heartbeat
    | Drain
    | Release
    | Status
    | Output
    | TaskSchedules
    | OpenArtifact
    | ResumeUpload
    | UploadChunk
    | FinishUpload
    | ReadFile
)
BrokerToWorker = Assign | Reported | CancelJobs | UploadState | Uploaded | FileData | Error

# What each side may receive, by role: a broker's client port, its worker port, and peers.
TO_BROKER_CLIENT: Final = Hello | ClientRequest
TO_BROKER_WORKER: Final = Hello | WorkerMessage
TO_CLIENT: Final = Welcome | ClientReply
TO_WORKER: Final = Welcome | BrokerToWorker

ALL_TAGS: Final = frozenset(
    cls.__struct_config__.tag
    for cls in (
        *(Hello, Welcome, Error, Submit, Get, Wait, ListJobs, Cancel, GetStats, ListWorkers),
        *(Submitted, JobReply, JobList, WorkerList, StatsReply, Assign, Report, Reported),
        *(Heartbeat, CancelJobs, Retry, Retried, Drain, Release, Status),
        *(ListQueues, PauseQueue, QueueList),
        *(ReadLogs, LogsReply, Output),
        *(AddSchedule, ListSchedules, RemoveSchedule, PauseSchedule, ScheduleList),
        *(TaskSchedules,),
        *(SetRateLimit, RemoveRateLimit, ListRateLimits, RateLimitList),
        *(SetRetention, Purge, Purged, Explain, Explanation),
        *(MakeToken, ListTokens, RevokeToken, TokenMade, TokenList),
        *(OpenUpload, OpenArtifact, ResumeUpload, UploadChunk, FinishUpload, ReadFile),
        *(UploadState, Uploaded, FileData),
    )
)

__all__ = [
    "AddSchedule",
    "Assign",
    "Assignment",
    "Base",
    "Cancel",
    "CancelJobs",
    "Drain",
    "Error",
    "ErrorInfo",
    "Explain",
    "Explanation",
    "FileData",
    "FinishUpload",
    "Get",
    "GetStats",
    "Heartbeat",
    "Hello",
    "Job",
    "JobList",
    "JobLogs",
    "JobReply",
    "JobSpec",
    "ListJobs",
    "ListQueues",
    "ListRateLimits",
    "ListSchedules",
    "ListTokens",
    "ListWorkers",
    "LogsReply",
    "MakeToken",
    "OpenArtifact",
    "OpenUpload",
    "Outcome",
    "Output",
    "OutputBatch",
    "PauseQueue",
    "PauseSchedule",
    "ProcInfo",
    "Purge",
    "Purged",
    "QueueInfo",
    "QueueList",
    "RateLimit",
    "RateLimitList",
    "ReadFile",
    "ReadLogs",
    "Release",
    "RemoveRateLimit",
    "RemoveSchedule",
    "Report",
    "Reported",
    "ReqId",
    "ResumeUpload",
    "Retried",
    "Retry",
    "RevokeToken",
    "ScheduleList",
    "SetRateLimit",
    "SetRetention",
    "StatsReply",
    "Status",
    "Submit",
    "Submitted",
    "TaskSchedules",
    "TokenList",
    "TokenMade",
    "UploadChunk",
    "UploadState",
    "Uploaded",
    "Wait",
    "Welcome",
    "WorkerInfo",
    "WorkerList",
]
