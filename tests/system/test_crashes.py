"""kill -9 a worker mid-job and a broker mid-submit: nothing answered is lost."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from runq.client.aio import spec
from runq.errors import RunqError

from .harness import Cli, Procs, Server, all_jobs, counts, job_id, wait_until, worker_ids

pytestmark = pytest.mark.system


def test_worker_killed_mid_job_is_rerun_elsewhere(server: Server, procs: Procs, cli: Cli) -> None:
    at = server.address
    worker_a = procs.worker(server, "w-a", concurrency=1)
    job = job_id(cli("submit", "sleep", "2", server=at).out)

    def status() -> dict[str, Any]:
        data: dict[str, Any] = cli("status", job, "--json", server=at).json()
        return data

    running = wait_until(
        lambda: (s := status())["state"] == "running" and s,
        20,
        interval=0.1,
        what="the job to run on w-a",
    )
    assert running["worker"] == "w-a"
    assert running["attempts"] == 1

    worker_a.kill()
    # The broker sees the connection drop and re-queues the job at once, not at lease end.
    queued = wait_until(
        lambda: (s := status())["state"] == "queued" and s, 10, what="the job to be re-queued"
    )
    assert queued["attempts"] == 1
    assert queued["error"]["code"] == "worker_lost"
    assert "w-a" not in worker_ids(server)

    procs.worker(server, "w-b", concurrency=1)
    done = cli("result", job, "--wait", "--timeout", 30, "--json", server=at).json()
    assert done["state"] == "succeeded"
    assert done["result"] == "slept 2"
    assert done["error"] is None
    assert done["attempts"] == 2
    final = status()
    assert final["worker"] == "w-b"
    assert final["attempts"] == 2
    assert counts(server)["succeeded"] == 1


BATCH = 100
BATCHES = 50
KILL_AFTER = 2000  # answered ids before the killer strikes
HOLD_AT = 3000  # the submitter waits here until the kill has happened
SLOTS = 100


def submit_until_killed(first: Server) -> tuple[list[int], RunqError | None]:
    """Submit batches while another thread kill -9s the broker; the ids that were answered."""
    answered: list[int] = []
    killed = threading.Event()
    finished = threading.Event()

    def killer() -> None:
        while not finished.is_set():
            if len(answered) >= KILL_AFTER:
                first.popen.kill()
                killed.set()
                return
            time.sleep(0.002)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    failure: RunqError | None = None
    try:
        with first.client() as client:
            for b in range(BATCHES):
                jobs = [spec("sleep", f"0.0{(b + i) % 5}") for i in range(BATCH)]
                try:
                    ids = client.submit_many(jobs)
                except RunqError as exc:
                    failure = exc
                    break
                answered.extend(ids)
                if len(answered) >= HOLD_AT:
                    assert killed.wait(30), "the broker was not killed"
    finally:
        finished.set()
        thread.join(30)
    first.popen.wait(10)
    return answered, failure


@pytest.mark.parametrize("restart", ["same-ports", "new-ports"])
def test_broker_killed_during_batch_submit_loses_no_answered_job(
    procs: Procs, tmp_path: Path, restart: str
) -> None:
    store = tmp_path / "crash.db"
    first = procs.server(store=store, lease=2, name="server-first")
    # Short sleeps over many slots: at the kill, jobs are queued, running and reported.
    worker = procs.worker(first, "w-crash", concurrency=SLOTS)

    answered, failure = submit_until_killed(first)
    assert failure is not None, "every batch was answered: the kill came too late"
    assert KILL_AFTER <= len(answered) < BATCH * BATCHES
    assert answered == list(range(1, len(answered) + 1))

    if restart == "same-ports":
        # Same store, same ports: the running worker reconnects on its own and hands in
        # the reports the dead broker never acknowledged.
        second = procs.server(
            store=store, port=first.port, worker_port=first.worker_port, lease=2, name="second"
        )
        assert worker.alive
        survivor = "w-crash"
    else:
        # Same store, new ports, and the worker died too: its running jobs come back when
        # their leases expire, and a new worker runs them.
        worker.kill()
        second = procs.server(store=store, lease=2, name="second")
        survivor = "w-after"
        procs.worker(second, survivor, concurrency=SLOTS, wait=False)

    def all_finished() -> bool:
        c = counts(second)
        return c["succeeded"] >= len(answered) and c["succeeded"] == sum(c.values())

    wait_until(all_finished, 60, interval=0.2, what="every stored job to succeed")
    with second.client() as client:
        stored = {j.id: j for j in all_jobs(client)}
    assert set(answered) <= set(stored)
    for job_id_ in answered:
        job = stored[job_id_]
        assert job.state == "succeeded", job
        assert job.result == f"slept {float(job.args[0]):g}", job
        assert job.error is None, job
    # The batch in flight at the kill is one transaction: all of it is stored or none.
    assert len(stored) - len(answered) in (0, BATCH)
    assert worker_ids(second) == {survivor}
