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


def document(app: Litestar) -> dict[str, Any]:
    doc: dict[str, Any] = app.openapi_schema.to_schema()
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
    return doc
