"""Which schema version a store is at, read without migrating it (``runq server
--no-migrate`` refuses an old store; ``runq migrate`` reports where it left one)."""

from __future__ import annotations

import os
import sqlite3
from typing import NamedTuple

from runq.errors import StoreError
from runq.store.migrate import migrations
from runq.store.open import sqlite_path


class Version(NamedTuple):
    current: int  # 0: the store has no schema yet
    newest: int  # the version this runq would migrate it to


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


async def store_version(url: str) -> Version:
    if is_postgres(url):
        return await _postgres_version(url)
    newest = migrations()[-1][0]
    path = sqlite_path(url)
    if path == ":memory:" or not os.path.exists(path):
        return Version(0, newest)
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the SQLite store {path}: {exc}") from None
    return Version(current, newest)


async def _postgres_version(url: str) -> Version:
    import asyncpg

    from runq.store.postgres.dsn import parse_url
    from runq.store.postgres.migrate import PACKAGE, version_of
    from runq.store.postgres.store import CONNECT_TIMEOUT, FAILURES, one_line

    u = parse_url(url)
    newest = migrations(PACKAGE)[-1][0]
    try:
        conn = await asyncpg.connect(u.dsn, timeout=CONNECT_TIMEOUT)
    except (*FAILURES, ValueError) as exc:
        raise StoreError(f"cannot connect to PostgreSQL at {u.where}: {one_line(exc)}") from None
    try:
        return Version(await version_of(conn, u.schema), newest)
    except FAILURES as exc:
        raise StoreError(f"cannot read the schema version: {one_line(exc)}") from None
    finally:
        await conn.close()


async def require_newest(url: str) -> None:
    """Refuse (StoreError, one line) a store that is not at this runq's newest version."""
    v = await store_version(url)
    if v.current != v.newest:
        raise StoreError(
            f"the store is at schema version {v.current}, this runq needs {v.newest}:"
            " run `runq migrate --store URL` first (or start without --no-migrate)"
        )
