"""`runq purge`, `runq queue retention` and `runq explain` against a real broker and
worker."""

from __future__ import annotations

import pytest

from .harness import Cli, Procs, Server, job_id, wait_until

pytestmark = pytest.mark.system


def test_purge_deletes_finished_jobs_and_bad_input_deletes_nothing(
    server: Server, procs: Procs, cli: Cli
) -> None:
    at = server.address
    procs.worker(server, "w-purge")
    done = [job_id(cli("submit", "echo", str(i), server=at).out) for i in range(2)]
    for j in done:
        wait_until(lambda j=j: "succeeded" in cli("status", j, server=at).out, 20, what="a job")
    held = job_id(cli("submit", "--queue", "nobody", "echo", "held", server=at).out)

    # Bad input: exit 2, a clear error, nothing deleted.
    for args, message in [
        (("--older-than", "soon"), "is not a duration"),
        (("--older-than", "0", "--state", "running"), "only finished jobs can be purged"),
        (("--older-than", "0", "--state", "queued"), "only finished jobs can be purged"),
        (("--state", "failed"), "Missing option '--older-than'"),
    ]:
        ran = cli("purge", *args, "--yes", server=at, ok=False)
        assert ran.code == 2 and message in ran.err, str(ran)
    ran = cli("purge", "--older-than", "0", server=at, input="n\n", ok=False)  # not confirmed
    assert ran.code == 1
    for j in done:
        assert "succeeded" in cli("status", j, server=at).out

    # Jobs younger than the cut stay; then the finished ones go and the queued one stays.
    assert cli("purge", "--older-than", "1h", "--yes", server=at).out == "purged 0 finished jobs\n"
    ran = cli("purge", "--older-than", "0", "--state", "succeeded", "--yes", server=at)
    assert ran.out == "purged 2 succeeded jobs\n"
    assert "no job with id" in cli("status", done[0], server=at, ok=False).err
    assert "queued" in cli("status", held, server=at).out


def test_queue_retention_is_set_listed_and_reset(server: Server, cli: Cli) -> None:
    at = server.address
    ran = cli("queue", "retention", "tmp", "30d", server=at)
    assert ran.out == "queue tmp keeps finished jobs 30d\n"
    assert cli("queue", "list", server=at).out.splitlines()[1].endswith("  30d")
    assert cli("queue", "retention", "tmp", "forever", server=at).out.endswith("forever\n")
    listed = cli("queue", "list", "--json", server=at).json()
    assert listed == [
        {"name": "tmp", "counts": {}, "paused": False, "retention": None, "retention_set": True}
    ]
    ran = cli("queue", "retention", "tmp", "default", server=at)
    assert ran.out == "queue tmp keeps finished jobs 7d (default)\n"
    bad = cli("queue", "retention", "tmp", "soon", server=at, ok=False)
    assert bad.code == 2 and "is not a duration" in bad.err


def test_explain_says_why_a_job_is_not_running(server: Server, cli: Cli) -> None:
    at = server.address
    held = job_id(cli("submit", "--queue", "nobody", "echo", "held", server=at).out)
    ran = cli("explain", held, server=at)
    assert ran.out == f"job {held} is queued but no connected worker serves queue nobody\n"
    later = job_id(cli("submit", "--delay", "2h", "echo", "later", server=at).out)
    assert "runs at" in cli("explain", later, server=at).out
    assert "no job with id" in cli("explain", 999999, server=at, ok=False).err
    assert cli("explain", "x", server=at, ok=False).code == 2
