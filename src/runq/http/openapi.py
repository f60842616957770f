"""The OpenAPI document, with every body's schema written by msgspec itself.

Litestar writes the paths; msgspec, which checks the bodies, writes their schemas, so
the document states exactly what is accepted: unknown fields refused, exclusive bounds,
the pattern of every name in a list.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Litestar

from runq.broker.activity import Point
from runq.model import Job, JobSpec
from runq.model.flow import RateLimit
from runq.model.output import JobLogs
from runq.protocol import messages as m

from . import schemas as s
from .bodies import BODIES
from .errors import ErrorReply
from .probes import Health

DOCUMENTED: Final[tuple[type[msgspec.Struct], ...]] = (
    JobSpec,
    Job,
    s.SubmitBatch,
    s.Submitted,
    s.JobPage,
    s.RetryFailed,
    s.Retried,
    m.QueueInfo,
    s.ClaimRequest,
    s.Claimed,
    s.WorkItem,
    s.Lease,
    s.Leased,
    s.Complete,
    s.Failure,
    s.Reported,
    ErrorReply,
    Health,
    Point,
    m.WorkerInfo,
    JobLogs,
    RateLimit,
)


OPEN_PATHS: Final = ("/health", "/ready")


def document(app: Litestar, tokens: bool = True) -> dict[str, Any]:
    """The document; without ``tokens`` (the store has none, so every route is open) it
    asks for no token."""
    doc: dict[str, Any] = app.openapi_schema.to_schema()
    if not tokens:
        doc.pop("security", None)
    _, components = msgspec.json.schema_components(
        DOCUMENTED, ref_template="#/components/schemas/{name}"
    )
    doc.setdefault("components", {}).setdefault("schemas", {}).update(components)
    for (method, path), body in BODIES.items():
        ref = {"$ref": f"#/components/schemas/{body.__name__}"}
        doc["paths"][path][method]["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref}},
        }
    for path in OPEN_PATHS:  # asked of nobody: the probes
        for operation in doc["paths"].get(path, {}).values():
            operation["security"] = []
    return doc
