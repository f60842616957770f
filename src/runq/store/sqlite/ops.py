"""The store's operations as plain functions of a connection. They run on the writer
thread (writes, inside its group transaction) or on a reader thread (reads)."""

from __future__ import annotations

import random
import sqlite3
from itertools import chain
from typing import Any, Final

import msgspec

from runq.errors import IllegalTransition, UnknownJob
from runq.model import Assignment, ErrorInfo, Job, JobSpec, Outcome, RetryPolicy
from runq.model.job import TERMINAL_STATES, JobState
from runq.model.policy import after_failure
from runq.model.unique import Plan, SubmitIds
from runq.store import rows, unique
from runq.store.base import ReportResult, Requeued
from runq.store.sqlite import deps_ops, output

Queries = dict[str, str]
ROWS_PER_INSERT: Final = 50  # rows in one multi-row INSERT: fewer statement steps per job
WORKER_LOST: Final = ErrorInfo("worker_lost", "the worker running this job went away")
LEASE_EXPIRED: Final = ErrorInfo("lease_expired", "the worker stopped heartbeating past its lease")


def multi_insert(q: Queries) -> str:
    values = q["insert_plain"].partition("VALUES")[2]
    return q["insert_plain"] + (", " + values) * (ROWS_PER_INSERT - 1)


def insert(
    q: Queries, many: str, batch: list[tuple[Any, ...]], conn: sqlite3.Connection
) -> SubmitIds:
    if all(row[rows.KEY_INDEX] is None for row in batch):
        # No idempotency keys: the ids are the next ones in sequence (one writer).
        found = conn.execute(q["last_id"]).fetchone()
        before = 0 if found is None else int(found[0])
        whole = len(batch) - len(batch) % ROWS_PER_INSERT
        if whole:
            flat = [
                tuple(chain.from_iterable(batch[i : i + ROWS_PER_INSERT]))
                for i in range(0, whole, ROWS_PER_INSERT)
            ]
            conn.executemany(many, flat)
        conn.executemany(q["insert_plain"], batch[whole:])
        return SubmitIds(range(before + 1, before + 1 + len(batch)))
    return insert_keyed(q["insert"], q, batch, conn)


def insert_keyed(
    sql: str, q: Queries, batch: list[tuple[Any, ...]], conn: sqlite3.Connection
) -> SubmitIds:
    ids: list[int] = []
    merged: list[int] = []
    for i, row in enumerate(batch):
        cur = conn.execute(sql, row)
        if cur.rowcount == 1 and cur.lastrowid is not None:
            ids.append(cur.lastrowid)
        else:  # idempotency key already used: answer with the existing job
            ids.append(conn.execute(q["id_by_key"], (row[rows.KEY_INDEX],)).fetchone()[0])
            merged.append(i)
    return SubmitIds(ids, merged)


def insert_unique(
    q: Queries, specs: list[JobSpec], now: float, conn: sqlite3.Connection
) -> SubmitIds:
    """A batch with unique jobs: each is merged into (or refused by) an unfinished twin
    stored before or earlier in the batch; the one writer makes check and insert atomic."""
    idents, wanted = unique.identities(specs)
    held: dict[str, tuple[int, str]] = {}
    for ident, job_id, state in conn.execute(q["unique_held"], (msgspec.json.encode(wanted), now)):
        held.setdefault(ident, (job_id, state))
    plan = Plan(specs, idents, held)
    batch = [unique.unique_row(specs[i], idents[i], now) for i in plan.insert]
    return plan.answer(len(specs), insert_keyed(q["insert_unique"], q, batch, conn))


