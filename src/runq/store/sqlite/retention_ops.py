"""Per-queue retention, the purge by queue and state, and the count of jobs ahead of a
queued one, as plain functions of a connection (see 011_retention.sql)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import msgspec

from runq.model import Job
from runq.store.sqlite import file_ops
from runq.store.sqlite.ops import Queries


def purge(
    q: Queries,
    before: float,
    limit: int,
    queue: str | None,
    skip: Sequence[str],
    states: Sequence[str],
    conn: sqlite3.Connection,
) -> tuple[int, list[str]]:
    """Up to ``limit`` finished jobs in ``states`` gone (oldest first), with their
    history and files: of ``queue``, or of every queue but those in ``skip``. Returns
    how many went and the blobs deleted (whose bytes go once this commits)."""
    wanted = msgspec.json.encode(list(states))
    if queue is not None:
        found = conn.execute(q["purge_queue"], (before, limit, queue, wanted))
    else:
        found = conn.execute(q["purge_except"], (before, limit, msgspec.json.encode(skip), wanted))
    ids = [r[0] for r in found]
    if not ids:
        return 0, []
    gone = msgspec.json.encode(ids)
    conn.execute(q["purge_attempts"], (gone,))
    conn.execute(q["purge_logs"], (gone,))
    conn.execute(q["purge_progress"], (gone,))
    conn.execute(q["purge_deps"], (gone,))
    return len(ids), file_ops.purge(q, gone, conn)


def overrides(q: Queries, conn: sqlite3.Connection) -> dict[str, float | None]:
    return {name: retention for name, retention in conn.execute(q["retention_overrides"])}


def set_retention(
    q: Queries, queue: str, retention: float | None, now: float, conn: sqlite3.Connection
) -> None:
    conn.execute(q["set_retention"], (queue, retention, now))


def reset_retention(q: Queries, queue: str, conn: sqlite3.Connection) -> None:
    conn.execute(q["reset_retention"], (queue,))


def count_ahead(q: Queries, job: Job, conn: sqlite3.Connection) -> int:
    row = conn.execute(q["count_ahead"], (job.queue, job.priority, job.run_at, job.id)).fetchone()
    return int(row[0])
