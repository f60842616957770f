"""Shared by the access-token tests: a broker whose store holds one token of each kind,
two jobs (queues q1 and q2), raw native exchanges and a snapshot of the whole store."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec

from runq.broker import BrokerConfig
from runq.model import JobSpec
from runq.model.token import make_token
from runq.protocol import codec
from runq.protocol import limits as L
from runq.protocol import messages as m
from runq.store.base import Store
from runq.testing import RunningBroker, run_broker

WRONG = "runq_0123456789ab_not-the-secret-of-any-token"
MALFORMED = "hunter2"


@dataclass
class Tokens:
    admin: str
    read: str
    submit: str  # submit:q1
    work: str  # work:q1
    expired: str
    revoked: str


@dataclass
class World:
    rb: RunningBroker
    tokens: Tokens
    job_q1: int
    job_q2: int


async def make_world(config: BrokerConfig | None = None, http: bool = True) -> AsyncIterator[World]:
    base = config or BrokerConfig()
    async with run_broker(http=http, config=dataclasses.replace(base, auth_failures=10_000)) as rb:
        store = rb.broker.store
        now = rb.broker.clock()
        ids = await store.submit_many(
            [JobSpec("echo", queue="q1"), JobSpec("echo", queue="q2")], now
        )
        made = {
            "admin": make_token("admin", ["admin"], now, None),
            "read": make_token("read", ["read"], now, None),
            "submit": make_token("submit", ["submit:q1"], now, None),
            "work": make_token("work", ["work:q1"], now, None),
            "expired": make_token("expired", ["admin"], now - 100, 10),
            "revoked": make_token("revoked", ["admin"], now, None),
        }
        for t in made.values():
            await store.add_token(t.info, t.digest)
        await store.revoke_token("revoked", now)
        rb.broker.gate._looked_at = float("-inf")  # look for the tokens now, not in 1 s
        yield World(rb, Tokens(**{k: v.text for k, v in made.items()}), ids[0], ids[1])


async def snapshot(store: Store) -> Any:
    """Everything a request could change, as plain data."""
    jobs = await store.list_jobs(None, None, 1000, None)
    return msgspec.to_builtins(
        {
            "jobs": jobs,
            "counts": await store.counts(),
            "tokens": await store.tokens(),
            "schedules": await store.schedules(),
            "limits": await store.rate_limits(),
            "paused": sorted(await store.paused_queues()),
            "retention": await store.retention_overrides(),
        }
    )


async def exchange(
    port: int, token: str | None, msg: msgspec.Struct | None, role: str = "client", **hello: Any
) -> list[Any]:
    """Say hello with ``token``, send ``msg``, and return what the broker answered
    (besides welcome) until it answered ``msg`` or closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    decoder = codec.client_side() if role == "client" else codec.worker_side()
    writer.write(codec.encode(m.Hello(role=role, version=L.PROTOCOL_VERSION, token=token, **hello)))
    if msg is not None:
        writer.write(codec.encode(msg))
    answers: list[Any] = []
    try:
        async with asyncio.timeout(5):
            while True:
                data = await reader.read(65536)
                if not data:
                    answers.append("closed")
                    return answers
                for reply in decoder.feed(data):
                    if isinstance(reply, m.Welcome):
                        if msg is None:
                            return answers
                        continue
                    answers.append(reply)
                    if not (isinstance(reply, m.Error) and reply.req == 0):
                        return answers  # else the broker closes: read on to see it
    finally:
        writer.close()