def claim(
    q: Queries,
    worker: str,
    queues: list[str],
    limit: int,
    now: float,
    lease_until: float,
    conn: sqlite3.Connection,
) -> list[Assignment]:
    if len(queues) == 1:
        found = conn.execute(q["claim_queue"], (worker, lease_until, now, queues[0], limit))
    else:
        candidates: list[tuple[int, float, int]] = []
        for name in queues:
            for id_, prio, run_at in conn.execute(q["ready_in_queue"], (name, limit)):
                candidates.append((-prio, run_at, id_))
        ids = [c[2] for c in sorted(candidates)[:limit]]
        if not ids:
            return []
        found = conn.execute(q["claim_ids"], (worker, lease_until, now, msgspec.json.encode(ids)))
    claimed = sorted(found.fetchall(), key=lambda r: (-r[7], r[8], r[0]))
    conn.executemany(q["attempt_started"], [(r[0], r[1], r[4], worker, now) for r in claimed])
    return [rows.assignment(r) for r in claimed]


def report(
    q: Queries,
    retry: RetryPolicy,
    rand: random.Random,
    worker: str,
    outcomes: list[Outcome],
    now: float,
    conn: sqlite3.Connection,
) -> ReportResult:
    res = ReportResult([], [], [], set())
    for o in outcomes:
        if not o.ok:
            _fail(q, retry, rand, conn, worker, o, now, res)
        elif conn.execute(
            q["succeed"], (rows.enc.encode(o.result), now, o.id, o.fence, worker)
        ).rowcount:
            conn.execute(q["attempt_ended"], (now, "succeeded", None, o.id, o.fence))
            res.accepted.append(o.id)
            res.finished.append(o.id)
        else:
            res.stale.append(o.id)
    released = deps_ops.release(q, res.finished, now, conn)
    res.requeued_queues.update(released.queues)
    res.finished.extend(released.cancelled)
    return res


def _fail(
    q: Queries,
    retry: RetryPolicy,
    rand: random.Random,
    conn: sqlite3.Connection,
    worker: str,
    o: Outcome,
    now: float,
    res: ReportResult,
) -> None:
    row = conn.execute(q["running_attempt"], (o.id, o.fence, worker)).fetchone()
    if row is None:
        res.stale.append(o.id)
        return
    attempts, max_attempts, queue, backoff = row
    policy = retry if backoff is None else RetryPolicy(base=backoff, cap=retry.cap)
    error = o.error or ErrorInfo("error", "the attempt failed")
    state, run_at = after_failure(error, attempts, max_attempts, now, policy, rand)
    blob = rows.enc.encode(error)
    conn.execute(q["fail_attempt"], (str(state), run_at, blob, str(state), now, o.id, o.fence))
    conn.execute(q["attempt_ended"], (now, "failed", blob, o.id, o.fence))
    res.accepted.append(o.id)
    if state in TERMINAL_STATES:
        res.finished.append(o.id)
    else:
        res.requeued_queues.add(queue)


def release(
    q: Queries, worker: str, running: list[tuple[int, int]], now: float, conn: sqlite3.Connection
) -> set[str]:
    queues: set[str] = set()
    for job_id, fence in running:
        found = conn.execute(q["release"], (job_id, fence, worker)).fetchone()
        if found is not None:
            conn.execute(q["attempt_ended"], (now, "released", None, job_id, fence))
            queues.add(found[0])
    return queues


def extend(
    q: Queries,
    worker: str,
    running: list[tuple[int, int]],
    lease_until: float,
    conn: sqlite3.Connection,
) -> list[int]:
    sql = q["extend_lease"]
    return [
        job_id
        for job_id, fence in running
        if conn.execute(sql, (lease_until, job_id, fence, worker)).rowcount != 1
    ]


def requeue_worker(q: Queries, worker: str, now: float, conn: sqlite3.Connection) -> Requeued:
    err = rows.enc.encode(WORKER_LOST)
    conn.execute(q["attempts_of_worker_ended"], (now, "worker_lost", err, worker))
    found = rows.requeued(conn.execute(q["requeue_worker"], (err, now, worker)))
    return found._replace(queues=found.queues | deps_ops.release(q, found.failed, now, conn).queues)


