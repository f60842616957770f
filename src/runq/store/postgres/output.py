"""What running jobs write, kept by the PostgreSQL store: their lines and progress.

A batch of many jobs is two statements: the lines of all of them, then their progress.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from runq.model import Job, JobState
from runq.model.output import LogLine, OutputBatch
from runq.store.postgres.ops import BIGINT_MAX, Conn, Queries, columns


async def append(
    q: Queries, worker: str, batches: Sequence[OutputBatch], now: float, conn: Conn
) -> list[int]:
    """Keep each batch whose attempt ``worker`` still holds; return the ids refused."""
    lines = [(b.id, b.fence, *line) for b in batches for line in b.lines]
    kept: set[int] = set()
    if lines:
        kept |= {r[0] for r in await conn.fetch(q["append_logs"], worker, *columns(lines, 5))}
    moved = [
        (b.id, b.fence, b.progress, b.message or "") for b in batches if b.progress is not None
    ]
    if moved:
        found = await conn.fetch(q["set_progress"], worker, *columns(moved, 4), now)
        kept |= {r[0] for r in found}
    return [b.id for b in batches if (b.lines or b.progress is not None) and b.id not in kept]


async def read(q: Queries, job_id: int, after: int, limit: int, conn: Conn) -> list[LogLine]:
    if not 0 < job_id <= BIGINT_MAX:
        return []
    after = max(0, min(after, BIGINT_MAX))
    found = await conn.fetch(q["read_logs"], job_id, after, max(0, min(limit, BIGINT_MAX)))
    return [LogLine(*r) for r in found]


WAITING = frozenset({JobState.QUEUED, JobState.SCHEDULED})


async def with_progress(q: Queries, job: Job, conn: Conn) -> Job:
    """``job`` with the progress its current attempt reported (none while it waits)."""
    if job.state in WAITING:
        return job
    row = await conn.fetchrow(q["progress_of"], job.id)
    if row is None or row[0] != job.fence:
        return job
    return msgspec.structs.replace(job, progress=row[1], progress_message=row[2])
