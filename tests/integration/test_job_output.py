"""Progress and logs from task processes: a real broker (runq.testing.run_broker), a
worker with a pool of task processes running a real task module that prints, logs and
calls runq.progress, and a client reading the lines back (docs/tasks.md, "Progress and
logs")."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import runq
from runq.client import AsyncClient
from runq.errors import InvalidArguments, UnknownJob
from runq.model import JobState
from runq.model.output import MAX_OUTPUT, LogLine
from runq.testing import RunningBroker, run_broker
from runq.worker.executors.base import Executor
from runq.worker.executors.command import CommandExecutor, CommandPolicy
from runq.worker.executors.python import PoolConfig, PythonExecutor

MODULE = "runq_it_output"
TASKS = """
import logging
import os
import sys
import time

import runq

log = logging.getLogger("resizer")


@runq.task
def resize(n: int) -> int:
    for i in range(1, n + 1):
        print(f"resized {i} of {n}")
        runq.progress(i / n, f"resized {i} of {n}")
    print("to stderr", file=sys.stderr)
    log.info("all %d done", n)
    print("no newline at the end", end="")
    return n


@runq.task
def chatty(chars: int) -> int:
    line = "x" * 99
    for _ in range(chars // 100 + 1):
        print(line)
    print("y" * 10_000)  # one long line, split into pieces
    return chars


@runq.task
def slow_steps(steps: int, pause: float) -> str:
    for i in range(steps):
        print(f"step {i}")
        runq.progress((i + 1) / steps, f"step {i + 1} of {steps}")
        time.sleep(pause)
    return "done"


@runq.task
def flaky_writer() -> str:
    attempt = os.environ["RUNQ_ATTEMPT"]
    print(f"attempt {attempt} starts")
    if attempt == "1":
        raise RuntimeError("first attempt fails")
    return "ok"
"""

WAIT = 20.0


@pytest.fixture
def task_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / f"{MODULE}.py").write_text(TASKS)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    importlib.invalidate_caches()
    return MODULE


@pytest.fixture
async def broker(task_module: str) -> AsyncIterator[RunningBroker]:
    pool = PythonExecutor(PoolConfig(modules=(task_module,), size=2))
    async with run_broker(http=True) as rb:
        policy = CommandPolicy(allow=frozenset({"sh"}), path=os.environ.get("PATH", os.defpath))
        executors: list[Executor] = [pool, CommandExecutor(policy)]
        await rb.add_worker(concurrency=2, executors=executors)
        yield rb


@pytest.fixture
async def client(broker: RunningBroker) -> AsyncIterator[AsyncClient]:
    async with broker.client() as c:
        yield c


def fetch_now(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


async def fetch(url: str) -> tuple[int, Any]:
    """GET ``url``: its status and JSON body."""
    return await asyncio.to_thread(fetch_now, url)


async def all_lines(client: AsyncClient, job_id: int) -> list[LogLine]:
    lines: list[LogLine] = []
    after = 0
    while True:
        page = await client.logs(job_id, after)
        lines += page.lines
        if page.next == after:
            return lines
        after = page.next


async def test_print_logging_and_progress_arrive_in_order(client: AsyncClient) -> None:
    # Given a task that prints, writes to stderr, logs and reports progress
    job_id = await client.submit(f"{MODULE}.resize", 5)
    # When it has run
    assert await client.result(job_id, WAIT) == 5
    # Then every line is there, in order, numbered from 1, with its stream
    lines = await all_lines(client, job_id)
    assert [(x.stream, x.text) for x in lines] == [
        *(("stdout", f"resized {i} of 5") for i in range(1, 6)),
        ("stderr", "to stderr"),
        ("log", "INFO resizer: all 5 done"),
        ("stdout", "no newline at the end"),
    ]
    assert [x.seq for x in lines] == list(range(1, 9))
    assert {x.attempt for x in lines} == {1}
    # and the job shows its last progress
    job = await client.get(job_id)
    assert (job.progress, job.progress_message) == (1.0, "resized 5 of 5")
    page = await client.logs(job_id, after=6)
    assert [x.seq for x in page.lines] == [7, 8]
    assert page.state is JobState.SUCCEEDED and page.next == 8
    assert (page.progress, page.progress_message) == (1.0, "resized 5 of 5")


async def test_output_is_bounded_per_attempt_with_a_note(client: AsyncClient) -> None:
    job_id = await client.submit(f"{MODULE}.chatty", 3 * MAX_OUTPUT)
    await client.result(job_id, WAIT)
    lines = await all_lines(client, job_id)
    kept = sum(max(1, len(x.text)) for x in lines if x.stream != "runq")
    assert kept <= MAX_OUTPUT
    assert lines[-1].stream == "runq"
    assert "output cut" in lines[-1].text and "more not kept" in lines[-1].text
    assert all(len(x.text) <= 4096 for x in lines)


async def test_long_lines_are_split_and_kept(client: AsyncClient) -> None:
    job_id = await client.submit(f"{MODULE}.chatty", 0)
    await client.result(job_id, WAIT)
    texts = [x.text for x in await all_lines(client, job_id)]
    assert texts == ["x" * 99, "y" * 4096, "y" * 4096, "y" * 1808]


async def test_lines_are_kept_per_attempt(client: AsyncClient) -> None:
    job_id = await client.submit(f"{MODULE}.flaky_writer", backoff=0.01)
    assert await client.result(job_id, WAIT) == "ok"
    lines = await all_lines(client, job_id)
    assert [(x.attempt, x.text) for x in lines] == [
        (1, "attempt 1 starts"),
        (2, "attempt 2 starts"),
    ]


async def test_progress_and_lines_show_while_the_job_runs(client: AsyncClient) -> None:
    # Given a job that works in slow steps
    job_id = await client.submit(f"{MODULE}.slow_steps", 8, 0.25)

    # When it is half way, its status shows progress and its first lines are readable
    async def running_with_progress() -> Any:
        while True:
            job = await client.get(job_id)
            if job.state is JobState.RUNNING and job.progress is not None:
                return job
            await asyncio.sleep(0.05)

    job = await asyncio.wait_for(running_with_progress(), WAIT)
    assert 0 < (job.progress or 0) < 1 and (job.progress_message or "").startswith("step ")
    first = await client.logs(job_id)
    assert first.state is JobState.RUNNING and first.lines
    # Then following it yields every line once, in order, and ends with the job
    followed = [x.text async for x in client.follow(job_id, poll=0.05)]
    assert followed == [f"step {i}" for i in range(8)]
    assert (await client.get(job_id)).state is JobState.SUCCEEDED


async def test_bad_requests_are_clear_errors(broker: RunningBroker, client: AsyncClient) -> None:
    with pytest.raises(UnknownJob):
        await client.logs(10**9)
    with pytest.raises(InvalidArguments, match="after must be 0 or more"):
        await client.logs(1, after=-1)
    status, body = await fetch(f"{broker.http_url}/api/v1/jobs/999/logs")
    assert (status, body["error"]["code"]) == (404, "unknown_job")
    status, body = await fetch(f"{broker.http_url}/api/v1/jobs/1/logs?after=-1")
    assert status == 422  # as every invalid parameter of the API


async def test_the_http_api_reads_lines_after_a_seq(
    broker: RunningBroker, client: AsyncClient
) -> None:
    job_id = await client.submit(f"{MODULE}.resize", 2)
    await client.result(job_id, WAIT)
    status, body = await fetch(f"{broker.http_url}/api/v1/jobs/{job_id}/logs?after=1")
    assert status == 200
    assert body["id"] == job_id and body["state"] == "succeeded"
    assert [x["seq"] for x in body["lines"]] == [2, 3, 4, 5]
    assert body["lines"][0]["text"] == "resized 2 of 2" and body["next"] == 5
    assert (body["progress"], body["progress_message"]) == (1.0, "resized 2 of 2")
    status, job = await fetch(f"{broker.http_url}/api/v1/jobs/{job_id}")
    assert (status, job["progress"], job["progress_message"]) == (200, 1.0, "resized 2 of 2")


async def test_a_command_jobs_output_is_in_its_logs_too(client: AsyncClient) -> None:
    script = "echo one; echo two >&2; printf 'caf\\303\\251 no newline'; exit 3"
    job_id = await client.submit_command(["sh", "-c", script], retries=0)
    job = await client.wait(job_id, WAIT)
    assert job.state is JobState.FAILED
    lines = await all_lines(client, job_id)
    assert sorted((x.stream, x.text) for x in lines) == [
        ("stderr", "two"),
        ("stdout", "café no newline"),
        ("stdout", "one"),
    ]
    assert [x.seq for x in lines] == [1, 2, 3]


def test_progress_outside_a_task_checks_its_arguments_and_does_nothing() -> None:
    runq.progress(0.5, "half")
    runq.progress(7)  # clamped
    with pytest.raises(TypeError):
        runq.progress("half")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaN"):
        runq.progress(float("nan"))
