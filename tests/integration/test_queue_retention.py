"""Per-queue retention, `runq purge` by hand and `runq explain`, through a real broker,
workers and clients; time moves on a FakeClock."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from runq.clock import FakeClock
from runq.errors import RunqError, UnknownJob
from runq.model import JobState
from runq.testing import run_broker

DAY = 86400.0


async def state_of(client: object, job_id: int) -> JobState:
    return (await client.get(job_id)).state  # type: ignore[attr-defined, no-any-return]


async def test_each_queue_keeps_its_finished_jobs_its_own_time_while_others_run() -> None:
    clock = FakeClock()
    async with run_broker(clock=clock, lease=365 * DAY) as rb:
        await rb.add_worker(concurrency=4, queues=("default", "tmp", "audit"))
        async with rb.client() as client:
            # Given: tmp keeps a day, audit forever, default the broker's 7 days; one
            # finished job in each, a job running and one scheduled for later.
            await client.set_retention("tmp", DAY)
            await client.set_retention("audit", "forever")
            done = {q: await client.submit("echo", q, queue=q) for q in ("default", "tmp", "audit")}
            for queue, job_id in done.items():
                assert await client.result(job_id, timeout=5) == queue
            running = await client.submit("sleep", "2")
            for _ in range(100):
                if await state_of(client, running) is JobState.RUNNING:
                    break
                await asyncio.sleep(0.02)
            later = await client.submit("echo", "later", delay=30 * DAY)
            listed = {q.name: (q.retention, q.retention_set) for q in await client.queues()}
            assert listed == {
                "default": (7 * DAY, False),
                "tmp": (DAY, True),
                "audit": (None, True),
            }

            # When/Then: after two days only tmp's job goes; after eight, default's too.
            assert await rb.broker.duties.purge(clock.advance(2 * DAY)) == 1
            with pytest.raises(UnknownJob):
                await client.get(done["tmp"])
            assert await rb.broker.duties.purge(clock.advance(6 * DAY)) == 1
            with pytest.raises(UnknownJob):
                await client.get(done["default"])
            assert await rb.broker.duties.purge(clock.advance(20 * DAY)) == 0
            assert (await client.get(done["audit"])).result == "audit"
            assert await state_of(client, running) in (JobState.RUNNING, JobState.SUCCEEDED)
            assert await state_of(client, later) is JobState.SCHEDULED

            # And: tmp follows the broker's retention again once reset.
            info = await client.set_retention("tmp", "default")
            assert (info.retention, info.retention_set) == (7 * DAY, False)


async def test_purge_by_hand_takes_only_the_finished_jobs_asked_for() -> None:
    clock = FakeClock()
    async with run_broker(clock=clock) as rb:
        await rb.add_worker(concurrency=2, queues=("default", "b"))
        async with rb.client() as client:
            ok = [await client.submit("echo", str(i)) for i in range(2)]
            bad = await client.submit("fail", "boom", queue="b", retries=0)
            for job_id in ok:
                await client.wait(job_id, timeout=5)
            assert (await client.wait(bad, timeout=5)).state is JobState.FAILED
            queued = await client.submit("echo", "stays", queue="nobody")
            clock.advance(2 * DAY)

            with pytest.raises(RunqError, match="only finished jobs can be purged"):
                await client.purge(DAY, state="running")
            assert await client.purge(3 * DAY) == 0  # none finished that long ago
            assert await client.purge(DAY, state="failed") == 1
            assert await client.purge(DAY, queue="default") == 2
            assert await client.purge(DAY) == 0
            assert await state_of(client, queued) is JobState.QUEUED


async def test_explain_says_why_a_job_waits() -> None:
    clock = FakeClock()
    async with run_broker(clock=clock, http=True) as rb, rb.client() as client:
        job_id = await client.submit("echo", "hi", queue="reports")
        assert await client.explain(job_id) == (
            f"job {job_id} is queued but no connected worker serves queue reports"
        )
        await client.pause("reports")
        assert "queue reports is paused" in await client.explain(job_id)
        later = await client.submit("echo", "later", delay=3900)
        assert (await client.explain(later)).endswith("in 1h 5m")
        async with httpx.AsyncClient(base_url=rb.http_url, timeout=10) as http:
            r = await http.get(f"/api/v1/jobs/{job_id}/explain")
            assert r.status_code == 200
            assert r.json() == {"id": job_id, "text": await client.explain(job_id)}
            assert (await http.get("/api/v1/jobs/999999/explain")).status_code == 404

        await client.resume("reports")
        await rb.add_worker(concurrency=1, queues=("reports",))
        await client.wait(job_id, timeout=5)
        assert "finished: succeeded" in await client.explain(job_id)
        with pytest.raises(UnknownJob):
            await client.explain(999_999)
