"""Periodic schedules with real brokers and a fake clock: each tick fires once, across
a broker restart and with two brokers on one PostgreSQL schema.

The brokers' own duty looks for due ticks every 0.5 s with the fake clock's ``now``;
the tests also run the duty by hand at the same ``now``, as a second broker would.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from integration_waiting import eventually

from runq.broker import operations as ops
from runq.client import AsyncClient
from runq.clock import FakeClock
from runq.errors import Conflict, ScheduleError, UnknownSchedule
from runq.model import JobState
from runq.model.schedule import next_tick
from runq.testing import RunningBroker, run_broker
from runq.worker.executors.python import PoolConfig, PythonExecutor

EVERY_5 = "*/5 * * * *"
START = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
FIRST = next_tick(EVERY_5, "UTC", START)  # 22:15:00


async def tick_keys(client: AsyncClient, name: str) -> list[str]:
    jobs = await client.list(limit=1000)
    return sorted(j.key for j in jobs if j.key and j.key.startswith(f"schedule:{name}:"))


async def fired(client: AsyncClient, name: str, count: int) -> None:
    async def enough() -> bool:
        return len(await tick_keys(client, name)) >= count

    await eventually(enough, timeout=5, what=f"{count} tick(s) of {name}")


async def fire_by_hand(rb: RunningBroker, clock: FakeClock, times: int = 3) -> None:
    for _ in range(times):
        await rb.broker.duties.fire_schedules(clock())


async def test_each_tick_fires_once_and_its_job_runs() -> None:
    clock = FakeClock(START)
    async with run_broker(clock=clock) as rb:
        await rb.add_worker(concurrency=2)
        async with rb.client() as client:
            await client.add_schedule("five", EVERY_5, "echo", "tick", tz="Europe/Berlin")
            await fire_by_hand(rb, clock)
            assert await tick_keys(client, "five") == []
            clock.now = FIRST
            await fired(client, "five", 1)
            await fire_by_hand(rb, clock)
            (job,) = await client.list()
            assert job.key == "schedule:five:2023-11-14T22:15:00Z"
            assert await client.result(job.id, timeout=5) == "tick"
            clock.now = FIRST + 300
            await fired(client, "five", 2)
            await fire_by_hand(rb, clock)
            assert len(await tick_keys(client, "five")) == 2
            (listed,) = await client.schedules()
            assert (listed.last_at, listed.next_at) == (FIRST + 300, FIRST + 600)


async def test_bad_requests_store_nothing() -> None:
    async with run_broker() as rb, rb.client() as client:
        with pytest.raises(ScheduleError, match="invalid cron expression"):
            await client.add_schedule("bad", "99 * * * *", "echo")
        with pytest.raises(ScheduleError, match="unknown time zone"):
            await client.add_schedule("bad", EVERY_5, "echo", tz="Nowhere/City")
        with pytest.raises(ScheduleError, match=r"belong to @runq\.task"):
            await client.add_schedule("task:mine", EVERY_5, "echo")
        await client.add_schedule("ok", EVERY_5, "echo")
        with pytest.raises(Conflict, match="exists already"):
            await client.add_schedule("ok", "* * * * *", "echo")
        with pytest.raises(UnknownSchedule):
            await client.remove_schedule("nope")
        with pytest.raises(UnknownSchedule):
            await client.pause_schedule("nope")
        assert [(s.name, s.cron) for s in await client.schedules()] == [("ok", EVERY_5)]


@pytest.mark.parametrize(("policy", "after_restart"), [("none", 0), ("last", 1), ("all", 3)])
async def test_a_broker_restart_neither_repeats_nor_loses_ticks(
    tmp_path: Path, policy: str, after_restart: int
) -> None:
    # Given a broker that fired the first tick of a schedule
    url = f"sqlite:///{tmp_path / 'runq.db'}"
    clock = FakeClock(START)
    async with run_broker(store_url=url, clock=clock) as rb, rb.client() as client:
        await client.add_schedule("five", EVERY_5, "echo", catch_up=policy)
        clock.now = FIRST
        await fired(client, "five", 1)
    # When it is down for three ticks (the last one more than a minute ago)
    clock.now = FIRST + 3 * 300 + 90
    # Then the broker started again fires the missed ticks its policy asks for, once
    async with run_broker(store_url=url, clock=clock) as rb, rb.client() as client:
        await fired(client, "five", 1 + after_restart)
        await fire_by_hand(rb, clock)
        keys = await tick_keys(client, "five")
        assert len(keys) == 1 + after_restart
        assert keys[0] == "schedule:five:2023-11-14T22:15:00Z"  # the first is not repeated
        (s,) = await client.schedules()
        assert s.next_at == FIRST + 4 * 300
        # and goes on with the next tick
        clock.now = s.next_at
        await fired(client, "five", 2 + after_restart)


async def test_a_paused_schedule_fires_nothing_until_resumed() -> None:
    clock = FakeClock(START)
    async with run_broker(clock=clock) as rb, rb.client() as client:
        await client.add_schedule("five", EVERY_5, "echo", catch_up="all")
        assert (await client.pause_schedule("five")).paused
        clock.now = FIRST + 3600
        await fire_by_hand(rb, clock)
        assert await tick_keys(client, "five") == []
        resumed = await client.resume_schedule("five")
        assert resumed.next_at == FIRST + 3900  # the ticks it missed are skipped
        removed = await client.remove_schedule("five")
        assert removed.name == "five" and await client.schedules() == []


async def test_a_workers_cron_task_becomes_a_schedule(tmp_path: Path) -> None:
    (tmp_path / "crontasks.py").write_text(
        "import runq\n\n"
        "@runq.task(cron='*/5 * * * *', tz='Europe/Berlin', retries=0)\n"
        "def beat() -> str:\n"
        "    return 'beat'\n"
    )
    sys.path.insert(0, str(tmp_path))
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{old}" if old else str(tmp_path)
    clock = FakeClock(START)
    try:
        async with run_broker(clock=clock) as rb, rb.client() as client:
            pool = PythonExecutor(PoolConfig(modules=("crontasks",), size=1))
            await rb.add_worker(executors=[pool])

            async def declared() -> bool:
                return bool(await client.schedules())

            await eventually(declared, timeout=10, what="the task's schedule")
            (s,) = await client.schedules()
            assert (s.name, s.cron, s.tz) == ("task:crontasks.beat", EVERY_5, "Europe/Berlin")
            assert (s.job.task, s.job.max_attempts) == ("crontasks.beat", 1)
            clock.now = FIRST
            await fired(client, "task:crontasks.beat", 1)
            (job,) = await client.list()
            assert await client.result(job.id, timeout=10) == "beat"
            # a worker connecting again declares it again: the schedule stays as it is
            assert await ops.declare_schedules(rb.broker, pool.schedules()) == 1
            assert [x.next_at for x in await client.schedules()] == [FIRST + 300]
    finally:
        sys.path.remove(str(tmp_path))
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


# -- two brokers on one PostgreSQL schema ---------------------------------------------------


async def test_two_brokers_fire_each_tick_once(store_url: str) -> None:
    clock = FakeClock(START)
    async with (
        run_broker(store_url=store_url, clock=clock) as a,
        run_broker(store_url=store_url, clock=clock) as b,
        a.client() as client,
    ):
        await b.add_worker(concurrency=4)
        for n in range(4):
            await client.add_schedule(f"s{n}", EVERY_5, "echo", str(n))
        for tick in range(6):
            clock.now = FIRST + 300 * tick
            for n in range(4):
                await fired(client, f"s{n}", tick + 1)
            await fire_by_hand(a, clock, 1)
            await fire_by_hand(b, clock, 1)
        jobs = await client.list(limit=1000)
        assert len(jobs) == 4 * 6
        assert len({j.key for j in jobs}) == len(jobs)

        async def all_done() -> bool:
            found = await client.list(limit=1000)
            return all(j.state is JobState.SUCCEEDED for j in found)

        await eventually(all_done, timeout=10, what="every tick's job to run")
