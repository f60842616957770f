"""Python tasks and command jobs in one process: a real broker (runq.testing.run_broker)
and the executors `runq worker` uses, as docs/tasks.md describes them."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil
import pytest

from runq.client import AsyncClient, JobFailed
from runq.model import Job
from runq.testing import run_broker
from runq.worker.executors.base import Executor
from runq.worker.executors.command import CommandExecutor, CommandPolicy
from runq.worker.executors.python import PoolConfig, PythonExecutor

MODULE = "runq_it_tasks"
TASKS = '''
import asyncio
import os

import runq


@runq.task
def add(a: int, b: int = 0) -> int:
    return a + b


@runq.task
def scale(values: list[int], factor: float = 1.0) -> list[float]:
    return [v * factor for v in values]


@runq.task
def untyped(a, b="x"):
    return [a, b]


@runq.task
async def slow_double(x: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * x


@runq.task
async def async_fails() -> None:
    await asyncio.sleep(0)
    raise RuntimeError("async went wrong")


@runq.task
def fails(what: str) -> None:
    raise ValueError(what)


@runq.task
def flaky() -> dict:
    """Fails its first attempt, then says what it saw."""
    if os.environ["RUNQ_ATTEMPT"] == "1":
        raise RuntimeError("first attempt fails")
    return {"job": os.environ["RUNQ_JOB_ID"], "attempt": os.environ["RUNQ_ATTEMPT"]}


@runq.task
def permanent() -> None:
    raise runq.Permanent("never")


@runq.task
def unencodable() -> object:
    return object()


@runq.task(queue="images", retries=4, timeout=30, priority=7)
def thumbnail(path: str, size: int = 256) -> str:
    return f"{path}@{size}"


@runq.task
def route(queue: str, retries: int) -> list:
    return [queue, retries]


@runq.task(name="renamed", timeout=0.5)
def forever() -> None:
    while True:
        pass
'''

WAIT = 20.0


@pytest.fixture
def tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The task module, importable here (submit by function) and in task processes
    (they inherit PYTHONPATH)."""
    (tmp_path / f"{MODULE}.py").write_text(TASKS)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    module = importlib.import_module(MODULE)
    monkeypatch.delitem(sys.modules, MODULE)
    return module


async def eventually(check: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := check()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.02)
    return value


def whole(pool: PythonExecutor, size: int) -> bool:
    """The pool has ``size`` live task processes (replacements have started)."""
    return len([p for p in pool.processes() if not (p.dead or p.retiring)]) == size


@pytest.fixture
async def client(tasks: ModuleType) -> AsyncIterator[AsyncClient]:
    policy = CommandPolicy(
        allow=frozenset({"echo", "sh"}), path=os.environ.get("PATH", os.defpath), env=(("K", "v"),)
    )
    pool = PythonExecutor(PoolConfig(modules=(MODULE,), size=2))
    async with run_broker() as rb:
        executors: list[Executor] = [pool, CommandExecutor(policy)]
        await rb.add_worker(concurrency=2, queues=("default", "images"), executors=executors)
        async with rb.client() as c:
            yield c
        # A process lost in the test has been replaced before the worker stops (closing
        # the pool while one is starting is test_close_stops_a_process_being_started).
        await eventually(lambda: whole(pool, 2), what="the pool to be whole again")


async def finished(client: AsyncClient, job_id: int) -> Job:
    await client.wait(job_id, WAIT)
    return await client.get(job_id)


async def failed_with(client: AsyncClient, job_id: int, code: str, attempts: int) -> Job:
    job = await finished(client, job_id)
    assert job.state == "failed", job
    assert job.error is not None and job.error.code == code, job
    assert job.attempts == attempts, job
    return job


async def test_arguments_are_bound_and_converted(client: AsyncClient) -> None:
    t = f"{MODULE}."
    assert await client.result(await client.submit(t + "add", "2", "40"), WAIT) == 42
    assert await client.result(await client.submit(t + "add", 2, b="5"), WAIT) == 7
    assert await client.result(await client.submit(t + "add", a=1), WAIT) == 1
    job = await client.submit(t + "scale", ["1", "2"], factor="0.5")
    assert await client.result(job, WAIT) == [0.5, 1.0]
    # No annotations: the values arrive as they were sent.
    assert await client.result(await client.submit(t + "untyped", "1"), WAIT) == ["1", "x"]
    assert await client.result(await client.submit(t + "slow_double", "21"), WAIT) == 42


@pytest.mark.parametrize(
    ("args", "kwargs", "why"),
    [
        (["1", "2", "3"], {}, "too many positional arguments"),
        ([], {}, "missing a required argument: 'a'"),
        (["1"], {"c": 3}, "unexpected keyword argument 'c'"),
        (["two"], {}, "Expected `int`"),
    ],
)
async def test_a_wrong_argument_list_fails_without_retries(
    client: AsyncClient, args: list[str], kwargs: dict[str, int], why: str
) -> None:
    job_id = await client.submit(f"{MODULE}.add", *args, kwargs=kwargs, retries=5)
    job = await failed_with(client, job_id, "invalid_arguments", 1)
    assert job.error is not None and job.error.retryable is False
    assert job.error.message.startswith(f"{MODULE}.add: ") and why in job.error.message, job


async def test_an_exception_fails_the_attempt_with_its_traceback_and_is_retried(
    client: AsyncClient,
) -> None:
    job_id = await client.submit(f"{MODULE}.fails", "bad input", retries=1, backoff=0.01)
    job = await failed_with(client, job_id, "error", 2)
    assert job.error is not None and job.error.message == "ValueError: bad input"
    assert job.error.traceback and "raise ValueError(what)" in job.error.traceback
    job_id = await client.submit(f"{MODULE}.async_fails", retries=0)
    job = await failed_with(client, job_id, "error", 1)
    assert job.error is not None and job.error.message == "RuntimeError: async went wrong"


