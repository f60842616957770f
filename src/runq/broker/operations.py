"""What a request does to the broker, whichever door it came in by (the native
protocol or HTTP): one function an operation, each calling one store operation and
keeping the broker's wake-ups, waiters and counters right."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from runq.broker import files
from runq.broker.explain import Facts
from runq.broker.explain import explain as explain_text
from runq.errors import ProtocolError, ScheduleError, Unavailable, UnknownJob, UnknownLimit
from runq.model import Assignment, Job, JobSpec, JobState, Outcome
from runq.model.flow import RateLimit, Scope
from runq.model.output import JobLogs
from runq.model.schedule import TASK_PREFIX, Schedule, ScheduleSpec, check
from runq.model.unique import SubmitIds
from runq.protocol import messages as m
from runq.store.base import ReportResult

if TYPE_CHECKING:
    from runq.broker.server import Broker

log = logging.getLogger("runq.broker")
RECHECK_EVERY = 1.0  # seconds: a long-polling claim looks at the store at least this often


async def submit(broker: Broker, specs: Sequence[JobSpec]) -> SubmitIds:
    """Store the jobs; ``merged`` positions were answered with a job already there."""
    if not broker.accepting:
        raise Unavailable("the broker is shutting down; submit to another broker or retry")
    await files.check_specs(broker, specs)
    began = time.perf_counter()
    ids = await broker.store.submit_many(specs, broker.clock())
    broker.metrics.on_submit(specs, time.perf_counter() - began)
    broker.counters["submitted"] += len(ids) - len(ids.merged)
    broker.activity.add("submitted", len(ids) - len(ids.merged), broker.clock())
    broker.dispatcher.wake({spec.queue for spec in specs})
    broker.flow.keyed.update(s.queue for s in specs if s.concurrency_key is not None)
    return ids


async def get(broker: Broker, job_id: int) -> Job:
    job = await broker.store.get(job_id)
    if job is None:
        raise UnknownJob.for_id(job_id)
    return job


def parse_state(name: str | None) -> JobState | None:
    if name is None:
        return None
    try:
        return JobState(name)
    except ValueError:
        names = ", ".join(s.value for s in JobState)
        raise ProtocolError(f"unknown state {name!r}; one of {names}") from None


async def cancel(broker: Broker, job_id: int) -> Job:
    before = await broker.store.cancel(job_id, broker.clock())
    if before.state is JobState.RUNNING and before.worker is not None:
        broker.stop_running(before.worker, [before.id])
    broker.counters["cancelled"] += 1
    broker.metrics.on_cancel(before.id, before.queue, before.task)
    broker.job_finished([before.id])
    return await get(broker, job_id)


async def retry(broker: Broker, job_id: int | None, queue: str | None) -> list[int]:
    ids = await broker.store.retry(job_id, queue, broker.clock())
    if ids:
        broker.counters["retried_by_hand"] += len(ids)
        broker.dispatcher.forget_empty()
    return ids


async def report(broker: Broker, worker: str, outcomes: Sequence[Outcome]) -> ReportResult:
    res = await broker.store.report(worker, outcomes, broker.clock())
    broker.count_report(outcomes, res)
    if res.requeued_queues:
        broker.dispatcher.wake(res.requeued_queues)
    return res


async def claim(
    broker: Broker, worker: str, queues: Sequence[str], limit: int, wait: float
) -> list[Assignment]:
    """Claim up to ``limit`` jobs for a worker that pulls (HTTP), waiting up to ``wait``
    seconds for one to become ready. The jobs are leased like a native worker's: the
    worker extends the lease with heartbeats or loses the job when it runs out."""
    if not broker.accepting:
        raise Unavailable("the broker is shutting down; claim from another broker")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        signal = broker.dispatcher.next_wake()
        now = broker.clock()
        open_queues = broker.dispatcher.open_queues(queues)
        jobs = []
        if open_queues:
            lease_until = now + broker.config.lease
            jobs = await broker.store.claim(worker, open_queues, limit, now, lease_until)
        left = deadline - loop.time()
        if jobs or left <= 0 or not broker.accepting:
            broker.count_started(jobs)
            return jobs
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(signal, min(left, RECHECK_EVERY))


async def heartbeat(broker: Broker, worker: str, running: Sequence[tuple[int, int]]) -> list[int]:
    """Extend the leases of jobs a pulling worker runs; return those it no longer holds."""
    lease_until = broker.clock() + broker.config.lease
    return await broker.store.extend_leases(worker, running, lease_until)


async def queues(broker: Broker) -> list[m.QueueInfo]:
    """Every queue with jobs, paused or with its own retention, by name, with its job
    counts by state and the retention of its finished jobs."""
    counts = await broker.store.counts()
    paused = broker.paused_queues
    own = await broker.store.retention_overrides()
    default = broker.config.retention
    return [
        m.QueueInfo(n, counts.get(n, {}), n in paused, own.get(n, default), n in own)
        for n in sorted(set(counts) | paused | set(own))
    ]


async def set_rate_limit(broker: Broker, limit: RateLimit) -> None:
    """Add or change a rate limit; every broker's claims obey it at once (they read it
    in their claim transactions)."""
    await broker.store.set_rate_limit(limit, broker.clock())
    await broker.flow.refresh()


async def remove_rate_limit(broker: Broker, scope: Scope, name: str) -> RateLimit:
    """Drop a rate limit (UnknownLimit if there is none) and answer with what it was."""
    found = [x for x in await broker.store.rate_limits() if (x.scope, x.name) == (scope, name)]
    if not found or not await broker.store.remove_rate_limit(scope, name):
        raise UnknownLimit(f"no rate limit on {scope} {name!r}")
    await broker.flow.refresh()
    broker.dispatcher.forget_empty()
    return found[0]


async def pause_queue(broker: Broker, queue: str, paused: bool) -> None:
    """Stop (or start again) dispatching the jobs of ``queue``. Submits still go in;
    running jobs finish."""
    await broker.store.set_paused(queue, paused, broker.clock())
    broker.paused_version += 1
    if paused:
        broker.paused_queues.add(queue)
    else:
        broker.paused_queues.discard(queue)
        broker.dispatcher.wake([queue])


async def logs(broker: Broker, job_id: int, after: int, limit: int) -> JobLogs:
    """A job's lines past ``after``. The job is read first: when it has finished, every
    line its attempts sent before their reports is among those read after it."""
    job = await get(broker, job_id)
    lines = await broker.store.read_logs(job_id, after, limit)
    return JobLogs(
        job.id,
        job.state,
        lines,
        lines[-1].seq if lines else after,
        job.progress,
        job.progress_message,
    )


# -- periodic schedules (cron) ----------------------------------------------------------


async def add_schedule(broker: Broker, spec: ScheduleSpec) -> Schedule:
    """Store a schedule after checking its cron and zone (ScheduleError: nothing is
    stored). The names ``task:...`` belong to the tasks' own schedules."""
    if spec.name.startswith(TASK_PREFIX):
        raise ScheduleError(
            f"schedule names starting with {TASK_PREFIX!r} belong to @runq.task(cron=...)"
        )
    no_files(spec)
    return await broker.store.add_schedule(check(spec), broker.clock())


