"""Flow control in the PostgreSQL store (docs/scheduling.md). Claims from many brokers
run at once: a flow claim locks the rate limits' rows it spends from, and takes each
concurrency key's advisory lock before it counts that key's running jobs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from runq.model import Assignment, JobSpec
from runq.model.flow import Budget, RateLimit, choose
from runq.model.unique import SubmitIds
from runq.store import flow, rows
from runq.store.postgres import ops
from runq.store.postgres.ops import Conn, columns

Queries = dict[str, str]


async def submit(
    q: Queries,
    insert: Callable[[Conn], Awaitable[SubmitIds]],
    specs: list[JobSpec],
    conn: Conn,
) -> SubmitIds:
    """Insert a batch that has jobs with concurrency keys, then set their keys (run in
    one transaction, so no claim sees such a job without its key)."""
    ids = await insert(conn)
    keys, bounds, key_ids = columns(flow.key_rows(specs, ids), 3)
    await conn.execute(q["set_keys"], key_ids, keys, bounds)
    return ids


async def claim(
    q: Queries,
    worker: str,
    queues: list[str],
    limit: int,
    now: float,
    lease_until: float,
    conn: Conn,
) -> list[Assignment]:
    """The plain claim (one statement, which never takes a job with a key), unless a
    concurrency key or rate limit is in the way."""
    if not await conn.fetchval(q["flow_needed"], queues):
        return await ops.claim(q, worker, queues, limit, now, lease_until, conn)
    async with conn.transaction():
        budget = flow.budget([tuple(r) for r in await conn.fetch(q["buckets"], queues)], now)
        found: list[tuple[Any, ...]] = []
        for _ in range(flow.ROUNDS):
            want = limit - len(found)
            ids = await _choose(q, queues, want, budget, conn) if want > 0 else []
            if not ids:
                break
            got = await conn.fetch(q["flow_claim"], worker, ids, now, lease_until)
            found.extend(tuple(r) for r in got)
        tokens, _, scopes, names = columns(flow.spent(budget, now), 4)
        if names:
            await conn.execute(q["spend"], tokens, now, scopes, names)
    claimed = sorted(found, key=lambda r: (-r[7], r[8], r[0]))
    return [rows.assignment(r) for r in claimed]


async def _choose(
    q: Queries, queues: list[str], want: int, budget: Budget, conn: Conn
) -> list[int]:
    scan = want * flow.OVERSCAN + 8
    open_queues = flow.open_queues(queues, budget)
    if not open_queues:
        return []
    found = await conn.fetch(q["flow_candidates"], open_queues, flow.empty_tasks(budget), scan)
    candidates = flow.merged([[tuple(r) for r in found]])
    keys = sorted({c.key for c in candidates if c.key is not None})
    held = {r[0] for r in await conn.fetch(q["lock_keys"], keys)} if keys else set()
    candidates = [c for c in candidates if c.key is None or c.key in held]
    running = await conn.fetch(q["running_by_key"], sorted(held)) if held else []
    budget.running = {r[0]: r[1] for r in running}
    return choose(candidates, budget, want)


async def concurrency_of(q: Queries, job_id: int, conn: Conn) -> tuple[str, int, int] | None:
    row = await conn.fetchrow(q["concurrency_of"], job_id)
    return None if row is None else (row[0], row[1], row[2])


async def keyed_queues(q: Queries, conn: Conn) -> set[str]:
    return {r[0] for r in await conn.fetch(q["keyed_queues"])}


async def set_rate_limit(q: Queries, limit: RateLimit, now: float, conn: Conn) -> None:
    await conn.execute(q["set_rate_limit"], *flow.limit_row(limit, now))


async def remove_rate_limit(q: Queries, scope: str, name: str, conn: Conn) -> bool:
    return bool(await conn.execute(q["remove_rate_limit"], scope, name) == "DELETE 1")


async def rate_limits(q: Queries, conn: Conn) -> list[RateLimit]:
    return [flow.rate_limit(tuple(r)) for r in await conn.fetch(q["rate_limits"])]
