"""1,000 jobs over 4 worker processes: every job runs exactly once and succeeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import Cli, Procs, Server, all_jobs, counts, wait_for_workers, wait_until

pytestmark = pytest.mark.system

N_JOBS = 1000
WORKERS = ("w-1", "w-2", "w-3", "w-4")


def test_thousand_jobs_over_four_workers(
    server: Server, procs: Procs, cli: Cli, tmp_path: Path
) -> None:
    for worker_id in WORKERS:
        procs.worker(server, worker_id, concurrency=2, wait=False)
    wait_for_workers(server, set(WORKERS))

    batch = tmp_path / "jobs.txt"
    batch.write_text("# one job per line\n" + "".join(f"echo job-{i}\n" for i in range(N_JOBS)))
    ran = cli("submit", "--batch", batch, server=server.address)
    assert ran.out == f"Submitted {N_JOBS} jobs: first ID 1, last ID {N_JOBS}\n"

    wait_until(
        lambda: counts(server)["succeeded"] == N_JOBS, 60, interval=0.2, what="all jobs done"
    )

    with server.client() as client:
        jobs = all_jobs(client)
        stats = client.stats()
    assert sorted(j.id for j in jobs) == list(range(1, N_JOBS + 1))
    for job in jobs:
        assert job.state == "succeeded", job
        assert job.attempts == 1, job
        assert job.result == job.args[0] == f"job-{job.id - 1}", job
        assert job.worker in WORKERS, job
    assert stats["jobs"]["succeeded"] == N_JOBS
    assert sum(stats["jobs"].values()) == N_JOBS
    # Dispatched once each, every report accepted, none refused as stale.
    assert stats["since_start"]["started"] == N_JOBS
    assert stats["since_start"]["succeeded"] == N_JOBS
    assert stats["since_start"].get("stale_reports", 0) == 0

    listed = cli("workers", "--json", server=server.address).json()
    assert sorted(w["id"] for w in listed) == list(WORKERS)
    assert sum(w["done"] for w in listed) == N_JOBS
    assert all(w["done"] > 0 for w in listed), listed
    assert all(w["running"] == 0 and w["concurrency"] == 2 for w in listed), listed
    by_worker = {w: sum(1 for j in jobs if j.worker == w) for w in WORKERS}
    assert by_worker == {w["id"]: w["done"] for w in listed}


def test_batch_bigger_than_one_frame(server: Server, cli: Cli, tmp_path: Path) -> None:
    """1,000 lines of 1.2 KB: one send chunk is over the 1 MiB frame limit, each job is not."""
    lines = [f"echo {i:04d}{'x' * 1200}" for i in range(N_JOBS)]
    batch = tmp_path / "big.txt"
    batch.write_text("\n".join(lines) + "\n")
    ran = cli("submit", "--batch", batch, server=server.address)
    assert ran.out == f"Submitted {N_JOBS} jobs: first ID 1, last ID {N_JOBS}\n"
    with server.client() as client:
        jobs = sorted(all_jobs(client), key=lambda j: j.id)
    assert [j.args[0] for j in jobs] == [line[len("echo ") :] for line in lines]
    assert {j.state for j in jobs} == {"queued"}