async def declare_schedules(broker: Broker, specs: Sequence[ScheduleSpec]) -> int:
    """Add or update the schedules of a worker's tasks; those that are not ``task:...``
    or do not check out are left out (and logged). Returns how many were kept."""
    kept = []
    for spec in specs:
        try:
            if not spec.name.startswith(TASK_PREFIX):
                raise ScheduleError(f"a worker's schedule name must start with {TASK_PREFIX!r}")
            kept.append(check(no_files(spec)))
        except ScheduleError as exc:
            log.warning("schedule %r of a worker refused: %s", spec.name, exc.message)
    if kept:
        await broker.store.upsert_schedules(kept, broker.clock())
    return len(kept)


def no_files(spec: ScheduleSpec) -> ScheduleSpec:
    """A schedule's job carries no input files: they would be deleted long before its
    later ticks (uploads unused for ``file_grace`` are swept)."""
    if spec.job.files:
        raise ScheduleError("a schedule's job cannot carry input files")
    return spec


async def schedules(broker: Broker) -> list[Schedule]:
    return await broker.store.schedules()


async def remove_schedule(broker: Broker, name: str) -> Schedule:
    return await broker.store.remove_schedule(name)


async def pause_schedule(broker: Broker, name: str, paused: bool) -> Schedule:
    """Stop (or restart) firing a schedule; a resumed one skips the ticks it missed."""
    return await broker.store.pause_schedule(name, paused, broker.clock())


# -- why a job is not running yet -------------------------------------------------------


async def explain(broker: Broker, job_id: int) -> str:
    """One sentence on why a job is not running yet (broker/explain.py)."""
    job = await get(broker, job_id)
    facts = Facts(job, broker.clock())
    if job.state is JobState.QUEUED:
        facts = await queued_facts(broker, job, facts)
    elif job.state is JobState.WAITING:
        parents = [await broker.store.get(i) for i in job.after]
        waiting = [p.id for p in parents if p is not None and not p.finished]
        facts = dataclasses.replace(facts, waiting_for=waiting)
    return explain_text(facts)


def rate_limit_of(broker: Broker, job: Job) -> str | None:
    """The rate limit that may hold ``job`` (its queue's, else its task's), as a phrase."""
    for limit in broker.flow.limits:
        if (limit.scope, limit.name) in (("queue", job.queue), ("task", job.task)):
            return f"the rate limit {limit.text()} of {limit.scope} {limit.name}"
    return None


async def queued_facts(broker: Broker, job: Job, facts: Facts) -> Facts:
    """What holds a queued job: its queue paused, the workers that serve it, the jobs
    claimed before it."""
    serving = [w for w in await broker.cluster.workers() if job.queue in w.queues]
    serving = [w for w in serving if not w.draining]
    # a worker that lists its tasks (info "tasks": "a,b,c") says whether it knows this one
    lists = [w.info.get("tasks") for w in serving]
    known = None
    if serving and all(isinstance(t, str) for t in lists):
        known = any(job.task in str(t).split(",") for t in lists)
    busy = bool(serving) and all(w.running >= w.concurrency for w in serving)
    return dataclasses.replace(
        facts,
        paused=job.queue in broker.paused_queues,
        serving=len(serving),
        task_known=known,
        busy=busy,
        ahead=await broker.store.count_ahead(job),
        # a limit is the reason only where a worker could take the job
        held_by=await limit_of(broker, job) if serving and not busy else None,
    )


async def limit_of(broker: Broker, job: Job) -> str | None:
    """The limit that holds ``job`` now, as a phrase: its concurrency key when that many
    of the key run, else a rate limit on its queue or task."""
    held = await broker.store.concurrency_of(job.id)
    if held is not None and held[2] >= held[1]:
        key, bound, _ = held
        return f"concurrency key {key} ({bound} of its jobs already running)"
    return rate_limit_of(broker, job)
