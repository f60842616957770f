"""The PostgreSQL store's schedule operations, as plain functions of a connection."""

from __future__ import annotations

from collections.abc import Sequence

from runq.errors import Conflict, UnknownSchedule
from runq.model.schedule import Schedule, ScheduleSpec, next_tick
from runq.store import schedules as s
from runq.store.postgres import ops
from runq.store.postgres.ops import Conn

Queries = dict[str, str]


async def add(q: Queries, spec: ScheduleSpec, now: float, conn: Conn) -> Schedule:
    if await conn.execute(q["add_schedule"], *s.new_row(spec, now)) != "INSERT 0 1":
        raise Conflict(f"a schedule named {spec.name!r} exists already")
    return await one(q, spec.name, conn)


async def upsert(q: Queries, specs: Sequence[ScheduleSpec], now: float, conn: Conn) -> None:
    # in name order, so that brokers upserting the same schedules never deadlock
    ordered = sorted(specs, key=lambda spec: spec.name)
    await conn.executemany(q["upsert_schedule"], [s.new_row(spec, now) for spec in ordered])


async def one(q: Queries, name: str, conn: Conn) -> Schedule:
    row = await conn.fetchrow(q["schedule"], name)
    if row is None:
        raise UnknownSchedule.for_name(name)
    return s.schedule(tuple(row))


async def listing(q: Queries, conn: Conn) -> list[Schedule]:
    return [s.schedule(tuple(r)) for r in await conn.fetch(q["schedules"])]


async def remove(q: Queries, name: str, conn: Conn) -> Schedule:
    row = await conn.fetchrow(q["remove_schedule"], name)
    if row is None:
        raise UnknownSchedule.for_name(name)
    return s.schedule(tuple(row))


async def set_paused(q: Queries, name: str, paused: bool, now: float, conn: Conn) -> Schedule:
    found = await one(q, name, conn)
    if paused:
        await conn.execute(q["pause_schedule"], name)
    elif found.paused:
        await conn.execute(q["resume_schedule"], next_tick(found.cron, found.tz, now), name)
    return await one(q, name, conn)


async def fire(q: Queries, now: float, limit: int, conn: Conn) -> set[str]:
    """Fire the due ticks of up to ``limit`` schedules. Their rows are locked (another
    broker's are skipped), each one's next tick moves on (a guarded write) in the
    transaction that inserts its ticks' jobs."""
    queues: set[str] = set()
    for row in await conn.fetch(q["due_schedules"], now, limit):
        f = s.firing(tuple(row), now)
        advance = (f.new_next_at, f.last_at, f.name, f.next_at)
        if await conn.execute(q["advance_schedule"], *advance) != "UPDATE 1":
            continue
        if f.ident is not None:
            if await _fire_unique(q, f, now, conn):
                queues.add(f.queue)
        elif f.jobs:
            await ops.insert(q, f.jobs, True, conn)
            queues.add(f.queue)
    return queues


async def _fire_unique(q: Queries, f: s.Firing, now: float, conn: Conn) -> bool:
    """A unique tick job goes in unless an unfinished twin holds its identity (then the
    tick is merged into that job, whatever the job's unique_mode); the identity's lock
    orders it with a submit of a twin on another broker. True: it went in."""
    await conn.fetchval(q["lock_unique"], [f.ident])
    if await conn.fetch(q["unique_held"], [f.ident], now) or not f.jobs:
        return False
    await ops.insert(q, f.jobs, True, conn, "insert_unique")
    return True