async def test_permanent_and_bad_results_fail_at_once(client: AsyncClient) -> None:
    job = await failed_with(client, await client.submit(f"{MODULE}.permanent"), "permanent", 1)
    assert job.error is not None and job.error.message == "never"
    assert job.error.traceback is None and job.max_attempts == 3
    job = await failed_with(client, await client.submit(f"{MODULE}.unencodable"), "bad_result", 1)
    assert job.error is not None and f"the result of {MODULE}.unencodable" in job.error.message
    with pytest.raises(JobFailed, match="bad_result"):
        await client.result(job.id, WAIT)


async def test_the_task_sees_its_job_id_and_attempt(client: AsyncClient) -> None:
    job_id = await client.submit(f"{MODULE}.flaky", backoff=0.01)
    assert await client.result(job_id, WAIT) == {"job": str(job_id), "attempt": "2"}


async def test_unknown_task_fails_without_retries(client: AsyncClient) -> None:
    job = await failed_with(client, await client.submit(f"{MODULE}.nope"), "unknown_task", 1)
    assert job.error is not None and job.error.retryable is False


async def test_submit_by_function_takes_the_decorator_defaults(
    client: AsyncClient, tasks: ModuleType
) -> None:
    by_function = await client.submit(tasks.thumbnail, "a.jpg", size=128)
    assert await client.result(by_function, WAIT) == "a.jpg@128"
    job = await client.get(by_function)
    assert (job.task, job.queue, job.max_attempts, job.timeout, job.priority) == (
        f"{MODULE}.thumbnail",
        "images",
        5,
        30,
        7,
    )
    given = await client.submit(tasks.thumbnail, "b.jpg", queue="default", retries=0, priority=1)
    assert await client.result(given, WAIT) == "b.jpg@256"
    job = await client.get(given)
    assert (job.queue, job.max_attempts, job.timeout, job.priority) == ("default", 1, 30, 1)
    # Task arguments named like job options go in kwargs=.
    routed = await client.submit(tasks.route, kwargs={"queue": "q", "retries": 9})
    assert await client.result(routed, WAIT) == ["q", 9]
    job = await client.get(routed)
    assert (job.queue, job.max_attempts) == ("default", 3)


async def test_by_name_the_worker_applies_the_task_timeout(client: AsyncClient) -> None:
    job_id = await client.submit("renamed", retries=0)
    job = await failed_with(client, job_id, "timeout", 1)
    assert job.timeout is None  # the job carries none: the worker used the task's 0.5 s
    assert job.error is not None and "0.5 s" in job.error.message
    assert await client.result(await client.submit(f"{MODULE}.add", 1, 1), WAIT) == 2


async def test_command_jobs_next_to_python_tasks(client: AsyncClient) -> None:
    echo = await client.submit_command(["echo", "hi"], env={"J": "1"})
    result = await client.result(echo, WAIT)
    assert (result["exit_code"], result["stdout"], result["stdout_bytes"]) == (0, "hi\n", 3)
    env = await client.submit_command(["sh", "-c", 'echo "$K $J $RUNQ_ATTEMPT"'], env={"J": "j"})
    assert (await client.result(env, WAIT))["stdout"] == "v j 1\n"
    refused = await client.submit_command(["ls"])
    job = await failed_with(client, refused, "command_not_allowed", 1)
    assert job.error is not None and "'ls' is not on this worker's list" in job.error.message
    shell = await client.submit_command(["echo hi"], shell=True)
    await failed_with(client, shell, "command_not_allowed", 1)
    bad = await client.submit("runq.command", "echo", kwargs={"colour": "red"})
    job = await failed_with(client, bad, "invalid_arguments", 1)
    assert job.error is not None and "unknown command options: colour" in job.error.message
    failing = await client.submit_command(
        ["sh", "-c", "echo broken >&2; exit 4"], retry_on_failure=False
    )
    job = await failed_with(client, failing, "command_failed", 1)
    assert job.error is not None and job.error.message == "exit code 4: broken"


def task_processes() -> list[psutil.Process]:
    """Live task processes this test process started (through in-process workers)."""
    found = []
    for child in psutil.Process().children():
        try:
            cmdline, status = child.cmdline(), child.status()
        except psutil.Error:
            continue
        if "runq.worker.executors.child" in cmdline and status != psutil.STATUS_ZOMBIE:
            found.append(child)
    return found


async def test_close_stops_a_process_being_started(tmp_path: Path, tasks: ModuleType) -> None:
    # Slow to import: when the worker stops, the replacement of the timed-out process
    # is still starting.
    (tmp_path / "runq_it_slow.py").write_text(
        "import time\nimport runq\n\ntime.sleep(0.5)\n\n\n"
        "@runq.task(timeout=0.2)\ndef spin() -> None:\n    while True:\n        pass\n"
    )
    pool = PythonExecutor(PoolConfig(modules=("runq_it_slow",), size=1))
    async with run_broker() as rb:
        await rb.add_worker(concurrency=1, executors=[pool])
        async with rb.client() as client:
            job_id = await client.submit("runq_it_slow.spin", retries=0)
            await failed_with(client, job_id, "timeout", 1)
        assert not whole(pool, 1)  # the replacement is importing
        await rb.stop_workers()  # closes the pool
        try:
            # Once started, the replacement must be stopped too (not adopted and left).
            await eventually(lambda: not task_processes(), 10, what="no task process left")
        finally:
            for proc in pool.processes():  # clean up whatever close() left behind
                proc.kill()
                await proc.proc.wait()
