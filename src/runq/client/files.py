"""Files over the native protocol, for AsyncClient: uploads of job inputs and downloads
of inputs and artifacts (docs/files.md).

A file moves a chunk (``model.files.CHUNK``) at a time with ``WINDOW`` chunks in flight,
read and written in a thread, so neither side ever holds the whole file. An upload
survives a dropped connection: the client reconnects and asks the broker how much it
has (``resumeupload``). A download is written under a temporary name and renamed only
once its size and SHA-256 match, so no half file is ever left under the final name.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import IO, Any, Final

import msgspec

from runq.client.transport import Transport
from runq.errors import Conflict, ConnectionLost, FileError, FileMismatch
from runq.files import File
from runq.model import JobSpec
from runq.model.files import CHUNK, FileRef, check_name, file_marker
from runq.model.files import walk as walk_value
from runq.protocol import messages as m

WINDOW: Final = 8  # chunks or reads of one file in flight (Transport.chunks bounds them all)
TRIES: Final = 8  # reconnections one transfer survives (about 10 s of back-off)
READ_BLOCK: Final = 1024 * 1024  # bytes hashed at a time
FRAME_ROOM: Final = 4096  # bytes of a chunk's frame besides its data

Connect = Callable[[], Awaitable[Transport]]


def digest(path: str | os.PathLike[str]) -> tuple[int, str]:
    """The size and SHA-256 of a file, read a block at a time."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(READ_BLOCK):
            h.update(block)
            size += len(block)
    return size, h.hexdigest()


def drop(pending: deque[asyncio.Future[Any]]) -> None:
    """Forget requests still in flight after a failure (their answers are ignored)."""
    for fut in pending:
        if fut.done() and not fut.cancelled():
            fut.exception()  # retrieved: no warning
        else:
            fut.cancel()
    pending.clear()


async def pause(tries: int) -> None:
    await asyncio.sleep(min(0.05 * 2**tries, 2.0))


# -- uploads ---------------------------------------------------------------------------


async def upload(
    connect: Connect, path: str | os.PathLike[str], name: str | None = None
) -> FileRef:
    """Send a local file to the broker as a job input; the FileRef to name it by."""
    name = check_name(name or Path(path).name)
    try:
        size, sha256 = await asyncio.to_thread(digest, path)
    except OSError as exc:
        raise FileError(f"cannot read {os.fspath(path)!r}: {exc.strerror or exc}") from None
    with open(path, "rb") as f:
        blob: str | None = None
        for tries in range(TRIES + 1):
            try:
                t = await connect()
                req = t.next_id()
                first = m.OpenUpload(req, name, size, sha256)
                state: m.UploadState = await t.request(
                    first if blob is None else m.ResumeUpload(req, blob), req
                )
                blob = state.blob
                await send(t, blob, f, state.received, size)
                req = t.next_id()
                done: m.Uploaded = await t.request(m.FinishUpload(req, blob), req)
                return done.file
            except (ConnectionLost, Conflict):
                if tries == TRIES:
                    raise
            await pause(tries)
    raise AssertionError("unreachable")


def read_at(f: IO[bytes], offset: int, n: int) -> bytes:
    return os.pread(f.fileno(), n, offset)


async def send(t: Transport, blob: str, f: IO[bytes], offset: int, size: int) -> None:
    """The chunks of ``f`` from ``offset`` to ``size``, ``WINDOW`` at a time."""
    pending: deque[asyncio.Future[Any]] = deque()
    most = max(1, min(CHUNK, t.max_frame - FRAME_ROOM))  # a broker may take smaller frames
    try:
        while offset < size:
            n = min(most, size - offset)
            data = await asyncio.to_thread(read_at, f, offset, n)
            if len(data) != n:
                raise FileMismatch(f"the file shrank while it was sent (at byte {offset})")
            await t.chunks.acquire()
            try:
                req = t.next_id()
                fut = t.request(m.UploadChunk(req, blob, offset, data), req)
            except BaseException:
                t.chunks.release()
                raise
            fut.add_done_callback(lambda _: t.chunks.release())
            pending.append(fut)
            offset += n
            if len(pending) >= WINDOW:
                await pending.popleft()
        while pending:
            await pending.popleft()
    finally:
        drop(pending)


