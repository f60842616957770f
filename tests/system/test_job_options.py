"""Job options end to end: priority, queues, delay, idempotency keys, retries, timeouts,
cancelling a running job and unknown tasks."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from .harness import Cli, Procs, Server, job_id, wait_until

pytestmark = pytest.mark.system


def status(cli: Cli, server: Server, job: int) -> dict[str, Any]:
    data: dict[str, Any] = cli("status", job, "--json", server=server.address).json()
    return data


def test_priority_queues_delay_and_keys(server: Server, procs: Procs, cli: Cli) -> None:
    at = server.address
    low = job_id(cli("submit", "echo", "low", server=at).out)
    high = job_id(cli("submit", "echo", "high", "--priority", 10, server=at).out)
    mid = job_id(cli("submit", "echo", "mid", "-p", 5, server=at).out)
    other = job_id(cli("submit", "echo", "elsewhere", "--queue", "other", server=at).out)
    delayed = job_id(cli("submit", "echo", "later", "--delay", 3, server=at).out)
    keyed = job_id(cli("submit", "echo", "once", "--key", "k-1", server=at).out)
    assert job_id(cli("submit", "echo", "twice", "--key", "k-1", server=at).out) == keyed
    assert status(cli, server, delayed)["state"] == "scheduled"

    # One slot: the queued jobs of `default` run strictly by priority, then by age.
    procs.worker(server, "w-default", concurrency=1)
    for job in (low, high, mid, keyed, delayed):
        cli("result", job, "--wait", "--timeout", 30, server=at)
    started = {job: status(cli, server, job)["started_at"] for job in (low, high, mid, keyed)}
    assert sorted(started, key=started.__getitem__) == [high, mid, low, keyed]
    later = status(cli, server, delayed)
    assert later["started_at"] >= later["submitted_at"] + 3
    assert cli("result", keyed, server=at).out == "once\n"

    # Nobody serves `other` yet.
    assert status(cli, server, other)["state"] == "queued"
    procs.worker(server, "w-other", queues="other,spare")
    assert cli("result", other, "--wait", "--timeout", 30, server=at).out == "elsewhere\n"
    assert status(cli, server, other)["worker"] == "w-other"
    listed = {w["id"]: w for w in cli("workers", "--json", server=at).json()}
    assert listed["w-other"]["queues"] == ["other", "spare"]
    assert listed["w-default"]["queues"] == ["default"]


def test_retries_timeouts_cancel_and_unknown_tasks(server: Server, procs: Procs, cli: Cli) -> None:
    at = server.address
    procs.worker(server, "w-one", concurrency=1)

    ran = cli("submit", "fail", "boom", "--retries", 1, "--wait", server=at, ok=False)
    assert ran.code == 1
    assert ran.err.endswith("failed after 2 attempt(s): task_failed: boom\n"), ran
    failed = int(ran.err.split()[1])
    assert status(cli, server, failed)["attempts"] == 2

    # A failed job can be queued again by hand, with fresh attempts.
    assert cli("retry", failed, server=at).out == f"Job {failed}: queued again\n"
    ran = cli("result", failed, "--wait", "--timeout", 30, server=at, ok=False)
    assert ran.err == f"Job {failed} failed after 2 attempt(s): task_failed: boom\n"

    ran = cli("submit", "sleep", 10, "--timeout", 0.3, "--retries", 0, "--wait", server=at, ok=None)
    assert ran.code == 1, ran
    assert "failed after 1 attempt(s): timeout" in ran.err, ran

    # An unknown task is not retried, whatever --retries says.
    ran = cli("submit", "nosuchtask", "x", "--retries", 5, "--wait", server=at, ok=False)
    assert "failed after 1 attempt(s): unknown_task" in ran.err, ran

    # Cancelling a running job stops it on the worker and frees its only slot.
    long = job_id(cli("submit", "sleep", 30, server=at).out)
    wait_until(
        lambda: status(cli, server, long)["state"] == "running", 20, what="the sleep to start"
    )
    assert cli("cancel", long, server=at).out == f"Job {long}: cancelled\n"
    assert cli("submit", "echo", "next", "--wait", server=at, timeout=20).out == "next\n"
    cancelled = status(cli, server, long)
    assert cancelled["state"] == "cancelled"
    assert cancelled["result"] is None
    ran = cli("result", long, server=at, ok=False)
    assert ran.err == f"Job {long} was cancelled\n"
    ran = cli("cancel", long, server=at, ok=False)
    assert ran.code == 1
    assert ran.err.startswith("error: job ") and "cancelled" in ran.err

    stats = cli("stats", "--json", server=at).json()
    assert stats["jobs"]["failed"] == 3
    assert stats["jobs"]["cancelled"] == 1
    assert stats["jobs"]["succeeded"] == 1
    ran = cli("retry", job_id(cli("submit", "echo", "fine", server=at).out), server=at, ok=False)
    assert ran.code == 1
    assert ran.err.startswith("error: ") and ran.err.count("\n") == 1, ran
    workers = cli("workers", "--json", server=at).json()
    assert workers[0]["running"] == 0


def test_delays_in_units_and_a_time_of_day(server: Server, procs: Procs, cli: Cli) -> None:
    # Given: jobs delayed by "5s" and "1m", and one due at a time 6 s from now written
    # in ISO 8601 with an offset (far enough for the checks below, each a `runq`
    # process, to see them all still scheduled on a loaded machine).
    at = server.address
    soon = job_id(cli("submit", "echo", "soon", "--delay", "5s", server=at).out)
    later = job_id(cli("submit", "echo", "later", "--delay", "1m", server=at).out)
    due = datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=1)))
    due += datetime.timedelta(seconds=6)
    timed = job_id(cli("submit", "echo", "timed", "--at", due.isoformat(), server=at).out)
    for job in (soon, later, timed):
        assert status(cli, server, job)["state"] == "scheduled"
    assert status(cli, server, timed)["run_at"] == pytest.approx(due.timestamp(), abs=1e-3)
    later_job = status(cli, server, later)
    assert later_job["run_at"] == pytest.approx(later_job["submitted_at"] + 60, abs=0.5)

    # When: a worker serves the queue. Then: each due job starts soon after its time
    # (promotion runs every 0.25 s; the slack is for a loaded machine's processes), and
    # the one a minute away waits.
    procs.worker(server, "w-delay", concurrency=2)
    for job in (soon, timed):
        cli("result", job, "--wait", "--timeout", 30, server=at)
        ran = status(cli, server, job)
        assert ran["run_at"] <= ran["started_at"] <= ran["run_at"] + 3.0
    assert status(cli, server, later)["state"] == "scheduled"
