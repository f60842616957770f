"""AsyncClient: submit jobs and ask about them over the native protocol.

Single ``submit`` calls made in the same turn of the event loop travel as one SUBMIT
batch, so pipelined submits cost about what ``submit_many`` costs.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime
import math
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from runq.client import files
from runq.client.transport import DEFAULT_PORT, Transport, parse_servers
from runq.errors import (
    ConnectionLost,
    FileError,
    FrameTooLarge,
    InvalidArguments,
    RunqError,
    Timeout,
    Unavailable,
)
from runq.model import TERMINAL_STATES, Job, JobSpec, JobState
from runq.model.files import FileRef, artifacts_of, check_name
from runq.model.flow import RateLimit, parse_rate
from runq.model.output import MAX_LINES, JobLogs, LogLine
from runq.model.schedule import DEFAULT_CATCH_UP, DEFAULT_TZ, Schedule, ScheduleSpec, check
from runq.model.spec import COMMAND_TASK
from runq.model.token import TokenInfo
from runq.model.unique import SubmitIds
from runq.protocol import codec
from runq.protocol import limits as L
from runq.protocol import messages as m
from runq.protocol.tokens import ListTokens, MakeToken, RevokeToken
from runq.tasks import options_of
from runq.tls import TlsConfig

WAIT_SLICE = 30.0  # seconds one WAIT request may block on the broker
FOLLOW_POLL = 0.5  # seconds between reads of a running job's output when following it
RESUBMIT_TRIES = 8  # reconnections for a keyed submit whose connection was lost (~10 s)


class JobFailed(RunqError):
    """The job ended failed or cancelled; ``job`` says how."""

    code = "job_failed"

    def __init__(self, job: Job) -> None:
        err = job.error
        why = f"{err.code}: {err.message}" if err else str(job.state)
        super().__init__(f"job {job.id} {job.state}: {why}")
        self.job = job


def joined(a: SubmitIds, b: SubmitIds) -> SubmitIds:
    """The answers of two submits one after the other, as one."""
    return SubmitIds([*a, *b], [*a.merged, *(len(a) + i for i in b.merged)])


def _unique_for(
    unique_for: float | datetime.timedelta | None, unique_mode: str | None
) -> float | None:
    if unique_mode is not None and unique_for is None:
        raise InvalidArguments("invalid job: unique_mode needs unique_for")
    if isinstance(unique_for, datetime.timedelta):
        return unique_for.total_seconds()
    return unique_for


def spec(
    task: str | Callable[..., Any],
    *args: Any,
    kwargs: Mapping[str, Any] | None = None,
    queue: str | None = None,
    priority: int | None = None,
    delay: float | datetime.timedelta | None = None,
    run_at: float | datetime.datetime | None = None,
    retries: int | None = None,
    timeout: float | None = None,
    key: str | None = None,
    backoff: float | None = None,
    unique_for: float | datetime.timedelta | None = None,
    unique_mode: str | None = None,
    after: Sequence[int] | None = None,
    after_any: bool | None = None,
    pass_results: bool | None = None,
    concurrency_key: str | None = None,
    max_concurrent: int | None = None,
    **task_kwargs: Any,
) -> JobSpec:
    """A validated JobSpec. ``task`` is a name or an ``@runq.task`` function (whose
    options are the defaults); keywords that are not job options go to the task, and
    ``kwargs=`` passes task keywords whose names clash with job options. ``retries`` is
    the number of tries after the first. ``delay`` is seconds (or a timedelta) from now;
    ``run_at`` seconds since the epoch or a datetime (a naive one is local time).
    ``unique_for`` (seconds or a timedelta) makes the job unique: a twin submitted in
    that time while it has not finished gets its id (``unique_mode="refuse"``: an
    ``AlreadyQueued`` error) instead of a new job. ``after`` lists job ids this one
    waits for: it runs once they all succeeded (``after_any``: once they all ended) and
    is cancelled if one fails; ``pass_results`` puts their results in
    ``kwargs["previous"]`` (see docs/scheduling.md, Dependencies)."""
    if isinstance(delay, datetime.timedelta):
        delay = delay.total_seconds()
    unique_for = _unique_for(unique_for, unique_mode)
    if isinstance(run_at, datetime.datetime):
        run_at = run_at.timestamp()
    options: dict[str, Any] = {
        "queue": queue,
        "priority": priority,
        "delay": delay,
        "run_at": run_at,
        "timeout": timeout,
        "key": key,
        "backoff": backoff,
        "max_attempts": None if retries is None else retries + 1,
        "unique_for": unique_for,
        "unique_mode": unique_mode,
        "after": None if after is None else list(after),
        "after_any": after_any,
        "pass_results": pass_results,
        "concurrency_key": concurrency_key,
        "max_concurrent": max_concurrent,
    }
    if not isinstance(task, str):
        opts = options_of(task)
        if opts is None:
            raise InvalidArguments(f"{task!r} is not a task: decorate it with @runq.task")
        for name, value in opts.submit_defaults().items():
            field = "max_attempts" if name == "retries" else name
            if options[field] is None:
                options[field] = value + 1 if name == "retries" else value
        task = opts.name
    raw: dict[str, Any] = {"task": task, "args": list(args)}
    if kwargs or task_kwargs:
        raw["kwargs"] = {**(kwargs or {}), **task_kwargs}
    for name, value in options.items():
        if value is not None:
            raw[name] = value
    return _convert(raw)


def rate_limit(scope: str, name: str, rate: str, burst: float | None) -> RateLimit:
    """A validated RateLimit; InvalidArguments with the reason otherwise."""
    try:
        count, per = parse_rate(rate)
        return msgspec.convert(
            {"scope": scope, "name": name, "count": count, "per": per, "burst": burst},
            RateLimit,
        )
    except (ValueError, msgspec.ValidationError) as exc:
        raise InvalidArguments(f"invalid rate limit: {exc}") from None


def command_spec(
    argv: Sequence[Any],
    *,
    shell: bool = False,
    env: Mapping[str, str] | None = None,
    retry_on_failure: bool = True,
    outputs: Sequence[str] | None = None,
    **options: Any,
) -> JobSpec:
    """A command job: ``argv`` strings (or file markers, which become the paths of the
    job's input files); ``outputs`` names files the command writes in its directory,
    which the worker keeps as the job's artifacts."""
    kw: dict[str, Any] = {}
    if shell:
        kw["shell"] = True
    if env:
        kw["env"] = dict(env)
    if outputs:
        kw["outputs"] = [check_name(n) for n in outputs]
    if not retry_on_failure:
        kw["retry_on_failure"] = False
    return spec(COMMAND_TASK, *argv, kwargs=kw, **options)


def _convert(raw: Mapping[str, Any]) -> JobSpec:
    try:
        return msgspec.convert(raw, JobSpec)
    except msgspec.ValidationError as exc:
        raise InvalidArguments(f"invalid job: {exc}") from None


def to_spec(raw: Mapping[str, Any] | JobSpec) -> JobSpec:
    """A JobSpec from a mapping, checked here; a JobSpec passes as it is (the broker
    checks every job while it decodes the frame)."""
    if isinstance(raw, JobSpec):
        return raw
    return _convert({k: v for k, v in raw.items() if v is not None})


def schedule_spec(
    name: str,
    cron: str,
    task: str | Callable[..., Any],
    *args: Any,
    tz: str = DEFAULT_TZ,
    catch_up: str = DEFAULT_CATCH_UP,
    **options: Any,
) -> ScheduleSpec:
    """A checked ScheduleSpec: the job as ``spec`` builds it, fired at each tick of
    ``cron`` in ``tz``. A bad cron or zone raises ScheduleError here."""
    job = spec(task, *args, **options)
    raw = {"name": name, "cron": cron, "job": job, "tz": tz, "catch_up": catch_up}
    try:
        found = msgspec.convert(raw, ScheduleSpec, from_attributes=True)
    except msgspec.ValidationError as exc:
        raise InvalidArguments(f"invalid schedule: {exc}") from None
    return check(found)


class AsyncClient:
    def __init__(
        self,
        server: str = "127.0.0.1",
        *,
        token: str | None = None,
        connect_timeout: float = 5.0,
        tls: TlsConfig | None = None,
    ) -> None:
        # ``server`` may list several brokers ("a:1209,b:1209"): the client uses the
        # first that answers and, when its connection is lost, moves on to the next
        self.servers = parse_servers(server, DEFAULT_PORT)
        self._current = 0
        self._token = token
        self._connect_timeout = connect_timeout
        self._tls = None if tls is None else tls.context()  # a bad file fails here
        self._transport: Transport | None = None
        self._lock = asyncio.Lock()
        self._batch: list[JobSpec] = []
        self._batch_futures: list[asyncio.Future[int]] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def connect(self) -> AsyncClient:
        await self._conn()
        return self

    @property
    def host(self) -> str:
        return self.servers[self._current][0]

    @property
    def port(self) -> int:
        return self.servers[self._current][1]

    async def _conn(self) -> Transport:
        if self._transport is None or self._transport.closed:
            async with self._lock:
                if self._transport is None or self._transport.closed:
                    self._transport = await self._open()
        return self._transport

    async def _open(self) -> Transport:
        """The first broker that answers, starting after the one we lost (if any)."""
        n = len(self.servers)
        start = self._current if self._transport is None else self._current + 1
        error: ConnectionLost | None = None
        for i in range(start, start + n):
            host, port = self.servers[i % n]
            try:
                transport = await Transport.open(
                    host, port, self._token, self._connect_timeout, self._tls
                )
            except ConnectionLost as exc:
                error = exc
                continue
            self._current = i % n
            return transport
        assert error is not None
        raise error

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def __aenter__(self) -> AsyncClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, build: Any) -> Any:
        t = await self._conn()
        req = t.next_id()
        return await t.request(build(req), req)

    # -- submitting --------------------------------------------------------------------

    async def submit(self, task: str | Callable[..., Any], *args: Any, **options: Any) -> int:
        """Submit one job; returns its id once the broker has stored it. Each
        ``runq.File`` in the arguments is uploaded first, and the task gets its path."""
        job = await self._spec(task, args, options)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if not self._batch:
            asyncio.get_running_loop().call_soon(self._send_batch)
        self._batch.append(job)
        self._batch_futures.append(fut)
        return await fut

    async def _spec(
        self, task: str | Callable[..., Any], args: tuple[Any, ...], options: dict[str, Any]
    ) -> JobSpec:
        """The checked spec, with its ``runq.File`` arguments uploaded (after the check)."""
        args, options, wanted = files.mark(args, options)
        job = spec(task, *args, **options)
        return await files.upload_all(self._conn, job, wanted) if wanted else job

    def _send_batch(self) -> None:
        specs, futures = self._batch, self._batch_futures
        self._batch, self._batch_futures = [], []
        for start in range(0, len(specs), L.MAX_BATCH):
            chunk = specs[start : start + L.MAX_BATCH]
            futs = futures[start : start + L.MAX_BATCH]
            task = asyncio.ensure_future(self._deliver(chunk, futs))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _deliver(self, specs: list[JobSpec], futures: list[asyncio.Future[int]]) -> None:
        try:
            ids = await self.submit_many(specs)
        except BaseException as exc:
            for fut in futures:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for fut, job_id in zip(futures, ids, strict=True):
            if not fut.done():
                fut.set_result(job_id)

    async def submit_command(
        self,
        argv: Sequence[str],
        *,
        shell: bool = False,
        env: Mapping[str, str] | None = None,
        retry_on_failure: bool = True,
        **options: Any,
    ) -> int:
        """Submit a command job: ``argv`` runs on a worker that allows it (as one
        ``/bin/sh -c`` line with ``shell=True``, where the worker allows that)."""
        job = command_spec(argv, shell=shell, env=env, retry_on_failure=retry_on_failure, **options)
        return (await self.submit_many([job]))[0]

    async def submit_one(self, task: str | Callable[..., Any], *args: Any, **options: Any) -> int:
        """Submit one job in its own request (no coalescing): for blocking callers."""
        job = await self._spec(task, args, options)
        reply = await self._call(lambda req: m.Submit(req, [job]))
        job_id: int = reply.ids[0]
        return job_id

    async def submit_many(self, jobs: Iterable[JobSpec | Mapping[str, Any]]) -> SubmitIds:
        """Submit many jobs in batches; each batch is committed before it is answered.
        The ids' ``merged`` lists the positions answered with a job already there (a used
        idempotency key, or a unique job's unfinished twin)."""
        specs = [to_spec(j) for j in jobs]
        if not specs:
            return SubmitIds()
        ids = await self._submit_chunk(specs[: L.MAX_BATCH])
        for start in range(L.MAX_BATCH, len(specs), L.MAX_BATCH):
            ids = joined(ids, await self._submit_chunk(specs[start : start + L.MAX_BATCH]))
        return ids

    async def _submit_chunk(self, specs: list[JobSpec]) -> SubmitIds:
        """Submit one chunk. When every job has an idempotency key, a connection lost
        before the answer is survived: the chunk goes again and the broker answers with
        the ids it already gave (no job is stored twice)."""
        tries = 0
        while True:
            try:
                return await self._submit_frame(specs)
            except (ConnectionLost, Unavailable):
                if tries >= RESUBMIT_TRIES or not all(s.key for s in specs):
                    raise
            tries += 1
            await asyncio.sleep(min(0.05 * 2**tries, 2.0))

    async def _submit_frame(self, specs: list[JobSpec]) -> SubmitIds:
        """One SUBMIT frame, or two halves when the frame would pass the broker's limit."""
        t = await self._conn()
        req = t.next_id()
        frame = codec.encode(m.Submit(req, specs))
        if len(frame) - L.HEADER_SIZE > t.max_frame:
            if len(specs) == 1:
                raise FrameTooLarge(
                    f"the job is {len(frame)} bytes encoded; the broker takes at most"
                    f" {t.max_frame} bytes in one frame"
                )
            half = len(specs) // 2
            first = await self._submit_frame(specs[:half])
            return joined(first, await self._submit_frame(specs[half:]))
        reply: m.Submitted = await t.request(frame, req)
        return SubmitIds(reply.ids, reply.merged)

    # -- files -------------------------------------------------------------------------

    async def upload(self, path: str | os.PathLike[str], name: str | None = None) -> FileRef:
        """Send a local file as a job input (resumed if the connection drops); name the
        returned FileRef in ``JobSpec.files`` and point at it with ``{"runq.file": name}``.
        ``submit`` does this for each ``runq.File`` argument."""
        return await files.upload(self._conn, path, name)

    async def download_file(
        self, ref: FileRef, dest: str | os.PathLike[str], job_id: int | None = None
    ) -> Path:
        """Fetch a stored file (an input or artifact of job ``job_id``) into ``dest``,
        which appears only once the whole file arrived with the right SHA-256."""
        return await files.download_file(self._conn, ref, dest, job_id)

    async def download(
        self, job_id: int, directory: str | os.PathLike[str] = "."
    ) -> builtins.list[Path]:
        """Fetch every artifact of the job into ``directory``; their paths."""
        refs = artifacts_of((await self.get(job_id)).result)
        if len({r.name for r in refs}) != len(refs):
            raise FileError(f"job {job_id} has two artifacts with one name")
        Path(directory).mkdir(parents=True, exist_ok=True)
        return [await self.download_file(r, Path(directory) / r.name, job_id) for r in refs]

    # -- asking ------------------------------------------------------------------------

    async def get(self, job_id: int) -> Job:
        reply = await self._call(lambda req: m.Get(req, job_id))
        job: Job = reply.job
        return job

    async def logs(self, job_id: int, after: int = 0, limit: int = MAX_LINES) -> JobLogs:
        """Up to ``limit`` output lines of a job with ``seq`` past ``after``, oldest first,
        with its state and progress; read on with the answer's ``next`` as ``after``."""
        if after < 0:
            raise InvalidArguments(f"after must be 0 or more, not {after}")
        reply = await self._call(lambda req: m.ReadLogs(req, job_id, after, limit))
        logs: JobLogs = reply.logs
        return logs

    async def follow(
        self, job_id: int, after: int = 0, poll: float = FOLLOW_POLL
    ) -> AsyncIterator[LogLine]:
        """The job's output lines as they come, until it has finished and all are read."""
        while True:
            page = await self.logs(job_id, after)
            for line in page.lines:
                yield line
            after = page.next
            if len(page.lines) < MAX_LINES:
                if page.state in TERMINAL_STATES:
                    return
                await asyncio.sleep(poll)

    async def wait(self, job_id: int, timeout: float | None = None) -> Job:
        """The job once it has finished; raises ``Timeout`` if ``timeout`` runs out."""
        loop = asyncio.get_running_loop()
        deadline = math.inf if timeout is None else loop.time() + timeout
        while True:
            left = deadline - loop.time()
            piece = max(0.0, min(WAIT_SLICE, left))
            reply = await self._call(lambda req, p=piece: m.Wait(req, job_id, p))
            job: Job = reply.job
            if job.finished:
                return job
            if loop.time() >= deadline:
                raise Timeout(f"job {job_id} is still {job.state} after {timeout:g} s")

    async def result(self, job_id: int, timeout: float | None = None) -> Any:
        """The job's result once it succeeds; raises ``JobFailed`` if it does not."""
        job = await self.wait(job_id, timeout)
        if job.state is not JobState.SUCCEEDED:
            raise JobFailed(job)
        return job.result

    async def cancel(self, job_id: int) -> Job:
        reply = await self._call(lambda req: m.Cancel(req, job_id))
        job: Job = reply.job
        return job

    async def retry(self, job_id: int) -> int:
        """Queue a failed job again with fresh attempts."""
        reply = await self._call(lambda req: m.Retry(req, job_id))
        return job_id if reply.ids else 0

    async def retry_failed(self, queue: str | None = None) -> builtins.list[int]:
        """Queue every failed job of ``queue`` (of every queue when None) again."""
        reply = await self._call(lambda req: m.Retry(req, None, queue))
        ids: builtins.list[int] = reply.ids
        return ids

    async def list(
        self,
        state: str | None = None,
        queue: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> list[Job]:
        reply = await self._call(lambda req: m.ListJobs(req, state, queue, limit, before))
        jobs: builtins.list[Job] = reply.jobs
        return jobs

    async def stats(self) -> dict[str, Any]:
        reply = await self._call(lambda req: m.GetStats(req))
        stats: dict[str, Any] = reply.stats
        return stats

    async def workers(self) -> builtins.list[m.WorkerInfo]:
        reply = await self._call(lambda req: m.ListWorkers(req))
        workers: builtins.list[m.WorkerInfo] = reply.workers
        return workers

    async def queues(self) -> builtins.list[m.QueueInfo]:
        """Every queue with jobs (or paused): its job counts by state, and whether it is
        paused."""
        reply = await self._call(lambda req: m.ListQueues(req))
        queues: builtins.list[m.QueueInfo] = reply.queues
        return queues

    async def pause(self, queue: str) -> m.QueueInfo:
        """Stop dispatching the jobs of ``queue`` (submits still go in)."""
        return await self._pause(queue, True)

    async def resume(self, queue: str) -> m.QueueInfo:
        """Dispatch the jobs of ``queue`` again."""
        return await self._pause(queue, False)

    # -- rate limits ------------------------------------------------------------------

    async def set_rate_limit(
        self, scope: str, name: str, rate: str, burst: float | None = None
    ) -> RateLimit:
        """Start at most ``rate`` (``"100/s"``, ``"600/m"``, ``"10/h"``) jobs from the
        queue (``scope="queue"``) or of the task (``scope="task"``), over every broker;
        ``burst`` jobs may start at once (default: one second's worth, at least 1)."""
        limit = rate_limit(scope, name, rate, burst)
        reply = await self._call(lambda req: m.SetRateLimit(req, limit))
        found: RateLimit = reply.limits[0]
        return found

    async def remove_rate_limit(self, scope: str, name: str) -> RateLimit:
        """Drop a rate limit (UnknownLimit if there is none); answer with what it was."""
        checked = rate_limit(scope, name, "1/s", None)
        reply = await self._call(lambda req: m.RemoveRateLimit(req, checked.scope, name))
        found: RateLimit = reply.limits[0]
        return found

    async def rate_limits(self) -> builtins.list[RateLimit]:
        reply = await self._call(lambda req: m.ListRateLimits(req))
        found: builtins.list[RateLimit] = reply.limits
        return found

    async def _pause(self, queue: str, paused: bool) -> m.QueueInfo:
        reply = await self._call(lambda req: m.PauseQueue(req, queue, paused))
        found: m.QueueInfo = reply.queues[0]
        return found

    async def set_retention(self, queue: str, retention: float | str | None) -> m.QueueInfo:
        """Keep the finished jobs of ``queue`` ``retention`` seconds; ``None`` or
        ``"forever"`` keeps them forever, ``"default"`` follows the broker's again."""
        if isinstance(retention, str) and retention not in ("forever", "default"):
            raise ValueError(f"retention {retention!r}: seconds, None, 'forever' or 'default'")
        reset = retention == "default"
        seconds = None if retention is None or isinstance(retention, str) else float(retention)
        reply = await self._call(lambda req: m.SetRetention(req, queue, seconds, reset))
        found: m.QueueInfo = reply.queues[0]
        return found

    async def purge(
        self, older_than: float, *, state: str | None = None, queue: str | None = None
    ) -> int:
        """Delete finished jobs (of ``state`` and ``queue`` when given) that finished
        more than ``older_than`` seconds ago; returns how many went."""
        reply = await self._call(lambda req: m.Purge(req, older_than, state, queue))
        gone: int = reply.count
        return gone

    async def explain(self, job_id: int) -> str:
        """One sentence on why the job is not running yet."""
        reply = await self._call(lambda req: m.Explain(req, job_id))
        text: str = reply.text
        return text

    # -- periodic schedules (cron) -----------------------------------------------------

    async def add_schedule(
        self, name: str, cron: str, task: str | Callable[..., Any], *args: Any, **options: Any
    ) -> Schedule:
        """Fire a job of ``task`` at each tick of ``cron`` (``tz=`` its zone, default
        UTC; ``catch_up=`` none, last or all; other options as for ``submit``)."""
        found = schedule_spec(name, cron, task, *args, **options)
        reply = await self._call(lambda req: m.AddSchedule(req, found))
        added: Schedule = reply.schedules[0]
        return added

    async def schedules(self) -> builtins.list[Schedule]:
        reply = await self._call(lambda req: m.ListSchedules(req))
        found: builtins.list[Schedule] = reply.schedules
        return found

    async def remove_schedule(self, name: str) -> Schedule:
        reply = await self._call(lambda req: m.RemoveSchedule(req, name))
        removed: Schedule = reply.schedules[0]
        return removed

    async def pause_schedule(self, name: str) -> Schedule:
        """Stop firing the schedule's ticks."""
        return await self._pause_schedule(name, True)

    async def resume_schedule(self, name: str) -> Schedule:
        """Fire the schedule again from its next tick (the ticks it missed are skipped)."""
        return await self._pause_schedule(name, False)

    async def _pause_schedule(self, name: str, paused: bool) -> Schedule:
        reply = await self._call(lambda req: m.PauseSchedule(req, name, paused))
        found: Schedule = reply.schedules[0]
        return found

    # -- access tokens (admin) ---------------------------------------------------------

    async def create_token(
        self, scopes: Sequence[str], name: str | None = None, ttl: float | None = None
    ) -> tuple[str, TokenInfo]:
        """A new token with ``scopes`` (admin, read, submit:QUEUE, work:QUEUE), expiring
        after ``ttl`` seconds (None: never): its text, shown this once, and its info."""
        reply = await self._call(lambda req: MakeToken(req, list(scopes), name, ttl))
        return reply.token, reply.info

    async def tokens(self) -> builtins.list[TokenInfo]:
        """Every token (never their secrets), revoked and expired ones too."""
        reply = await self._call(lambda req: ListTokens(req))
        found: builtins.list[TokenInfo] = reply.tokens
        return found

    async def revoke_token(self, token: str) -> TokenInfo:
        """Revoke a token by its id or name; it stops working at once."""
        reply = await self._call(lambda req: RevokeToken(req, token))
        info: TokenInfo = reply.tokens[0]
        return info
