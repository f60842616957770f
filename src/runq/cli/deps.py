"""Command-line pieces for dependencies between jobs (``--after``, status lines)."""

from __future__ import annotations

import click

from runq.model import Job
from runq.model.spec import MAX_AFTER, MAX_JOB_ID


def job_ids(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    """``--after 12,13``: job ids, each a whole number from 1."""
    if value is None:
        return None
    ids: list[int] = []
    for word in value.split(","):
        word = word.strip()
        if not word.isdigit() or not 1 <= int(word) <= MAX_JOB_ID:
            raise click.BadParameter(f"{word!r} is not a job id (give IDs like 12,13)")
        ids.append(int(word))
    if len(ids) > MAX_AFTER:
        raise click.BadParameter(f"at most {MAX_AFTER} jobs")
    return ids


def waiting_line(job: Job) -> str:
    """``runq status`` of a waiting job."""
    ids = ", ".join(str(i) for i in job.after)
    return f"Job {job.id}: waiting for jobs {ids} (in {job.queue})"


def after_options(after: list[int] | None, after_any: bool) -> dict[str, object]:
    if after_any and not after:
        raise click.UsageError("--after-any goes with --after")
    return {"after": after, "after_any": after_any or None}
