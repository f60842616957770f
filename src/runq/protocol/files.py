"""Moving files in chunks: uploads (clients: job inputs; workers: artifacts) and reads.

An upload opens with the file's name, size and SHA-256 and gets a blob id; chunks follow
in order (each answered with how much is stored, so a client keeps a window of chunks in
flight); ``finishupload`` checks size and SHA-256 and answers the ``FileRef`` to name in
``JobSpec.files`` (or that stands in a result for an artifact). After a dropped
connection, ``resumeupload`` says how much of the blob is stored, and chunks go on from
there. ``readfile`` reads a complete blob a chunk at a time. See docs/files.md.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from runq.model.files import MAX_CHUNK, BlobId, FileName, FileRef, Offset, Sha256, Size
from runq.model.spec import JobId
from runq.protocol.base import Base, ReqId

ChunkData = Annotated[bytes, Meta(max_length=MAX_CHUNK)]
ChunkLength = Annotated[int, Meta(ge=1, le=MAX_CHUNK)]


class OpenUpload(Base, frozen=True, tag="openupload"):
    """Client port: a job input to come."""

    req: ReqId
    name: FileName
    size: Size
    sha256: Sha256


class OpenArtifact(Base, frozen=True, tag="openartifact"):
    """Worker port: a file the attempt ``(job, fence)`` made, which this worker holds."""

    req: ReqId
    job: JobId
    fence: Annotated[int, Meta(ge=0)]
    name: FileName
    size: Size
    sha256: Sha256


class ResumeUpload(Base, frozen=True, tag="resumeupload"):
    req: ReqId
    blob: BlobId


class UploadChunk(Base, frozen=True, tag="uploadchunk"):
    """``data`` stored at ``offset``, which must be what is stored so far."""

    req: ReqId
    blob: BlobId
    offset: Offset
    data: ChunkData


class FinishUpload(Base, frozen=True, tag="finishupload"):
    req: ReqId
    blob: BlobId


class ReadFile(Base, frozen=True, tag="readfile"):
    """Client port: a blob of a job the token may see (``job``: the job it is read as a
    file of, which a token without read scope must name). Worker port: an input of a
    job the worker holds (``job`` is not needed)."""

    req: ReqId
    blob: BlobId
    offset: Offset
    length: ChunkLength
    job: JobId | None = None


class UploadState(Base, frozen=True, tag="uploadstate"):
    """The answer to ``openupload``, ``openartifact``, ``resumeupload`` and each chunk."""

    req: int
    blob: str
    received: int  # bytes stored so far: the next chunk's offset


class Uploaded(Base, frozen=True, tag="uploaded"):
    req: int
    file: FileRef


class FileData(Base, frozen=True, tag="filedata"):
    req: int
    blob: str
    offset: int
    data: bytes  # empty at the end of the blob
    size: int  # the whole blob's
