"""Access tokens on the native ports: every client request with no token, a wrong, a
malformed, an expired and a revoked one, and with a token of the wrong scope, is refused
and changes nothing; the right scopes work; failed attempts are limited per address;
a revoked token's connections are closed."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
from auth_support import MALFORMED, WRONG, World, exchange, make_world, snapshot

from runq.broker import BrokerConfig
from runq.client import AsyncClient
from runq.errors import ConfigError, Forbidden, Unauthorized
from runq.model import JobSpec
from runq.model.flow import RateLimit
from runq.model.schedule import ScheduleSpec
from runq.protocol import messages as m
from runq.worker import Agent, WorkerConfig

# One of every client request, built for a world (jobs in q1 and q2).
REQUESTS: dict[str, Callable[[World], Any]] = {
    "submit": lambda w: m.Submit(1, [JobSpec("echo", queue="q1")]),
    "get": lambda w: m.Get(1, w.job_q1),
    "wait": lambda w: m.Wait(1, w.job_q1, 0.0),
    "list": lambda w: m.ListJobs(1),
    "cancel": lambda w: m.Cancel(1, w.job_q1),
    "retry": lambda w: m.Retry(1, None, "q1"),
    "stats": lambda w: m.GetStats(1),
    "workers": lambda w: m.ListWorkers(1),
    "queues": lambda w: m.ListQueues(1),
    "pause": lambda w: m.PauseQueue(1, "q1", True),
    "logs": lambda w: m.ReadLogs(1, w.job_q1),
    "schedule": lambda w: m.AddSchedule(1, ScheduleSpec("s", "* * * * *", JobSpec("echo"))),
    "schedules": lambda w: m.ListSchedules(1),
    "unschedule": lambda w: m.RemoveSchedule(1, "s"),
    "pauseschedule": lambda w: m.PauseSchedule(1, "s", True),
    "setlimit": lambda w: m.SetRateLimit(1, RateLimit("queue", "q1", 5, "s")),
    "unlimit": lambda w: m.RemoveRateLimit(1, "queue", "q1"),
    "limits": lambda w: m.ListRateLimits(1),
    "setretention": lambda w: m.SetRetention(1, "q1", 60.0),
    "purge": lambda w: m.Purge(1, 0.0),
    "explain": lambda w: m.Explain(1, w.job_q1),
    "maketoken": lambda w: m.MakeToken(1, ["admin"], "sneaky"),
    "tokens": lambda w: m.ListTokens(1),
    "revoketoken": lambda w: m.RevokeToken(1, "admin"),
    "openupload": lambda w: m.OpenUpload(1, "a.txt", 5, "a" * 64),
    "resumeupload": lambda w: m.ResumeUpload(1, "0" * 32),
    "uploadchunk": lambda w: m.UploadChunk(1, "0" * 32, 0, b"hello"),
    "finishupload": lambda w: m.FinishUpload(1, "0" * 32),
    "readfile": lambda w: m.ReadFile(1, "0" * 32, 0, 5, w.job_q1),
}
READS = {"get", "wait", "list", "stats", "workers", "queues", "logs", "schedules", "limits"}
READS |= {"explain"}


def test_every_client_request_is_listed() -> None:
    built = {type(make(World(None, None, 1, 2))) for make in REQUESTS.values()}  # type: ignore[arg-type]
    assert built == set(m.ClientRequest.__args__)  # type: ignore[attr-defined]


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async for w in make_world(http=False):
        yield w


def bad_tokens(w: World) -> dict[str, str | None]:
    t = w.tokens
    return {
        "none": None,
        "wrong": WRONG,
        "malformed": MALFORMED,
        "expired": t.expired,
        "revoked": t.revoked,
    }


@pytest.mark.parametrize("request_name", sorted(REQUESTS))
async def test_no_valid_token_is_refused_and_changes_nothing(
    world: World, request_name: str
) -> None:
    # Given a store with tokens
    before = await snapshot(world.rb.broker.store)
    for label, token in bad_tokens(world).items():
        # When a client sends the request behind a hello with no valid token
        answers = await exchange(world.rb.broker.client_port, token, REQUESTS[request_name](world))
        # Then the hello is refused and the connection closed
        assert len(answers) == 2, (label, answers)
        error, closed = answers
        assert isinstance(error, m.Error) and error.code == "unauthorized", (label, error)
        assert closed == "closed"
        assert token is None or token not in error.message  # the secret is never echoed
    # And nothing changed
    assert await snapshot(world.rb.broker.store) == before


def wrong_scope(w: World, name: str) -> tuple[str, Any]:
    """A valid token that may not do ``name``, and the request it sends."""
    if name == "submit":
        return w.tokens.submit, m.Submit(1, [JobSpec("echo", queue="q2")])
    if name in ("get", "wait", "cancel"):  # a submit token, a job of another queue
        return w.tokens.submit, msgspec.structs.replace(REQUESTS[name](w), id=w.job_q2)
    if name == "readfile":  # a submit token, a file of a job of another queue
        return w.tokens.submit, msgspec.structs.replace(REQUESTS[name](w), job=w.job_q2)
    if name in READS:
        return w.tokens.submit, REQUESTS[name](w)
    return w.tokens.read, REQUESTS[name](w)


@pytest.mark.parametrize("request_name", sorted(REQUESTS))
async def test_a_token_of_the_wrong_scope_is_forbidden(world: World, request_name: str) -> None:
    before = await snapshot(world.rb.broker.store)
    token, request = wrong_scope(world, request_name)
    answers = await exchange(world.rb.broker.client_port, token, request)
    assert len(answers) == 1
    assert isinstance(answers[0], m.Error) and answers[0].code == "forbidden"
    assert answers[0].req == 1  # an answer to the request: the connection stays usable
    assert await snapshot(world.rb.broker.store) == before


@pytest.mark.parametrize("request_name", sorted(REQUESTS))
async def test_an_admin_token_may_do_everything(world: World, request_name: str) -> None:
    answers = await exchange(
        world.rb.broker.client_port, world.tokens.admin, REQUESTS[request_name](world)
    )
    assert len(answers) == 1
    reply = answers[0]
    assert not (isinstance(reply, m.Error) and reply.code in ("forbidden", "unauthorized")), reply


async def test_a_worker_token_cannot_use_the_client_port(world: World) -> None:
    answers = await exchange(world.rb.broker.client_port, world.tokens.work, m.GetStats(1))
    assert isinstance(answers[0], m.Error) and answers[0].code == "forbidden"
    assert answers[-1] == "closed"


async def test_submit_token_submits_and_reads_its_own_queue(world: World) -> None:
    async with AsyncClient(world.rb.client_address, token=world.tokens.submit) as client:
        job_id = await client.submit("echo", "hi", queue="q1")
        assert (await client.get(job_id)).queue == "q1"
        assert (await client.get(world.job_q1)).id == world.job_q1
        with pytest.raises(Forbidden, match="q2"):
            await client.get(world.job_q2)
        with pytest.raises(Forbidden, match="queue 'q2'"):
            await client.submit("echo", queue="q2")
        with pytest.raises(Forbidden):
            await client.stats()
        assert (await client.cancel(job_id)).state == "cancelled"


async def test_read_token_reads_but_cannot_act(world: World) -> None:
    async with AsyncClient(world.rb.client_address, token=world.tokens.read) as client:
        assert (await client.get(world.job_q2)).queue == "q2"
        assert {q.name for q in await client.queues()} >= {"q1", "q2"}
        with pytest.raises(Forbidden):
            await client.cancel(world.job_q2)
        with pytest.raises(Forbidden):
            await client.create_token(["admin"])


async def test_work_token_runs_jobs_of_its_queues_only(world: World) -> None:
    host, port = world.rb.worker_address
    # a hello for a queue the token does not cover is refused
    answers = await exchange(
        port, world.tokens.work, None, role="worker", worker_id="w-x", queues=["q2"]
    )
    assert isinstance(answers[0], m.Error) and answers[0].code == "forbidden"
    # a worker of q1 with the work token runs q1's job
    agent = Agent(WorkerConfig(host=host, port=port, queues=("q1",), token=world.tokens.work))
    task = asyncio.ensure_future(agent.run())
    try:
        async with AsyncClient(world.rb.client_address, token=world.tokens.admin) as client:
            job = await client.wait(world.job_q1, 10)
            assert job.state == "succeeded"
            assert (await client.get(world.job_q2)).state == "queued"
    finally:
        agent.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_tokens_made_listed_and_revoked_through_the_broker(world: World) -> None:
    async with AsyncClient(world.rb.client_address, token=world.tokens.admin) as admin:
        text, info = await admin.create_token(["read"], name="dash", ttl=3600)
        assert info.scopes == ["read"] and info.expires_at is not None
        listed = await admin.tokens()
        assert info.id in {t.id for t in listed}
        assert all(text not in repr(t) for t in listed)  # secrets never come back
        async with AsyncClient(world.rb.client_address, token=text) as reader:
            assert (await reader.stats())["jobs"]["queued"] == 2
            revoked = await admin.revoke_token("dash")
            assert revoked.revoked_at is not None
            # the reader's connection is closed at once and a new hello is refused
            await asyncio.sleep(0.2)
            with pytest.raises(Unauthorized):
                await reader.stats()


async def test_revoked_on_the_store_closes_connections_within_seconds(world: World) -> None:
    store = world.rb.broker.store
    async with AsyncClient(world.rb.client_address, token=world.tokens.read) as reader:
        await reader.stats()
        await store.revoke_token("read", world.rb.broker.clock())  # as another broker would
        conns = [c for c in world.rb.broker.connections if c.grant.token_id is not None]
        assert conns
        for _ in range(100):
            if not any(c in world.rb.broker.connections for c in conns):
                break
            await asyncio.sleep(0.1)
        assert not any(c in world.rb.broker.connections for c in conns)
        with pytest.raises(Unauthorized):
            await reader.stats()


async def test_failed_attempts_are_limited_per_address() -> None:
    async for w in make_world(http=False):
        w.rb.broker.config = dataclasses.replace(w.rb.broker.config, auth_failures=3)
        for _ in range(5):  # asking with no token is no guess: not counted
            answers = await exchange(w.rb.broker.client_port, None, None)
            assert answers[0].code == "unauthorized"
        for _ in range(3):
            answers = await exchange(w.rb.broker.client_port, WRONG, None)
            assert answers[0].code == "unauthorized"
        # now even a valid token from this address is refused, unheard
        answers = await exchange(w.rb.broker.client_port, w.tokens.admin, m.GetStats(1))
        assert isinstance(answers[0], m.Error) and answers[0].code == "too_many_attempts"
        w.rb.broker.gate._failures.clear()  # the window passed
        answers = await exchange(w.rb.broker.client_port, w.tokens.admin, m.GetStats(1))
        assert isinstance(answers[0], m.StatsReply)


async def test_the_first_token_made_on_the_store_closes_open_connections(rb: Any) -> None:
    from runq.model.token import make_token

    async with rb.client() as client:
        await client.stats()
        made = make_token("root", ["admin"], rb.broker.clock(), None)
        await rb.broker.store.add_token(made.info, made.digest)
        conns = set(rb.broker.connections)
        for _ in range(60):
            if not conns & rb.broker.connections:
                break
            await asyncio.sleep(0.1)
        assert not conns & rb.broker.connections
        with pytest.raises(Unauthorized):
            await client.stats()


async def test_listening_beyond_loopback_needs_a_token_or_insecure(rb: Any) -> None:
    gate = rb.broker.gate
    for host, insecure in (("0.0.0.0", False), ("10.1.2.3", False), ("::", False)):
        rb.broker.config = dataclasses.replace(rb.broker.config, host=host, insecure=insecure)
        with pytest.raises(ConfigError, match="--insecure"):
            await gate.check_bind()
    for host, insecure in (
        ("0.0.0.0", True),
        ("127.0.0.1", False),
        ("localhost", False),
        ("::1", False),
    ):
        rb.broker.config = dataclasses.replace(rb.broker.config, host=host, insecure=insecure)
        await gate.check_bind()


async def test_a_broker_beyond_loopback_without_tokens_does_not_start() -> None:
    from runq.testing import run_broker

    with pytest.raises(ConfigError, match="no access token"):
        async with run_broker(config=BrokerConfig(host="0.0.0.0")):
            pass
