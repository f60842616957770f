"""Per-queue retention, the purge by queue and state, and the count of jobs ahead of a
queued one, as plain functions of a connection (see 011_retention.sql)."""

from __future__ import annotations

from collections.abc import Sequence

from runq.model import Job
from runq.store.postgres import file_ops
from runq.store.postgres.ops import Conn, Queries


async def purge(
    q: Queries,
    before: float,
    limit: int,
    queue: str | None,
    skip: Sequence[str],
    states: Sequence[str],
    conn: Conn,
) -> int:
    """Up to ``limit`` finished jobs in ``states`` gone (oldest first), with their
    history and files: of ``queue``, or of every queue but those in ``skip``. Run it in
    a transaction: the inputs the jobs named go in it when no job names them any more."""
    if queue is not None:
        row = await conn.fetchrow(q["purge_queue"], before, limit, queue, list(states))
    else:
        row = await conn.fetchrow(q["purge_except"], before, limit, list(skip), list(states))
    gone, inputs = (0, None) if row is None else row
    if inputs:
        await file_ops.drop_unnamed(q, inputs, conn)
    return int(gone)


async def overrides(q: Queries, conn: Conn) -> dict[str, float | None]:
    return {r[0]: r[1] for r in await conn.fetch(q["retention_overrides"])}


async def set_retention(
    q: Queries, queue: str, retention: float | None, now: float, conn: Conn
) -> None:
    await conn.execute(q["set_retention"], queue, retention, now)


async def reset_retention(q: Queries, queue: str, conn: Conn) -> None:
    await conn.execute(q["reset_retention"], queue)


async def count_ahead(q: Queries, job: Job, conn: Conn) -> int:
    found = await conn.fetchval(q["count_ahead"], job.queue, job.priority, job.run_at, job.id)
    return int(found)
