"""`runq schedule add|list|pause|resume|remove` against a real `runq server`."""

from __future__ import annotations

import pytest

from .harness import Cli, Server

pytestmark = pytest.mark.system


def test_schedules_are_added_listed_paused_and_removed(server: Server, cli: Cli) -> None:
    at = server.address
    added = cli(
        "schedule", "add", "nightly", "30 2 * * *", "echo", "hello", "world",
        "--tz", "Europe/Berlin", "--queue", "cron", "--catch-up", "all", server=at,
    ).out  # fmt: skip
    assert added.startswith("schedule nightly: echo at '30 2 * * *' (Europe/Berlin), next ")
    assert added.rstrip().endswith("catch-up all")

    listed = cli("schedule", "list", server=at).out.splitlines()
    assert listed[0].split() == ["name", "cron", "task", "queue", "next", "last"]
    assert listed[1].split()[:2] == ["nightly", "30"]
    (s,) = cli("schedule", "list", "--json", server=at).json()
    assert (s["name"], s["cron"], s["tz"], s["catch_up"]) == (
        "nightly",
        "30 2 * * *",
        "Europe/Berlin",
        "all",
    )
    assert (s["job"]["task"], s["job"]["args"], s["job"]["queue"]) == (
        "echo",
        ["hello", "world"],
        "cron",
    )

    assert cli("schedule", "pause", "nightly", server=at).out == "schedule nightly paused\n"
    assert cli("schedule", "list", "--json", server=at).json()[0]["paused"] is True
    assert cli("schedule", "resume", "nightly", server=at).out.startswith(
        "schedule nightly resumed, next "
    )
    assert cli("schedule", "remove", "nightly", server=at).out == "schedule nightly removed\n"
    assert cli("schedule", "list", server=at).out == "no schedules\n"


def test_bad_schedules_are_refused_and_store_nothing(server: Server, cli: Cli) -> None:
    at = server.address
    bad = cli("schedule", "add", "b", "61 * * * *", "echo", server=at, ok=False)
    assert bad.code == 1
    assert bad.err == "error: invalid cron expression '61 * * * *'\n"
    fields = cli("schedule", "add", "b", "not a cron", "echo", server=at, ok=False)
    assert fields.err.startswith("error: invalid cron expression 'not a cron': it has 5 fields")
    zone = cli(
        "schedule", "add", "b", "* * * * *", "echo", "--tz", "Moon/Base", server=at, ok=False
    )
    assert zone.err.startswith("error: unknown time zone 'Moon/Base'")
    policy = cli(
        "schedule", "add", "b", "* * * * *", "echo", "--catch-up", "x", server=at, ok=False
    )
    assert policy.code == 2
    assert cli("schedule", "list", "--json", server=at).json() == []

    cli("schedule", "add", "b", "* * * * *", "echo", server=at)
    dup = cli("schedule", "add", "b", "*/5 * * * *", "echo", server=at, ok=False)
    assert dup.err == "error: a schedule named 'b' exists already\n"
    assert [s["cron"] for s in cli("schedule", "list", "--json", server=at).json()] == ["* * * * *"]
    for verb in ("remove", "pause", "resume"):
        gone = cli("schedule", verb, "nope", server=at, ok=False)
        assert gone.err == "error: no schedule named 'nope'\n"
