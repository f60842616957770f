"""`runq limit set|list|remove` and `runq submit --concurrency-key` against a real broker
and worker; bad input is refused with exit 2 and stores nothing."""

from __future__ import annotations

import pytest

from .harness import Cli, Procs, Server, job_id, wait_until

pytestmark = pytest.mark.system


def test_rate_limits_are_set_listed_and_removed(server: Server, cli: Cli) -> None:
    at = server.address
    assert cli("limit", "list", server=at).out == "no rate limits\n"
    out = cli("limit", "set", "queue:emails", "--rate", "600/m", server=at).out
    assert out == "limited queue:emails  600/m  (burst 10)\n"
    cli("limit", "set", "task:send", "--rate", "5/s", "--burst", "20", server=at)
    assert cli("limit", "list", server=at).out == (
        "queue:emails  600/m  (burst 10)\ntask:send  5/s  (burst 20)\n"
    )
    listed = cli("limit", "list", "--json", server=at).json()
    assert listed[0] == {
        "scope": "queue",
        "name": "emails",
        "count": 600.0,
        "per": "m",
        "burst": 10.0,
    }
    out = cli("limit", "remove", "queue:emails", server=at).out
    assert out == "removed the limit on queue:emails (600/m)\n"
    gone = cli("limit", "remove", "queue:emails", server=at, ok=False)
    assert gone.code == 1 and "no rate limit on queue 'emails'" in gone.err
    assert [x["name"] for x in cli("limit", "list", "--json", server=at).json()] == ["send"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("limit", "set", "queue:emails", "--rate", "0/s"), "the count must be above 0"),
        (("limit", "set", "queue:emails", "--rate", "fast"), "give COUNT/PERIOD"),
        (("limit", "set", "queue:emails", "--rate", "5/fortnight"), "give COUNT/PERIOD"),
        (("limit", "set", "queue:emails"), "Missing option '--rate'"),
        (("limit", "set", "emails", "--rate", "5/s"), "give queue:NAME or task:NAME"),
        (("limit", "set", "queue:no spaces", "--rate", "5/s"), "is not a queue name"),
        (("limit", "set", "queue:emails", "--rate", "5/s", "--burst", "0"), "--burst"),
        (("limit", "remove", "bucket:x"), "give queue:NAME or task:NAME"),
    ],
)
def test_bad_rate_limits_are_refused_and_nothing_is_stored(
    server: Server, cli: Cli, args: tuple[str, ...], message: str
) -> None:
    ran = cli(*args, server=server.address, ok=False)
    assert ran.code == 2 and message in ran.err, str(ran)
    assert cli("limit", "list", "--json", server=server.address).json() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--max-concurrent", "2"), "--concurrency-key and --max-concurrent go together"),
        (("--concurrency-key", "k"), "--concurrency-key and --max-concurrent go together"),
        (("--concurrency-key", "k", "--max-concurrent", "0"), "--max-concurrent"),
        (("--concurrency-key", "k", "--max-concurrent", "lots"), "--max-concurrent"),
    ],
)
def test_bad_concurrency_keys_are_refused_and_nothing_is_stored(
    server: Server, cli: Cli, args: tuple[str, ...], message: str
) -> None:
    ran = cli("submit", *args, "echo", "hi", server=server.address, ok=False)
    assert ran.code == 2 and message in ran.err, str(ran)
    assert cli("queue", "list", "--json", server=server.address).json() == []


def test_jobs_with_a_concurrency_key_run_and_batch_lines_carry_one(
    server: Server, procs: Procs, cli: Cli
) -> None:
    at = server.address
    procs.worker(server, "w-flow")
    one = job_id(
        cli(
            "submit", "--concurrency-key", "c-42", "--max-concurrent", "2", "echo", "a", server=at
        ).out
    )
    lines = '{"task": "echo", "args": ["b"], "concurrency_key": "c-42", "max_concurrent": 2}\n'
    cli("submit", "--batch", "-", server=at, input=lines)
    bad = '{"task": "echo", "concurrency_key": "c-42"}\n'
    refused = cli("submit", "--batch", "-", server=at, input=bad, ok=False)
    assert "concurrency_key and max_concurrent go together" in refused.err, str(refused)
    wait_until(lambda: "succeeded" in cli("status", one, server=at).out, 20, what="the job")
    counts = cli("queue", "list", "--json", server=at).json()
    assert counts[0]["counts"] in ({"succeeded": 2}, {"succeeded": 1, "running": 1})
