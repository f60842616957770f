"""The SQLite store's file rows (013_files.sql), as plain functions of a connection: the
input files of a submitted batch, blob rows, their purge and their sweep. The bytes are
files (blobdir.py), removed by the caller once these deletes are committed."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable

import msgspec

from runq.model import JobSpec
from runq.model.files import BlobInfo
from runq.model.unique import SubmitIds
from runq.store import files
from runq.store.sqlite.ops import Queries


def submit(
    q: Queries,
    insert: Callable[[sqlite3.Connection], SubmitIds],
    specs: list[JobSpec],
    conn: sqlite3.Connection,
) -> SubmitIds:
    """Insert a batch with input files: each must be a finished upload (or nothing is
    stored); the new jobs get their files and links, and the inputs are kept."""
    named = files.named_blobs(specs)
    files.check_named(named, conn.execute(q["named_inputs"], (_json(named),)))
    ids = insert(conn)
    conn.executemany(q["set_files"], files.file_rows(specs, ids))
    links = files.link_rows(specs, ids)
    conn.executemany(q["link_file"], links)
    conn.execute(q["keep_inputs"], (_json({blob for _, blob in links}),))
    return ids


def create(q: Queries, blob: BlobInfo, conn: sqlite3.Connection) -> bool:
    return conn.execute(q["create_blob"], files.new_row(blob)).rowcount == 1


def blob(q: Queries, blob_id: str, conn: sqlite3.Connection) -> BlobInfo | None:
    row = conn.execute(q["blob"], (blob_id,)).fetchone()
    return None if row is None else files.blob_info(row)


def touch(q: Queries, blob_id: str, now: float, conn: sqlite3.Connection) -> None:
    conn.execute(q["touch_blob"], (now, blob_id))


def finished(q: Queries, blob_id: str, now: float, conn: sqlite3.Connection) -> BlobInfo:
    conn.execute(q["blob_finished"], (now, blob_id))
    found = blob(q, blob_id, conn)
    if found is None:
        raise files.unknown(blob_id)
    return found


def dropped(q: Queries, blob_id: str, now: float, conn: sqlite3.Connection) -> None:
    conn.execute(q["blob_dropped"], (now, blob_id))


def stored_bytes(q: Queries, conn: sqlite3.Connection) -> int:
    return int(conn.execute(q["stored_bytes"]).fetchone()[0])


def purge(q: Queries, jobs: bytes, conn: sqlite3.Connection) -> list[str]:
    """The links and artifacts of purged ``jobs`` (a JSON array) go, and the inputs no
    job names any more; returns the blobs deleted."""
    named = {r[0] for r in conn.execute(q["purge_links"], (jobs,))}
    gone = [r[0] for r in conn.execute(q["purge_artifacts"], (jobs,))]
    if named:
        gone += [r[0] for r in conn.execute(q["drop_unnamed"], (_json(named),))]
    return gone


def sweep(
    q: Queries, cutoff: float, spare: list[str], limit: int, conn: sqlite3.Connection
) -> list[str]:
    """Keep the artifacts of accepted attempts, then delete up to ``limit`` blobs nobody
    needs (not those in ``spare``); returns their ids."""
    conn.execute(q["keep_artifacts"])
    return [r[0] for r in conn.execute(q["sweep_blobs"], (cutoff, _json(spare), limit))]


def having_rows(q: Queries, ids: list[str], conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute(q["blob_ids"], (_json(ids),))}


def _json(ids: Iterable[str]) -> bytes:
    return msgspec.json.encode(sorted(ids))
