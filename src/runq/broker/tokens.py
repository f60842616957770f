"""Token administration through a broker (an admin token's requests)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runq.errors import ConfigError, Unauthorized
from runq.model.token import NewToken, ScopeError, TokenInfo, make_token

if TYPE_CHECKING:
    from runq.broker.server import Broker


async def create(
    broker: Broker, scopes: list[str], name: str | None, ttl: float | None
) -> NewToken:
    try:
        made = make_token(name, scopes, broker.clock(), ttl)
    except ScopeError as exc:
        raise ConfigError(str(exc)) from None
    await broker.store.add_token(made.info, made.digest)
    return made


async def revoke(broker: Broker, ident: str) -> TokenInfo:
    """Revoke a token (by id or name): it stops working at once on this broker and
    within seconds on every other broker (see ``close_connections``)."""
    info = await broker.store.revoke_token(ident, broker.clock())
    broker.gate.forget(info.id)
    return info


def close_connections(broker: Broker, token_id: str) -> None:
    """Close this broker's connections that came in with a token just revoked."""
    for conn in list(broker.connections):
        if conn.grant.token_id == token_id:
            conn.fail(0, Unauthorized(f"token {token_id} was revoked"))
