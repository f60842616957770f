"""The README walk-through, command by command, against a real broker and worker."""

from __future__ import annotations

import pytest

from .harness import Cli, Procs, Server, job_id, wait_until

pytestmark = pytest.mark.system


def test_readme_walkthrough(server: Server, procs: Procs, cli: Cli) -> None:
    procs.worker(server, "w-readme")
    at = server.address

    ran = cli("submit", "wordcount hello world how are you", server=at)
    assert ran.out == "Job ID: 1\n"

    def succeeded() -> str | None:
        line = cli("status", 1, server=at).out
        return line if "succeeded" in line else None

    line = wait_until(succeeded, 30, interval=0.1, what="job 1 to succeed")
    assert line.startswith("Job 1: succeeded on worker w-readme (attempt 1 of 3, ran ")
    assert cli("result", 1, server=at).out == "word count: 5\n"
    assert cli("results", 1, server=at).out == "word count: 5\n"

    # The words as separate arguments mean the same as one quoted string.
    second = job_id(cli("submit", "wordcount", "one", "two", server=at).out)
    assert second == 2
    assert cli("result", second, "--wait", "--timeout", 30, server=at).out == "word count: 2\n"

    # --wait prints the result instead of the id.
    assert cli("submit", "capitalize", "hello", "there", "--wait", server=at).out == (
        "HELLO THERE\n"
    )

    data = cli("result", second, "--json", server=at).json()
    assert data == {
        "id": 2,
        "task": "wordcount",
        "args": ["one", "two"],
        "kwargs": {},
        "state": "succeeded",
        "result": "word count: 2",
        "error": None,
        "attempts": 1,
    }

    status = cli("status", 1, "--json", server=at).json()
    assert status["state"] == "succeeded"
    assert status["worker"] == "w-readme"
    assert status["attempts"] == 1

    listed = cli("jobs", "--json", server=at).json()
    assert [j["id"] for j in listed] == [3, 2, 1]
    assert {j["state"] for j in listed} == {"succeeded"}

    stats = cli("stats", "--json", server=at).json()
    assert stats["jobs"] == {
        "waiting": 0,
        "scheduled": 0,
        "queued": 0,
        "running": 0,
        "succeeded": 3,
        "failed": 0,
        "cancelled": 0,
    }
    assert stats["workers"] == 1
    assert stats["processed"] == 3
    assert "processed" in cli("stats", server=at).out  # the table renders too


def test_failed_job_and_env_server(server: Server, procs: Procs, cli: Cli) -> None:
    procs.worker(server, "w-fail")
    env = {"RUNQ_SERVER": server.address}

    ran = cli("submit", "fail", "boom", "--retries", 0, "--wait", env=env, ok=False)
    assert ran.code == 1
    assert ran.err == "Job 1 failed after 1 attempt(s): task_failed: boom\n"

    ran = cli("result", 1, env=env, ok=False)
    assert ran.code == 1
    assert "task_failed: boom" in ran.err

    assert cli("status", 1, env=env).out.startswith("Job 1: failed (attempt 1 of 1)")
    assert cli("stats", "--json", env=env).json()["jobs"]["failed"] == 1

    # A delayed job can be cancelled before it runs; its result then says so.
    delayed = job_id(cli("submit", "echo", "later", "--delay", 300, env=env).out)
    assert cli("status", delayed, "--json", env=env).json()["state"] == "scheduled"
    assert cli("cancel", delayed, env=env).out == f"Job {delayed}: cancelled\n"
    ran = cli("result", delayed, env=env, ok=False)
    assert ran.code == 1
    assert ran.err == f"Job {delayed} was cancelled\n"
