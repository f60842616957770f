"""`runq logs N [--follow]`: what a job wrote (print, logging, runq.progress)."""

from __future__ import annotations

import click

from runq.cli.common import handle_errors, server_option
from runq.cli.jobs import connect
from runq.cli.render import to_json
from runq.model.output import LogLine
from runq.model.spec import MAX_JOB_ID

JOB_ID = click.IntRange(1, MAX_JOB_ID)


def line_text(line: LogLine) -> str:
    """A line as the job wrote it; runq's own notes stand out."""
    return line.text if line.stream != "runq" else f"[{line.text.strip('[]')}]"


class Printer:
    """Prints lines, with a rule where a new attempt's lines begin."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.attempt: int | None = None

    def __call__(self, line: LogLine) -> None:
        if self.as_json:
            click.echo(to_json(line))
            return
        if line.attempt != self.attempt and (self.attempt is not None or line.attempt > 1):
            click.echo(f"--- attempt {line.attempt} ---", err=True)
        self.attempt = line.attempt
        click.echo(line_text(line), err=line.stream == "stderr")


@click.command()
@click.argument("job_id", type=JOB_ID)
@server_option("client")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the job finishes.")
@click.option(
    "--after",
    type=click.IntRange(0, 2**62),
    default=0,
    show_default=True,
    help="Start after this line number (seq).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@handle_errors
def logs(job_id: int, server: str | None, follow: bool, after: int, as_json: bool) -> None:
    """Print what a job wrote: its print and logging output (and a command's output),
    oldest first, attempt by attempt. With --follow, print lines as they come until the
    job has finished."""
    show = Printer(as_json)
    with connect(server) as client:
        if follow:
            for line in client.follow(job_id, after):
                show(line)
            return
        while True:
            page = client.logs(job_id, after)
            for line in page.lines:
                show(line)
            if page.next == after:
                break
            after = page.next
