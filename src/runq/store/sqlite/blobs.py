"""The SQLite store's files (store/base.FileStore). Rows go through the writer thread
and the readers like every other operation; bytes go to files (blobdir.py) on threads
of their own, so neither the event loop nor the writer ever waits for file I/O.

An upload's ``received`` is its ``.part`` file's size: chunks are not written to the
database. Its row's ``updated_at`` is moved on at most once a minute while it is written
(for the sweep after a restart); within the process the sweep spares the uploads this
store wrote to lately.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Final, TypeVar

import msgspec

from runq.errors import Conflict, StoreError, UnknownFile
from runq.model.files import BlobInfo
from runq.store import files
from runq.store.sqlite import file_ops
from runq.store.sqlite.blobdir import BlobDir, io_error
from runq.store.sqlite.ops import Queries

T = TypeVar("T")
Run = Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]
TOUCH_EVERY: Final = 60.0  # seconds between writes of an upload's updated_at
IO_THREADS: Final = 2


class SqliteBlobs:
    def __init__(self, q: Queries, write: Run, read: Run, db_path: str, durable: bool) -> None:
        self._q = q
        self._write = write
        self._read = read
        self._dir = BlobDir(db_path)
        self._pool = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="runq-files")
        self._uploads = files.Uploads()
        self._durable = durable
        self._scanned = False  # files left behind by a crash: looked for once

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, partial(fn, *args))
        except OSError as exc:
            raise io_error(exc) from None

    async def close(self) -> None:
        await asyncio.to_thread(self._pool.shutdown, True)
        await asyncio.to_thread(self._dir.close)

    async def create_blob(self, blob: BlobInfo) -> None:
        up = self._uploads.get(blob.id)  # before its file exists: the orphan scan spares it
        up.touched = up.saved = blob.created_at
        if not await self._io(self._dir.create, blob.id):
            raise Conflict(f"blob {blob.id} exists already")
        try:
            created = await self._write(partial(file_ops.create, self._q, blob))
        except BaseException:
            await self.drop_bytes([blob.id])
            raise
        if not created:
            await self._io(self._dir.remove, [blob.id])  # its row stays, and its upload
            raise Conflict(f"blob {blob.id} exists already")

    async def blob(self, blob_id: str) -> BlobInfo | None:
        info: BlobInfo | None = await self._read(partial(file_ops.blob, self._q, blob_id))
        if info is None or info.complete:
            return info
        return msgspec.structs.replace(info, received=await self._io(self._dir.received, blob_id))

    async def write_blob(self, blob_id: str, offset: int, data: bytes, now: float) -> int:
        up = self._uploads.get(blob_id)
        async with up.lock:
            try:
                if up.info is None:
                    up.info = await self._known(blob_id)
                received = await self._io(self._dir.append, up.info, offset, data, up)
            except UnknownFile:
                self._uploads.forget([blob_id])
                raise
            up.touched = now
            if now - up.saved >= TOUCH_EVERY:
                up.saved = now
                await self._write(partial(file_ops.touch, self._q, blob_id, now))
            return received

    async def finish_blob(self, blob_id: str, now: float) -> BlobInfo:
        async with self._uploads.closing(blob_id) as up:
            info = await self._known(blob_id)
            if info.complete:
                return info
            error = await self._io(self._dir.seal, info, up, self._durable)
            if error is not None:
                await self._write(partial(file_ops.dropped, self._q, blob_id, now))
                raise error
            done: BlobInfo = await self._write(partial(file_ops.finished, self._q, blob_id, now))
            return done

    async def read_blob(self, blob_id: str, offset: int, length: int) -> bytes:
        size = files.read_length(length)
        data = await self._io(self._dir.read, blob_id, max(offset, 0), size)
        if data is not None:
            return data
        info = await self._known(blob_id)
        if info.complete:
            raise StoreError(f"the bytes of blob {blob_id} are missing from {self._dir.root}")
        raise files.incomplete(blob_id)

    async def stored_bytes(self) -> int:
        found: int = await self._read(partial(file_ops.stored_bytes, self._q))
        return found

    async def sweep_blobs(self, now: float, grace: float) -> int:
        cutoff = now - grace
        spare = self._uploads.written_since(cutoff)
        gone: list[str] = []
        for _ in range(files.SWEEP_ROUNDS):
            op = partial(file_ops.sweep, self._q, cutoff, spare, files.SWEEP_BATCH)
            found: list[str] = await self._write(op)
            gone += found
            if len(found) < files.SWEEP_BATCH:
                break
        await self.drop_bytes(gone)
        self._uploads.drop_idle(cutoff)
        if not self._scanned:
            self._scanned = True
            await self._drop_orphans()
        return len(gone)

    async def drop_bytes(self, ids: Iterable[str]) -> None:
        """Remove the files of blobs whose rows are gone (after the delete committed)."""
        ids = list(ids)
        if ids:
            self._uploads.forget(ids)
            await self._io(self._dir.remove, ids)

    async def _known(self, blob_id: str) -> BlobInfo:
        found: BlobInfo | None = await self._read(partial(file_ops.blob, self._q, blob_id))
        if found is None:
            self._uploads.forget([blob_id])
            raise files.unknown(blob_id)
        return found

    async def _drop_orphans(self) -> None:
        """Files without a row: their delete committed, then the process died."""
        listed = sorted(await self._io(self._dir.listed))
        if not listed:
            return
        rows = await self._read(partial(file_ops.having_rows, self._q, listed))
        await self._io(
            self._dir.remove, [b for b in listed if b not in rows and b not in self._uploads]
        )
