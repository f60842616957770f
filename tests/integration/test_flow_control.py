"""Flow control end to end: rate limits and concurrency keys enforced by the broker over
every worker (and, on PostgreSQL, over two brokers sharing one schema).

The rate tests measure real time: each counts the jobs that started in a window after
the first second (the bucket starts full), so a burst does not count."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from runq.client import AsyncClient
from runq.errors import InvalidArguments, UnknownLimit
from runq.model import Assignment, JobSpec
from runq.testing import RunningBroker, run_broker
from runq.worker.executors.base import InlineExecutor


class Stamp(InlineExecutor):
    """A task ("stamp") that notes when each job started."""

    def __init__(self) -> None:
        self.started: list[float] = []

    def knows(self, task: str) -> bool:
        return task == "stamp"

    def start(self, job: Assignment) -> Any:
        self.started.append(time.monotonic())
        return job.id


class Keyed(InlineExecutor):
    """A task ("keyed") that runs a little while and tracks how many jobs of each key
    (its first argument) run at once, and the most ever seen."""

    def __init__(self) -> None:
        self.running: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.done = 0

    def knows(self, task: str) -> bool:
        return task == "keyed"

    def start(self, job: Assignment) -> Any:
        key = str(job.args[0])

        async def run() -> str:
            self.running[key] = self.running.get(key, 0) + 1
            self.most[key] = max(self.most.get(key, 0), self.running[key])
            try:
                await asyncio.sleep(0.02)
            finally:
                self.running[key] -= 1
                self.done += 1
            return key

        return run()


def rate_in_window(started: list[float], skip: float, window: float) -> float:
    """Jobs a second that started in ``window`` seconds, ``skip`` after the first."""
    first = min(started)
    inside = [t for t in started if first + skip <= t < first + skip + window]
    return len(inside) / window


@pytest.mark.timeout(60)
async def test_a_queue_rate_limit_holds_over_ten_seconds_with_four_workers(
    rb: RunningBroker, client: AsyncClient
) -> None:
    # Given: queue "limited" at 20 jobs a second, four workers, far more jobs than that.
    await client.set_rate_limit("queue", "limited", "20/s")
    stamp = Stamp()
    for _ in range(4):
        await rb.add_worker(concurrency=8, queues=["limited"], executors=[stamp])
    await client.submit_many([JobSpec("stamp", queue="limited") for _ in range(400)])
    # When: the workers run for 11 seconds.
    await asyncio.sleep(11.2)
    # Then: from the second second on, 20 jobs a second start (within 10 %).
    assert 18.0 <= rate_in_window(stamp.started, 1.0, 10.0) <= 22.0
    counts = {q.name: q.counts for q in await client.queues()}
    assert counts["limited"].get("queued", 0) > 0  # jobs held back stay queued


async def test_a_concurrency_key_is_never_exceeded_over_several_workers(
    rb: RunningBroker, client: AsyncClient
) -> None:
    # Given: four workers of 4, and 60 jobs of key a (at most 2) and b (at most 1)
    # mixed with 20 plain ones.
    keyed = Keyed()
    for _ in range(4):
        await rb.add_worker(concurrency=4, executors=[keyed])
    specs = []
    for i in range(30):
        specs.append(JobSpec("keyed", ["a"], concurrency_key="a", max_concurrent=2))
        specs.append(JobSpec("keyed", ["b"], concurrency_key="b", max_concurrent=1))
        if i % 3 == 0:
            specs.append(JobSpec("keyed", [f"plain{i}"]))
    ids = await client.submit_many(specs)
    # When: they all run.
    for job_id in ids:
        await client.wait(job_id, timeout=30)
    # Then: all succeeded, and no key ever ran more than its bound at once.
    assert keyed.done == len(ids)
    assert keyed.most["a"] == 2 and keyed.most["b"] == 1


async def test_rate_limits_are_set_listed_and_removed_by_clients(client: AsyncClient) -> None:
    await client.set_rate_limit("queue", "emails", "600/m")
    await client.set_rate_limit("task", "send", "5/s", burst=10)
    found = {(x.scope, x.name): x.text() for x in await client.rate_limits()}
    assert found == {("queue", "emails"): "600/m", ("task", "send"): "5/s"}
    removed = await client.remove_rate_limit("queue", "emails")
    assert (removed.scope, removed.name) == ("queue", "emails")
    with pytest.raises(UnknownLimit):
        await client.remove_rate_limit("queue", "emails")
    for bad in ("0/s", "fast", "10/fortnight", "-1/s"):
        with pytest.raises(InvalidArguments):
            await client.set_rate_limit("queue", "emails", bad)
    with pytest.raises(InvalidArguments):
        await client.set_rate_limit("queues", "emails", "1/s")
    assert [(x.scope, x.name) for x in await client.rate_limits()] == [("task", "send")]


async def test_a_concurrency_key_needs_its_bound(client: AsyncClient) -> None:
    with pytest.raises(InvalidArguments):
        await client.submit("keyed", concurrency_key="a")
    with pytest.raises(InvalidArguments):
        await client.submit("keyed", concurrency_key="a", max_concurrent=0)
    assert await client.queues() == []


# -- two brokers over one PostgreSQL schema ------------------------------------------------


@pytest.mark.timeout(60)
async def test_two_brokers_obey_one_rate_limit_and_one_concurrency_key(store_url: str) -> None:
    async with run_broker(store_url=store_url) as a, run_broker(store_url=store_url) as b:
        # Given: two workers on each broker, a limit of 20/s set through broker A.
        stamp, keyed = Stamp(), Keyed()
        for rb in (a, b, a, b):
            await rb.add_worker(
                concurrency=8, queues=["limited", "default"], executors=[stamp, keyed]
            )
        async with a.client() as client:
            await client.set_rate_limit("queue", "limited", "20/s")
            await client.submit_many([JobSpec("stamp", queue="limited") for _ in range(300)])
            ids = [
                await client.submit("keyed", "k", concurrency_key="k", max_concurrent=2)
                for _ in range(40)
            ]
            # When: both brokers dispatch for six seconds.
            await asyncio.sleep(6.2)
            for job_id in ids:
                await client.wait(job_id, timeout=30)
        # Then: together they started 20 jobs a second (within 10 %), and never more
        # than two jobs of key k at once.
        assert 18.0 <= rate_in_window(stamp.started, 1.0, 5.0) <= 22.0
        assert keyed.most == {"k": 2} and keyed.done == 40


# -- over HTTP ------------------------------------------------------------------------------


async def test_rate_limits_and_concurrency_keys_over_http() -> None:
    async with (
        run_broker(http=True) as hb,
        httpx.AsyncClient(base_url=hb.http_url, timeout=10) as http,
    ):
        body = {"scope": "queue", "name": "emails", "count": 600, "per": "m"}
        r = await http.put("/api/v1/limits", json=body)
        assert r.status_code == 200 and r.json() == body | {"burst": None}
        r = await http.get("/api/v1/limits")
        assert r.json() == [body | {"count": 600.0, "burst": 10.0}]
        for bad in ({**body, "count": 0}, {**body, "per": "fortnight"}, {**body, "scope": "x"}):
            r = await http.put("/api/v1/limits", json=bad)
            assert r.status_code == 422, r.text
        assert (await http.delete("/api/v1/limits/queue/emails")).status_code == 200
        r = await http.delete("/api/v1/limits/queue/emails")
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_limit"
        assert (await http.get("/api/v1/limits")).json() == []
        job = {"task": "echo", "concurrency_key": "c-1", "max_concurrent": 1}
        assert (await http.post("/api/v1/jobs", json=job)).status_code == 201
        r = await http.post("/api/v1/jobs", json={"task": "echo", "max_concurrent": 1})
        assert r.status_code == 422 and "go together" in r.text
