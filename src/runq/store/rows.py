"""Rows to records and back, shared by the SQLite and PostgreSQL stores (both lay out
job rows in the order of JOB_COLUMNS)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import msgspec

from runq.model import Assignment, ErrorInfo, Job, JobSpec, JobState
from runq.model.job import AttemptInfo
from runq.store.base import Requeued
from runq.store.files import files_of

enc = msgspec.msgpack.Encoder()
dec = msgspec.msgpack.Decoder()
dec_error = msgspec.msgpack.Decoder(ErrorInfo)

JOB_COLUMNS: Final = (
    "id, task, args, queue, priority, state, attempts, max_attempts, run_at, timeout, key, "
    "result, error, worker, fence, lease_until, submitted_at, started_at, finished_at, backoff, "
    "files"
)
INSERT_COLUMNS: Final = (
    "task, args, queue, priority, state, max_attempts, run_at, timeout, key, submitted_at, backoff"
)
KEY_INDEX: Final = 8  # position of the idempotency key in an insert row
QUEUED: Final = str(JobState.QUEUED)


def job_conditions(
    state: JobState | None,
    queue: str | None,
    task: str | None,
    key: str | None,
    since: float | None,
    until: float | None,
    before: int | None,
) -> list[tuple[str, Any]]:
    """The filters of a job listing as (SQL condition before its parameter, value)."""
    pairs: list[tuple[str, Any]] = [
        ("state =", None if state is None else str(state)),
        ("queue =", queue),
        ("task =", task),
        ("key =", key),
        ("submitted_at >=", since),
        ("submitted_at <", until),
        ("id <", before),
    ]
    return [(cond, value) for cond, value in pairs if value is not None]


SCHEDULED: Final = str(JobState.SCHEDULED)


def insert_row(s: JobSpec, now: float) -> tuple[Any, ...]:
    run_at = now if s.run_at is None and not s.delay else s.ready_at(now)
    return (
        s.task,
        enc.encode((s.args, s.kwargs)),
        s.queue,
        s.priority,
        SCHEDULED if run_at > now else QUEUED,
        s.max_attempts,
        run_at,
        s.timeout,
        s.key,
        now,
        s.backoff,
    )


def assignment(r: tuple[Any, ...]) -> Assignment:
    """From (id, fence, task, args, attempts, max_attempts, timeout, priority, run_at,
    queue, files)."""
    args, kwargs = dec.decode(r[3])
    return Assignment(r[0], r[1], r[2], args, kwargs, r[4], r[5], r[6], r[9], files_of(r[10]))


def job(r: tuple[Any, ...], history: list[AttemptInfo] | None = None) -> Job:
    """From a row of JOB_COLUMNS (the files may be left out: a job without them)."""
    (id_, task, args, queue, prio, state, attempts, max_attempts, run_at, timeout, key) = r[:11]
    (result, error, worker, fence, lease, submitted, started, finished, backoff) = r[11:20]
    a, kw = dec.decode(args)
    return Job(
        id=id_,
        task=task,
        args=a,
        kwargs=kw,
        queue=queue,
        priority=prio,
        state=JobState(state),
        attempts=attempts,
        max_attempts=max_attempts,
        run_at=run_at,
        submitted_at=submitted,
        timeout=timeout,
        key=key,
        result=None if result is None else dec.decode(result),
        error=None if error is None else dec_error.decode(error),
        worker=worker,
        fence=fence,
        lease_until=lease,
        started_at=started,
        finished_at=finished,
        backoff=backoff,
        history=history or [],
        files=files_of(r[20]) if len(r) > 20 else [],
    )


def attempt(r: tuple[Any, ...]) -> AttemptInfo:
    attempt_no, worker, fence, started, finished, outcome, error = r
    return AttemptInfo(
        attempt=attempt_no,
        worker=worker,
        fence=fence,
        started_at=started,
        finished_at=finished,
        outcome=outcome,
        error=None if error is None else dec_error.decode(error),
    )


def requeued(rows: Iterable[tuple[Any, ...]]) -> Requeued:
    """From rows of (id, queue, state[, worker])."""
    queues: set[str] = set()
    failed: list[int] = []
    holders: set[tuple[int, str]] = set()
    for row in rows:
        if row[2] == "failed":
            failed.append(row[0])
        else:
            queues.add(row[1])
        if len(row) > 3:
            holders.add((row[0], row[3]))
    return Requeued(queues, failed, frozenset(holders))
