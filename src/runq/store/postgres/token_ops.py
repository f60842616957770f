"""The PostgreSQL store's access tokens, as plain functions of a connection."""

from __future__ import annotations

from runq.model.token import TokenInfo
from runq.store import tokens as t
from runq.store.postgres.ops import Conn, Queries


async def add(q: Queries, info: TokenInfo, digest: str, conn: Conn) -> None:
    await conn.execute(q["add_token"], *t.new_row(info, digest))


async def listing(q: Queries, conn: Conn) -> list[TokenInfo]:
    return [t.info(r) for r in await conn.fetch(q["tokens"])]


async def by_id(q: Queries, ident: str, conn: Conn) -> tuple[TokenInfo, str] | None:
    row = await conn.fetchrow(q["token_by_id"], ident)
    return None if row is None else (t.info(row), row[6])


async def revoke(q: Queries, ident: str, now: float, conn: Conn) -> TokenInfo:
    found = [r[0] for r in await conn.fetch(q["tokens_named"], ident)]
    token_id = t.one_id(found, ident)
    await conn.execute(q["revoke_token"], now, token_id)
    return t.info(await conn.fetchrow(q["token_by_id"], token_id))


async def any_token(q: Queries, conn: Conn) -> bool:
    return bool(await conn.fetchval(q["any_token"]))
