"""``runq limit``: rate limits of queues and tasks, enforced by every broker."""

from __future__ import annotations

import click
import msgspec

from runq.cli.common import handle_errors, server_option
from runq.cli.jobs import connect, json_option
from runq.cli.render import to_json
from runq.client.aio import rate_limit
from runq.errors import InvalidArguments
from runq.model.flow import SCOPES, RateLimit, parse_rate
from runq.model.spec import Name


def _target(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, str]:
    scope, _, name = value.partition(":")
    if scope not in SCOPES or not name:
        raise click.BadParameter(f"{value!r}: give queue:NAME or task:NAME")
    try:
        return scope, msgspec.convert(name, Name)
    except msgspec.ValidationError:
        raise click.BadParameter(
            f"{name!r} is not a {scope} name (1-200 of A-Z a-z 0-9 _ . : @ / -)"
        ) from None


def _rate(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        parse_rate(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def describe(limit: RateLimit) -> str:
    return f"{limit.scope}:{limit.name}  {limit.text()}  (burst {limit.capacity:g})"


@click.group()
def limit() -> None:
    """Rate limits: at most N jobs a second, minute or hour start from a queue or of a
    task, over every worker and broker. Jobs held back stay queued."""


@limit.command("set")
@click.argument("target", callback=_target, metavar="queue:NAME|task:NAME")
@click.option("--rate", required=True, callback=_rate, help="COUNT/PERIOD: 100/s, 600/m or 10/h.")
@click.option(
    "--burst",
    type=click.FloatRange(1, 1_000_000),
    default=None,
    help="Jobs that may start at once after a quiet spell (default: one second's worth).",
)
@server_option("client")
@handle_errors
def set_limit(target: tuple[str, str], rate: str, burst: float | None, server: str | None) -> None:
    """Add or change the rate limit of a queue or a task."""
    scope, name = target
    try:
        rate_limit(scope, name, rate, burst)  # checked before connecting
    except InvalidArguments as exc:
        raise click.BadParameter(exc.message) from None
    with connect(server) as client:
        found = client.set_rate_limit(scope, name, rate, burst)
    click.echo(f"limited {describe(found)}")


@limit.command("list")
@server_option("client")
@json_option
@handle_errors
def list_limits(server: str | None, as_json: bool) -> None:
    """Every rate limit."""
    with connect(server) as client:
        found = client.rate_limits()
    if as_json:
        click.echo(to_json(msgspec.to_builtins(found)))
    elif not found:
        click.echo("no rate limits")
    else:
        click.echo("\n".join(describe(x) for x in found))


@limit.command("remove")
@click.argument("target", callback=_target, metavar="queue:NAME|task:NAME")
@server_option("client")
@handle_errors
def remove_limit(target: tuple[str, str], server: str | None) -> None:
    """Drop the rate limit of a queue or a task."""
    with connect(server) as client:
        found = client.remove_rate_limit(*target)
    click.echo(f"removed the limit on {found.scope}:{found.name} ({found.text()})")
