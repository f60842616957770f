"""``runq purge``: delete finished jobs by hand, and ``runq explain``: why a job waits."""

from __future__ import annotations

import click

from runq.cli.common import handle_errors, seconds_of, server_option
from runq.cli.jobs import JOB_ID, connect, duration_text
from runq.cli.queues import _name
from runq.model import TERMINAL_STATES
from runq.model.spec import TEN_YEARS

FINISHED = sorted(s.value for s in TERMINAL_STATES)


def older_than(ctx: click.Context, param: click.Parameter, value: str) -> float:
    seconds = seconds_of(value)
    if not 0 <= seconds <= TEN_YEARS:
        raise click.BadParameter("must be between 0 and 10 years")
    return seconds


def finished_state(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and value not in FINISHED:
        raise click.BadParameter(
            f"only finished jobs can be purged ({', '.join(FINISHED)});"
            f" {value!r} jobs are not finished"
        )
    return value


def queue_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return None if value is None else _name(ctx, param, value)


@click.command()
@click.option(
    "--older-than",
    "older",
    required=True,
    callback=older_than,
    metavar="DURATION",
    help="Jobs that finished more than this long ago (90s, 15m, 2h, 30d).",
)
@click.option(
    "--state", default=None, callback=finished_state, help="succeeded, failed or cancelled."
)
@click.option("--queue", default=None, callback=queue_name, help="Only this queue's jobs.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@server_option("client")
@handle_errors
def purge(
    older: float, state: str | None, queue: str | None, yes: bool, server: str | None
) -> None:
    """Delete finished jobs (with their results, history and logs) now."""
    what = f"{state or 'finished'} jobs" + (f" of queue {queue}" if queue else "")
    if not yes:
        click.confirm(
            f"Delete the {what} that finished more than {duration_text(older)} ago?", abort=True
        )
    with connect(server) as client:
        gone = client.purge(older, state=state, queue=queue)
    click.echo(f"purged {gone} {what.replace('jobs', 'job' if gone == 1 else 'jobs')}")


@click.command()
@click.argument("job_id", type=JOB_ID)
@server_option("client")
@handle_errors
def explain(job_id: int, server: str | None) -> None:
    """Say in one sentence why job JOB_ID is not running yet."""
    with connect(server) as client:
        click.echo(client.explain(job_id))
