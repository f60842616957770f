"""The PostgreSQL store's operations as plain functions of a connection inside a
transaction. A batch travels as arrays, so most operations are one statement.

Rows are laid out as in the SQLite store, so the record builders of store/rows.py
serve both backends.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Final, TypeAlias

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from runq.errors import IllegalTransition, UnknownJob
from runq.model import Assignment, ErrorInfo, Job, JobSpec, Outcome, RetryPolicy
from runq.model.job import TERMINAL_STATES, JobState
from runq.model.policy import after_failure
from runq.model.unique import Plan, SubmitIds
from runq.store import rows, unique
from runq.store.base import ReportResult, Requeued
from runq.store.postgres import deps_ops

Queries = dict[str, str]
# a pooled connection, or a plain one (migrations, tests)
Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record] | asyncpg.Connection[asyncpg.Record]"
BIGINT_MAX: Final = 2**63 - 1
INSERT_WIDTH: Final = len(rows.INSERT_COLUMNS.split(","))
JOB_WIDTH: Final = len(rows.JOB_COLUMNS.split(","))
COPY_FROM: Final = 100  # unkeyed batches this large go in with COPY (less work per row)
# A binary COPY buffers its rows 1,000 at a time in slots it makes for each statement, and
# on PostgreSQL 15 making and dropping them costs about 0.6 ms a statement (a fifth of the
# server's time for 1,000 jobs, most of it pinning the row type in the statement's resource
# owner). Below 2,000 rows, inserting row by row is cheaper (12% less server time at
# 1,000 rows); a volatile WHERE makes COPY do that. This one is always true: no row is
# ever left out.
ROW_BY_ROW_BELOW: Final = 2_000
ROW_BY_ROW: Final = "random() IS NOT NULL"
COPY_COLUMNS: Final = ["id", *(c.strip() for c in rows.INSERT_COLUMNS.split(","))]
WORKER_LOST: Final = ErrorInfo("worker_lost", "the worker running this job went away")
LEASE_EXPIRED: Final = ErrorInfo("lease_expired", "the worker stopped heartbeating past its lease")
DEFAULT_ERROR: Final = ErrorInfo("error", "the attempt failed")
SUCCEEDED: Final = str(JobState.SUCCEEDED)


def columns(batch: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows to one list per column (the arrays that unnest takes back apart)."""
    return [[row[i] for row in batch] for i in range(width)] if batch else [[]] * width


async def copy_in(q: Queries, specs: Sequence[JobSpec], now: float, conn: Conn) -> SubmitIds:
    """A large batch without keys: draw its ids in one statement, then write it with one
    binary COPY (a statement, so a transaction, of its own). Each row is built as COPY
    takes it, so the batch is not held a second time as a list of rows."""
    ids = SubmitIds(sorted(await conn.fetchval(q["next_ids"], len(specs))))
    records = ((job_id, *rows.insert_row(s, now)) for job_id, s in zip(ids, specs, strict=True))
    where = ROW_BY_ROW if len(specs) < ROW_BY_ROW_BELOW else None
    await conn.copy_records_to_table("jobs", records=records, columns=COPY_COLUMNS, where=where)
    return ids


async def insert(
    q: Queries, batch: list[tuple[Any, ...]], keyed: bool, conn: Conn, name: str = ""
) -> SubmitIds:
    """Ids in the order of ``batch``: new rows come back in insertion order; a key that
    was taken (before, or earlier in the batch) answers with the job that holds it."""
    sql = q[name or ("insert" if keyed else "insert_plain")]
    width = unique.WIDTH if name == "insert_unique" else INSERT_WIDTH
    inserted = await conn.fetch(sql, *columns(batch, width))
    if not keyed:
        return SubmitIds([r[0] for r in inserted])
    by_key = {r[1]: r[0] for r in inserted if r[1] is not None}
    missing = list({row[rows.KEY_INDEX] for row in batch} - by_key.keys() - {None})
    if missing:
        by_key.update((r[0], r[1]) for r in await conn.fetch(q["ids_by_key"], missing))
    plain = iter([r[0] for r in inserted if r[1] is None])
    keys = [row[rows.KEY_INDEX] for row in batch]
    return SubmitIds(
        [next(plain) if key is None else by_key[key] for key in keys],
        _key_hits(batch, set(missing)),
    )


def _key_hits(batch: list[tuple[Any, ...]], taken: set[str]) -> list[int]:
    """Positions whose key was taken before the batch, or earlier in it."""
    seen: set[str] = set()
    hits = []
    for i, row in enumerate(batch):
        key = row[rows.KEY_INDEX]
        if key is not None:
            if key in taken or key in seen:
                hits.append(i)
            seen.add(key)
    return hits


