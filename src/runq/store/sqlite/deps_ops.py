"""Dependencies between jobs on SQLite (store/deps.py): run on the writer thread, inside
the transaction of the operation that ends the parents."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec

from runq.model import JobSpec, JobState
from runq.model.unique import SubmitIds
from runq.store import deps, rows
from runq.store.deps import Released

Queries = dict[str, str]  # the backend's queries.sql and deps.sql
InsertKeyed = Callable[[str, Queries, list[tuple[Any, ...]], sqlite3.Connection], SubmitIds]


def submit(
    q: Queries, insert: InsertKeyed, specs: list[JobSpec], now: float, conn: sqlite3.Connection
) -> SubmitIds:
    """A batch with dependencies: every parent must exist; each new dependent is settled
    at once against parents that have already ended."""
    wanted = deps.parents_wanted(specs)
    found = {r[0] for r in conn.execute(q["parent_states"], (msgspec.json.encode(wanted),))}
    deps.check_parents(wanted, found)
    batch = [deps.insert_row(s, now) for s in specs]
    ids = insert(q["insert"], q, batch, conn)
    conn.executemany(q["add_dep"], deps.dep_rows(specs, ids, ids.merged))
    settle(q, deps.new_dependents(specs, ids, ids.merged), now, conn)
    return ids


def release(q: Queries, ended: Iterable[int], now: float, conn: sqlite3.Connection) -> Released:
    """Settle the waiting dependents of jobs that just ended (and theirs, in turn)."""
    ended = list(ended)
    if not ended:
        return Released(set(), [])
    found = conn.execute(q["dependents"], (msgspec.json.encode(ended),)).fetchall()
    return settle(q, [r[0] for r in found], now, conn)


def settle(q: Queries, waiting: Sequence[int], now: float, conn: sqlite3.Connection) -> Released:
    out = Released(set(), [])
    todo = list(waiting)
    while todo:
        job_id = todo.pop(0)
        parents = conn.execute(q["parents_of"], (job_id,)).fetchall()
        settled, pass_results = deps.verdict(parents)
        if settled is None:
            continue
        if settled.state is JobState.CANCELLED:
            reason = rows.enc.encode(settled.reason)
            if conn.execute(q["dep_cancel"], (reason, now, job_id)).rowcount == 1:
                out.cancelled.append(job_id)
                todo.extend(r[0] for r in conn.execute(q["dependents"], (f"[{job_id}]",)))
            continue
        args = None
        if pass_results:
            blob = conn.execute(q["args_of"], (job_id,)).fetchone()[0]
            args = deps.args_with_results(blob, parents)
        row = conn.execute(q["dep_ready"], (now, now, args, job_id)).fetchone()
        if row is not None and row[1] == str(JobState.QUEUED):
            out.queues.add(row[0])
    return out


def after_of(q: Queries, job_id: int, conn: sqlite3.Connection) -> list[int]:
    return [r[0] for r in conn.execute(q["after_of"], (job_id,))]
