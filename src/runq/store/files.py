"""What both stores share for files (model/files.py, store/base.FileStore): blob rows,
the checks of a write and a finish, each open upload's running SHA-256, and the input
files of a submitted batch.

A blob is **kept** once something needs it: an input once a job names it, an artifact
once its job has finished with that attempt's report accepted. The sweep looks only at
blobs not kept (few: uploads in progress, artifacts of unfinished jobs); the purge
deletes kept ones with their jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from runq.errors import Conflict, FileMismatch, UnknownFile
from runq.model import JobSpec
from runq.model.files import MAX_CHUNK, BlobInfo, FileRef
from runq.model.unique import SubmitIds
from runq.store.base import FileStore

BLOB_COLUMNS: Final = "id, name, size, sha256, kind, created_at, received, complete, job_id, fence"
READ_CHUNK: Final = 1024 * 1024  # bytes hashed at once when a digest is recomputed
SWEEP_BATCH: Final = 1000  # blobs one sweep statement deletes at most
SWEEP_ROUNDS: Final = 10  # sweep statements in one sweep_blobs call
FINISHED: Final = ("succeeded", "failed", "cancelled")

files_enc = msgspec.json.Encoder()
files_dec = msgspec.json.Decoder(list[FileRef])


def blob_info(row: Sequence[Any]) -> BlobInfo:
    """From a row of BLOB_COLUMNS."""
    id_, name, size, sha, kind, created, received, complete, job_id, fence = row
    return BlobInfo(id_, name, size, sha, kind, created, received, bool(complete), job_id, fence)


def new_row(blob: BlobInfo) -> tuple[Any, ...]:
    """(id, name, size, sha256, kind, job_id, fence, created_at) of a blob to create."""
    b = blob
    return (b.id, b.name, b.size, b.sha256, b.kind, b.job_id, b.fence, b.created_at)


def read_length(length: int) -> int:
    """What one read returns at most: a chunk (memory stays flat whatever is asked)."""
    return max(0, min(length, MAX_CHUNK))


# -- errors ----------------------------------------------------------------------------


def unknown(blob_id: str) -> UnknownFile:
    return UnknownFile(f"no file with blob id {blob_id[:64]!r}")


def incomplete(blob_id: str) -> UnknownFile:
    return UnknownFile(f"the upload of blob {blob_id} is not finished: it cannot be read yet")


def finished(blob_id: str) -> Conflict:
    return Conflict(f"the upload of blob {blob_id} is finished: it takes no more bytes")


def check_write(info: BlobInfo, stored: int, offset: int, length: int) -> None:
    """Conflict unless ``length`` bytes may go at ``offset`` of ``info`` (``stored``
    bytes stored so far)."""
    if info.complete:
        raise finished(info.id)
    if offset != stored:
        raise Conflict(
            f"blob {info.id} has {stored} bytes stored: the next chunk goes at offset"
            f" {stored}, not {offset}"
        )
    if offset + length > info.size:
        raise Conflict(
            f"a chunk of {length} bytes at offset {offset} passes the {info.size} bytes"
            f" declared for blob {info.id}"
        )


def mismatch(info: BlobInfo, stored: int, digest: str | None) -> FileMismatch | None:
    """The error of finishing ``info`` with ``stored`` bytes of SHA-256 ``digest`` (None:
    not computed, the size is wrong already), or None when they match."""
    if stored != info.size:
        return FileMismatch(
            f"the upload of {info.name} has {stored} bytes, not the {info.size} declared:"
            " its bytes are dropped, upload it again"
        )
    if digest != info.sha256:
        return FileMismatch(
            f"the SHA-256 of {info.name} is {digest}, not the {info.sha256} declared:"
            " its bytes are dropped, upload it again"
        )
    return None


# -- open uploads ----------------------------------------------------------------------


@dataclass(eq=False)
class Upload:
    """What a store remembers of an upload it serves: a lock (chunks of one blob are
    stored one after another, in the order they came), the SHA-256 of the first
    ``hashed`` bytes (so finishing does not read the bytes again), and when it was last
    written (the ``now`` of that write)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    info: BlobInfo | None = None  # the blob's row, once read
    hasher: Any = None  # hashlib sha256 object, or None: recompute at the finish
    hashed: int = 0
    touched: float = 0.0
    saved: float = 0.0  # when its row's updated_at was last written

    def add(self, offset: int, data: bytes) -> None:
        """Hash ``data``, just stored at ``offset`` (call it from a worker thread: the
        SHA-256 of a chunk is not the event loop's work)."""
        if offset == 0:
            self.hasher, self.hashed = hashlib.sha256(), 0
        if self.hasher is None or self.hashed != offset:
            self.hasher = None  # someone else stored bytes in between: recompute later
            return
        self.hasher.update(data)
        self.hashed += len(data)

    def digest(self, size: int) -> str | None:
        """The SHA-256 of the first ``size`` bytes, if this upload hashed exactly those."""
        if self.hasher is None or self.hashed != size:
            return None
        return str(self.hasher.hexdigest())


