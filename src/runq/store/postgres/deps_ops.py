"""Dependencies between jobs on PostgreSQL (store/deps.py): run inside the transaction
of the operation that ends the parents. Dependents are locked before their parents are
read, so of two parents that end at once the second transaction sees the first's end."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from runq.model import JobSpec, JobState
from runq.model.unique import SubmitIds
from runq.store import deps, rows
from runq.store.deps import Released

Queries = dict[str, str]  # the backend's queries.sql and deps.sql
Insert = Callable[[Queries, list[tuple[Any, ...]], bool, Any], Awaitable[SubmitIds]]


async def submit(
    q: Queries, insert: Insert, specs: list[JobSpec], now: float, conn: Any
) -> SubmitIds:
    """A batch with dependencies: every parent must exist (and is locked against ending
    until this commits); each new dependent is settled at once against ended parents."""
    wanted = deps.parents_wanted(specs)
    found = {r[0] for r in await conn.fetch(q["parent_states"], wanted)}
    deps.check_parents(wanted, found)
    batch = [deps.insert_row(s, now) for s in specs]
    ids = await insert(q, batch, True, conn)
    links = deps.dep_rows(specs, ids, ids.merged)
    if links:
        await conn.execute(q["add_deps"], *(list(c) for c in zip(*links, strict=True)))
    await settle(q, deps.new_dependents(specs, ids, ids.merged), now, conn)
    return ids


async def release(q: Queries, ended: Iterable[int], now: float, conn: Any) -> Released:
    """Settle the waiting dependents of jobs that just ended (and theirs, in turn)."""
    ended = list(ended)
    if not ended:
        return Released(set(), [])
    found = await conn.fetch(q["dependents"], ended)
    return await settle(q, [r[0] for r in found], now, conn)


async def settle(q: Queries, waiting: Sequence[int], now: float, conn: Any) -> Released:
    out = Released(set(), [])
    todo = list(waiting)
    while todo:
        job_id = todo.pop(0)
        parents = [tuple(r) for r in await conn.fetch(q["parents_of"], job_id)]
        settled, pass_results = deps.verdict(parents)
        if settled is None:
            continue
        if settled.state is JobState.CANCELLED:
            reason = rows.enc.encode(settled.reason)
            if await conn.execute(q["dep_cancel"], reason, now, job_id) == "UPDATE 1":
                out.cancelled.append(job_id)
                todo.extend(r[0] for r in await conn.fetch(q["dependents"], [job_id]))
            continue
        args = None
        if pass_results:
            blob = await conn.fetchval(q["args_of"], job_id)
            args = deps.args_with_results(blob, parents)
        row = await conn.fetchrow(q["dep_ready"], now, args, job_id)
        if row is not None and row[1] == str(JobState.QUEUED):
            out.queues.add(row[0])
    return out


async def after_of(q: Queries, job_id: int, conn: Any) -> list[int]:
    return [r[0] for r in await conn.fetch(q["after_of"], job_id)]
