"""``runq schedule``: periodic jobs (cron) kept in the store, fired by the brokers."""

from __future__ import annotations

import datetime
from typing import Any

import click
import msgspec

from runq.cli.common import handle_errors, positive, server_option
from runq.cli.jobs import connect, json_option, parse_kw
from runq.cli.render import to_json
from runq.client.aio import schedule_spec
from runq.model.schedule import DEFAULT_CATCH_UP, DEFAULT_TZ, CatchUp, Schedule, zone
from runq.model.spec import Name

CATCH_UP = click.Choice([c.value for c in CatchUp])


def _name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return msgspec.convert(value, Name)
    except msgspec.ValidationError:
        raise click.BadParameter(
            f"{value!r} is not a schedule name (1-200 of A-Z a-z 0-9 _ . : @ / -)"
        ) from None


@click.group()
def schedule() -> None:
    """Periodic jobs: add, list, remove, pause and resume cron schedules."""


def local(ts: float | None, tz: str) -> str:
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts, zone(tz)).strftime("%Y-%m-%d %H:%M %Z")


def schedule_dict(s: Schedule) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(s)
    data["catch_up"] = str(s.catch_up)
    return data


def render(found: list[Schedule]) -> str:
    head = f"{'name':<24} {'cron':<16} {'task':<24} {'queue':<10} {'next':<24} last"
    lines = [head]
    for s in found:
        nxt = "paused" if s.paused else local(s.next_at, s.tz)
        lines.append(
            f"{s.name[:24]:<24} {s.cron[:16]:<16} {s.job.task[:24]:<24} {s.job.queue[:10]:<10}"
            f" {nxt:<24} {local(s.last_at, s.tz)}"
        )
    return "\n".join(lines)


def summary(s: Schedule) -> str:
    return (
        f"schedule {s.name}: {s.job.task} at '{s.cron}' ({s.tz}),"
        f" next {local(s.next_at, s.tz)}, catch-up {s.catch_up}"
    )


@schedule.command()
@click.argument("name", callback=_name)
@click.argument("cron")
@click.argument("task")
@click.argument("args", nargs=-1)
@server_option("client")
@click.option("--tz", default=DEFAULT_TZ, show_default=True, help="IANA time zone of the cron.")
@click.option("--queue", "-q", default="default", show_default=True)
@click.option("--priority", "-p", default=0, type=int, help="Higher runs first.")
@click.option("--retries", type=click.IntRange(0, 999), default=None, help="Tries after the first.")
@click.option(
    "--timeout", type=float, default=None, callback=positive, help="Seconds an attempt may take."
)
@click.option(
    "--kw", "kw", multiple=True, metavar="KEY=VALUE", help="Keyword argument (JSON or text)."
)
@click.option(
    "--catch-up",
    "catch_up",
    type=CATCH_UP,
    default=str(DEFAULT_CATCH_UP),
    show_default=True,
    help="Ticks missed while no broker ran: skip them, fire the last, or fire all.",
)
@json_option
@handle_errors
def add(
    name: str,
    cron: str,
    task: str,
    args: tuple[str, ...],
    server: str | None,
    tz: str,
    queue: str,
    priority: int,
    retries: int | None,
    timeout: float | None,
    kw: tuple[str, ...],
    catch_up: str,
    as_json: bool,
) -> None:
    """Run TASK [ARG...] at each tick of CRON ("*/5 * * * *": minute hour day month
    weekday), once a tick whichever brokers run."""
    options: dict[str, Any] = {"queue": queue, "priority": priority, "retries": retries}
    options |= {"timeout": timeout, "tz": tz, "catch_up": catch_up}
    options["kwargs"] = dict(parse_kw(k) for k in kw)
    schedule_spec(name, cron, task, *args, **options)  # a bad cron or zone: nothing is sent
    with connect(server) as client:
        added = client.add_schedule(name, cron, task, *args, **options)
    click.echo(to_json(schedule_dict(added)) if as_json else summary(added))


@schedule.command("list")
@server_option("client")
@json_option
@handle_errors
def list_schedules(server: str | None, as_json: bool) -> None:
    """Every schedule, with its next and last tick in its own time zone."""
    with connect(server) as client:
        found = client.schedules()
    if as_json:
        click.echo(to_json([schedule_dict(s) for s in found]))
    elif not found:
        click.echo("no schedules")
    else:
        click.echo(render(found))


@schedule.command()
@click.argument("name", callback=_name)
@server_option("client")
@handle_errors
def remove(name: str, server: str | None) -> None:
    """Delete schedule NAME (jobs it fired stay)."""
    with connect(server) as client:
        gone = client.remove_schedule(name)
    click.echo(f"schedule {gone.name} removed")


@schedule.command()
@click.argument("name", callback=_name)
@server_option("client")
@handle_errors
def pause(name: str, server: str | None) -> None:
    """Stop firing NAME's ticks."""
    with connect(server) as client:
        found = client.pause_schedule(name)
    click.echo(f"schedule {found.name} paused")


@schedule.command()
@click.argument("name", callback=_name)
@server_option("client")
@handle_errors
def resume(name: str, server: str | None) -> None:
    """Fire NAME's ticks again, from the next one on (the ticks it missed are skipped)."""
    with connect(server) as client:
        found = client.resume_schedule(name)
    click.echo(f"schedule {found.name} resumed, next {local(found.next_at, found.tz)}")
