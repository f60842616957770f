"""A job's files over HTTP: ``GET /api/v1/jobs/{id}/files/{name}`` streams one of its
input files or artifacts from the store a chunk at a time (the broker never holds more
than a chunk of it), with its size, a safe file name and its SHA-256."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from litestar import Request, get
from litestar.openapi import ResponseSpec
from litestar.params import Parameter
from litestar.response import Stream

from runq.broker import Broker
from runq.broker import operations as ops
from runq.broker.access import check_job
from runq.errors import UnknownFile
from runq.model import Job
from runq.model.files import CHUNK, FileRef, artifacts_of

from .access import grant_of
from .deps import BrokerDep, JobIdParam
from .errors import ERRORS

OCTETS = "application/octet-stream"
FileNameParam = Annotated[
    str,
    Parameter(
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.+=,@-]*$",
        description="the file's name (an input's, or an artifact's)",
    ),
]
Kind = Literal["input", "artifact"]


def files_of(job: Job) -> dict[str, list[FileRef]]:
    """A job's input files and the artifacts in its result."""
    return {"input": list(job.files), "artifact": artifacts_of(job.result)}


def find(job: Job, name: str, kind: Kind | None) -> FileRef:
    """The job's file ``name`` (an artifact before an input of the same name)."""
    found = files_of(job)
    for k in (kind,) if kind is not None else ("artifact", "input"):
        for ref in found[k]:
            if ref.name == name:
                return ref
    raise UnknownFile(f"job {job.id} has no {kind or 'file'} named {name!r}")


async def chunks(broker: Broker, ref: FileRef) -> AsyncIterator[bytes]:
    offset = 0
    while offset < ref.size:
        data = await broker.store.read_blob(ref.blob, offset, CHUNK)
        if not data:  # cut short: the client sees fewer bytes than Content-Length
            return
        offset += len(data)
        yield data


@get(
    "/jobs/{job_id:int}/files/{name:str}",
    tags=["jobs"],
    summary="Download one of a job's input files or artifacts",
    description="The file's bytes, streamed, as an attachment (`Content-Disposition`)."
    " `X-Checksum-SHA256` is its SHA-256 in hex: check it once the body is in. An"
    " artifact is named before an input of the same name unless `kind` says which.",
    media_type=OCTETS,
    responses={
        **ERRORS,
        200: ResponseSpec(
            bytes,
            description="The file",
            media_type=OCTETS,
            generate_examples=False,
        ),
    },
    opt={"access": "job"},
)
async def job_file(
    broker: BrokerDep,
    job_id: JobIdParam,
    name: FileNameParam,
    request: Request[Any, Any, Any],
    kind: Annotated[Kind | None, Parameter(description="input or artifact")] = None,
) -> Stream:
    await check_job(broker, grant_of(request), job_id)
    ref = find(await ops.get(broker, job_id), name, kind)
    info = await broker.store.blob(ref.blob)
    if info is None or not info.complete:
        raise UnknownFile(f"the file {name!r} of job {job_id} is no longer kept")
    headers = {
        "Content-Length": str(ref.size),
        "Content-Disposition": f'attachment; filename="{ref.name}"',
        "X-Checksum-SHA256": ref.sha256,
        "X-Content-Type-Options": "nosniff",
    }
    return Stream(chunks(broker, ref), media_type=OCTETS, headers=headers)


ROUTES = [job_file]
