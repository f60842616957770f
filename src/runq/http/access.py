"""Who may call which route: one guard for the whole HTTP app.

A request presents its token as ``Authorization: Bearer <token>`` or, from the
dashboard, in the ``runq_token`` cookie its login form set (HttpOnly, SameSite=Strict;
unsafe methods must also come from the same origin). Each route names what it needs in
``opt={"access": ...}``; a route that names nothing needs ``read`` for GET and ``admin``
for anything else. The words are those of broker/access.py:

- ``open``: nobody is asked (probes, the login form, static files);
- ``read``, ``admin``: that scope (admin includes read);
- ``submit``: a submit scope, the route checks each job's queue;
- ``job``: read, or a submit scope whose queue the route checks against the job's;
- ``cancel``: admin, or a submit scope checked the same way;
- ``work``: a work scope, the route checks the queues (or the job's queue).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from runq.broker import Broker
from runq.broker import operations as ops
from runq.errors import Forbidden
from runq.model.token import ANY_QUEUE, Grant

COOKIE: Final = "runq_token"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN: Final = {"access": "open"}
NEEDS: Final[dict[str, tuple[Callable[[Grant], bool], str]]] = {
    "read": (lambda g: g.read, "read"),
    "admin": (lambda g: g.admin, "administer this broker"),
    "submit": (lambda g: g.admin or bool(g.submit), "submit jobs"),
    "job": (lambda g: g.read or bool(g.submit), "read jobs"),
    "cancel": (lambda g: g.admin or bool(g.submit), "cancel jobs"),
    "work": (lambda g: g.worker, "run jobs"),
}


def presented(connection: ASGIConnection[Any, Any, Any, Any]) -> tuple[str | None, bool]:
    """The token a request presents, and whether it came from the login cookie."""
    header = connection.headers.get("authorization")
    if header is not None:
        scheme, _, text = header.partition(" ")
        return (text.strip() or None) if scheme.lower() == "bearer" else None, False
    cookie = connection.cookies.get(COOKIE)
    return (cookie or None), cookie is not None


def address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    return connection.client.host if connection.client is not None else "?"


async def authorize(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """The app's guard: admit the request's token and check the route's need."""
    method = connection.scope.get("method", "GET")
    need = handler.opt.get("access") or ("read" if method in SAFE_METHODS else "admin")
    if need == "open":
        return
    broker: Broker = connection.app.state.broker
    text, from_cookie = presented(connection)
    grant = await broker.gate.admit(text, address(connection))
    if from_cookie and method not in SAFE_METHODS:
        same_origin(connection)
    connection.state.grant = grant
    allowed, what = NEEDS[need]
    if not allowed(grant):
        raise Forbidden(f"this token may not {what}")


def same_origin(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """A request that rides on the login cookie must come from the dashboard's own
    pages (SameSite=Strict already keeps other sites' requests from carrying it)."""
    origin = connection.headers.get("origin")
    host = connection.headers.get("host")
    if origin is not None and urlsplit(origin).netloc != host:
        raise Forbidden("a request from another site may not use the dashboard's login")


def grant_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Grant:
    """The grant the guard gave this request (everything on an open route)."""
    found = connection.state.get("grant")
    return found if isinstance(found, Grant) else Grant.everything()


def viewer(connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, bool]:
    """For the dashboard's pages: may this viewer act (admin), and did it log in."""
    return {"admin": grant_of(connection).admin, "login": COOKIE in connection.cookies}


def check_submit(connection: ASGIConnection[Any, Any, Any, Any], queues: Iterable[str]) -> None:
    grant = grant_of(connection)
    for queue in queues:
        if not grant.may_submit(queue):
            raise Forbidden(f"this token may not submit to queue {queue!r}")


def check_queues(connection: ASGIConnection[Any, Any, Any, Any], queues: Iterable[str]) -> None:
    grant = grant_of(connection)
    for queue in queues:
        if not grant.may_work(queue):
            raise Forbidden(f"this token may not work on queue {queue!r}")


async def check_work_job(
    connection: ASGIConnection[Any, Any, Any, Any], broker: Broker, job_id: int
) -> None:
    """A work token reports only on jobs of its queues."""
    grant = grant_of(connection)
    if grant.admin or ANY_QUEUE in grant.work:
        return
    job = await ops.get(broker, job_id)
    if not grant.may_work(job.queue):
        raise Forbidden(f"this token may not work on queue {job.queue!r}")
