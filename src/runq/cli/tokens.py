"""``runq token``: make, list and revoke access tokens.

The first admin token is made directly on the store (``--store URL``: no broker, and
no token, needed); later ones through a broker with an admin token in RUNQ_TOKEN.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
import msgspec

from runq.cli.common import handle_errors, run, seconds_of, server_option, store_url
from runq.cli.jobs import connect, json_option
from runq.cli.render import to_json
from runq.errors import ConfigError
from runq.model.spec import TEN_YEARS
from runq.model.token import ScopeError, TokenInfo, make_token, parse_scope
from runq.store.base import Store
from runq.store.open import StoreConfig, open_store

T = TypeVar("T")
store_option = click.option(
    "--store",
    default=None,
    help="Work on this store directly, with no broker (sqlite:///PATH or postgresql://…).",
)


@click.group()
def token() -> None:
    """Make, list and revoke access tokens."""


def _scopes(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    try:
        return [parse_scope(v) for v in value]
    except ScopeError as exc:
        raise click.BadParameter(str(exc)) from None


def _ttl(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    found = seconds_of(value)
    if not 0 < found <= TEN_YEARS:
        raise click.BadParameter(f"{value!r} must be more than 0 and at most ten years")
    return found


def _on_store(url: str, op: Callable[[Store], Awaitable[T]]) -> T:
    async def main() -> T:
        store = open_store(StoreConfig(url=store_url(url)))
        try:
            return await op(store)
        finally:
            await store.close()

    return run(main())


@token.command()
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    callback=_scopes,
    help="admin, read, submit:QUEUE or work:QUEUE (QUEUE may be *); repeat for more.",
)
@click.option("--name", default=None, help="A name to know it by (default: its id).")
@click.option("--expires", default=None, callback=_ttl, help="Lifetime: 90s, 15m, 12h, 30d.")
@store_option
@server_option("client")
@json_option
@handle_errors
def create(
    scopes: list[str],
    name: str | None,
    expires: float | None,
    store: str | None,
    server: str | None,
    as_json: bool,
) -> None:
    """Make a token. Its secret is printed this once: runq keeps only a hash of it."""
    if store is not None:
        try:
            made = make_token(name, scopes, time.time(), expires)
        except ScopeError as exc:
            raise ConfigError(str(exc)) from None
        _on_store(store, lambda s: s.add_token(made.info, made.digest))
        text, info = made.text, made.info
    else:
        with connect(server) as client:
            text, info = client.create_token(scopes, name, expires)
    if as_json:
        click.echo(to_json({"token": text, **msgspec.to_builtins(info)}))
        return
    click.echo(text)
    click.echo(
        f"token {info.id} ({', '.join(info.scopes)}), {_expiry(info)}: keep it secret; it"
        " is not shown again",
        err=True,
    )


@token.command("list")
@store_option
@server_option("client")
@json_option
@handle_errors
def list_tokens(store: str | None, server: str | None, as_json: bool) -> None:
    """Every token with its scopes and state (never its secret)."""
    if store is not None:
        found = _on_store(store, lambda s: s.tokens())
    else:
        with connect(server) as client:
            found = client.tokens()
    if as_json:
        click.echo(to_json(msgspec.to_builtins(found)))
    elif not found:
        click.echo("no tokens: this store lets anyone on its ports do anything")
    else:
        click.echo(render(found, time.time()))


@token.command()
@click.argument("ident", metavar="ID_OR_NAME")
@store_option
@server_option("client")
@json_option
@handle_errors
def revoke(ident: str, store: str | None, server: str | None, as_json: bool) -> None:
    """Revoke a token by id or name: it stops working at once."""
    if store is not None:
        info = _on_store(store, lambda s: s.revoke_token(ident, time.time()))
    else:
        with connect(server) as client:
            info = client.revoke_token(ident)
    if as_json:
        click.echo(to_json(msgspec.to_builtins(info)))
    else:
        click.echo(f"revoked token {info.id} ({info.name})")


def render(tokens: list[TokenInfo], now: float) -> str:
    lines = ["id            name                  state     expires            scopes"]
    for t in tokens:
        state = (
            "revoked"
            if t.revoked_at is not None
            else "expired"
            if t.refusal(now) is not None
            else "active"
        )
        expires = "never" if t.expires_at is None else _when(t.expires_at)
        name = t.name[:20].ljust(21)
        lines.append(f"{t.id}  {name} {state:<9} {expires:<18} {' '.join(t.scopes)}")
    return "\n".join(lines)


def _expiry(info: TokenInfo) -> str:
    return "never expires" if info.expires_at is None else f"expires {_when(info.expires_at)}"


def _when(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")
