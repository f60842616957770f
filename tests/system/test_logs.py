"""`runq logs N [--follow]` and progress in `runq status`, against a real `runq server`
and `runq worker jobs` running a task module that prints, logs and calls runq.progress
(docs/tasks.md, "Progress and logs")."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from .harness import RUNQ, Cli, Procs, Server, clean_env, job_id, wait_for_workers, wait_until

pytestmark = pytest.mark.system

TASKS = '''
"""Task module for tests/system/test_logs.py."""

import logging
import os
import time

import runq

log = logging.getLogger("jobs")


@runq.task
def resize(n: int) -> int:
    for i in range(1, n + 1):
        print(f"resized {i} of {n}")
        runq.progress(i / n, f"resized {i} of {n}")
    log.warning("careful")
    return n


@runq.task
def gated(gate: str) -> str:
    """Prints, reports 40%, then waits for the test to create ``gate``."""
    print("started")
    runq.progress(0.4, "resized 40 of 100")
    while not os.path.exists(gate):
        time.sleep(0.02)
    print("finished")
    return "ok"
'''


def start_worker(procs: Procs, server: Server, tmp_path: Path) -> None:
    (tmp_path / "jobs.py").write_text(TASKS)
    args: list[str | int] = ["worker", "jobs", "--server", server.worker_address]
    args += ["--id", "w-logs", "--concurrency", 2, "--log-level", "info"]
    proc = procs.spawn("worker-w-logs", args)
    wait_for_workers(server, {"w-logs"}, proc)


def test_logs_prints_what_a_finished_job_wrote(
    procs: Procs, server: Server, cli: Cli, tmp_path: Path
) -> None:
    # Given a worker running a task module that prints, logs and reports progress
    start_worker(procs, server, tmp_path)
    jid = job_id(cli("submit", "jobs.resize", "3", server=server.address).out)
    cli("result", jid, "--wait", "--timeout", 20, server=server.address)
    # When its logs are asked for
    ran = cli("logs", jid, server=server.address)
    # Then they come in order: the prints, then the logging record
    assert ran.out.splitlines() == [
        "resized 1 of 3",
        "resized 2 of 3",
        "resized 3 of 3",
        "WARNING jobs: careful",
    ]
    tail = cli("logs", jid, "--after", 3, "--json", server=server.address).json()
    assert (tail["seq"], tail["stream"], tail["attempt"]) == (4, "log", 1)
    done = cli("status", jid, "--json", server=server.address).json()
    assert (done["progress"], done["progress_message"]) == (1.0, "resized 3 of 3")


def test_follow_prints_lines_as_they_come_and_ends_with_the_job(
    procs: Procs, server: Server, cli: Cli, tmp_path: Path
) -> None:
    start_worker(procs, server, tmp_path)
    gate = tmp_path / "gate"
    jid = job_id(cli("submit", "jobs.gated", str(gate), server=server.address).out)
    # Given the job is running and has reported 40%
    status = wait_until(
        lambda: "40%" in (s := cli("status", jid, server=server.address).out) and s,
        20,
        what="progress in runq status",
    )
    assert status.startswith(f"Job {jid}: running on worker w-logs")
    assert status.rstrip().endswith(": 40% resized 40 of 100")
    # When `runq logs --follow` runs
    follow = subprocess.Popen(
        [*RUNQ, "logs", str(jid), "--follow", "--server", server.address],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout is not None
        # Then it prints the line written so far while the job still runs
        assert follow.stdout.readline() == "started\n"
        time.sleep(0.3)
        assert follow.poll() is None  # still following
        # and the rest once the job goes on, then it exits with the job
        gate.write_text("go")
        out, err = follow.communicate(timeout=20)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert follow.returncode == 0, err
    assert out == "finished\n"
    assert cli("result", jid, server=server.address).out == "ok\n"


def test_logs_of_an_unknown_job_is_a_clear_error(server: Server, cli: Cli) -> None:
    ran = cli("logs", 999, server=server.address, ok=False)
    assert ran.code == 1 and "999" in ran.err and "Traceback" not in ran.err
    bad = cli("logs", 1, "--after", -1, server=server.address, ok=False)
    assert bad.code == 2 and "--after" in bad.err
    zero = cli("logs", 0, server=server.address, ok=False)
    assert zero.code == 2
