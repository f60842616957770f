"""Periodic schedules: a cron expression in a time zone, and the pure rule that says
which ticks are due at ``now`` under a catch-up policy.

A tick is an instant (epoch seconds). Cron fields are read as wall-clock time in the
schedule's zone: every matching local time fires once. In the autumn hour that repeats,
a time fires at its first occurrence only; a time in the spring gap (02:30 on the night
clocks jump from 02:00 to 03:00) fires when the gap ends.
"""

from __future__ import annotations

import datetime
import enum
import zoneinfo
from collections.abc import Iterator
from typing import Annotated, Final, NamedTuple

import msgspec
from croniter import CroniterError, croniter
from msgspec import Meta

from runq.errors import ScheduleError
from runq.model.spec import JobSpec, Name


class CatchUp(enum.StrEnum):
    """What happens to ticks that passed while no broker ran (or the store was away)."""

    NONE = "none"  # skip them: only a tick at most MISFIRE_GRACE late still fires
    LAST = "last"  # fire the latest of them once
    ALL = "all"  # fire each of them (the latest MAX_CATCH_UP)


DEFAULT_CATCH_UP: Final = CatchUp.LAST
DEFAULT_TZ: Final = "UTC"
MISFIRE_GRACE: Final = 60.0  # seconds a tick may be late and still count as on time
MAX_CATCH_UP: Final = 1_000  # most ticks `all` fires at once; older ones are skipped
TASK_PREFIX: Final = "task:"  # names of the schedules of @runq.task(cron=...)

Cron = Annotated[str, Meta(min_length=1, max_length=200)]
TzName = Annotated[str, Meta(min_length=1, max_length=64)]


class ScheduleSpec(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """A schedule as a client asks for it: fire ``job`` at each tick of ``cron``."""

    name: Name
    cron: Cron
    job: JobSpec  # the job of every tick (no run_at, delay or key: the tick decides them)
    tz: TzName = DEFAULT_TZ
    catch_up: CatchUp = DEFAULT_CATCH_UP


class Schedule(msgspec.Struct, frozen=True):
    """A schedule as stored."""

    name: str
    cron: str
    tz: str
    job: JobSpec
    catch_up: CatchUp
    paused: bool
    next_at: float  # the next tick to fire (epoch seconds)
    last_at: float | None  # the last tick fired
    created_at: float


class Due(NamedTuple):
    ticks: list[float]  # to fire now, oldest first
    next_at: float  # the first tick after ``now``


def zone(tz: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {tz!r} (an IANA name like Europe/Berlin)") from None


def check_cron(cron: str, tz: str) -> None:
    """Refuse (ScheduleError, one line) a cron expression or zone that cannot tick."""
    where = zone(tz)
    fields = cron.split()
    if not cron.startswith("@") and len(fields) != 5:
        raise ScheduleError(
            f"invalid cron expression {cron!r}: it has 5 fields (minute hour day month"
            " weekday), e.g. '*/5 * * * *'"
        )
    if not croniter.is_valid(cron):
        raise ScheduleError(f"invalid cron expression {cron!r}")
    try:
        croniter(cron, datetime.datetime(2000, 1, 1, tzinfo=where)).get_next(datetime.datetime)
    except (CroniterError, ValueError) as exc:
        raise ScheduleError(f"cron expression {cron!r} never fires: {exc}") from None


def check(spec: ScheduleSpec) -> ScheduleSpec:
    check_cron(spec.cron, spec.tz)
    job = spec.job
    if job.run_at is not None or job.delay is not None or job.key is not None:
        raise ScheduleError("a schedule's job takes no run_at, delay or key: its tick sets them")
    if job.concurrency_key is not None:  # ticks are inserted without flow columns
        raise ScheduleError("a schedule's job takes no concurrency_key (not supported yet)")
    return spec


def _repeated(moment: datetime.datetime, where: zoneinfo.ZoneInfo) -> bool:
    """Whether ``moment`` is the second occurrence of a wall-clock time (autumn)."""
    first = moment.replace(tzinfo=None).replace(tzinfo=where, fold=0)
    return first.utcoffset() != moment.utcoffset()


def _ticks(cron: str, tz: str, start: float, forward: bool) -> Iterator[float]:
    where = zone(tz)
    it = croniter(cron, datetime.datetime.fromtimestamp(start, where))
    step = it.get_next if forward else it.get_prev
    while True:
        moment = step(datetime.datetime)
        if not _repeated(moment, where):
            yield moment.timestamp()


def next_tick(cron: str, tz: str, after: float) -> float:
    """The first tick strictly after ``after``."""
    for tick in _ticks(cron, tz, after, forward=True):
        if tick > after:
            return tick
    raise AssertionError("unreachable")


def due(cron: str, tz: str, next_at: float, now: float, catch_up: CatchUp) -> Due:
    """The ticks from ``next_at`` up to ``now`` to fire under ``catch_up``, and the
    schedule's next tick after them. A tick at most MISFIRE_GRACE late is on time and
    fires under every policy."""
    if now < next_at:
        return Due([], next_at)
    following = next_tick(cron, tz, now)
    latest: list[float] = []  # newest first
    limit = MAX_CATCH_UP if catch_up is CatchUp.ALL else 1
    for tick in _ticks(cron, tz, now + 0.5, forward=False):
        if tick > now:
            continue
        if tick < next_at or len(latest) >= limit:
            break
        latest.append(tick)
    if catch_up is CatchUp.NONE:
        latest = [t for t in latest if now - t <= MISFIRE_GRACE]
    return Due(latest[::-1], following)
