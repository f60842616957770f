"""`runq queue pause|resume|list` and `runq top` against a real broker and worker."""

from __future__ import annotations

import time

import pytest

from runq.model import JobState

from .harness import Cli, Procs, Server, job_id, wait_until

pytestmark = pytest.mark.system


def test_a_paused_queue_holds_its_jobs_until_resumed(
    server: Server, procs: Procs, cli: Cli
) -> None:
    at = server.address
    procs.worker(server, "w-q", queues="slow,default")
    assert cli("queue", "pause", "slow", server=at).out == "queue slow paused (0 queued)\n"

    held = job_id(cli("submit", "--queue", "slow", "echo", "later", server=at).out)
    ran = job_id(cli("submit", "echo", "now", server=at).out)
    wait_until(lambda: "succeeded" in cli("status", ran, server=at).out, 20, what="the default job")
    time.sleep(0.3)  # the worker had every chance to take the held job as well
    assert "queued" in cli("status", held, server=at).out
    listed = cli("queue", "list", server=at).out.splitlines()
    states = [s.value for s in JobState]
    assert listed[0].split() == ["queue", *states, "retention"]

    def row(name: str, counts: dict[str, int]) -> str:
        cells = "".join(str(counts.get(s, 0)).rjust(11) for s in states)
        return name.ljust(20) + cells + "  7d (default)"

    assert listed[1:] == [
        row("default", {"succeeded": 1}),
        row("slow", {"queued": 1}) + "  (paused)",
    ]
    as_json = cli("queue", "list", "--json", server=at).json()
    assert {q["name"]: q["paused"] for q in as_json} == {"default": False, "slow": True}

    # the worker may take the job as soon as the queue resumes, before the count is read
    resumed = cli("queue", "resume", "slow", server=at).out
    assert resumed in ("queue slow resumed (1 queued)\n", "queue slow resumed (0 queued)\n")
    wait_until(lambda: "succeeded" in cli("status", held, server=at).out, 20, what="the held job")


def test_top_once_shows_queues_workers_and_throughput(
    server: Server, procs: Procs, cli: Cli
) -> None:
    at = server.address
    procs.worker(server, "w-top")
    first = job_id(cli("submit", "wordcount", "a b c", server=at).out)
    wait_until(lambda: "succeeded" in cli("status", first, server=at).out, 20, what="the job")

    out = cli("top", "--once", server=at).out
    assert "runq top" in out and "processed 1 (success 100.0 %)" in out
    assert "w-top" in out and "default" in out
    assert "finished per minute" in out and "(now 1/min)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("queue", "pause", "no spaces"), "is not a queue name"),
        (("queue", "resume"), "Missing argument 'NAME'"),
        (("queue", "frobnicate", "x"), "No such command 'frobnicate'"),
        (("top", "--interval", "0"), "must be greater than 0"),
    ],
)
def test_bad_queue_and_top_arguments_are_refused(
    server: Server, cli: Cli, args: tuple[str, ...], message: str
) -> None:
    ran = cli(*args, server=server.address, ok=False)
    assert ran.code == 2 and message in ran.err
    assert cli("queue", "list", "--json", server=server.address).json() == []
