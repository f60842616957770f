"""Files on the broker: uploads (clients' job inputs, workers' artifacts), reads, and
what a submit checks of the files its jobs name (model/files.py, docs/files.md).

The bytes go straight between the connection and the store a chunk at a time, so the
broker's memory stays flat whatever the size of a file: a connection may have at most
``MAX_QUEUED_CHUNKS`` chunks waiting to be stored, and keeps only the metadata of its
open uploads. Each request runs as its own task (broker/connection.py); the chunks of
one upload are stored in the order they arrived, one at a time, under the upload's
lock (asyncio's locks are first come, first served).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from runq.errors import (
    FileError,
    FileMismatch,
    FileTooLarge,
    Forbidden,
    StaleFence,
    UnknownFile,
    UnknownJob,
)
from runq.model import JobSpec
from runq.model.files import (
    MAX_FILES,
    BlobInfo,
    BlobKind,
    FileRef,
    check_inputs,
    new_blob_id,
)
from runq.model.token import Grant

if TYPE_CHECKING:
    from runq.broker.connection import Connection
    from runq.broker.dispatch import WorkerSession
    from runq.broker.server import Broker

MAX_UPLOADS: Final = 64  # uploads one connection may have open at once
MAX_QUEUED_CHUNKS: Final = 16  # chunks of one connection waiting to be stored (8 MiB)
READ_CACHE: Final = 32  # blobs a connection was allowed to read, remembered


@dataclass(eq=False)
class Upload:
    info: BlobInfo
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(eq=False)
class Transfers:
    """One connection's open uploads and the blobs it may read (checked once)."""

    uploads: dict[str, Upload] = field(default_factory=dict)
    queued: int = 0  # chunks received and not yet stored
    readable: OrderedDict[str, BlobInfo] = field(default_factory=OrderedDict)

    def room(self, blob_id: str | None = None) -> None:
        """FileError when another upload may not open on this connection."""
        if blob_id not in self.uploads and len(self.uploads) >= MAX_UPLOADS:
            raise FileError(
                f"a connection may have at most {MAX_UPLOADS} uploads open; finish some first"
            )

    def track(self, info: BlobInfo) -> None:
        self.room(info.id)
        self.uploads.setdefault(info.id, Upload(info))

    def upload(self, blob_id: str) -> Upload:
        found = self.uploads.get(blob_id)
        if found is None:
            raise UnknownFile(
                f"upload {blob_id} is not open on this connection: open or resume it first"
            )
        return found

    def allow_read(self, info: BlobInfo) -> None:
        self.readable[info.id] = info
        if len(self.readable) > READ_CACHE:
            self.readable.popitem(last=False)


def transfers(conn: Connection) -> Transfers:
    if conn.transfers is None:
        conn.transfers = Transfers()
    return conn.transfers


# -- uploads ---------------------------------------------------------------------------


async def open_upload(
    broker: Broker,
    conn: Connection,
    name: str,
    size: int,
    sha256: str,
    attempt: tuple[int, int] | None = None,
) -> BlobInfo:
    """Start a blob: an input (client port) or an artifact of ``attempt`` (job, fence),
    which the worker must hold. Over-limit sizes are refused before anything is stored."""
    cfg = broker.config
    if size > cfg.max_file_size:
        raise FileTooLarge(
            f"{name!r} is {size} bytes; this broker takes files of at most"
            f" {cfg.max_file_size} bytes"
        )
    if attempt is not None:
        assert conn.session is not None
        count_artifact(conn.session, attempt, size, cfg.max_job_files)
    if cfg.max_stored_bytes is not None:
        stored = await broker.store.stored_bytes()
        if stored + size > cfg.max_stored_bytes:
            raise FileTooLarge(
                f"the broker's file store is full ({stored} of {cfg.max_stored_bytes} bytes"
                f" used): {name!r} ({size} bytes) does not fit"
            )
    job, fence = attempt if attempt is not None else (None, None)
    kind: BlobKind = "input" if attempt is None else "artifact"
    info = BlobInfo(new_blob_id(), name, size, sha256, kind, broker.clock(), 0, False, job, fence)
    files = transfers(conn)
    files.room()  # before anything is stored
    await broker.store.create_blob(info)
    files.track(info)
    return info


def count_artifact(session: WorkerSession, attempt: tuple[int, int], size: int, most: int) -> None:
    """A worker's artifact: the attempt is its own, and its artifacts stay in bounds."""
    job, fence = attempt
    if session.inflight.get(job) != fence:
        raise StaleFence(f"this worker does not hold job {job} with fence {fence}")
    if len(session.artifacts) > 2 * session.concurrency:  # forget attempts that ended
        for key in [k for k in session.artifacts if session.inflight.get(k[0]) != k[1]]:
            del session.artifacts[key]
    count, total = session.artifacts.get(attempt, (0, 0))
    if count >= MAX_FILES:
        raise FileError(f"an attempt keeps at most {MAX_FILES} artifacts")
    if total + size > most:
        raise FileTooLarge(
            f"the artifacts of job {job} would pass {most} bytes (the most one attempt keeps)"
        )
    session.artifacts[attempt] = (count + 1, total + size)


