"""Unique jobs through every door: the Python client, HTTP, and two brokers on one
PostgreSQL schema submitting the same unique job at the same moment.

PostgreSQL runs at 127.0.0.1:5432 (database ``test``, user ``postgres``, trust auth);
the two-broker test gets its own schema, dropped afterwards. Without the server it
skips, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import httpx
import pytest

from runq.errors import AlreadyQueued, InvalidArguments
from runq.model import JobState
from runq.testing import run_broker


async def test_two_brokers_given_the_same_unique_job_at_once_make_one_job(
    store_url: str,
) -> None:
    # Given: two brokers on one schema, several clients on each.
    async with run_broker(store_url=store_url) as a, run_broker(store_url=store_url) as b:
        clients = [await rb.client().connect() for rb in (a, b) for _ in range(4)]
        try:
            # When: every client submits the same unique job, many times, at once (each
            # batch with a plain job too, and a twin of its own).
            def batch(i: int) -> list[dict[str, Any]]:
                job = {"task": "echo", "args": ["report"], "unique_for": 600}
                return [{"task": "echo", "args": [i]}, job, job]

            answers = await asyncio.gather(
                *(c.submit_many(batch(i)) for i, c in enumerate(clients * 5))
            )
            # Then: one job holds the identity; every answer names it, and says so.
            assert len({ids[1] for ids in answers}) == 1
            assert all(ids[1] == ids[2] for ids in answers)
            assert sorted(len(ids.merged) for ids in answers) == [1] + [2] * (len(answers) - 1)
            jobs = await clients[0].list(limit=1000)
            assert sum(j.args == ["report"] for j in jobs) == 1
            assert len(jobs) == len(answers) + 1
            # and a refuse-mode twin, through either broker, names it in its error
            for c in (clients[0], clients[-1]):
                with pytest.raises(AlreadyQueued) as refused:
                    await c.submit_many(
                        [
                            {
                                "task": "echo",
                                "args": ["report"],
                                "unique_for": 9,
                                "unique_mode": "refuse",
                            }
                        ]
                    )
                assert refused.value.job_id == answers[0][1]
        finally:
            for c in clients:
                await c.close()


async def test_the_python_client_takes_a_timedelta_and_tells_a_merge_from_a_new_job() -> None:
    async with run_broker() as rb, rb.client() as client:
        window = datetime.timedelta(minutes=10)
        first = await client.submit("echo", "x", unique_for=window)
        twin = await client.submit_many([{"task": "echo", "args": ["x"], "unique_for": 600}])
        assert list(twin) == [first] and twin.merged == [0]
        await rb.add_worker(concurrency=1)
        assert (await client.wait(first, timeout=10)).state is JobState.SUCCEEDED
        # the first has finished: a new job
        again = await client.submit_many([{"task": "echo", "args": ["x"], "unique_for": 600}])
        assert again[0] != first and again.merged == []
        with pytest.raises(InvalidArguments, match="unique_mode needs unique_for"):
            await client.submit("echo", unique_mode="refuse")
        with pytest.raises(InvalidArguments, match="unique_for"):
            await client.submit("echo", unique_for=-5)


async def test_http_answers_a_merged_submit_with_200_and_the_existing_job() -> None:
    async with (
        run_broker(http=True) as rb,
        httpx.AsyncClient(base_url=rb.http_url, timeout=10) as http,
    ):
        body = {"task": "echo", "args": ["y"], "unique_for": 600}
        made = await http.post("/api/v1/jobs", json=body)
        assert made.status_code == 201 and "merged" not in made.json()
        again = await http.post("/api/v1/jobs", json=body)
        assert again.status_code == 200
        assert again.json()["id"] == made.json()["id"] and again.json()["merged"] is True
        refused = await http.post("/api/v1/jobs", json={**body, "unique_mode": "refuse"})
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "already_queued"
        assert refused.json()["error"]["message"].startswith(
            f"job {made.json()['id']} is already queued with the same task and arguments"
        )
        batch = await http.post("/api/v1/jobs/batch", json={"jobs": [{"task": "echo"}, body]})
        assert batch.status_code == 201
        assert batch.json() == {
            "ids": [made.json()["id"] + 1, made.json()["id"]],
            "merged": [1],
        }
        bad = await http.post("/api/v1/jobs", json={"task": "echo", "unique_for": 0})
        assert bad.status_code == 422
        lone = await http.post("/api/v1/jobs", json={"task": "echo", "unique_mode": "refuse"})
        assert lone.status_code == 422 and "unique_mode needs unique_for" in lone.text
        total = sum(sum(c.values()) for c in (await rb.broker.store.counts()).values())
        assert total == 2
