"""The PostgreSQL store: an asyncpg pool, one transaction per operation.

The pool is made on the first operation (asyncpg needs a running loop, and
``open_store`` is synchronous), and the schema is migrated then. Times are the float
epoch seconds the caller passes, as in the SQLite store, so a fake clock drives both.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Final, TypeAlias, TypeVar

import asyncpg

from runq.errors import StoreError
from runq.model import Assignment, Job, JobSpec, JobState, Outcome, RetryPolicy
from runq.model.flow import RateLimit
from runq.model.output import MAX_LINES, LogLine, OutputBatch
from runq.model.retry import DEFAULT_RETRY
from runq.model.schedule import Schedule, ScheduleSpec
from runq.model.token import TokenInfo
from runq.model.unique import SubmitIds, any_unique
from runq.store import deps, rows
from runq.store.base import ReportResult, Requeued
from runq.store.files import Blobs, has_files
from runq.store.flow import has_keys
from runq.store.postgres import (
    deps_ops,
    file_ops,
    flow,
    ops,
    output,
    retention_ops,
    schedule_ops,
    token_ops,
)
from runq.store.postgres.blobs import PgBlobs
from runq.store.postgres.dsn import PgUrl, parse_url
from runq.store.postgres.listen import Listener, OnFinished, OnReady
from runq.store.postgres.migrate import migrate
from runq.store.postgres.ops import Conn
from runq.store.queries import load_queries
from runq.store.retention import finished_states
from runq.store.schedules import FIRE_BATCH

T = TypeVar("T")
Op: TypeAlias = Callable[[Conn], Awaitable[T]]
CONNECT_TIMEOUT: Final = 10.0  # seconds to reach the server before giving up
# A claim must walk the ready index in claim order and stop at its LIMIT. With stale
# statistics (right after a VACUUM without ANALYZE, say) the planner guesses a handful
# of ready rows and picks a bitmap scan that sorts the whole queue instead: 1,000
# claims/s instead of 17,000 on 200,000 queued jobs. No store query needs bitmap scans.
PLANNER: Final = {"enable_bitmapscan": "off"}
TRIES: Final = 3  # a transaction chosen as a deadlock victim is run again
RETRYABLE: Final = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
FAILURES: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


async def keep_session(_conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """What a connection goes back to the pool with: asyncpg has rolled back any open
    transaction already, and the store leaves nothing else behind (no LISTEN, cursor,
    session setting or session-level lock), so asyncpg's own reset (four statements
    and a round trip after every operation) is skipped."""


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


class PostgresStore(Blobs):
    def __init__(
        self, url: str, retry: RetryPolicy = DEFAULT_RETRY, rand: random.Random | None = None
    ) -> None:
        self.url: PgUrl = parse_url(url)
        self._q = load_queries("runq.store.postgres")
        self._q.update(load_queries("runq.store.postgres", "deps.sql"))
        self._q.update(load_queries("runq.store.postgres", "flow.sql"))
        self._q.update(load_queries("runq.store.postgres", "tokens.sql"))
        self._q.update(load_queries("runq.store.postgres", "files.sql"))
        self._retry = retry
        self._rand = rand or random.Random()
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._closed = False
        self.listener: Listener | None = None
        self._blobs = PgBlobs(self._q, self._run)

    # -- plumbing ----------------------------------------------------------------------

    async def connect(self) -> asyncpg.Pool:
        """The pool, made (and the schema migrated) on first use."""
        if self._closed:
            raise StoreError("the store is closed")
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await self._open_pool()
        return self._pool

    async def _open_pool(self) -> asyncpg.Pool:
        u = self.url
        try:
            pool = await asyncpg.create_pool(
                u.dsn,
                min_size=1,
                max_size=u.pool_size,
                timeout=CONNECT_TIMEOUT,
                server_settings={"search_path": u.quoted_schema, **PLANNER},
                reset=keep_session,
            )
        except (*FAILURES, ValueError) as exc:
            raise StoreError(
                f"cannot connect to PostgreSQL at {u.where}: {one_line(exc)}"
            ) from None
        try:
            async with pool.acquire() as conn:
                await migrate(conn, u.schema)
        except FAILURES as exc:
            pool.terminate()
            raise StoreError(f"cannot migrate schema {u.schema!r}: {one_line(exc)}") from None
        except BaseException:
            pool.terminate()
            raise
        return pool

    async def _run(self, op: Op[T], tx: bool = True) -> T:
        """Run ``op`` on a pooled connection, in a transaction unless it is one statement
        (which is a transaction of its own). A deadlock victim is run again."""
        pool = await self.connect()
        for tries_left in range(TRIES - 1, -1, -1):
            try:
                async with pool.acquire() as conn:
                    if not tx:
                        return await op(conn)
                    async with conn.transaction():
                        return await op(conn)
            except RETRYABLE as exc:
                if not tries_left:
                    raise StoreError(f"store failure: {one_line(exc)}") from None
            except FAILURES as exc:
                raise StoreError(f"store failure: {one_line(exc)}") from None
        raise AssertionError("unreachable")

    async def subscribe(self, on_ready: OnReady, on_finished: OnFinished) -> None:
        """LISTEN on a connection of its own, made (and made again) in the background."""
        if self.listener is None:
            self.listener = Listener(self.url, on_ready, on_finished)
            self.listener.start()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.listener is not None:
            await self.listener.stop()
        async with self._opening:
            pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), CONNECT_TIMEOUT)
            except FAILURES:
                pool.terminate()

    # -- writes ------------------------------------------------------------------------

    async def submit_many(self, specs: Sequence[JobSpec], now: float) -> SubmitIds:
        if not specs:
            return SubmitIds()
        if deps.any_after(specs):
            op = partial(deps_ops.submit, self._q, ops.insert, list(specs), now)
            return await self._submit(op, specs)
        if any_unique(specs):
            return await self._submit(partial(ops.insert_unique, self._q, list(specs), now), specs)
        keyed = any(s.key is not None for s in specs)
        if not keyed and len(specs) >= ops.COPY_FROM:
            return await self._submit(partial(ops.copy_in, self._q, specs, now), specs, tx=False)
        batch = [rows.insert_row(s, now) for s in specs]
        return await self._submit(partial(ops.insert, self._q, batch, keyed), specs, tx=keyed)

    async def _submit(
        self, op: Op[SubmitIds], specs: Sequence[JobSpec], tx: bool = True
    ) -> SubmitIds:
        if has_keys(specs):  # concurrency keys: set in the insert's transaction
            op, tx = partial(flow.submit, self._q, op, list(specs)), True
        if has_files(specs):  # input files: checked, set and linked in it too
            op, tx = partial(file_ops.submit, self._q, op, list(specs)), True
        return await self._run(op, tx=tx)

    async def claim(
        self, worker: str, queues: Sequence[str], limit: int, now: float, lease_until: float
    ) -> list[Assignment]:
        if limit <= 0 or not queues:
            return []
        limit = min(limit, ops.BIGINT_MAX)
        queues = list(dict.fromkeys(queues))  # a queue named twice is read once
        op = partial(flow.claim, self._q, worker, queues, limit, now, lease_until)
        return await self._run(op, tx=False)

    async def report(self, worker: str, outcomes: Sequence[Outcome], now: float) -> ReportResult:
        op = partial(ops.report, self._q, self._retry, self._rand, worker, list(outcomes), now)
        return await self._run(op)  # one transaction: dependents settle with their parents

    async def release(
        self, worker: str, running: Sequence[tuple[int, int]], now: float
    ) -> set[str]:
        if not running:
            return set()
        return await self._run(partial(ops.release, self._q, worker, list(running), now), tx=False)

    async def extend_leases(
        self, worker: str, running: Sequence[tuple[int, int]], lease_until: float
    ) -> list[int]:
        if not running:
            return []
        return await self._run(
            partial(ops.extend, self._q, worker, list(running), lease_until), tx=False
        )

    async def requeue_worker(self, worker: str, now: float) -> Requeued:
        return await self._run(partial(ops.requeue_worker, self._q, worker, now))

    async def requeue_expired(self, now: float) -> Requeued:
        return await self._run(partial(ops.requeue_expired, self._q, now))

    async def promote_scheduled(self, now: float) -> set[str]:
        return await self._run(partial(ops.promote, self._q, now), tx=False)

    async def clock_offset(self) -> float:
        async def measure(conn: Conn) -> float:
            before = time.time()
            server = float(await conn.fetchval(self._q["server_time"]))
            return server - (before + time.time()) / 2

        return await self._run(measure, tx=False)

    async def warnings(self, older_than: float = 60.0) -> list[str]:
        return await self._run(partial(ops.warnings, self._q, older_than), tx=False)

    async def purge(self, before: float, limit: int) -> int:
        return await self.purge_finished(before, limit)

    async def purge_finished(
        self,
        before: float,
        limit: int,
        *,
        queue: str | None = None,
        skip: Sequence[str] = (),
        states: Sequence[JobState] | None = None,
    ) -> int:
        wanted = finished_states(states)
        op = partial(retention_ops.purge, self._q, before, limit, queue, list(skip), wanted)
        return await self._run(op)

    async def retention_overrides(self) -> dict[str, float | None]:
        return await self._run(partial(retention_ops.overrides, self._q), tx=False)

    async def set_retention(self, queue: str, retention: float | None, now: float) -> None:
        op = partial(retention_ops.set_retention, self._q, queue, retention, now)
        await self._run(op, tx=False)

    async def reset_retention(self, queue: str) -> None:
        await self._run(partial(retention_ops.reset_retention, self._q, queue), tx=False)

    async def count_ahead(self, job: Job) -> int:
        return await self._run(partial(retention_ops.count_ahead, self._q, job), tx=False)

    async def add_token(self, info: TokenInfo, digest: str) -> None:
        await self._run(partial(token_ops.add, self._q, info, digest))

    async def tokens(self) -> list[TokenInfo]:
        return await self._run(partial(token_ops.listing, self._q), tx=False)

    async def token(self, token_id: str) -> tuple[TokenInfo, str] | None:
        return await self._run(partial(token_ops.by_id, self._q, token_id), tx=False)

    async def revoke_token(self, ident: str, now: float) -> TokenInfo:
        return await self._run(partial(token_ops.revoke, self._q, ident, now))

    async def has_tokens(self) -> bool:
        return await self._run(partial(token_ops.any_token, self._q), tx=False)

    async def add_schedule(self, spec: ScheduleSpec, now: float) -> Schedule:
        return await self._run(partial(schedule_ops.add, self._q, spec, now))

    async def upsert_schedules(self, specs: Sequence[ScheduleSpec], now: float) -> None:
        if specs:
            await self._run(partial(schedule_ops.upsert, self._q, list(specs), now))

    async def schedules(self) -> list[Schedule]:
        return await self._run(partial(schedule_ops.listing, self._q), tx=False)

    async def remove_schedule(self, name: str) -> Schedule:
        return await self._run(partial(schedule_ops.remove, self._q, name), tx=False)

    async def pause_schedule(self, name: str, paused: bool, now: float) -> Schedule:
        return await self._run(partial(schedule_ops.set_paused, self._q, name, paused, now))

    async def fire_schedules(self, now: float) -> set[str]:
        return await self._run(partial(schedule_ops.fire, self._q, now, FIRE_BATCH))

    async def publish_workers(self, broker_id: str, snapshot: bytes | None, now: float) -> None:
        op = partial(ops.publish_workers, self._q, broker_id, snapshot, now)
        await self._run(op, tx=False)

    async def worker_snapshots(self, since: float) -> list[tuple[str, bytes]]:
        return await self._run(partial(ops.worker_snapshots, self._q, since), tx=False)

    async def set_paused(self, queue: str, paused: bool, now: float) -> None:
        await self._run(partial(ops.set_paused, self._q, queue, paused, now), tx=False)

    async def paused_queues(self) -> set[str]:
        return await self._run(partial(ops.paused_queues, self._q), tx=False)

    async def set_rate_limit(self, limit: RateLimit, now: float) -> None:
        await self._run(partial(flow.set_rate_limit, self._q, limit, now), tx=False)

    async def remove_rate_limit(self, scope: str, name: str) -> bool:
        return await self._run(partial(flow.remove_rate_limit, self._q, scope, name), tx=False)

    async def rate_limits(self) -> list[RateLimit]:
        return await self._run(partial(flow.rate_limits, self._q), tx=False)

    async def concurrency_of(self, job_id: int) -> tuple[str, int, int] | None:
        op = partial(flow.concurrency_of, self._q, min(max(job_id, 0), 2**62))
        return await self._run(op, tx=False)

    async def keyed_queues(self) -> set[str]:
        return await self._run(partial(flow.keyed_queues, self._q), tx=False)

    async def cancel(self, job_id: int, now: float) -> Job:
        return await self._run(partial(ops.cancel, self._q, job_id, now))

    async def retry(self, job_id: int | None, queue: str | None, now: float) -> list[int]:
        return await self._run(partial(ops.retry_failed, self._q, job_id, queue, now))

    async def append_output(
        self, worker: str, batches: Sequence[OutputBatch], now: float
    ) -> list[int]:
        if not batches:
            return []
        return await self._run(partial(output.append, self._q, worker, list(batches), now))

    # -- reads -------------------------------------------------------------------------

    async def get(self, job_id: int) -> Job | None:
        async def read(conn: Conn) -> Job | None:
            job = await ops.get(self._q, job_id, conn)
            return None if job is None else await output.with_progress(self._q, job, conn)

        return await self._run(read, tx=False)

    async def read_logs(self, job_id: int, after: int = 0, limit: int = MAX_LINES) -> list[LogLine]:
        return await self._run(partial(output.read, self._q, job_id, after, limit), tx=False)

    async def list_jobs(
        self,
        state: JobState | None = None,
        queue: str | None = None,
        limit: int = 50,
        before: int | None = None,
        task: str | None = None,
        key: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[Job]:
        where = rows.job_conditions(state, queue, task, key, since, until, before)
        return await self._run(partial(ops.list_jobs, where, limit), tx=False)

    async def counts(self) -> dict[str, dict[str, int]]:
        return await self._run(partial(ops.counts, self._q), tx=False)
