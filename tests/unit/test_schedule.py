"""The pure tick rule of periodic schedules: which ticks are due at ``now`` under each
catch-up policy, in a time zone with daylight saving time."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest

from runq.errors import ScheduleError
from runq.model.schedule import (
    MAX_CATCH_UP,
    CatchUp,
    ScheduleSpec,
    check,
    check_cron,
    due,
    next_tick,
)
from runq.model.spec import JobSpec

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
T0 = 1_700_000_100.0  # 2023-11-14 22:15:00 UTC, a five-minute tick


def berlin(*args: int, fold: int = 0) -> float:
    return datetime.datetime(*args, tzinfo=BERLIN, fold=fold).timestamp()  # type: ignore[misc]


def test_nothing_is_due_before_the_next_tick() -> None:
    assert due("*/5 * * * *", "UTC", T0, T0 - 1, CatchUp.ALL) == ([], T0)


def test_a_tick_on_time_fires_under_every_policy() -> None:
    for policy in CatchUp:
        assert due("*/5 * * * *", "UTC", T0, T0 + 0.4, policy) == ([T0], T0 + 300)


def test_a_tick_a_little_late_still_counts_as_on_time() -> None:
    assert due("*/5 * * * *", "UTC", T0, T0 + 59, CatchUp.NONE).ticks == [T0]
    assert due("*/5 * * * *", "UTC", T0, T0 + 61, CatchUp.NONE).ticks == []


def test_missed_ticks_per_policy() -> None:
    now = T0 + 3600 + 120  # 13 ticks passed, the newest two minutes ago
    assert due("*/5 * * * *", "UTC", T0, now, CatchUp.NONE) == ([], T0 + 3900)
    assert due("*/5 * * * *", "UTC", T0, now, CatchUp.LAST) == ([T0 + 3600], T0 + 3900)
    every = due("*/5 * * * *", "UTC", T0, now, CatchUp.ALL)
    assert every.ticks == [T0 + 300 * n for n in range(13)]
    assert every.next_at == T0 + 3900


def test_catching_up_all_is_bounded_to_the_newest_ticks() -> None:
    now = T0 + 60 * 5000
    found = due("* * * * *", "UTC", T0, now, CatchUp.ALL)
    assert len(found.ticks) == MAX_CATCH_UP
    assert found.ticks[-1] == now and found.ticks[0] == now - 60 * (MAX_CATCH_UP - 1)


def test_a_daily_time_in_the_spring_gap_fires_once_when_the_gap_ends() -> None:
    before = berlin(2024, 3, 30, 12, 0)
    first = next_tick("30 2 * * *", "Europe/Berlin", before)
    assert first == berlin(2024, 3, 31, 3, 0)  # 02:30 does not exist that night
    assert next_tick("30 2 * * *", "Europe/Berlin", first) == berlin(2024, 4, 1, 2, 30)


def test_a_daily_time_in_the_repeated_autumn_hour_fires_once() -> None:
    start = berlin(2024, 10, 26, 12, 0)
    first = next_tick("30 2 * * *", "Europe/Berlin", start)
    assert first == berlin(2024, 10, 27, 2, 30, fold=0)  # the first 02:30 (summer time)
    assert next_tick("30 2 * * *", "Europe/Berlin", first) == berlin(2024, 10, 28, 2, 30)
    # and catching up over that night finds the one tick
    ticks = due("30 2 * * *", "Europe/Berlin", first, first + 86400 - 60, CatchUp.ALL).ticks
    assert ticks == [first]


def test_ticks_follow_the_zone_not_utc() -> None:
    winter = next_tick("0 9 * * *", "Europe/Berlin", berlin(2024, 1, 10, 0, 0))
    summer = next_tick("0 9 * * *", "Europe/Berlin", berlin(2024, 7, 10, 0, 0))
    assert datetime.datetime.fromtimestamp(winter, datetime.UTC).hour == 8
    assert datetime.datetime.fromtimestamp(summer, datetime.UTC).hour == 7


@pytest.mark.parametrize(
    ("cron", "tz", "message"),
    [
        ("bad", "UTC", "invalid cron expression 'bad': it has 5 fields"),
        ("61 * * * *", "UTC", "invalid cron expression"),
        ("* * * * * *", "UTC", "it has 5 fields"),
        ("0 0 31 2 *", "UTC", "never fires"),
        ("* * * * *", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("* * * * *", "../etc/passwd", "unknown time zone"),
    ],
)
def test_bad_cron_or_zone_is_refused_in_one_line(cron: str, tz: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message.replace("(", r"\(")) as info:
        check_cron(cron, tz)
    assert "\n" not in str(info.value)


def test_a_schedules_job_takes_no_time_or_key() -> None:
    for job in (JobSpec("echo", delay=5), JobSpec("echo", run_at=1.0), JobSpec("echo", key="k")):
        with pytest.raises(ScheduleError, match="no run_at, delay or key"):
            check(ScheduleSpec("s", "* * * * *", job))
    assert check(ScheduleSpec("s", "@hourly", JobSpec("echo"))).cron == "@hourly"
