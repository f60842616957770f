"""The web dashboard at ``/``: pages rendered on the server with Jinja2 (autoescaped) and
kept live by our own small script, ``static/dashboard.js``, which polls the JSON API
under /api/v1 every two seconds, draws the charts and sends the buttons' POSTs.

No front-end bundle and no CDN: the pages work offline. Each page reads only what it
shows: one page of jobs through ``list_jobs`` and its cursor, one job, the counts by
queue and state, the workers, the activity buckets kept in memory.
"""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from litestar import Request, Response, Router, get
from litestar.enums import MediaType
from litestar.exceptions import HTTPException, ValidationException
from litestar.params import FromPath, QueryParameter
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from runq.broker import Broker
from runq.broker import operations as ops
from runq.errors import RunqError, Unauthorized, UnknownJob
from runq.model import Job, JobState
from runq.model.spec import MAX_JOB_ID

from . import views
from .access import viewer
from .deps import BrokerDep
from .errors import status_of
from .files import files_of

log = logging.getLogger("runq.http")

STATIC: Final = Path(__file__).parent / "static"
PAGE_SIZES: Final = (20, 50, 100, 200)
# Our own scripts, styles and requests only: nothing from elsewhere, nothing inline.
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

Text = Annotated[str | None, QueryParameter(max_length=200)]
Cursor = Annotated[int | None, QueryParameter(ge=1, le=MAX_JOB_ID, description="from `next`")]
Limit = Annotated[int, QueryParameter(ge=1, le=PAGE_SIZES[-1])]


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """Jinja2 with autoescaping always on, templates from the package."""
    env = Environment(
        loader=PackageLoader("runq.http", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(views.FILTERS)
    env.globals.update(
        version=importlib.metadata.version("runq"),
        states=[str(s) for s in JobState],
        optional=("scheduled", "succeeded", "cancelled"),  # columns phones leave out
        page_sizes=PAGE_SIZES,
        nav=views.NAV,
        viewer=viewer,
    )
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(env))


def page(name: str, status: int = 200, **context: Any) -> Template:
    return Template(
        template_name=f"{name}.html",
        context={"page": name, **context},
        status_code=status,
        media_type=MediaType.HTML,
        headers=SECURITY_HEADERS,
    )


def not_found(message: str) -> Template:
    return page("error", 404, title="Not found", message=message)


def blank(value: str | None) -> str | None:
    """A form's empty field is no filter."""
    return value.strip() or None if value is not None else None


# -- pages -------------------------------------------------------------------------------


@get("/", name="dashboard:overview")
async def overview(broker: BrokerDep) -> Template:
    infos = await ops.queues(broker)
    workers = await broker.cluster.workers()
    return page(
        "overview",
        now=broker.clock(),
        queues=views.queue_rows(infos),
        totals=views.totals(infos),
        workers=workers,
        slots=sum(w.concurrency for w in workers),
        busy=sum(w.running for w in workers),
        hour=views.hour(broker.activity.series(broker.clock())),
        warnings=await broker.store.warnings(),
    )


@get("/queues", name="dashboard:queues")
async def queues(broker: BrokerDep) -> Template:
    return page("queues", queues=views.queue_rows(await ops.queues(broker)))


@get("/jobs", name="dashboard:jobs")
async def jobs(
    broker: BrokerDep,
    job_state: Annotated[str | None, QueryParameter(name="state", max_length=20)] = None,
    queue: Text = None,
    task: Text = None,
    q: Annotated[str | None, QueryParameter(max_length=200, description="a job id or key")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Template | Redirect:
    q = blank(q)
    if q is not None and (found := await by_id(broker, q)) is not None:
        return Redirect(f"/jobs/{found.id}", status_code=303)
    filters = {"state": blank(job_state), "queue": blank(queue), "task": blank(task), "key": q}
    listed, next_cursor = await listing(broker, filters, cursor, limit)
    return page(
        "jobs",
        now=broker.clock(),
        jobs=listed,
        filters={**filters, "q": q or "", "limit": limit},
        cursor=cursor,
        api=api_query(filters, cursor, limit),
        older=page_link("/jobs", {**filters, "key": None, "q": q}, next_cursor, limit),
        newest=page_link("/jobs", {**filters, "key": None, "q": q}, None, limit),
    )


@get("/jobs/{job_id:str}", name="dashboard:job")
async def job(broker: BrokerDep, job_id: FromPath[str]) -> Template:
    found = await by_id(broker, job_id)
    if found is None:
        shown = job_id if len(job_id) <= 40 else job_id[:40] + "…"
        return not_found(f"There is no job {shown}: it never existed or has been purged.")
    sig = views.signature(found)
    return page("job", now=broker.clock(), job=found, sig=sig, files=files_of(found))


@get("/failed", name="dashboard:failed")
async def failed(
    broker: BrokerDep, queue: Text = None, cursor: Cursor = None, limit: Limit = 50
) -> Template:
    filters = {"state": str(JobState.FAILED), "queue": blank(queue)}
    listed, next_cursor = await listing(broker, filters, cursor, limit)
    return page(
        "failed",
        now=broker.clock(),
        jobs=listed,
        queue=filters["queue"] or "",
        cursor=cursor,
        limit=limit,
        api=api_query(filters, cursor, limit),
        older=page_link("/failed", {"queue": filters["queue"]}, next_cursor, limit),
        newest=page_link("/failed", {"queue": filters["queue"]}, None, limit),
    )


@get("/workers", name="dashboard:workers")
async def workers(broker: BrokerDep) -> Template:
    return page("workers", now=broker.clock(), workers=await broker.cluster.workers())


# -- reads -------------------------------------------------------------------------------


async def by_id(broker: Broker, text: str) -> Job | None:
    """The job whose id ``text`` is, or None (not a number, out of range, no such job)."""
    if not (text.isascii() and text.isdigit() and len(text) <= 19):
        return None
    job_id = int(text)
    if not 1 <= job_id <= MAX_JOB_ID:
        return None
    try:
        return await ops.get(broker, job_id)
    except UnknownJob:
        return None


async def listing(
    broker: Broker, filters: dict[str, str | None], cursor: int | None, limit: int
) -> tuple[list[Job], int | None]:
    """One page of jobs, newest first, and the cursor of the next (older) page."""
    found = await broker.store.list_jobs(
        ops.parse_state(filters.get("state")),
        filters.get("queue"),
        limit + 1,
        cursor,
        task=filters.get("task"),
        key=filters.get("key"),
    )
    shown = found[:limit]
    return shown, shown[-1].id if len(found) > limit and shown else None


def api_query(filters: dict[str, str | None], cursor: int | None, limit: int) -> str:
    """The JSON API's URL for the same page, which the script polls."""
    params = {k: v for k, v in filters.items() if v is not None}
    if cursor is not None:
        params["cursor"] = str(cursor)
    return "/api/v1/jobs?" + urlencode({**params, "limit": limit})


def page_link(path: str, params: dict[str, str | None], cursor: int | None, limit: int) -> str:
    kept = {k: v for k, v in params.items() if v}
    if cursor is not None:
        kept["cursor"] = str(cursor)
    if limit != 50:
        kept["limit"] = str(limit)
    return f"{path}?{urlencode(kept)}" if kept else path


# -- errors as pages ---------------------------------------------------------------------


def error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Errors on a dashboard page answer with a page, not the API's JSON body; a page
    that needs a login sends the browser to the login form."""
    if isinstance(exc, Unauthorized):
        return Redirect("/login?" + urlencode({"next": request.url.path}), status_code=303)
    if isinstance(exc, RunqError):
        status, message = status_of(exc), exc.message
    elif isinstance(exc, ValidationException):
        details = "; ".join(problems(exc)) or str(exc.detail)
        status, message = 400, f"This address has a value the dashboard cannot use: {details}"
    elif isinstance(exc, HTTPException):
        status, message = exc.status_code, str(exc.detail)
    else:
        log.error("internal error serving %s %s: %r", request.method, request.url.path, exc)
        status, message = 500, "Something went wrong on the broker; its log says what."
    title = {400: "Bad request", 403: "Not allowed", 404: "Not found", 422: "Bad request"}.get(
        status, "Error"
    )
    return page("error", status, title=title, message=message)


def problems(exc: ValidationException) -> list[str]:
    found = exc.extra if isinstance(exc.extra, list) else []
    names = {"job_state": "state"}  # Python names of parameters -> their names
    return [
        f"{names.get(str(item.get('key')), item.get('key'))}: {item.get('message', '')}"
        for item in found
        if isinstance(item, dict)
    ]


ROUTES: Final[list[Any]] = [
    Router(
        "/",
        route_handlers=[overview, queues, jobs, job, failed, workers],
        exception_handlers={
            RunqError: error_page,
            ValidationException: error_page,
            HTTPException: error_page,
            Exception: error_page,
        },
        include_in_schema=False,
    ),
    create_static_files_router(
        "/static", [STATIC], name="dashboard:static", opt={"access": "open"}
    ),
]
