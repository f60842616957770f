"""Access tokens as rows, for both backends (see 012_tokens.sql)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from runq.errors import Conflict, UnknownToken
from runq.model.token import TokenInfo


def new_row(info: TokenInfo, digest: str) -> tuple[Any, ...]:
    scopes = msgspec.json.encode(info.scopes).decode()
    return (info.id, info.name, digest, scopes, info.created_at, info.expires_at)


def info(row: Any) -> TokenInfo:
    """From (id, name, scopes, created_at, expires_at, revoked_at, ...)."""
    scopes = msgspec.json.decode(row[2], type=list[str])
    return TokenInfo(row[0], row[1], scopes, row[3], row[4], row[5])


def one_id(found: Sequence[str], ident: str) -> str:
    """The one token ``ident`` names (an id, or the name of one unrevoked token)."""
    if not found:
        raise UnknownToken(f"no token with id or name {ident!r}")
    if len(found) > 1:
        raise Conflict(f"{len(found)} tokens are named {ident!r}: revoke one by its id")
    return found[0]
