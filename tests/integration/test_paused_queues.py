"""A paused queue stays paused across a broker restart, and is resumed by hand."""

from __future__ import annotations

import asyncio
from pathlib import Path

from runq.model import JobState
from runq.testing import run_broker


async def test_a_pause_outlives_the_broker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runq.db'}"
    async with run_broker(store_url=url) as rb, rb.client() as client:
        await client.pause("emails")
        job_id = await client.submit("echo", "hi", queue="emails")

    async with run_broker(store_url=url) as rb, rb.client() as client:
        assert rb.broker.paused_queues == {"emails"}
        await rb.add_worker(concurrency=1, queues=("emails",))
        await asyncio.sleep(0.3)
        assert (await client.get(job_id)).state is JobState.QUEUED
        info = await client.resume("emails")
        assert (info.name, info.paused) == ("emails", False)  # the job may start at once
        assert (await client.wait(job_id, timeout=5)).state is JobState.SUCCEEDED
        kept = rb.broker.config.retention  # the broker's: the queue has none of its own
        assert await client.queues() == [type(info)("emails", {"succeeded": 1}, False, kept)]
