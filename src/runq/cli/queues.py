"""``runq queue``: list queues, pause and resume their dispatch."""

from __future__ import annotations

import click
import msgspec

from runq.cli.common import handle_errors, server_option
from runq.cli.jobs import connect, json_option
from runq.cli.render import to_json
from runq.model import JobState
from runq.model.spec import Name
from runq.protocol.messages import QueueInfo


def _name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return msgspec.convert(value, Name)
    except msgspec.ValidationError:
        raise click.BadParameter(
            f"{value!r} is not a queue name (1-200 of A-Z a-z 0-9 _ . : @ / -)"
        ) from None


@click.group()
def queue() -> None:
    """List queues; pause and resume their dispatch."""


def render(queues: list[QueueInfo]) -> str:
    states = [s.value for s in JobState]
    lines = ["queue".ljust(20) + "".join(s.rjust(11) for s in states)]
    for q in queues:
        name = q.name[:19].ljust(20)
        counts = "".join(str(q.counts.get(s, 0)).rjust(11) for s in states)
        lines.append(name + counts + ("  (paused)" if q.paused else ""))
    return "\n".join(lines)


@queue.command("list")
@server_option("client")
@json_option
@handle_errors
def list_queues(server: str | None, as_json: bool) -> None:
    """Every queue with jobs or paused, with its jobs by state."""
    with connect(server) as client:
        found = client.queues()
    if as_json:
        click.echo(to_json(msgspec.to_builtins(found)))
    elif not found:
        click.echo("no queues yet")
    else:
        click.echo(render(found))


@queue.command()
@click.argument("name", callback=_name)
@server_option("client")
@handle_errors
def pause(name: str, server: str | None) -> None:
    """Stop dispatching NAME's jobs: submits still go in, running jobs finish."""
    _set_paused(name, server, True)


@queue.command()
@click.argument("name", callback=_name)
@server_option("client")
@handle_errors
def resume(name: str, server: str | None) -> None:
    """Dispatch NAME's jobs again."""
    _set_paused(name, server, False)


def _set_paused(name: str, server: str | None, paused: bool) -> None:
    with connect(server) as client:
        info = client.pause(name) if paused else client.resume(name)
    done = "paused" if paused else "resumed"
    click.echo(f"queue {info.name} {done} ({info.counts.get('queued', 0)} queued)")
