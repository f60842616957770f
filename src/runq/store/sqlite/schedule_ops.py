"""The SQLite store's schedule operations, as plain functions of a connection (on the
writer thread, inside its group transaction, or on a reader thread)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import msgspec

from runq.errors import Conflict, UnknownSchedule
from runq.model.schedule import Schedule, ScheduleSpec, next_tick
from runq.store import schedules as s
from runq.store.sqlite import ops

Queries = dict[str, str]


def add(q: Queries, spec: ScheduleSpec, now: float, conn: sqlite3.Connection) -> Schedule:
    if conn.execute(q["add_schedule"], s.new_row(spec, now)).rowcount != 1:
        raise Conflict(f"a schedule named {spec.name!r} exists already")
    return one(q, spec.name, conn)


def upsert(q: Queries, specs: Sequence[ScheduleSpec], now: float, conn: sqlite3.Connection) -> None:
    conn.executemany(q["upsert_schedule"], [s.new_row(spec, now) for spec in specs])


def one(q: Queries, name: str, conn: sqlite3.Connection) -> Schedule:
    row = conn.execute(q["schedule"], (name,)).fetchone()
    if row is None:
        raise UnknownSchedule.for_name(name)
    return s.schedule(row)


def listing(q: Queries, conn: sqlite3.Connection) -> list[Schedule]:
    return [s.schedule(r) for r in conn.execute(q["schedules"])]


def remove(q: Queries, name: str, conn: sqlite3.Connection) -> Schedule:
    row = conn.execute(q["remove_schedule"], (name,)).fetchone()
    if row is None:
        raise UnknownSchedule.for_name(name)
    return s.schedule(row)


def set_paused(
    q: Queries, name: str, paused: bool, now: float, conn: sqlite3.Connection
) -> Schedule:
    found = one(q, name, conn)
    if paused:
        conn.execute(q["pause_schedule"], (name,))
    elif found.paused:
        conn.execute(q["resume_schedule"], (next_tick(found.cron, found.tz, now), name))
    return one(q, name, conn)


def fire(q: Queries, many: str, now: float, limit: int, conn: sqlite3.Connection) -> set[str]:
    """Fire the due ticks of up to ``limit`` schedules: each schedule's next tick moves
    on (a guarded write) in the transaction that inserts its ticks' jobs."""
    queues: set[str] = set()
    for row in conn.execute(q["due_schedules"], (now, limit)).fetchall():
        f = s.firing(row, now)
        advance = (f.new_next_at, f.last_at, f.name, f.next_at)
        if conn.execute(q["advance_schedule"], advance).rowcount != 1:
            continue
        if f.ident is not None:
            if _fire_unique(q, f, now, conn):
                queues.add(f.queue)
        elif f.jobs:
            ops.insert(q, many, f.jobs, conn)
            queues.add(f.queue)
    return queues


def _fire_unique(q: Queries, f: s.Firing, now: float, conn: sqlite3.Connection) -> bool:
    """A unique tick job goes in unless an unfinished twin holds its identity (then the
    tick is merged into that job, whatever the job's unique_mode). True: it went in."""
    held = conn.execute(q["unique_held"], (msgspec.json.encode([f.ident]), now)).fetchone()
    if held is not None or not f.jobs:
        return False
    ops.insert_keyed(q["insert_unique"], q, f.jobs, conn)
    return True
