"""Retention: finished jobs are purged once the retention period has passed."""

from __future__ import annotations

import dataclasses

import pytest

from runq.clock import FakeClock
from runq.errors import UnknownJob
from runq.testing import run_broker

DAY = 86400.0


async def test_finished_jobs_go_after_the_retention_period_and_others_stay() -> None:
    clock = FakeClock()
    async with run_broker(clock=clock) as rb:
        await rb.add_worker(concurrency=2)
        async with rb.client() as client:
            # Given: one finished job and one that waits its turn far in the future.
            done = await client.submit("echo", "old")
            assert await client.result(done, timeout=5) == "old"
            later = await client.submit("echo", "later", delay=30 * DAY)

            # When: six days pass, then eight.
            assert await rb.broker.duties.purge(clock.advance(6 * DAY)) == 0
            assert (await client.get(done)).result == "old"
            assert await rb.broker.duties.purge(clock.advance(2 * DAY)) == 1

            # Then: the finished job is gone; the scheduled one stays.
            with pytest.raises(UnknownJob):
                await client.get(done)
            assert str((await client.get(later)).state) == "scheduled"


async def test_retention_none_keeps_everything() -> None:
    clock = FakeClock()
    async with run_broker(clock=clock) as rb:
        rb.broker.config = dataclasses.replace(rb.broker.config, retention=None)
        await rb.add_worker(concurrency=1)
        async with rb.client() as client:
            job = await client.submit("echo", "kept")
            assert await client.result(job, timeout=5) == "kept"
            assert await rb.broker.duties.purge(clock.advance(365 * DAY)) == 0
            assert (await client.get(job)).result == "kept"
