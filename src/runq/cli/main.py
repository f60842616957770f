"""``runq``: the command line entry point."""

from __future__ import annotations

import click

from runq.cli import (
    admin,
    bench,
    jobs,
    limits,
    logs,
    migrate,
    purge,
    queues,
    schedules,
    serve,
    tokens,
    top,
)

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="runq")
def cli() -> None:
    """runq: a durable, fast task queue.

    Start everything on this machine with `runq up`, then submit jobs with
    `runq submit TASK [ARG...]` and read them back with `runq status` and `runq result`.
    """


for command in (
    serve.server,
    serve.worker,
    serve.up,
    jobs.submit,
    jobs.status,
    jobs.result,
    jobs.cancel,
    jobs.retry,
    jobs.list_jobs,
    logs.logs,
    purge.purge,
    purge.explain,
    admin.workers,
    admin.stats,
    queues.queue,
    limits.limit,
    schedules.schedule,
    top.top,
    bench.bench,
    migrate.migrate,
    tokens.token,
):
    cli.add_command(command)
cli.add_command(jobs.result, name="results")


def main() -> None:
    cli(prog_name="runq")
