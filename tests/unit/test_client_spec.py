"""How the Python client turns submit arguments into a JobSpec."""

from __future__ import annotations

import datetime

import pytest

from runq.client.aio import spec
from runq.errors import InvalidArguments


def test_delay_takes_seconds_or_a_timedelta() -> None:
    assert spec("echo", delay=90).delay == 90
    assert spec("echo", delay=datetime.timedelta(minutes=15)).delay == 900


def test_run_at_takes_epoch_seconds_or_a_datetime() -> None:
    when = datetime.datetime(
        2026, 12, 1, 9, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
    )
    assert spec("echo", run_at=when).run_at == when.timestamp() == 1_796_112_000.0
    naive = datetime.datetime(2026, 12, 1, 9, 0)
    assert spec("echo", run_at=naive).run_at == naive.timestamp()  # local time
    assert spec("echo", run_at=1_796_112_000.0).run_at == 1_796_112_000.0


def test_a_negative_delay_is_refused() -> None:
    with pytest.raises(InvalidArguments):
        spec("echo", delay=-1)
    with pytest.raises(InvalidArguments):
        spec("echo", delay=datetime.timedelta(seconds=-5))
