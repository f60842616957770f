"""Rate limits over HTTP: list, set and remove. Each route calls the broker operation
the native protocol's handler calls."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Request, delete, get, put
from litestar.params import Parameter

from runq.broker import operations as ops
from runq.model.flow import RateLimit

from .bodies import read
from .deps import BrokerDep
from .errors import ERRORS

LimitName = Annotated[str, Parameter(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:@/-]+$")]
ScopeName = Annotated[Literal["queue", "task"], Parameter(description="queue or task")]


@get("/limits", tags=["limits"], summary="Every rate limit", responses=ERRORS)
async def limits(broker: BrokerDep) -> list[RateLimit]:
    return await broker.store.rate_limits()


@put(
    "/limits",
    tags=["limits"],
    summary="Add or change the rate limit of a queue or a task",
    status_code=200,
    responses=ERRORS,
)
async def set_limit(broker: BrokerDep, request: Request[Any, Any, Any]) -> RateLimit:
    data = await read(request, RateLimit)
    await ops.set_rate_limit(broker, data)
    return data


@delete(
    "/limits/{kind:str}/{name:str}",
    tags=["limits"],
    summary="Remove the rate limit of a queue or a task",
    status_code=200,
    responses=ERRORS,
)
async def remove(broker: BrokerDep, kind: ScopeName, name: LimitName) -> RateLimit:
    # kind: the limit's scope (litestar keeps the word scope for itself)
    return await ops.remove_rate_limit(broker, kind, name)


ROUTES: list[Any] = [limits, set_limit, remove]
