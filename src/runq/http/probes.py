"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import get

from runq.errors import RunqError, StoreError, Unavailable

from .deps import BrokerDep
from .errors import documented


class Health(msgspec.Struct, frozen=True):
    status: str


@get(
    "/health",
    tags=["probes"],
    summary="The broker is alive",
    responses=documented(503),
    opt={"access": "open"},
)
async def health() -> Health:
    return Health("ok")


@get(
    "/ready",
    tags=["probes"],
    summary="The broker takes work and its store answers",
    responses=documented(503),
    opt={"access": "open"},
)
async def ready(broker: BrokerDep) -> Health:
    if not broker.accepting:
        raise Unavailable("the broker is shutting down")
    try:
        await broker.store.get(0)  # one indexed read: the store answers
    except RunqError as exc:
        raise StoreError(f"the store does not answer: {exc.message}") from None
    return Health("ready")


ROUTES: list[Any] = [health, ready]
