"""Job commands: submit, status, result, cancel, jobs."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from typing import Any, TextIO

import click
import msgspec

from runq.cli.common import (
    addresses,
    addresses_text,
    fail,
    handle_errors,
    moment,
    parse_env,
    positive,
    server_option,
    tls_config,
    token,
    unique_window,
)
from runq.cli.common import (
    delay as delay_option,
)
from runq.cli.deps import after_options, job_ids
from runq.cli.files import (
    file_lines,
    file_option,
    inputs,
    marked,
    output_names,
    output_option,
    save_artifacts,
    with_inputs,
)
from runq.cli.render import (
    command_text,
    error_text,
    job_dict,
    result_text,
    status_line,
    task_line,
    to_json,
)
from runq.client import Client
from runq.client.aio import command_spec, joined, spec, to_spec
from runq.errors import InvalidArguments, Timeout
from runq.model import Job, JobSpec, JobState
from runq.model.spec import COMMAND_TASK, MAX_CONCURRENT, MAX_JOB_ID
from runq.model.unique import SubmitIds
from runq.protocol.limits import MAX_FRAME

SEND_BATCH = 1000
JOB_ID = click.IntRange(1, MAX_JOB_ID)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


def connect(server: str | None) -> Client:
    """A client of the broker(s) of --server, with this command's token and TLS."""
    at = addresses_text(addresses(server, "client"))
    return Client(at, token=token(), tls=tls_config()).connect()


def split_words(words: tuple[str, ...]) -> tuple[str, list[str]]:
    """`submit wordcount a b` and `submit "wordcount a b"` both mean task + args."""
    if sum(len(w) for w in words) > MAX_FRAME:
        raise InvalidArguments(f"the job is larger than the {MAX_FRAME // 1024} KiB frame limit")
    if len(words) == 1 and len(words[0].split()) > 1:
        try:
            words = tuple(shlex.split(words[0]))
        except ValueError as exc:
            raise InvalidArguments(f"cannot split {words[0]!r}: {exc}") from None
    if not words:
        raise click.UsageError("name a task to run, e.g. runq submit echo hello")
    return words[0], list(words[1:])


