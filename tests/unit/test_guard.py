"""The time limits of a native connection, moved by hand (broker/guard.py)."""

from __future__ import annotations

import logging
import math

import pytest

from runq.broker import BrokerConfig
from runq.broker.guard import AddressCount, Deadlines, QuietLog
from runq.errors import IdleTimeout, TooSlow

CONFIG = BrokerConfig(frame_timeout=30.0, idle_timeout=300.0, write_timeout=20.0)


def test_a_partial_frame_has_the_frame_timeout() -> None:
    times = Deadlines.of(CONFIG, 0.0)
    times.partial = 10.0
    assert times.next_check(11.0, False, True) == 40.0
    assert times.overdue(39.9, False, True) is None
    assert isinstance(times.overdue(40.0, False, True), TooSlow)


def test_silence_is_idleness_only_when_greeted_and_nothing_is_in_flight() -> None:
    times = Deadlines.of(CONFIG, 0.0)
    assert times.next_check(5.0, False, False) == math.inf  # the handshake timer's job
    assert times.overdue(1000.0, False, False) is None
    assert times.overdue(1000.0, True, True) is None  # a long wait is being served
    assert times.next_check(1000.0, True, True) == 1300.0
    assert isinstance(times.overdue(300.0, False, True), IdleTimeout)
    times.active = 250.0
    assert times.overdue(300.0, False, True) is None
    assert times.next_check(300.0, False, True) == 550.0


def test_unread_replies_stop_every_other_clock() -> None:
    times = Deadlines.of(CONFIG, 0.0)
    times.partial, times.paused = 0.0, 100.0  # we stopped reading: not the peer's delay
    assert times.overdue(119.0, False, True) is None
    assert times.next_check(119.0, False, True) == 120.0
    error = times.overdue(120.0, False, True)
    assert isinstance(error, TooSlow) and "unread" in error.message


def test_no_idle_timeout_means_none() -> None:
    times = Deadlines.of(BrokerConfig(idle_timeout=None), 0.0)
    assert times.overdue(1e9, False, True) is None
    assert times.next_check(1e9, False, True) == math.inf


def test_an_address_holds_at_most_its_limit() -> None:
    count = AddressCount(2)
    assert count.admit("10.0.0.1") and count.admit("10.0.0.1")
    assert not count.admit("10.0.0.1")  # refused, but counted until released
    assert count.admit("10.0.0.2")
    count.release("10.0.0.1")
    count.release("10.0.0.1")
    assert count.count("10.0.0.1") == 1
    count.release("10.0.0.1")
    assert count.count("10.0.0.1") == 0
    assert "10.0.0.9 already holds 2 connections" in count.refusal("10.0.0.9")


def test_quiet_log_says_at_most_its_share_a_second_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    quiet = QuietLog(logging.getLogger("runq.test.quiet"), per_second=3)
    with caplog.at_level(logging.WARNING, logger="runq.test.quiet"):
        for i in range(10):
            quiet.warning(100.2 + i * 0.01, "closing %d", i)
        quiet.warning(101.5, "closing %d", 99)
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "closing 0",
        "closing 1",
        "closing 2",
        "… and 7 more connections closed like that",
        "closing 99",
    ]