class Uploads:
    """The uploads a store serves, by blob id. An entry goes when its upload finishes or
    fails, when its blob is deleted, or when nothing wrote to it for the sweep's grace."""

    def __init__(self) -> None:
        self._open: dict[str, Upload] = {}

    def get(self, blob_id: str) -> Upload:
        found = self._open.get(blob_id)
        if found is None:
            found = self._open[blob_id] = Upload()
        return found

    @contextlib.asynccontextmanager
    async def closing(self, blob_id: str) -> AsyncIterator[Upload]:
        """The upload of ``blob_id``, locked and forgotten: it ends here (finished or
        failed), and a later one starts anew."""
        found = self.get(blob_id)
        async with found.lock:
            self.forget([blob_id])
            yield found

    def forget(self, ids: Iterable[str]) -> None:
        for blob_id in ids:
            self._open.pop(blob_id, None)

    def written_since(self, since: float) -> list[str]:
        """Blobs written at or after ``since`` (the sweep spares them)."""
        return [k for k, up in self._open.items() if up.touched >= since]

    def drop_idle(self, before: float) -> None:
        """Forget uploads not written since ``before`` (and not in use now)."""
        idle = [k for k, up in self._open.items() if up.touched < before and not up.lock.locked()]
        self.forget(idle)

    def __contains__(self, blob_id: object) -> bool:
        return blob_id in self._open


def feed(hasher: Any, pieces: Iterable[bytes]) -> int:
    """Hash ``pieces`` (from a worker thread); how many bytes they held."""
    size = 0
    for piece in pieces:
        hasher.update(piece)
        size += len(piece)
    return size


def hash_all(pieces: Iterable[bytes]) -> tuple[int, str]:
    """(size, SHA-256) of bytes read piece by piece (from a worker thread)."""
    h = hashlib.sha256()
    size = feed(h, pieces)
    return size, h.hexdigest()


# -- the input files of a submitted batch ----------------------------------------------


def has_files(specs: Sequence[JobSpec]) -> bool:
    return any(s.files for s in specs)


def named_blobs(specs: Sequence[JobSpec]) -> dict[str, FileRef]:
    """Each blob the batch names, with (one of) the references naming it."""
    return {f.blob: f for s in specs for f in s.files}


def check_named(named: dict[str, FileRef], found: Iterable[Any]) -> None:
    """Refuse a batch naming a blob that is not a complete input (``found``: rows of
    (id, size, sha256) of the complete inputs among them), or naming it with another
    size or SHA-256: UnknownFile or FileMismatch, and nothing is stored."""
    stored = {r[0]: (r[1], r[2]) for r in found}
    for blob_id, ref in named.items():
        have = stored.get(blob_id)
        if have is None:
            raise UnknownFile(f"input file {ref.name}: no finished upload with blob id {blob_id}")
        if have != (ref.size, ref.sha256):
            raise FileMismatch(
                f"input file {ref.name}: blob {blob_id} holds {have[0]} bytes of SHA-256"
                f" {have[1]}, not {ref.size} of {ref.sha256}"
            )


def file_rows(specs: Sequence[JobSpec], ids: SubmitIds) -> list[tuple[str, int]]:
    """(files as JSON, id) of each new job with input files (a job merged into an
    existing one keeps that one's)."""
    merged = set(ids.merged)
    return [
        (files_enc.encode(s.files).decode(), job_id)
        for i, (s, job_id) in enumerate(zip(specs, ids, strict=True))
        if s.files and i not in merged
    ]


def link_rows(specs: Sequence[JobSpec], ids: SubmitIds) -> list[tuple[int, str]]:
    """(job id, blob id) of each input file of each new job, once each."""
    merged = set(ids.merged)
    return sorted(
        {
            (job_id, f.blob)
            for i, (s, job_id) in enumerate(zip(specs, ids, strict=True))
            if i not in merged
            for f in s.files
        }
    )


def files_of(text: str | None) -> list[FileRef]:
    return [] if text is None else files_dec.decode(text)


class Blobs:
    """The FileStore methods of a store, answered by its ``_blobs`` (blobs.py of each
    backend)."""

    _blobs: FileStore

    async def create_blob(self, blob: BlobInfo) -> None:
        await self._blobs.create_blob(blob)

    async def blob(self, blob_id: str) -> BlobInfo | None:
        return await self._blobs.blob(blob_id)

    async def write_blob(self, blob_id: str, offset: int, data: bytes, now: float) -> int:
        return await self._blobs.write_blob(blob_id, offset, data, now)

    async def finish_blob(self, blob_id: str, now: float) -> BlobInfo:
        return await self._blobs.finish_blob(blob_id, now)

    async def read_blob(self, blob_id: str, offset: int, length: int) -> bytes:
        return await self._blobs.read_blob(blob_id, offset, length)

    async def stored_bytes(self) -> int:
        return await self._blobs.stored_bytes()

    async def sweep_blobs(self, now: float, grace: float) -> int:
        return await self._blobs.sweep_blobs(now, grace)
