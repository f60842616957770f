"""Periodic schedules over HTTP: list, add, remove, pause and resume. Each route calls
the broker operation the native protocol's handler calls."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, delete, get, post
from litestar.params import Parameter

from runq.broker import operations as ops
from runq.model.schedule import Schedule, ScheduleSpec

from .bodies import read
from .deps import BrokerDep
from .errors import ERRORS
from .schemas import storable

ScheduleName = Annotated[
    str, Parameter(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:@/-]+$")
]


@get("/schedules", tags=["schedules"], summary="Every periodic schedule, by name", responses=ERRORS)
async def schedules(broker: BrokerDep) -> list[Schedule]:
    return await ops.schedules(broker)


@post(
    "/schedules",
    tags=["schedules"],
    summary="Add a periodic schedule (cron)",
    status_code=201,
    responses=ERRORS,
)
async def add(broker: BrokerDep, request: Request[Any, Any, Any]) -> Schedule:
    data = await read(request, ScheduleSpec)
    storable(data, "the schedule")
    return await ops.add_schedule(broker, data)


@delete(
    "/schedules/{name:str}",
    tags=["schedules"],
    summary="Remove a schedule (the jobs it fired stay)",
    status_code=200,
    responses=ERRORS,
)
async def remove(broker: BrokerDep, name: ScheduleName) -> Schedule:
    return await ops.remove_schedule(broker, name)


@post(
    "/schedules/{name:str}/pause",
    tags=["schedules"],
    summary="Stop firing a schedule's ticks",
    status_code=200,
    responses=ERRORS,
)
async def pause(broker: BrokerDep, name: ScheduleName) -> Schedule:
    return await ops.pause_schedule(broker, name, True)


@post(
    "/schedules/{name:str}/resume",
    tags=["schedules"],
    summary="Fire a schedule again from its next tick",
    status_code=200,
    responses=ERRORS,
)
async def resume(broker: BrokerDep, name: ScheduleName) -> Schedule:
    return await ops.pause_schedule(broker, name, False)


ROUTES: list[Any] = [schedules, add, remove, pause, resume]
