"""The SQLite store's access tokens, as plain functions of a connection."""

from __future__ import annotations

import sqlite3

from runq.model.token import TokenInfo
from runq.store import tokens as t
from runq.store.sqlite.ops import Queries


def add(q: Queries, info: TokenInfo, digest: str, conn: sqlite3.Connection) -> None:
    conn.execute(q["add_token"], t.new_row(info, digest))


def listing(q: Queries, conn: sqlite3.Connection) -> list[TokenInfo]:
    return [t.info(r) for r in conn.execute(q["tokens"])]


def by_id(q: Queries, ident: str, conn: sqlite3.Connection) -> tuple[TokenInfo, str] | None:
    row = conn.execute(q["token_by_id"], (ident,)).fetchone()
    return None if row is None else (t.info(row), row[6])


def revoke(q: Queries, ident: str, now: float, conn: sqlite3.Connection) -> TokenInfo:
    found = [r[0] for r in conn.execute(q["tokens_named"], (ident,))]
    token_id = t.one_id(found, ident)
    conn.execute(q["revoke_token"], (now, token_id))
    return t.info(conn.execute(q["token_by_id"], (token_id,)).fetchone())


def any_token(q: Queries, conn: sqlite3.Connection) -> bool:
    return bool(conn.execute(q["any_token"]).fetchone()[0])
