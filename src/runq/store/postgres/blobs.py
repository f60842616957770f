"""The PostgreSQL store's files (store/base.FileStore): bytes in ``blob_chunks``, one
row per chunk as it was written, so any broker serves any file and an upload may go on
through another broker. Each write is one statement guarded by the bytes stored so far.

The running SHA-256 of an upload lives in the broker that took its chunks; a finish
elsewhere (or after a restart) reads the chunks back a few at a time to hash them.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final

from runq.errors import Conflict
from runq.model.files import BlobInfo
from runq.store import files
from runq.store.postgres import file_ops
from runq.store.postgres.ops import BIGINT_MAX, Conn, Queries

Run = Callable[..., Awaitable[Any]]  # PostgresStore._run(op, tx=...)
DIGEST_BATCH: Final = 4  # chunks read at once to recompute a digest (at most 4 MiB)


class PgBlobs:
    def __init__(self, q: Queries, run: Run) -> None:
        self._q = q
        self._run = run
        self._uploads = files.Uploads()

    async def _one(self, op: Callable[[Conn], Awaitable[Any]]) -> Any:
        return await self._run(op, tx=False)

    async def create_blob(self, blob: BlobInfo) -> None:
        if not await self._one(partial(file_ops.create, self._q, blob)):
            raise Conflict(f"blob {blob.id} exists already")

    async def blob(self, blob_id: str) -> BlobInfo | None:
        found: BlobInfo | None = await self._one(partial(file_ops.blob, self._q, blob_id))
        return found

    async def write_blob(self, blob_id: str, offset: int, data: bytes, now: float) -> int:
        up = self._uploads.get(blob_id)
        async with up.lock:
            op = partial(file_ops.write, self._q, blob_id, min(offset, BIGINT_MAX), data, now)
            received: int | None = await self._one(op)
            if received is None:
                info = await self._known(blob_id)
                files.check_write(info, info.received, offset, len(data))  # says why
                raise Conflict(f"blob {blob_id} changed while this chunk was stored: resume")
            up.touched = now
            await asyncio.to_thread(up.add, offset, data)
            return received

    async def finish_blob(self, blob_id: str, now: float) -> BlobInfo:
        async with self._uploads.closing(blob_id) as up:
            info = await self._known(blob_id)
            if info.complete:
                return info
            digest = None
            if info.received == info.size:  # no byte more can come: hash what is stored
                digest = up.digest(info.size) or await self._digest(blob_id)
            error = files.mismatch(info, info.received, digest)
            if error is not None:
                await self._run(partial(file_ops.dropped, self._q, blob_id, now))
                raise error
            done = await self._one(partial(file_ops.finished, self._q, blob_id, now))
            if done is None:  # another broker finished it meanwhile (or dropped it)
                done = await self._known(blob_id)
                if not done.complete:
                    raise Conflict(f"blob {blob_id} changed while it was finished: resume")
            assert isinstance(done, BlobInfo)
            return done

    async def _digest(self, blob_id: str) -> str:
        hasher, at = hashlib.sha256(), 0
        while True:
            op = partial(file_ops.pieces, self._q, blob_id, at, DIGEST_BATCH)
            pieces: list[bytes] = await self._one(op)
            if not pieces:
                return hasher.hexdigest()
            at += await asyncio.to_thread(files.feed, hasher, pieces)

    async def read_blob(self, blob_id: str, offset: int, length: int) -> bytes:
        start = min(max(offset, 0), BIGINT_MAX // 2)
        end = start + files.read_length(length)
        pieces: list[bytes] = await self._one(partial(file_ops.read, self._q, blob_id, start, end))
        if pieces:
            return b"".join(pieces)
        info = await self._known(blob_id)
        if not info.complete:
            raise files.incomplete(blob_id)
        return b""

    async def stored_bytes(self) -> int:
        found: int = await self._one(partial(file_ops.stored_bytes, self._q))
        return found

    async def sweep_blobs(self, now: float, grace: float) -> int:
        cutoff, gone = now - grace, 0
        for _ in range(files.SWEEP_ROUNDS):
            op = partial(file_ops.sweep, self._q, cutoff, files.SWEEP_BATCH)
            found: int = await self._run(op)
            gone += found
            if found < files.SWEEP_BATCH:
                break
        self._uploads.drop_idle(cutoff)
        return gone

    async def _known(self, blob_id: str) -> BlobInfo:
        found = await self.blob(blob_id)
        if found is None:
            self._uploads.forget([blob_id])
            raise files.unknown(blob_id)
        return found
