"""The HTTP application: REST API, HTTP workers, probes, metrics and dashboard."""

from __future__ import annotations

import importlib.metadata
from typing import Any

from litestar import Litestar, Request, Router, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from runq.broker import Broker

from . import (
    api,
    dashboard,
    explain,
    files,
    limits,
    login,
    logs,
    metrics,
    openapi,
    probes,
    schedules,
    work,
)
from .access import OPEN, authorize
from .errors import HANDLERS

API_PREFIX = "/api/v1"


@get("/openapi.json", include_in_schema=False, media_type="application/json", opt=OPEN)
async def openapi_document(request: Request[Any, Any, Any]) -> dict[str, Any]:
    broker: Broker = request.app.state.broker
    return openapi.document(request.app, tokens=await broker.gate.required())


def build_app(broker: Broker) -> Litestar:
    def provide_broker() -> Broker:
        return broker

    routes = [*api.ROUTES, *schedules.ROUTES, *logs.ROUTES, *explain.ROUTES, *limits.ROUTES]
    routes += files.ROUTES
    routes += [work.Work, openapi_document]
    v1 = Router(API_PREFIX, route_handlers=routes)
    return Litestar(
        route_handlers=[v1, *probes.ROUTES, metrics.metrics, *dashboard.ROUTES, *login.ROUTES],
        dependencies={"broker": Provide(provide_broker, sync_to_thread=False)},
        guards=[authorize],
        state=State({"broker": broker}),
        exception_handlers=HANDLERS,
        template_config=dashboard.template_config(),
        request_max_body_size=broker.config.max_frame,
        openapi_config=OpenAPIConfig(
            title="runq",
            version=importlib.metadata.version("runq"),
            description="The runq REST API: submit, watch and run jobs over HTTP.",
            path="/api",
            render_plugins=[SwaggerRenderPlugin(path="/docs")],
            components=Components(
                security_schemes={
                    "token": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="An access token (runq token create), once the store"
                        " has any: `Authorization: Bearer runq_…`",
                    )
                }
            ),
            security=[{"token": []}],
        ),
        logging_config=None,
    )
