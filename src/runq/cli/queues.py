"""``runq queue``: list queues, pause and resume their dispatch."""

from __future__ import annotations

import click
import msgspec

from runq.cli.common import handle_errors, seconds_of, server_option
from runq.cli.jobs import connect, duration_text, json_option
from runq.cli.render import to_json
from runq.model import JobState
from runq.model.spec import TEN_YEARS, Name
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
    """List queues; pause and resume their dispatch; set their retention."""


def render(queues: list[QueueInfo]) -> str:
    states = [s.value for s in JobState]
    lines = ["queue".ljust(20) + "".join(s.rjust(11) for s in states) + "  retention"]
    for q in queues:
        name = q.name[:19].ljust(20)
        counts = "".join(str(q.counts.get(s, 0)).rjust(11) for s in states)
        kept = "  " + retention_text(q)
        lines.append(name + counts + kept + ("  (paused)" if q.paused else ""))
    return "\n".join(lines)


def retention_text(q: QueueInfo) -> str:
    kept = "forever" if q.retention is None else duration_text(q.retention)
    return kept if q.retention_set else f"{kept} (default)"


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


def retention_value(ctx: click.Context, param: click.Parameter, value: str) -> float | str:
    """``30d``, ``forever`` or ``default``."""
    if value.strip().lower() in ("forever", "default"):
        return value.strip().lower()
    seconds = seconds_of(value)
    if not 0 < seconds <= TEN_YEARS:
        raise click.BadParameter("must be greater than 0 and at most 10 years")
    return seconds


@queue.command()
@click.argument("name", callback=_name)
@click.argument("keep", metavar="DURATION|forever|default", callback=retention_value)
@server_option("client")
@handle_errors
def retention(name: str, keep: float | str, server: str | None) -> None:
    """Keep NAME's finished jobs this long (30d), forever, or as the broker's --retention
    (default); the purge honours it within a few seconds on every broker."""
    with connect(server) as client:
        info = client.set_retention(name, keep)
    click.echo(f"queue {info.name} keeps finished jobs {retention_text(info)}")


def _set_paused(name: str, server: str | None, paused: bool) -> None:
    with connect(server) as client:
        info = client.pause(name) if paused else client.resume(name)
    done = "paused" if paused else "resumed"
    click.echo(f"queue {info.name} {done} ({info.counts.get('queued', 0)} queued)")
