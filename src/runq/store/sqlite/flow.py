"""Flow control in the SQLite store (docs/scheduling.md). Everything here runs on the
one writer thread, so a claim's count of running jobs per key cannot go stale."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import msgspec

from runq.model import Assignment, JobSpec
from runq.model.flow import Budget, RateLimit, choose
from runq.model.unique import SubmitIds
from runq.store import flow, rows
from runq.store.sqlite import ops

Queries = dict[str, str]


def submit(
    q: Queries,
    insert: Callable[[sqlite3.Connection], SubmitIds],
    specs: list[JobSpec],
    conn: sqlite3.Connection,
) -> SubmitIds:
    """Insert a batch that has jobs with concurrency keys, then set their keys (in the
    same transaction, so no claim sees such a job without its key)."""
    ids = insert(conn)
    conn.executemany(q["set_keys"], flow.key_rows(specs, ids))
    return ids


def claim(
    q: Queries,
    worker: str,
    queues: list[str],
    limit: int,
    now: float,
    lease_until: float,
    conn: sqlite3.Connection,
) -> list[Assignment]:
    """The plain claim, unless a concurrency key or rate limit is in the way."""
    names = msgspec.json.encode(queues)
    if not conn.execute(q["flow_needed"], (names, names)).fetchone()[0]:
        return ops.claim(q, worker, queues, limit, now, lease_until, conn)
    budget = flow.budget(conn.execute(q["buckets"], (names,)), now)
    found: list[tuple[Any, ...]] = []
    for _ in range(flow.ROUNDS):
        want = limit - len(found)
        ids = _choose(q, queues, want, budget, conn) if want > 0 else []
        if not ids:
            break
        got = conn.execute(q["claim_ids"], (worker, lease_until, now, msgspec.json.encode(ids)))
        found.extend(got.fetchall())
    conn.executemany(q["spend"], flow.spent(budget, now))
    claimed = sorted(found, key=lambda r: (-r[7], r[8], r[0]))
    conn.executemany(q["attempt_started"], [(r[0], r[1], r[4], worker, now) for r in claimed])
    return [rows.assignment(r) for r in claimed]


def _choose(
    q: Queries, queues: list[str], want: int, budget: Budget, conn: sqlite3.Connection
) -> list[int]:
    empty = msgspec.json.encode(flow.empty_tasks(budget))
    scan = want * flow.OVERSCAN + 8
    per_queue = [
        conn.execute(q["flow_candidates"], (name, empty, scan)).fetchall()
        for name in flow.open_queues(queues, budget)
    ]
    candidates = flow.merged(per_queue)
    keys = sorted({c.key for c in candidates if c.key is not None})
    budget.running = dict(conn.execute(q["running_by_key"], (msgspec.json.encode(keys),)))
    return choose(candidates, budget, want)


def concurrency_of(
    q: Queries, job_id: int, conn: sqlite3.Connection
) -> tuple[str, int, int] | None:
    row = conn.execute(q["concurrency_of"], (job_id,)).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def keyed_queues(q: Queries, conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute(q["keyed_queues"])}


def set_rate_limit(q: Queries, limit: RateLimit, now: float, conn: sqlite3.Connection) -> None:
    conn.execute(q["set_rate_limit"], flow.limit_row(limit, now))


def remove_rate_limit(q: Queries, scope: str, name: str, conn: sqlite3.Connection) -> bool:
    return conn.execute(q["remove_rate_limit"], (scope, name)).rowcount == 1


def rate_limits(q: Queries, conn: sqlite3.Connection) -> list[RateLimit]:
    return [flow.rate_limit(r) for r in conn.execute(q["rate_limits"])]
