"""Schedule rows and tick jobs, shared by the SQLite and PostgreSQL stores (both lay out
schedule rows in the order of SCHEDULE_COLUMNS)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

import msgspec

from runq.model import JobSpec
from runq.model.schedule import CatchUp, Schedule, ScheduleSpec, due, next_tick
from runq.model.unique import identity
from runq.store import rows

SCHEDULE_COLUMNS: Final = "name, cron, tz, job, catch_up, paused, next_at, last_at, created_at"
FIRE_BATCH: Final = 100  # schedules fired in one transaction
dec_job = msgspec.msgpack.Decoder(JobSpec)


def schedule(row: Sequence[Any]) -> Schedule:
    name, cron, tz, job, catch_up, paused, next_at, last_at, created_at = row
    return Schedule(
        name, cron, tz, dec_job.decode(job), CatchUp(catch_up), bool(paused), next_at, last_at,
        created_at,
    )  # fmt: skip


def new_row(spec: ScheduleSpec, now: float) -> tuple[Any, ...]:
    """The insert row of a schedule whose first tick is the first after ``now``."""
    first = next_tick(spec.cron, spec.tz, now)
    job = rows.enc.encode(spec.job)
    return (spec.name, spec.cron, spec.tz, job, str(spec.catch_up), first, now)


def tick_key(name: str, tick: float) -> str:
    """The idempotency key of a tick's job: a tick is one row, whoever fires it."""
    moment = datetime.datetime.fromtimestamp(tick, datetime.UTC)
    return f"schedule:{name}:{moment.strftime('%Y-%m-%dT%H:%M:%SZ')}"


class Firing(NamedTuple):
    name: str
    next_at: float  # the guard: the tick the row still had when it was read
    new_next_at: float
    last_at: float | None  # the newest tick fired (None: none)
    jobs: list[tuple[Any, ...]]  # insert rows of the ticks' jobs
    queue: str
    # a unique job's identity (JobSpec.unique_for): ``jobs`` is then one unique row
    # (store/unique.py), made only while no unfinished twin holds the identity
    ident: str | None = None


def firing(row: Sequence[Any], now: float) -> Firing:
    """What to do with one due schedule row (name, cron, tz, job, catch_up, next_at)."""
    name, cron, tz, job, catch_up, next_at = row
    spec = dec_job.decode(job)
    ticks, new_next_at = due(cron, tz, next_at, now, CatchUp(catch_up))
    jobs = [
        rows.insert_row(msgspec.structs.replace(spec, key=tick_key(name, t)), now) for t in ticks
    ]
    last = ticks[-1] if ticks else None
    ident = identity(spec)  # of the schedule's job, not of a tick's (keyed) job
    if ident is not None and jobs:
        # the ticks are twins of each other: the first stands for them all; it keeps its
        # tick key (the idempotency key) beside its identity
        assert spec.unique_for is not None
        jobs = [(*jobs[0], ident, now + spec.unique_for)]
    return Firing(name, next_at, new_next_at, last, jobs, spec.queue, ident)
