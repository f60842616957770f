"""Unique jobs from the real `runq` command: `--unique-for` answers with the job already
queued, `--unique-mode refuse` fails naming it, and bad values store nothing."""

from __future__ import annotations

import pytest

from .harness import Cli, Server, all_jobs, job_id

pytestmark = pytest.mark.system


def test_a_unique_twin_prints_the_existing_job_or_is_refused(server: Server, cli: Cli) -> None:
    at = server.address
    # Given: a unique job, queued (no worker serves its queue)
    first = job_id(cli("submit", "echo", "report", "--unique-for", "10m", server=at).out)
    # When: its twin comes, it is answered with the first job
    again = cli("submit", "echo report", "--unique-for", "5m", server=at)
    assert again.out == f"Job ID: {first} (already queued: unique for 5m)\n"
    # a different argument, or another queue, is a new job
    other = job_id(cli("submit", "echo", "other", "--unique-for", "10m", server=at).out)
    elsewhere = cli("submit", "echo", "report", "--unique-for", "10m", "-q", "b", server=at)
    assert len({first, other, job_id(elsewhere.out)}) == 3
    # refuse mode: exit 1, naming the job
    refused = cli(
        "submit",
        "echo",
        "report",
        "--unique-for",
        "90s",
        "--unique-mode",
        "refuse",
        server=at,
        ok=False,
    )
    assert refused.code == 1 and refused.out == ""
    assert refused.err.startswith(
        f"error: job {first} is already queued with the same task and arguments"
    ), refused
    # a key names the identity instead of the arguments
    keyed = job_id(
        cli("submit", "echo", "a", "--key", "nightly", "--unique-for", "1h", server=at).out
    )
    merged = cli("submit", "echo", "b", "--key", "nightly", "--unique-for", "1h", server=at)
    assert merged.out == f"Job ID: {keyed} (already queued: unique for 1h)\n"
    # a batch says how many were answered with jobs already there
    lines = "echo report\necho fresh\necho fresh\n"
    batch = cli("submit", "--batch", "-", "--unique-for", "10m", input=lines, server=at)
    assert batch.out.endswith("(2 answered with jobs already there)\n"), batch
    with server.client() as client:
        assert len(all_jobs(client)) == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--unique-for", "-5"], "must be greater than 0"),
        (["--unique-for", "0"], "must be greater than 0"),
        (["--unique-for", "soon"], "is not a duration"),
        (["--unique-for", "20000d"], "at most 10 years"),
        (["--unique-mode", "refuse"], "--unique-mode goes with --unique-for"),
        (["--unique-for", "1m", "--unique-mode", "skip"], "'skip' is not one of"),
    ],
)
def test_bad_unique_values_exit_2_and_store_nothing(
    server: Server, cli: Cli, args: list[str], message: str
) -> None:
    ran = cli("submit", "echo", "x", *args, server=server.address, ok=False)
    assert ran.code == 2, ran
    assert message in ran.err, ran
    with server.client() as client:
        assert all_jobs(client) == []
