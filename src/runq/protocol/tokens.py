"""Token administration on the client port (admin scope only): make, list, revoke."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from runq.model.spec import MAX_NAME, TEN_YEARS
from runq.model.token import MAX_SCOPES, TokenInfo
from runq.protocol.base import Base, ReqId

Scope = Annotated[str, Meta(min_length=1, max_length=MAX_NAME + 10)]


class MakeToken(Base, frozen=True, tag="maketoken"):
    req: ReqId
    scopes: Annotated[list[Scope], Meta(min_length=1, max_length=MAX_SCOPES)]
    name: Annotated[str, Meta(min_length=1, max_length=MAX_NAME)] | None = None
    ttl: Annotated[float, Meta(gt=0, le=TEN_YEARS)] | None = None  # seconds until it expires


class ListTokens(Base, frozen=True, tag="tokens"):
    req: ReqId


class RevokeToken(Base, frozen=True, tag="revoketoken"):
    req: ReqId
    token: Annotated[str, Meta(min_length=1, max_length=MAX_NAME)]  # its id or name


class TokenMade(Base, frozen=True, tag="tokenmade"):
    req: int
    info: TokenInfo
    token: str  # the whole token: shown this once, never stored


class TokenList(Base, frozen=True, tag="tokenlist"):
    req: int
    tokens: list[TokenInfo]
