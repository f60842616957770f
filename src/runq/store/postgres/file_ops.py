"""The PostgreSQL store's files (013_files.sql), as plain functions of a connection: the
input files of a submitted batch, blob rows and their chunks, their purge and sweep."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from runq.model import JobSpec
from runq.model.files import BlobInfo
from runq.model.unique import SubmitIds
from runq.store import files
from runq.store.postgres.ops import Conn, Queries, columns


async def submit(
    q: Queries, insert: Callable[[Conn], Awaitable[SubmitIds]], specs: list[JobSpec], conn: Conn
) -> SubmitIds:
    """Insert a batch with input files (in one transaction): each must be a finished
    upload, locked until this commits, or nothing is stored; the new jobs get their
    files and links, and the inputs are kept."""
    named = files.named_blobs(specs)
    files.check_named(named, await conn.fetch(q["lock_inputs"], sorted(named)))
    ids = await insert(conn)
    texts, job_ids = columns(files.file_rows(specs, ids), 2)
    await conn.execute(q["set_files"], texts, job_ids)
    links = files.link_rows(specs, ids)
    await conn.execute(q["link_files"], *columns(links, 2))
    await conn.execute(q["keep_inputs"], sorted({blob for _, blob in links}))
    return ids


async def create(q: Queries, blob: BlobInfo, conn: Conn) -> bool:
    return bool(await conn.execute(q["create_blob"], *files.new_row(blob)) == "INSERT 0 1")


async def blob(q: Queries, blob_id: str, conn: Conn) -> BlobInfo | None:
    row = await conn.fetchrow(q["blob"], blob_id)
    return None if row is None else files.blob_info(tuple(row))


async def write(
    q: Queries, blob_id: str, offset: int, data: bytes, now: float, conn: Conn
) -> int | None:
    """The bytes stored after ``data`` went at ``offset``; None: refused."""
    found = await conn.fetchval(q["write_blob"], blob_id, offset, data, now)
    return None if found is None else int(found)


async def pieces(q: Queries, blob_id: str, start: int, count: int, conn: Conn) -> list[bytes]:
    """Up to ``count`` chunks of a blob from offset ``start`` on, in order."""
    return [r[1] for r in await conn.fetch(q["blob_pieces"], blob_id, start, count)]


async def finished(q: Queries, blob_id: str, now: float, conn: Conn) -> BlobInfo | None:
    row = await conn.fetchrow(q["blob_finished"], blob_id, now)
    return None if row is None else files.blob_info(tuple(row))


async def dropped(q: Queries, blob_id: str, now: float, conn: Conn) -> None:
    await conn.execute(q["blob_dropped"], blob_id, now)


async def read(q: Queries, blob_id: str, start: int, end: int, conn: Conn) -> list[bytes]:
    return [r[0] for r in await conn.fetch(q["read_blob"], blob_id, start, end)]


async def stored_bytes(q: Queries, conn: Conn) -> int:
    return int(await conn.fetchval(q["stored_bytes"]))


async def drop_unnamed(q: Queries, inputs: list[str], conn: Conn) -> None:
    """Inputs whose jobs were just purged: those no job names any more go, with their
    bytes (inside the purge's transaction; locked first, so a submit naming one either
    committed its link before, or finds it gone after)."""
    await conn.execute(q["lock_blobs"], inputs)
    await conn.execute(q["drop_unnamed"], inputs)


async def sweep(q: Queries, cutoff: float, limit: int, conn: Conn) -> int:
    await conn.execute(q["keep_artifacts"])
    return int(await conn.fetchval(q["sweep_blobs"], cutoff, limit))