@click.command()
@click.argument("words", nargs=-1)
@server_option("client")
@click.option("--queue", "-q", default="default", show_default=True)
@click.option("--priority", "-p", default=0, type=int, help="Higher runs first.")
@click.option(
    "--delay",
    default=None,
    callback=delay_option,
    help="Wait before it may run: 90s, 15m, 2h (a bare number is seconds).",
)
@click.option(
    "--at",
    "run_at",
    default=None,
    callback=moment,
    help="Run at this time: 2026-12-01T09:00:00+01:00 (no offset: local time).",
)
@click.option(
    "--retries",
    type=click.IntRange(0, 999),
    default=None,
    help="Tries after the first (default 2).",
)
@click.option(
    "--timeout", type=float, default=None, callback=positive, help="Seconds an attempt may take."
)
@click.option("--key", default=None, help="Idempotency key: the same key returns the existing job.")
@click.option(
    "--backoff", type=float, default=None, callback=positive, help="Retry back-off base in seconds."
)
@click.option(
    "--unique-for",
    "unique_for",
    default=None,
    callback=unique_window,
    metavar="DURATION",
    help="A unique job: a twin (same task and args, or --key, in the queue) submitted"
    " within this time (90s, 10m, 2h) while this one is unfinished gets its ID.",
)
@click.option(
    "--unique-mode",
    type=click.Choice(["merge", "refuse"]),
    default=None,
    help="With --unique-for: merge (answer with the existing job, the default) or"
    " refuse (fail, naming it).",
)
@click.option(
    "--after",
    "after",
    default=None,
    callback=job_ids,
    metavar="ID,ID...",
    help="Run only once these jobs succeeded (cancelled if one fails).",
)
@click.option(
    "--after-any", "after_any", is_flag=True, help="With --after: run once they all ended."
)
@click.option(
    "--concurrency-key",
    "concurrency_key",
    default=None,
    help="Jobs sharing this key run at most --max-concurrent at a time (all workers).",
)
@click.option(
    "--max-concurrent",
    "max_concurrent",
    type=click.IntRange(1, MAX_CONCURRENT),
    default=None,
    help="With --concurrency-key: how many of its jobs may run at once.",
)
@click.option(
    "--wait", "wait_", is_flag=True, help="Wait, print the result; exit 1 if the job failed."
)
@click.option(
    "--kw", "kw", multiple=True, metavar="KEY=VALUE", help="Keyword argument (JSON or text)."
)
@click.option("--cmd", "is_cmd", is_flag=True, help="A command job: the words are its argv.")
@click.option("--shell", is_flag=True, help="With --cmd: run the words as one /bin/sh -c line.")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="With --cmd: environment.")
@click.option(
    "--batch",
    "batch",
    type=click.File("r"),
    default=None,
    help="One job per line (TASK ARG... or JSON).",
)
@file_option
@output_option
@handle_errors
def submit(
    words: tuple[str, ...],
    server: str | None,
    queue: str,
    priority: int,
    delay: float | None,
    run_at: float | None,
    retries: int | None,
    timeout: float | None,
    key: str | None,
    backoff: float | None,
    unique_for: float | None,
    unique_mode: str | None,
    after: list[int] | None,
    after_any: bool,
    concurrency_key: str | None,
    max_concurrent: int | None,
    wait_: bool,
    kw: tuple[str, ...],
    is_cmd: bool,
    shell: bool,
    env: tuple[str, ...],
    batch: TextIO | None,
    file_paths: tuple[str, ...],
    outputs: tuple[str, ...],
) -> None:
    """Submit a job: runq submit TASK [ARG...] (or "TASK ARG..." as one string), or a
    command: runq submit --cmd -- ARGV... With --file PATH, the file goes with the job and
    a word @NAME (its name) becomes its path on the worker."""
    files = inputs(file_paths)  # checked before anything is sent
    if delay is not None and run_at is not None:
        raise click.UsageError("give --delay or --at, not both")
    options: dict[str, Any] = {"queue": queue, "priority": priority, "delay": delay}
    options["run_at"] = run_at
    options |= {"retries": retries, "timeout": timeout, "backoff": backoff}
    if unique_mode is not None and unique_for is None:
        raise click.UsageError("--unique-mode goes with --unique-for")
    options |= {"unique_for": unique_for, "unique_mode": unique_mode}
    options |= after_options(after, after_any)
    options |= flow_options(concurrency_key, max_concurrent)
    if batch is not None:
        if words or key or files or outputs:
            raise click.UsageError(
                "--batch takes its jobs from the file; give no TASK, --key, --file or --output"
            )
        specs = read_batch(batch, options)
        with connect(server) as client:
            send_batch(client, specs)
        return
    if is_cmd:
        if not words:
            raise click.UsageError("give the command to run: runq submit --cmd -- ARGV...")
        if kw:
            raise click.UsageError("--kw is for Python tasks, not --cmd")
        job_env = dict(parse_env(e) for e in env)
        argv = marked(list(words), files)
        made = output_names(outputs)
        job = command_spec(argv, shell=shell, env=job_env, outputs=made, key=key, **options)
    else:
        if shell or env or outputs:
            raise click.UsageError("--shell, --env and --output go with --cmd")
        task, args = split_words(words)
        kwargs = dict(parse_kw(k) for k in kw)
        job = spec(task, *marked(args, files), kwargs=kwargs, key=key, **options)
    with connect(server) as client:
        ids = client.submit_many([with_inputs(client, job, files)])
        job_id = ids[0]
        if not wait_:
            note = merged_note(client, job, job_id) if ids.merged else ""
            click.echo(f"Job ID: {job_id}{note}")
            return
        done = client.wait(job_id)
    show_result(done, as_json=False)