def requeue_expired(q: Queries, now: float, conn: sqlite3.Connection) -> Requeued:
    err = rows.enc.encode(LEASE_EXPIRED)
    conn.execute(q["attempts_expired_ended"], (now, "lease_expired", err, now))
    found = rows.requeued(conn.execute(q["requeue_expired"], (err, now, now)))
    return found._replace(queues=found.queues | deps_ops.release(q, found.failed, now, conn).queues)


def cancel(q: Queries, job_id: int, now: float, conn: sqlite3.Connection) -> Job:
    before = get(q, job_id, conn, history=False)
    if before is None:
        raise UnknownJob.for_id(job_id)
    if conn.execute(q["cancel"], (now, job_id)).rowcount != 1:
        raise IllegalTransition(f"job {job_id} is already {before.state} and cannot be cancelled")
    if before.state is JobState.RUNNING:
        conn.execute(q["attempt_ended"], (now, "cancelled", None, job_id, before.fence))
    deps_ops.release(q, [job_id], now, conn)  # dependents: cancelled, or run after any
    return before


def retry_failed(
    q: Queries, job_id: int | None, queue: str | None, now: float, conn: sqlite3.Connection
) -> list[int]:
    if job_id is None:
        return [r[0] for r in conn.execute(q["retry_failed"], {"now": now, "queue": queue})]
    before = get(q, job_id, conn, history=False)
    if before is None:
        raise UnknownJob.for_id(job_id)
    if conn.execute(q["retry_one"], (now, job_id)).fetchone() is None:
        raise IllegalTransition(f"job {job_id} is {before.state}; only failed jobs can be retried")
    return [job_id]


def get(q: Queries, job_id: int, conn: sqlite3.Connection, history: bool = True) -> Job | None:
    row = conn.execute(q["get"], (job_id,)).fetchone()
    if row is None:
        return None
    if not history:
        return rows.job(row, [])
    attempts = [rows.attempt(r) for r in conn.execute(q["history"], (job_id,))]
    found = output.with_progress(q, rows.job(row, attempts), conn)
    after = deps_ops.after_of(q, job_id, conn)
    return msgspec.structs.replace(found, after=after) if after else found


# States most jobs end in: listing them walks the primary key backwards (newest first),
# where matches are dense, instead of sorting every match found through an index.
DENSE_STATES: Final = frozenset({"succeeded", "cancelled"})


def list_jobs(conditions: list[tuple[str, Any]], limit: int, conn: sqlite3.Connection) -> list[Job]:
    sql = f"SELECT {rows.JOB_COLUMNS} FROM jobs"
    if conditions:
        sql += " WHERE " + " AND ".join(
            f"+{cond} ?" if cond == "state =" and value in DENSE_STATES else f"{cond} ?"
            for cond, value in conditions
        )
    sql += " ORDER BY id DESC LIMIT ?"
    return [rows.job(r) for r in conn.execute(sql, (*(v for _, v in conditions), limit))]


def counts(q: Queries, conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for queue, state, n in conn.execute(q["counts"]):
        out.setdefault(queue, {})[state] = n
    return out


def promote(q: Queries, now: float, conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute(q["promote"], (now,))}


def set_paused(q: Queries, queue: str, paused: bool, now: float, conn: sqlite3.Connection) -> None:
    if paused:
        conn.execute(q["pause_queue"], (queue, now))
    else:
        conn.execute(q["resume_queue"], (queue,))


def paused_queues(q: Queries, conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute(q["paused_queues"])}


def publish_workers(
    q: Queries, broker_id: str, snapshot: bytes | None, now: float, conn: sqlite3.Connection
) -> None:
    if snapshot is None:
        conn.execute(q["withdraw_workers"], (broker_id,))
    else:
        conn.execute(q["publish_workers"], (broker_id, snapshot, now))


def worker_snapshots(q: Queries, since: float, conn: sqlite3.Connection) -> list[tuple[str, bytes]]:
    return [(r[0], bytes(r[1])) for r in conn.execute(q["worker_snapshots"], (since,))]