async def insert_unique(q: Queries, specs: list[JobSpec], now: float, conn: Conn) -> SubmitIds:
    """A batch with unique jobs, in one transaction: lock the identities (another broker
    with a twin waits here until this one commits), read their unfinished jobs, then
    merge into (or refuse for) those and insert the rest."""
    idents, wanted = unique.identities(specs)
    await conn.fetchval(q["lock_unique"], wanted)
    held: dict[str, tuple[int, str]] = {}
    for ident, job_id, state in await conn.fetch(q["unique_held"], wanted, now):
        held.setdefault(ident, (job_id, state))
    plan = Plan(specs, idents, held)
    batch = [unique.unique_row(specs[i], idents[i], now) for i in plan.insert]
    inserted = await insert(q, batch, True, conn, "insert_unique") if batch else SubmitIds()
    return plan.answer(len(specs), inserted)


async def claim(
    q: Queries,
    worker: str,
    queues: list[str],
    limit: int,
    now: float,
    lease_until: float,
    conn: Conn,
) -> list[Assignment]:
    found = await conn.fetch(q["claim"], worker, queues, limit, now, lease_until)
    claimed = sorted(found, key=lambda r: (-r[7], r[8], r[0]))
    return [rows.assignment(tuple(r)) for r in claimed]


def _unique(outcomes: Sequence[Outcome]) -> tuple[list[Outcome], set[int]]:
    """The first outcome of each (id, fence) and the positions of repeats (stale)."""
    seen: set[tuple[int, int]] = set()
    first, repeats = [], set()
    for i, o in enumerate(outcomes):
        if (o.id, o.fence) in seen:
            repeats.add(i)
        else:
            seen.add((o.id, o.fence))
            first.append(o)
    return first, repeats


async def _failure_plan(
    q: Queries,
    retry: RetryPolicy,
    rand: random.Random,
    worker: str,
    failures: list[Outcome],
    now: float,
    conn: Conn,
) -> dict[tuple[int, int], tuple[str, float | None, ErrorInfo]]:
    """Lock the running attempts the failures end and decide each one's next state."""
    plan: dict[tuple[int, int], tuple[str, float | None, ErrorInfo]] = {}
    if not failures:
        return plan
    errors = {(o.id, o.fence): o.error or DEFAULT_ERROR for o in failures}
    ids, fences = [o.id for o in failures], [o.fence for o in failures]
    for id_, fence, attempts, max_attempts, _, backoff in await conn.fetch(
        q["running_for_failure"], ids, fences, worker
    ):
        policy = retry if backoff is None else RetryPolicy(base=backoff, cap=retry.cap)
        error = errors[(id_, fence)]
        state, run_at = after_failure(error, attempts, max_attempts, now, policy, rand)
        plan[(id_, fence)] = (str(state), run_at, error)
    return plan


async def report(
    q: Queries,
    retry: RetryPolicy,
    rand: random.Random,
    worker: str,
    outcomes: list[Outcome],
    now: float,
    conn: Conn,
) -> ReportResult:
    first, repeats = _unique(outcomes)
    failures = [o for o in first if not o.ok]
    plan = await _failure_plan(q, retry, rand, worker, failures, now, conn)
    batch: list[tuple[Any, ...]] = []
    for o in sorted(first, key=lambda o: o.id):  # one lock order for every writer
        if o.ok:
            batch.append((o.id, o.fence, SUCCEEDED, rows.enc.encode(o.result), None, None, now))
        elif (o.id, o.fence) in plan:
            state, run_at, error = plan[(o.id, o.fence)]
            finished = now if state in TERMINAL_STATES else None
            batch.append((o.id, o.fence, state, None, rows.enc.encode(error), run_at, finished))
    ended = await conn.fetch(q["report"], *columns(batch, 7), worker, now) if batch else []
    done = {(r[0], r[1]): (JobState(r[2]), r[3]) for r in ended}
    res = ReportResult([], [], [], set())
    for i, o in enumerate(outcomes):
        found = None if i in repeats else done.get((o.id, o.fence))
        if found is None:
            res.stale.append(o.id)
            continue
        res.accepted.append(o.id)
        if found[0] in TERMINAL_STATES:
            res.finished.append(o.id)
        else:
            res.requeued_queues.add(found[1])
    released = await deps_ops.release(q, res.finished, now, conn)
    res.requeued_queues.update(released.queues)
    res.finished.extend(released.cancelled)
    return res


async def release(
    q: Queries, worker: str, running: list[tuple[int, int]], now: float, conn: Conn
) -> set[str]:
    ids, fences = columns(sorted(running), 2)
    return {r[0] for r in await conn.fetch(q["release"], worker, ids, fences, now)}


async def extend(
    q: Queries, worker: str, running: list[tuple[int, int]], lease_until: float, conn: Conn
) -> list[int]:
    ids, fences = columns(sorted(running), 2)
    held = {
        (r[0], r[1]) for r in await conn.fetch(q["extend_lease"], worker, lease_until, ids, fences)
    }
    return [job_id for job_id, fence in running if (job_id, fence) not in held]


