"""Chains and groups on a real broker and worker: results flow from step to step, and a
step that fails for good cancels what follows."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import runq
from runq.client import AsyncClient
from runq.errors import InvalidArguments
from runq.model import Assignment, JobState
from runq.testing import RunningBroker
from runq.worker.executors.base import InlineExecutor

S = JobState


class Arithmetic(InlineExecutor):
    """ "add N" adds N to the previous result (0 at the start); "total" sums a group's
    results; "broken" always fails, for good."""

    def knows(self, task: str) -> bool:
        return task in ("add", "total", "broken")

    def start(self, job: Assignment) -> Any:
        previous = job.kwargs.get("previous")
        if job.task == "add":
            return (previous or 0) + job.args[0]
        if job.task == "total":
            return sum(previous)
        raise runq.Permanent("broken on purpose")


async def test_a_chain_passes_each_result_to_the_next_step(
    rb: RunningBroker, client: AsyncClient
) -> None:
    await rb.add_worker(concurrency=4, executors=[Arithmetic()])
    flow = runq.chain(runq.step("add", 1), runq.step("add", 10), runq.step("add", 100))
    ids = await flow.submit(client)
    assert len(ids) == 3
    last = await client.wait(ids[-1], timeout=10)
    assert (last.state, last.result) == (S.SUCCEEDED, 111)
    assert [(await client.get(i)).result for i in ids] == [1, 11, 111]


async def test_a_group_feeds_a_final_step_with_its_results_in_order(
    rb: RunningBroker, client: AsyncClient
) -> None:
    await rb.add_worker(concurrency=4, executors=[Arithmetic()])
    fan_out = runq.group(*(runq.step("add", n) for n in (1, 2, 3)))
    flow = runq.chain(runq.step("add", 5), fan_out, runq.step("total"))
    ids = await flow.submit(client)
    final = await client.wait(ids[-1], timeout=10)
    assert final.state is S.SUCCEEDED
    assert final.result == (5 + 1) + (5 + 2) + (5 + 3)


async def test_a_failed_step_cancels_the_rest_of_the_chain_with_a_reason(
    rb: RunningBroker, client: AsyncClient
) -> None:
    await rb.add_worker(concurrency=2, executors=[Arithmetic()])
    flow = runq.chain(runq.step("add", 1), runq.step("broken"), runq.step("add", 2))
    first, broken, last = await flow.submit(client)
    assert (await client.wait(broken, timeout=10)).state is S.FAILED
    after = await client.wait(last, timeout=10)
    assert after.state is S.CANCELLED
    assert after.error is not None and f"dependency {broken} failed" in after.error.message
    assert after.attempts == 0  # it never ran
    assert (await client.get(first)).result == 1


def test_steps_may_not_set_the_links_themselves() -> None:
    with pytest.raises(InvalidArguments, match="a chain sets after"):
        runq.step("add", 1, after=[3])
    with pytest.raises(InvalidArguments):
        runq.chain()
    with pytest.raises(InvalidArguments):
        runq.group()


async def test_explain_names_the_jobs_a_waiting_job_depends_on(
    rb: RunningBroker, client: AsyncClient
) -> None:
    first = await client.submit("add", 1)
    second = await client.submit("add", 2, after=[first])
    assert (await client.get(second)).state is S.WAITING
    text = await client.explain(second)
    assert str(first) in text and "wait" in text


async def test_explain_names_a_rate_limit_that_holds_a_queued_job(
    rb: RunningBroker, client: AsyncClient
) -> None:
    await client.set_rate_limit("queue", "slow", "1/h", burst=1)
    await rb.add_worker(concurrency=2, queues=("slow",), executors=[Arithmetic()])
    ran = await client.submit("add", 1, queue="slow")
    held = await client.submit("add", 2, queue="slow")
    assert (await client.wait(ran, timeout=5)).state is S.SUCCEEDED
    await rb.broker.flow.refresh()
    text = await client.explain(held)
    assert "held by the rate limit 1/h of queue slow" in text


async def test_explain_names_a_concurrency_key_that_holds_a_job(
    rb: RunningBroker, client: AsyncClient
) -> None:
    gate = Gate()
    await rb.add_worker(concurrency=3, queues=("keyed",), executors=[gate])
    opts = {"queue": "keyed", "concurrency_key": "customer-42", "max_concurrent": 1}
    first = await client.submit("gate", **opts)
    held = await client.submit("gate", **opts)
    await gate.started.wait()
    assert (await client.get(first)).state is S.RUNNING
    text = await client.explain(held)
    assert "held by concurrency key customer-42 (1 of its jobs already running)" in text
    gate.opened.set()
    assert (await client.wait(held, timeout=5)).state is S.SUCCEEDED


class Gate(InlineExecutor):
    """ "gate" runs until the test opens the gate."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.opened = asyncio.Event()

    def knows(self, task: str) -> bool:
        return task == "gate"

    def start(self, job: Assignment) -> Any:
        async def run() -> str:
            self.started.set()
            await self.opened.wait()
            return "through"

        return run()


async def test_explain_says_when_no_worker_of_the_queue_knows_the_task(
    rb: RunningBroker, client: AsyncClient
) -> None:
    # Given: a worker with the built-in tasks only (it lists them), busy with a job.
    await rb.add_worker(concurrency=1)
    (listed,) = await client.workers()
    assert "wordcount" in str(listed.info["tasks"]).split(",")
    busy = await client.submit("sleep", 2)
    while (await client.get(busy)).state is not S.RUNNING:
        await asyncio.sleep(0.01)
    # When: a job of a task it lacks waits behind it. Then: explain says so.
    job_id = await client.submit("resize", "photo.jpg")
    text = await client.explain(job_id)
    assert "no connected worker serving queue default knows task resize" in text