def duration_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def merged_note(client: Client, job: JobSpec, job_id: int) -> str:
    """Why a submit answered with job ``job_id``, which was already there (an idempotency
    key's hit prints as it always has: the id alone)."""
    if job.unique_for is None:
        return ""
    state = client.get(job_id).state
    return f" (already {state}: unique for {duration_text(job.unique_for)})"


def parse_kw(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``: VALUE as JSON when it is valid JSON (128, true, [1,2]), else text."""
    key, value = parse_env(text)
    try:
        return key, msgspec.json.decode(value)
    except msgspec.DecodeError:
        return key, value


def flow_options(concurrency_key: str | None, max_concurrent: int | None) -> dict[str, Any]:
    if (concurrency_key is None) != (max_concurrent is None):
        raise click.UsageError("--concurrency-key and --max-concurrent go together")
    return {"concurrency_key": concurrency_key, "max_concurrent": max_concurrent}


def read_batch(stream: TextIO, options: dict[str, Any]) -> list[JobSpec]:
    """Every line checked before anything is sent: a bad line submits nothing."""
    specs = []
    for number, line in _lines(stream):
        try:
            specs.append(_parse_line(line, options))
        except (InvalidArguments, msgspec.DecodeError, ValueError) as exc:
            text = exc.message if isinstance(exc, InvalidArguments) else str(exc)
            raise InvalidArguments(f"line {number}: {text}") from None
    if not specs:
        raise InvalidArguments("the batch has no jobs")
    return specs


def _lines(stream: TextIO) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(stream, 1):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield number, line


def _parse_line(line: str, options: dict[str, Any]) -> JobSpec:
    if len(line) > MAX_FRAME:
        raise InvalidArguments(f"the line is longer than the {MAX_FRAME // 1024} KiB frame limit")
    if line.startswith("{"):
        data = msgspec.json.decode(line)
        if not isinstance(data, dict):
            raise InvalidArguments("a JSON line must be an object")
        if "retries" in data:
            retries = data.pop("retries")
            if type(retries) is not int or retries < 0:
                raise InvalidArguments("retries must be a whole number, 0 or more")
            data["max_attempts"] = retries + 1
        merged = {k: v for k, v in options.items() if k != "retries" and v is not None}
        if options.get("retries") is not None:
            merged["max_attempts"] = options["retries"] + 1
        return to_spec(merged | data)
    words = shlex.split(line)
    return spec(words[0], *words[1:], **options)


def send_batch(client: Client, specs: list[JobSpec]) -> None:
    ids = SubmitIds()
    chunks = [specs[i : i + SEND_BATCH] for i in range(0, len(specs), SEND_BATCH)]
    if sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(transient=True) as progress:
            bar = progress.add_task("submitting", total=len(specs))
            for chunk in chunks:
                ids = joined(ids, client.submit_many(chunk))
                progress.advance(bar, len(chunk))
    else:
        for chunk in chunks:
            ids = joined(ids, client.submit_many(chunk))
    merged = len(ids.merged)
    note = f" ({merged} answered with jobs already there)" if merged else ""
    click.echo(f"Submitted {len(ids)} jobs: first ID {ids[0]}, last ID {ids[-1]}{note}")


@click.command()
@click.argument("job_id", type=JOB_ID)
@server_option("client")
@json_option
@handle_errors
def status(job_id: int, server: str | None, as_json: bool) -> None:
    """Show where a job is: state, worker, attempts, times."""
    with connect(server) as client:
        job = client.get(job_id)
    if as_json:
        click.echo(to_json(job_dict(job)))
        return
    click.echo(status_line(job))
    for line in file_lines(job):
        click.echo(line)


@click.command()
@click.argument("job_id", type=JOB_ID)
@server_option("client")
@click.option("--wait", "wait_", is_flag=True, help="Wait for the job to finish.")
@click.option(
    "--timeout", type=float, default=None, callback=positive, help="Seconds to wait at most."
)
@click.option(
    "--out",
    "out",
    default=None,
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Save the job's artifacts (files it made) in DIR and print their paths.",
)
@json_option
@handle_errors
def result(
    job_id: int,
    server: str | None,
    wait_: bool,
    timeout: float | None,
    out: str | None,
    as_json: bool,
) -> None:
    """Print a job's result (exit 1 if it failed or was cancelled)."""
    saved = []
    with connect(server) as client:
        if wait_ or timeout is not None:
            try:
                job = client.wait(job_id, timeout)
            except Timeout as exc:
                fail(exc.message)
        else:
            job = client.get(job_id)
        if out is not None:
            saved = save_artifacts(client, job, out)
    show_result(job, as_json)
    for path in saved:
        click.echo(str(path), err=as_json)  # with --json, stdout stays one document


def show_result(job: Job, as_json: bool) -> None:
    if as_json:
        keys = ("id", "task", "args", "kwargs", "state", "result", "error", "attempts")
        data = job_dict(job)
        click.echo(to_json({k: data[k] for k in keys}))
    elif job.state is JobState.SUCCEEDED and job.task == COMMAND_TASK:
        click.echo(command_text(job.result))
    elif job.state is JobState.SUCCEEDED:
        click.echo(result_text(job.result))
    elif job.state is JobState.FAILED:
        click.echo(
            f"Job {job.id} failed after {job.attempts} attempt(s): {error_text(job)}", err=True
        )
    elif job.state is JobState.CANCELLED:
        click.echo(f"Job {job.id} was cancelled", err=True)
    else:
        click.echo(f"Job {job.id} is {job.state}; input: {task_line(job)}")
    if job.state in (JobState.FAILED, JobState.CANCELLED):
        sys.exit(1)


@click.command()
@click.argument("job_id", type=JOB_ID)
@server_option("client")
@json_option
@handle_errors
def cancel(job_id: int, server: str | None, as_json: bool) -> None:
    """Cancel a job that has not finished."""
    with connect(server) as client:
        job = client.cancel(job_id)
    click.echo(to_json(job_dict(job)) if as_json else f"Job {job.id}: cancelled")


@click.command()
@click.argument("job_id", type=JOB_ID, required=False)
@server_option("client")
@click.option("--all", "all_", is_flag=True, help="Every failed job (of --queue, if given).")
@click.option("--queue", "-q", default=None, help="With --all: only this queue.")
@json_option
@handle_errors
def retry(
    job_id: int | None, server: str | None, all_: bool, queue: str | None, as_json: bool
) -> None:
    """Queue a failed job again (or every failed job with --all) with fresh attempts."""
    if (job_id is None) == (not all_):
        raise click.UsageError("give a job id or --all, not both")
    if queue is not None and not all_:
        raise click.UsageError("--queue goes with --all")
    with connect(server) as client:
        ids = [client.retry(job_id)] if job_id is not None else client.retry_failed(queue)
    if as_json:
        click.echo(to_json({"retried": ids}))
    elif job_id is not None:
        click.echo(f"Job {job_id}: queued again")
    else:
        click.echo(f"Queued {len(ids)} failed job(s) again")


@click.command("jobs")
@server_option("client")
@click.option("--state", type=click.Choice([s.value for s in JobState]), default=None)
@click.option("--queue", "-q", default=None)
@click.option("--limit", "-n", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--before", type=JOB_ID, default=None, help="Only jobs with a smaller id (paging).")
@json_option
@handle_errors
def list_jobs(
    server: str | None,
    state: str | None,
    queue: str | None,
    limit: int,
    before: int | None,
    as_json: bool,
) -> None:
    """List jobs, newest first."""
    with connect(server) as client:
        found = client.list(state, queue, limit, before)
    if as_json:
        click.echo(to_json([job_dict(j) for j in found]))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("ID", "TASK", "QUEUE", "PRI", "STATE", "TRIES", "WORKER", box=None)
    for job in found:
        line = task_line(job)
        table.add_row(
            str(job.id),
            line if len(line) <= 50 else line[:47] + "...",
            job.queue,
            str(job.priority),
            str(job.state),
            f"{job.attempts}/{job.max_attempts}",
            job.worker or "-",
        )
    Console().print(table)