async def requeue_worker(q: Queries, worker: str, now: float, conn: Conn) -> Requeued:
    err = rows.enc.encode(WORKER_LOST)
    found = rows.requeued(tuple(r) for r in await conn.fetch(q["requeue_worker"], err, now, worker))
    released = await deps_ops.release(q, found.failed, now, conn)
    return found._replace(queues=found.queues | released.queues)


async def requeue_expired(q: Queries, now: float, conn: Conn) -> Requeued:
    err = rows.enc.encode(LEASE_EXPIRED)
    found = rows.requeued(tuple(r) for r in await conn.fetch(q["requeue_expired"], err, now))
    released = await deps_ops.release(q, found.failed, now, conn)
    return found._replace(queues=found.queues | released.queues)


async def promote(q: Queries, now: float, conn: Conn) -> set[str]:
    return {r[0] for r in await conn.fetch(q["promote"], now)}


async def _locked(q: Queries, job_id: int, conn: Conn) -> Job:
    row = await conn.fetchrow(q["lock_job"], job_id) if 0 < job_id <= BIGINT_MAX else None
    if row is None:
        raise UnknownJob.for_id(job_id)
    return rows.job(tuple(row))


async def cancel(q: Queries, job_id: int, now: float, conn: Conn) -> Job:
    before = await _locked(q, job_id, conn)
    if await conn.execute(q["cancel"], now, job_id) != "UPDATE 1":
        raise IllegalTransition(f"job {job_id} is already {before.state} and cannot be cancelled")
    if before.state is JobState.RUNNING:
        await conn.execute(q["attempt_ended"], now, "cancelled", None, job_id, before.fence)
    await deps_ops.release(q, [job_id], now, conn)  # dependents: cancelled, or run after any
    return before


async def retry_failed(
    q: Queries, job_id: int | None, queue: str | None, now: float, conn: Conn
) -> list[int]:
    if job_id is None:
        return sorted(r[0] for r in await conn.fetch(q["retry_failed"], now, queue))
    before = await _locked(q, job_id, conn)
    if await conn.fetchval(q["retry_one"], now, job_id) is None:
        raise IllegalTransition(f"job {job_id} is {before.state}; only failed jobs can be retried")
    return [job_id]


async def get(q: Queries, job_id: int, conn: Conn) -> Job | None:
    if not 0 < job_id <= BIGINT_MAX:
        return None
    found = await conn.fetch(q["get"], job_id)
    if not found:
        return None
    history = [rows.attempt(tuple(r[JOB_WIDTH:])) for r in found if r[JOB_WIDTH] is not None]
    job = rows.job(tuple(found[0][:JOB_WIDTH]), history)
    after = await deps_ops.after_of(q, job_id, conn)
    return msgspec.structs.replace(job, after=after) if after else job


async def list_jobs(conditions: list[tuple[str, Any]], limit: int, conn: Conn) -> list[Job]:
    where = [f"{cond} ${n}" for n, (cond, _) in enumerate(conditions, 1)]
    params = [
        max(-BIGINT_MAX, min(v, BIGINT_MAX)) if cond == "id <" else v for cond, v in conditions
    ]
    sql = f"SELECT {rows.JOB_COLUMNS} FROM jobs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY id DESC LIMIT ${len(params) + 1}"
    found = await conn.fetch(sql, *params, max(0, min(limit, BIGINT_MAX)))
    return [rows.job(tuple(r)) for r in found]


async def counts(q: Queries, conn: Conn) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for queue, state, n in await conn.fetch(q["counts"]):
        out.setdefault(queue, {})[state] = n
    return out


async def publish_workers(
    q: Queries, broker_id: str, snapshot: bytes | None, now: float, conn: Conn
) -> None:
    if snapshot is None:
        await conn.execute(q["withdraw_workers"], broker_id)
    else:
        await conn.execute(q["publish_workers"], broker_id, snapshot, now)


async def set_paused(q: Queries, queue: str, paused: bool, now: float, conn: Conn) -> None:
    if paused:
        await conn.execute(q["pause_queue"], queue, now)
    else:
        await conn.execute(q["resume_queue"], queue)


async def paused_queues(q: Queries, conn: Conn) -> set[str]:
    return {r[0] for r in await conn.fetch(q["paused_queues"])}


async def worker_snapshots(q: Queries, since: float, conn: Conn) -> list[tuple[str, bytes]]:
    return [(r[0], bytes(r[1])) for r in await conn.fetch(q["worker_snapshots"], since)]


async def warnings(q: Queries, older_than: float, conn: Conn) -> list[str]:
    return [
        f"a transaction has been open for {r['age']:.0f} s (pid {r['pid']}, {r['state']}):"
        " vacuum cannot remove the dead rows newer than it, and claims slow down"
        for r in await conn.fetch(q["old_transactions"], older_than)
    ]
