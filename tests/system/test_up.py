"""`runq up`: a broker with local workers in one command, stopped by one SIGINT."""

from __future__ import annotations

import signal

import psutil
import pytest

from .harness import Cli, Procs, wait_until

pytestmark = pytest.mark.system


def exited(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_up_runs_jobs_and_sigint_stops_all(procs: Procs, cli: Cli) -> None:
    up = procs.up(workers=2)
    at = up.address

    workers = wait_until(
        lambda: len(w := cli("workers", "--json", server=at).json()) == 2 and w,
        30,
        interval=0.1,
        what="two workers",
    )
    pids = [w["info"]["pid"] for w in workers]
    for pid in pids:
        procs.adopt(pid)
        assert psutil.Process(pid).ppid() == up.pid

    lines = "".join(f"wordcount {' '.join(['w'] * n)}\n" for n in range(1, 21))
    ran = cli("submit", "--batch", "-", input=lines, server=at)
    assert ran.out == "Submitted 20 jobs: first ID 1, last ID 20\n"
    for n in range(1, 21):
        out = cli("result", n, "--wait", "--timeout", 30, server=at).out
        assert out == f"word count: {n}\n"
    stats = cli("stats", "--json", server=at).json()
    assert stats["jobs"]["succeeded"] == 20
    assert stats["workers"] == 2

    up.popen.send_signal(signal.SIGINT)
    assert up.wait_exit(30) == 0
    wait_until(lambda: all(exited(pid) for pid in pids), 15, what="the workers to exit")
    ran = cli("stats", server=at, ok=False)
    assert ran.code == 1
    assert "cannot reach" in ran.err
    assert "Traceback" not in up.text()
