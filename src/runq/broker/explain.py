"""`runq explain N`: why a job is not running yet, in one sentence.

A pure function of the facts the broker gathers (operations.explain): the job, the time,
whether its queue is paused, the connected workers that serve its queue, and how many
queued jobs come before it. Facts that other features know are optional: the jobs it
still waits for (dependencies) and the limit that holds it (rate or concurrency).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from runq.model import Job, JobState

UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


@dataclass(frozen=True, slots=True)
class Facts:
    job: Job
    now: float
    paused: bool = False  # its queue's dispatch is paused
    serving: int = 0  # connected workers that serve its queue
    # whether a serving worker knows its task: None when no serving worker says which
    # tasks it knows (then only "serves the queue" is knowable)
    task_known: bool | None = None
    busy: bool = False  # every serving worker is at its capacity
    ahead: int = 0  # queued jobs of its queue claimed before it
    waiting_for: Sequence[int] = ()  # unfinished jobs it depends on
    held_by: str | None = None  # the limit that holds it, e.g. "the rate limit 10/s of queue q"


def span(seconds: float) -> str:
    """``3900`` -> ``1h 5m``: the two largest units, at least ``1s``."""
    left = max(1, round(seconds))
    parts = []
    for unit, size in UNITS:
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def moment(ts: float) -> str:
    try:
        moment = datetime.datetime.fromtimestamp(ts, datetime.UTC)
    except (ValueError, OverflowError, OSError):  # past year 9999: no calendar date
        return f"{ts:.0f} s after the Unix epoch"
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def ids_text(ids: Sequence[int]) -> str:
    """``[3]`` -> ``job 3``; ``[3, 4, 5]`` -> ``jobs 3, 4 and 5``."""
    if len(ids) == 1:
        return f"job {ids[0]}"
    return "jobs " + ", ".join(str(i) for i in ids[:-1]) + f" and {ids[-1]}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def explain(f: Facts) -> str:
    """One sentence on why ``f.job`` is not running (or what it is doing instead)."""
    job = f.job
    head = f"job {job.id}"
    if job.finished:
        return f"{head} {finished(job)}"
    if job.state is JobState.RUNNING:
        since = f" since {moment(job.started_at)}" if job.started_at else ""
        tries = f"attempt {job.attempts} of {job.max_attempts}"
        return f"{head} is running on worker {job.worker}{since} ({tries})"
    if f.waiting_for:
        return f"{head} waits for {ids_text(f.waiting_for)} to finish"
    if job.state.value == "waiting":
        return f"{head} waits for the jobs it depends on to finish"
    if job.state is JobState.SCHEDULED:
        return f"{head} {scheduled(job, f.now)}"
    return f"{head} {queued(f)}"


def finished(job: Job) -> str:
    at = f" at {moment(job.finished_at)}" if job.finished_at else ""
    if job.state is JobState.SUCCEEDED:
        return f"finished: succeeded{at}"
    if job.state is JobState.CANCELLED:
        return f"finished: cancelled{at}"
    why = f": {job.error.message}" if job.error else ""
    return f"finished: failed{at} after {plural(job.attempts, 'attempt')}{why}"


def scheduled(job: Job, now: float) -> str:
    if job.run_at <= now:
        return "is due and becomes queued within a moment"
    when = f"{moment(job.run_at)}, in {span(job.run_at - now)}"
    if job.attempts:
        return f"waits out its retry back-off: it runs again at {when}"
    return f"has a start time that has not come: it runs at {when}"


def queued(f: Facts) -> str:
    queue = f.job.queue
    if f.paused:
        return f"is queued but queue {queue} is paused (runq queue resume {queue})"
    if f.held_by:
        return f"is queued but held by {f.held_by}"
    if f.serving == 0:
        return f"is queued but no connected worker serves queue {queue}"
    if f.task_known is False:
        return f"is queued but no connected worker serving queue {queue} knows task {f.job.task}"
    if f.ahead:
        jobs = plural(f.ahead, "job")
        return f"is waiting behind {jobs} of higher priority (or older) in queue {queue}"
    if f.busy:
        return f"is next in queue {queue}; every worker serving it is busy"
    return f"is next in queue {queue} and should start within a moment"
