"""What running jobs write, kept by the SQLite store: their lines and progress."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import msgspec

from runq.model import Job, JobState
from runq.model.output import LogLine, OutputBatch

Queries = dict[str, str]


def append(
    q: Queries, worker: str, batches: Sequence[OutputBatch], now: float, conn: sqlite3.Connection
) -> list[int]:
    """Keep each batch whose attempt ``worker`` still holds; return the ids refused."""
    refused: list[int] = []
    for b in batches:
        if not b.lines and b.progress is None:
            continue
        found = conn.execute(q["output_attempt"], (b.id, b.fence, worker)).fetchone()
        if found is None:
            refused.append(b.id)
            continue
        if b.lines:
            last = conn.execute(q["last_log_seq"], (b.id,)).fetchone()[0]
            conn.executemany(
                q["append_log"],
                [
                    (b.id, last + n, b.fence, found[0], at, stream, text)
                    for n, (at, stream, text) in enumerate(b.lines, 1)
                ],
            )
        if b.progress is not None:
            conn.execute(q["set_progress"], (b.id, b.fence, b.progress, b.message or "", now))
    return refused


def read(
    q: Queries, job_id: int, after: int, limit: int, conn: sqlite3.Connection
) -> list[LogLine]:
    return [LogLine(*r) for r in conn.execute(q["read_logs"], (job_id, after, limit))]


def with_progress(q: Queries, job: Job, conn: sqlite3.Connection) -> Job:
    """``job`` with the progress its current attempt reported (none while it waits)."""
    if job.state in WAITING:
        return job
    row = conn.execute(q["progress_of"], (job.id,)).fetchone()
    if row is None or row[0] != job.fence:
        return job
    return msgspec.structs.replace(job, progress=row[1], progress_message=row[2])


WAITING = frozenset({JobState.QUEUED, JobState.SCHEDULED})