async def resume(broker: Broker, conn: Connection, blob_id: str) -> BlobInfo:
    """An upload this side may go on with, after a dropped connection: the client's
    input, or an artifact of an attempt the worker still holds."""
    info = await broker.store.blob(blob_id)
    if info is None:
        raise UnknownFile(f"there is no upload {blob_id}: it never began or was deleted")
    session = conn.session
    if session is None and info.kind != "input":
        raise Forbidden("an artifact's upload goes on only from the worker that holds its job")
    if session is not None:
        if info.kind != "artifact" or info.job_id is None:
            raise Forbidden("a worker uploads only the artifacts of its own jobs")
        if session.inflight.get(info.job_id) != info.fence:
            raise StaleFence(f"this worker does not hold job {info.job_id} with fence {info.fence}")
    transfers(conn).track(info)
    return info


async def write(broker: Broker, conn: Connection, blob_id: str, offset: int, data: bytes) -> int:
    """Store one chunk at ``offset`` (what is stored so far); the bytes stored now."""
    files = transfers(conn)
    upload = files.upload(blob_id)
    if files.queued >= MAX_QUEUED_CHUNKS:
        raise FileError(f"at most {MAX_QUEUED_CHUNKS} chunks may wait to be stored at once")
    files.queued += 1
    try:
        async with upload.lock:
            return await broker.store.write_blob(blob_id, offset, data, broker.clock())
    finally:
        files.queued -= 1


async def finish(broker: Broker, conn: Connection, blob_id: str) -> FileRef:
    """Check the blob's size and SHA-256 and close the upload (FileMismatch: the bytes
    are dropped, the upload may start again from 0)."""
    files = transfers(conn)
    upload = files.upload(blob_id)
    async with upload.lock:
        info = await broker.store.finish_blob(blob_id, broker.clock())
    files.uploads.pop(blob_id, None)
    return FileRef(info.name, info.id, info.size, info.sha256)


# -- reads -----------------------------------------------------------------------------


async def read(
    broker: Broker, conn: Connection, blob_id: str, offset: int, length: int, job: int | None
) -> tuple[bytes, BlobInfo]:
    """Up to ``length`` bytes of a complete blob this side may read, from ``offset``."""
    files = transfers(conn)
    info = files.readable.get(blob_id)
    if info is None:
        info = await readable(broker, conn, blob_id, job)
        files.allow_read(info)
    return await broker.store.read_blob(blob_id, offset, length), info


async def readable(broker: Broker, conn: Connection, blob_id: str, job: int | None) -> BlobInfo:
    """The blob, if this side may read it. A worker reads the inputs of the jobs it
    holds; a client, any file with read scope, else a file of a job ``job`` it may see.
    Refusals come before the lookup: they tell nothing of which blobs exist."""
    inputs: list[FileRef] = []
    if conn.session is not None:
        await check_worker_read(broker, conn.session, blob_id)
    elif job is not None:
        inputs = await check_sees(broker, conn.grant, job)
    elif not conn.grant.read:
        raise Forbidden("a token without read scope reads a file of a job: name the job")
    info = await broker.store.blob(blob_id)
    if info is None or not info.complete:
        raise UnknownFile(f"there is no complete file {blob_id}")
    if job is not None and info.job_id != job and all(r.blob != blob_id for r in inputs):
        raise UnknownFile(f"file {blob_id} is not a file of job {job}")
    return info


async def check_sees(broker: Broker, grant: Grant, job_id: int) -> list[FileRef]:
    """Forbidden unless the token may see job ``job_id``; the job's input files."""
    job = await broker.store.get(job_id)
    if job is None:
        raise UnknownJob.for_id(job_id)
    if not grant.may_see(job.queue):
        raise Forbidden(f"this token may not read jobs of queue {job.queue!r}")
    return job.files


async def check_worker_read(broker: Broker, session: WorkerSession, blob_id: str) -> None:
    """Forbidden unless ``blob_id`` is an input of a job the worker holds. The inputs of
    jobs it held before it reconnected are looked up the first time it asks."""
    if session.may_read(blob_id):
        return
    for job_id in [j for j in session.inflight if j not in session.inputs]:
        job = await broker.store.get(job_id)
        session.inputs[job_id] = frozenset(f.blob for f in job.files) if job else frozenset()
    if not session.may_read(blob_id):
        raise Forbidden("this worker holds no job with this input file")


# -- submits ---------------------------------------------------------------------------


async def check_specs(broker: Broker, specs: Sequence[JobSpec]) -> None:
    """Every job's input files are named by its arguments as it says, within bounds,
    and uploaded whole as inputs with the size and SHA-256 the job names (FileError
    otherwise: nothing of the batch is stored)."""
    seen: dict[str, BlobInfo] = {}
    most = broker.config.max_job_files
    for spec in specs:
        if not spec.files:
            continue
        check_inputs(spec.files, spec.args, spec.kwargs)
        total = sum(ref.size for ref in spec.files)
        if total > most:
            raise FileTooLarge(f"a job's input files are {total} bytes; at most {most} bytes")
        for ref in spec.files:
            info = seen.get(ref.blob) or await broker.store.blob(ref.blob)
            check_ref(ref, info)
            assert info is not None
            seen[ref.blob] = info


def check_ref(ref: FileRef, info: BlobInfo | None) -> None:
    if info is None or info.kind != "input":
        raise UnknownFile(f"input {ref.name!r} names no uploaded file ({ref.blob})")
    if not info.complete:
        raise FileError(f"the upload of input {ref.name!r} ({ref.blob}) is not finished")
    if (info.size, info.sha256) != (ref.size, ref.sha256):
        raise FileMismatch(
            f"input {ref.name!r} says {ref.size} bytes with SHA-256 {ref.sha256[:12]}…, but"
            f" the uploaded file has {info.size} bytes with SHA-256 {info.sha256[:12]}…"
        )