# -- jobs with files ---------------------------------------------------------------------


def local_files(value: Any) -> list[File]:
    """Every ``runq.File`` in ``value`` (lists and dicts are looked into)."""
    if isinstance(value, File):
        return [value]
    if isinstance(value, list):
        return [f for v in value for f in local_files(v)]
    if isinstance(value, dict):
        return [f for v in value.values() for f in local_files(v)]
    return []


def mark(
    args: tuple[Any, ...], options: Mapping[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, File]]:
    """``args`` and ``options`` with each ``runq.File`` replaced by its marker, and the
    files by name (the same file once, however often it is named; two different files
    may not have the same name)."""
    nested = (File, list, dict)
    if not any(isinstance(v, nested) for v in args) and not any(
        isinstance(v, nested) for v in options.values()
    ):
        return args, dict(options), {}  # plain values: nothing to look into (most jobs)
    wanted = local_files([list(args), list(options.values())])
    if not wanted:
        return args, dict(options), {}
    by_name: dict[str, File] = {}
    for file in wanted:
        other = by_name.setdefault(file.file_name, file)
        if os.fspath(other.path) != os.fspath(file.path):
            raise FileError(f"two files of one job are both named {file.file_name!r}")

    def marker(v: Any) -> Any:
        return file_marker(v.file_name) if isinstance(v, File) else None

    new_args = tuple(walk_value(list(args), marker))
    return new_args, {k: walk_value(v, marker) for k, v in options.items()}, by_name


async def upload_all(connect: Connect, job: JobSpec, wanted: Mapping[str, File]) -> JobSpec:
    """``job`` naming the ``wanted`` files, uploaded one after the other."""
    if not wanted:
        return job
    refs = [await upload(connect, f.path, name) for name, f in wanted.items()]
    return msgspec.structs.replace(job, files=[*job.files, *refs])


# -- downloads ---------------------------------------------------------------------------


async def download_file(
    connect: Connect, ref: FileRef, dest: str | os.PathLike[str], job: int | None = None
) -> Path:
    """Fetch a stored file into ``dest`` (``job``: the job it is a file of, which a
    token without read scope must name). ``dest`` appears only once the whole file
    arrived with the right SHA-256; FileMismatch otherwise."""
    target = Path(dest)
    part = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    h = hashlib.sha256()
    try:
        with open(part, "wb") as f:
            for tries in range(TRIES + 1):
                try:
                    await fetch(await connect(), ref, job, f, h)
                    break
                except ConnectionLost:
                    if tries == TRIES:
                        raise
                await pause(tries)
        if h.hexdigest() != ref.sha256:
            raise FileMismatch(f"{ref.name!r} arrived with a SHA-256 other than its own")
        os.replace(part, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
    return target


def write_to(f: IO[bytes], h: Any, data: bytes) -> None:
    f.write(data)
    h.update(data)


async def fetch(t: Transport, ref: FileRef, job: int | None, f: IO[bytes], h: Any) -> None:
    """Read the blob into ``f`` from what ``f`` holds to the blob's end, ``WINDOW``
    reads in flight."""
    pending: deque[asyncio.Future[Any]] = deque()
    ends: deque[int] = deque()  # where each read in flight should end
    at = asked = f.tell()  # what is written; where the next read starts
    try:
        while at < ref.size:
            while asked < ref.size and len(pending) < WINDOW:
                n = min(CHUNK, ref.size - asked)
                req = t.next_id()
                pending.append(t.request(m.ReadFile(req, ref.blob, asked, n, job), req))
                asked += n
                ends.append(asked)
            reply: m.FileData = await pending.popleft()
            end = ends.popleft()
            if not reply.data or reply.size != ref.size or reply.offset != at:
                raise FileMismatch(f"the broker's copy of {ref.name!r} is not {ref.size} bytes")
            await asyncio.to_thread(write_to, f, h, reply.data)
            at += len(reply.data)
            if at < end:  # a short read: ask again from where it ended
                drop(pending)
                ends.clear()
                asked = at
    finally:
        drop(pending)
