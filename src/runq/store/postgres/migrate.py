"""Numbered migrations for PostgreSQL, tracked in the schema's ``schema_version`` table.

Everything runs in one transaction under an advisory lock keyed by the schema name, so
brokers that start at the same moment migrate once: the first applies the steps, the
others wait for its commit and then find nothing left to do.
"""

from __future__ import annotations

from typing import Final

from runq.errors import StoreError
from runq.store.migrate import migrations
from runq.store.postgres.ops import Conn

PACKAGE: Final = "runq.store.postgres"
LOCK: Final = "SELECT pg_advisory_xact_lock(hashtext('runq.migrate.' || $1))"
HAS_SCHEMA: Final = "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)"
VERSION_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
)"""


async def migrate(conn: Conn, schema: str) -> int:
    """Bring ``schema`` (created if missing) to the newest version; returns that version.

    ``schema`` must be a plain identifier (see dsn.SCHEMA_NAME)."""
    steps = migrations(PACKAGE)
    newest = steps[-1][0] if steps else 0
    async with conn.transaction():
        await conn.execute(LOCK, schema)
        if not await conn.fetchval(HAS_SCHEMA, schema):
            await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(f'SET LOCAL search_path TO "{schema}"')
        await conn.execute(VERSION_TABLE)
        version = int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))
        if version > newest:
            raise StoreError(
                f"the store has schema version {version}, newer than this runq knows ({newest})"
            )
        for number, sql in steps:
            if number > version:
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", number)
                version = number
    return version


async def version_of(conn: Conn, schema: str) -> int:
    """The schema version ``schema`` is at (0: not made yet), without changing it."""
    found = await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".schema_version')
    if found is None:
        return 0
    return int(
        await conn.fetchval(f'SELECT coalesce(max(version), 0) FROM "{schema}".schema_version')
    )
