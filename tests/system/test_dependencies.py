"""`runq submit --after` against a real broker and worker: a job waits for its parents,
runs when they succeed, is cancelled when one fails; bad parents store nothing."""

from __future__ import annotations

import pytest

from .harness import Cli, Procs, Server, counts, job_id, wait_until

pytestmark = pytest.mark.system


def test_a_job_waits_for_its_parents_and_follows_their_fate(
    server: Server, procs: Procs, cli: Cli
) -> None:
    at = server.address
    # Given: two parents, a job after both, and a job after a parent that will fail.
    first = job_id(cli("submit", "sleep", "0.5", server=at).out)
    second = job_id(cli("submit", "echo", "two", server=at).out)
    joined = job_id(cli("submit", "echo", "joined", "--after", f"{first},{second}", server=at).out)
    doomed_parent = job_id(cli("submit", "fail", "boom", "--retries", 0, server=at).out)
    doomed = job_id(cli("submit", "echo", "never", "--after", doomed_parent, server=at).out)
    anyway = job_id(
        cli("submit", "echo", "anyway", "--after", doomed_parent, "--after-any", server=at).out
    )
    line = cli("status", joined, server=at).out
    assert line.startswith(f"Job {joined}: waiting for jobs {first}, {second}")
    assert "wait" in cli("explain", joined, server=at).out

    # When: a worker runs the parents.
    procs.worker(server, "w-deps", concurrency=2)

    # Then: the joined job runs after both, the doomed one is cancelled with a reason,
    # and the after-any one runs anyway.
    assert cli("result", joined, "--wait", "--timeout", 30, server=at).out == "joined\n"
    assert cli("result", anyway, "--wait", "--timeout", 30, server=at).out == "anyway\n"

    def cancelled() -> str | None:
        out = cli("status", doomed, server=at).out
        return out if "cancelled" in out else None

    wait_until(cancelled, 20, what="the dependent of a failed job to be cancelled")
    data = cli("status", doomed, "--json", server=at).json()
    assert data["attempts"] == 0
    assert f"dependency {doomed_parent} failed" in data["error"]["message"]


@pytest.mark.parametrize(
    ("after", "code", "message"),
    [
        ("999999", 1, "no job with id 999999"),
        ("x", 2, "--after"),
        ("0", 2, "--after"),
        ("1,,2", 2, "--after"),
    ],
)
def test_bad_parents_are_refused_and_nothing_is_stored(
    server: Server, cli: Cli, after: str, code: int, message: str
) -> None:
    at = server.address
    before = counts(server)
    ran = cli("submit", "echo", "hi", "--after", after, server=at, ok=False)
    assert ran.code == code and message in ran.err, ran
    assert counts(server) == before
    no_after = cli("submit", "echo", "hi", "--after-any", server=at, ok=False)
    assert no_after.code == 2 and counts(server) == before
