"""Moving one file between the worker and the broker, a chunk at a time.

``download`` reads a job input (``readfile``) with a window of reads in flight and writes
it in a thread as it comes, checking its size and SHA-256; ``upload`` sends an artifact
(``openartifact``, ``uploadchunk``..., ``finishupload``) the same way. Neither holds more
than the window in memory. Both outlive a dropped connection: a download asks again from
the last byte written, an upload asks how much the broker stored (``resumeupload``) and
goes on from there.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import os
from collections.abc import Awaitable, Callable
from typing import IO, Any, Final

from runq.errors import ConnectionLost, FileError, FileMismatch, RunqError, UnknownFile
from runq.model.files import CHUNK, FileRef
from runq.protocol import messages as m
from runq.worker.requests import Requests, drop, reply_of

WINDOW: Final = 4  # chunks in flight at once, each way
MAX_LOSSES: Final = 5  # dropped connections one transfer lives through


async def download(requests: Requests, ref: FileRef, path: str) -> None:
    """Fetch the input ``ref`` into ``path`` (created), or raise a FileError."""
    state = _Download(requests, ref)
    f = state.file = await asyncio.to_thread(open, path, "wb")
    try:
        await _persist(requests, state.run)
    except UnknownFile as exc:
        raise UnknownFile(f"input {ref.name} is not on the broker: {exc.message}") from None
    except RunqError as exc:
        if isinstance(exc, ConnectionLost | FileMismatch):
            raise
        raise type(exc)(f"input {ref.name} could not be fetched: {exc.message}") from None
    finally:
        await asyncio.to_thread(f.close)
    if state.hash.hexdigest() != ref.sha256:
        raise FileMismatch(f"input {ref.name} arrived damaged: its SHA-256 does not match")


async def upload(requests: Requests, job: int, fence: int, path: str, name: str) -> FileRef:
    """Send the file at ``path`` as artifact ``name`` of attempt (job, fence)."""
    try:
        f = await asyncio.to_thread(open, path, "rb")
    except OSError as exc:
        raise for_good(FileError(f"artifact {name}: cannot read {path}: {exc.strerror}")) from None
    try:
        size, sha256 = await asyncio.to_thread(_digest, f)
        state = _Upload(requests, f, m.OpenArtifact(0, job, fence, name, size, sha256))
        await _persist(requests, state.run)
        assert state.done is not None
        return state.done
    finally:
        await asyncio.to_thread(f.close)


def for_good(exc: FileError) -> FileError:
    """``exc`` as a failure not worth a retry (an artifact over the broker's limits, or
    one the task named wrongly or did not make)."""
    exc.retryable = False  # type: ignore[attr-defined]
    return exc


async def _persist(requests: Requests, run: Callable[[], Awaitable[None]]) -> None:
    """``run()`` until it ends, again after each dropped connection (up to MAX_LOSSES)."""
    losses = 0
    while True:
        await requests.ready()
        try:
            await run()
            return
        except ConnectionLost:
            losses += 1
            if losses > MAX_LOSSES:
                raise


class _Download:
    def __init__(self, requests: Requests, ref: FileRef) -> None:
        self.requests = requests
        self.ref = ref
        self.hash = hashlib.sha256()
        self.written = 0
        self.file: IO[bytes] | None = None

    async def run(self) -> None:
        size = self.ref.size
        if size == 0:  # one read says the blob is there (and empty)
            self._check(await self.requests.ask(self._read(0)), 0)
            return
        window: collections.deque[tuple[int, int, asyncio.Future[Any]]] = collections.deque()
        ask_at = self.written
        try:
            while self.written < size:
                while len(window) < WINDOW and ask_at < size:
                    n = min(CHUNK, size - ask_at)
                    window.append((ask_at, n, self.requests.request(self._read(ask_at, n))))
                    ask_at += n
                offset, n, fut = window.popleft()
                got = self._check(await reply_of(fut), offset)
                await asyncio.to_thread(self._write, got)
                if len(got) < n:  # a short read: ask again from where it stopped
                    drop(f for _, _, f in window)
                    window.clear()
                    ask_at = self.written
        finally:
            drop(f for _, _, f in window)

    def _read(self, offset: int, n: int = CHUNK) -> Any:
        blob = self.ref.blob
        return lambda req: m.ReadFile(req, blob, offset, n)

    def _check(self, reply: m.FileData, offset: int) -> bytes:
        name, size = self.ref.name, self.ref.size
        if reply.size != size:
            raise FileMismatch(f"input {name} is {reply.size} bytes on the broker, not {size}")
        if reply.offset != offset or (not reply.data and offset < size):
            raise FileMismatch(f"input {name}: the broker sent bytes from the wrong place")
        return reply.data

    def _write(self, data: bytes) -> None:
        assert self.file is not None
        self.file.write(data)
        self.hash.update(data)
        self.written += len(data)


class _Upload:
    def __init__(self, requests: Requests, f: IO[bytes], opening: m.OpenArtifact) -> None:
        self.requests = requests
        self.file = f
        self.opening = opening
        self.blob: str | None = None
        self.done: FileRef | None = None

    async def run(self) -> None:
        if self.blob is None:
            o = self.opening
            state = await self.requests.ask(
                lambda req: m.OpenArtifact(req, o.job, o.fence, o.name, o.size, o.sha256)
            )
        else:
            blob = self.blob
            state = await self.requests.ask(lambda req: m.ResumeUpload(req, blob))
        self.blob = state.blob
        await self._chunks(state.received)
        blob = state.blob
        finished = await self.requests.ask(lambda req: m.FinishUpload(req, blob))
        self.done = finished.file

    async def _chunks(self, offset: int) -> None:
        """Send the file from ``offset`` on, WINDOW chunks in flight."""
        assert self.blob is not None
        blob, size = self.blob, self.opening.size
        window: collections.deque[tuple[int, asyncio.Future[Any]]] = collections.deque()
        try:
            while offset < size or window:
                while len(window) < WINDOW and offset < size:
                    n = min(CHUNK, size - offset)
                    data = await asyncio.to_thread(os.pread, self.file.fileno(), n, offset)
                    if not data:
                        raise FileMismatch(f"artifact {self.opening.name} shrank while sent")
                    await self.requests.chunks.acquire()
                    try:
                        fut = self.requests.request(_chunk(blob, offset, data))
                    except BaseException:
                        self.requests.chunks.release()
                        raise
                    fut.add_done_callback(lambda _: self.requests.chunks.release())
                    window.append((offset + len(data), fut))
                    offset += len(data)
                end, fut = window.popleft()
                state = await reply_of(fut)
                if state.received != end:
                    raise FileMismatch(f"artifact {self.opening.name}: the broker lost count")
        finally:
            drop(f for _, f in window)


def _chunk(blob: str, offset: int, data: bytes) -> Callable[[int], m.UploadChunk]:
    return lambda req: m.UploadChunk(req, blob, offset, data)


def _digest(f: IO[bytes]) -> tuple[int, str]:
    """The size and SHA-256 of an open file, read in chunks."""
    h = hashlib.sha256()
    size = 0
    while chunk := f.read(CHUNK):
        h.update(chunk)
        size += len(chunk)
    return size, h.hexdigest()
