"""The SQLite store: WAL, one writer thread with group commit, readers on their own
connections."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

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
from runq.store.migrate import migrate
from runq.store.queries import load_queries
from runq.store.retention import finished_states
from runq.store.schedules import FIRE_BATCH
from runq.store.sqlite import (
    deps_ops,
    file_ops,
    flow,
    ops,
    output,
    retention_ops,
    schedule_ops,
    token_ops,
)
from runq.store.sqlite.blobs import SqliteBlobs
from runq.store.sqlite.checkpoint import Checkpointer
from runq.store.sqlite.writer import Writer

T = TypeVar("T")


def connect(path: str, durability: str, readonly: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    if path != ":memory:" and not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {'FULL' if durability == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute(f"PRAGMA cache_size = {-8000 if readonly else -64000}")  # KiB
    if readonly:
        conn.execute("PRAGMA query_only = 1")
    return conn


class SqliteStore(Blobs):
    _blobs: SqliteBlobs

    def __init__(
        self,
        path: str,
        durability: str = "normal",
        retry: RetryPolicy = DEFAULT_RETRY,
        rand: random.Random | None = None,
    ) -> None:
        self.path = path
        self._q = load_queries("runq.store.sqlite")
        self._q.update(load_queries("runq.store.sqlite", "deps.sql"))
        self._q.update(load_queries("runq.store.sqlite", "flow.sql"))
        self._q.update(load_queries("runq.store.sqlite", "tokens.sql"))
        self._q.update(load_queries("runq.store.sqlite", "files.sql"))
        self._multi_insert = ops.multi_insert(self._q)
        self._retry = retry
        self._rand = rand or random.Random()
        self._memory = path == ":memory:"

        def open_writer() -> sqlite3.Connection:
            conn = connect(path, durability)
            migrate(conn)
            if not self._memory:
                conn.execute("PRAGMA wal_autocheckpoint = 0")  # the Checkpointer does it
            return conn

        self._writer = Writer(open_writer)
        self._checkpointer = (
            None if self._memory else Checkpointer(lambda: connect(path, durability))
        )
        self._local = threading.local()
        self._readers = ThreadPoolExecutor(2, thread_name_prefix="runq-sqlite-read")
        self._durability = durability
        self._closed = False
        self._blobs = SqliteBlobs(self._q, self._write, self._read, path, durability == "full")

    # -- plumbing ----------------------------------------------------------------------

    def _write(self, op: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        if self._closed:
            raise StoreError("the store is closed")
        return self._writer.run(op)

    async def _read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        if self._memory:
            return await self._write(op)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._with_reader, op)

    def _with_reader(self, op: Callable[[sqlite3.Connection], T]) -> T:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, self._durability, readonly=True)
            self._local.conn = conn
        try:
            return op(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"store failure: {exc}") from None

    async def subscribe(
        self,
        on_ready: Callable[[set[str] | None], None],
        on_finished: Callable[[list[int] | None], None],
    ) -> None:
        """Nothing to hear: one broker owns a SQLite store."""

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._writer.close)
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.close)
        self._readers.shutdown(wait=True)
        await self._blobs.close()

    # -- writes ----------------------------------------------------------------------

    async def submit_many(self, specs: Sequence[JobSpec], now: float) -> SubmitIds:
        if deps.any_after(specs):
            op = partial(deps_ops.submit, self._q, ops.insert_keyed, list(specs), now)
            return await self._submit(op, specs)
        if any_unique(specs):
            return await self._submit(partial(ops.insert_unique, self._q, list(specs), now), specs)
        batch = [rows.insert_row(s, now) for s in specs]
        return await self._submit(partial(ops.insert, self._q, self._multi_insert, batch), specs)

    def _submit(
        self, op: Callable[[sqlite3.Connection], SubmitIds], specs: Sequence[JobSpec]
    ) -> asyncio.Future[SubmitIds]:
        if has_keys(specs):  # concurrency keys: set in the insert's transaction
            op = partial(flow.submit, self._q, op, list(specs))
        if has_files(specs):  # input files: checked, set and linked in it too
            op = partial(file_ops.submit, self._q, op, list(specs))
        return self._write(op)

    async def claim(
        self, worker: str, queues: Sequence[str], limit: int, now: float, lease_until: float
    ) -> list[Assignment]:
        if limit <= 0 or not queues:
            return []
        op = partial(flow.claim, self._q, worker, list(queues), limit, now, lease_until)
        return await self._write(op)

    async def report(self, worker: str, outcomes: Sequence[Outcome], now: float) -> ReportResult:
        op = partial(ops.report, self._q, self._retry, self._rand, worker, list(outcomes), now)
        return await self._write(op)

    async def release(
        self, worker: str, running: Sequence[tuple[int, int]], now: float
    ) -> set[str]:
        return await self._write(partial(ops.release, self._q, worker, list(running), now))

    async def extend_leases(
        self, worker: str, running: Sequence[tuple[int, int]], lease_until: float
    ) -> list[int]:
        return await self._write(partial(ops.extend, self._q, worker, list(running), lease_until))

    async def requeue_worker(self, worker: str, now: float) -> Requeued:
        return await self._write(partial(ops.requeue_worker, self._q, worker, now))

    async def requeue_expired(self, now: float) -> Requeued:
        return await self._write(partial(ops.requeue_expired, self._q, now))

    async def promote_scheduled(self, now: float) -> set[str]:
        return await self._write(partial(ops.promote, self._q, now))

    async def clock_offset(self) -> float:
        return 0.0  # the store is on this host

    async def warnings(self, older_than: float = 60.0) -> list[str]:
        return []  # one writer, short transactions: nothing holds back a checkpoint

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
        gone, blobs = await self._write(op)
        await self._blobs.drop_bytes(blobs)
        return gone

    async def retention_overrides(self) -> dict[str, float | None]:
        return await self._read(partial(retention_ops.overrides, self._q))

    async def set_retention(self, queue: str, retention: float | None, now: float) -> None:
        await self._write(partial(retention_ops.set_retention, self._q, queue, retention, now))

    async def reset_retention(self, queue: str) -> None:
        await self._write(partial(retention_ops.reset_retention, self._q, queue))

    async def count_ahead(self, job: Job) -> int:
        return await self._read(partial(retention_ops.count_ahead, self._q, job))

    async def add_token(self, info: TokenInfo, digest: str) -> None:
        await self._write(partial(token_ops.add, self._q, info, digest))

    async def tokens(self) -> list[TokenInfo]:
        return await self._read(partial(token_ops.listing, self._q))

    async def token(self, token_id: str) -> tuple[TokenInfo, str] | None:
        return await self._read(partial(token_ops.by_id, self._q, token_id))

    async def revoke_token(self, ident: str, now: float) -> TokenInfo:
        return await self._write(partial(token_ops.revoke, self._q, ident, now))

    async def has_tokens(self) -> bool:
        return await self._read(partial(token_ops.any_token, self._q))

    async def add_schedule(self, spec: ScheduleSpec, now: float) -> Schedule:
        return await self._write(partial(schedule_ops.add, self._q, spec, now))

    async def upsert_schedules(self, specs: Sequence[ScheduleSpec], now: float) -> None:
        await self._write(partial(schedule_ops.upsert, self._q, list(specs), now))

    async def schedules(self) -> list[Schedule]:
        return await self._read(partial(schedule_ops.listing, self._q))

    async def remove_schedule(self, name: str) -> Schedule:
        return await self._write(partial(schedule_ops.remove, self._q, name))

    async def pause_schedule(self, name: str, paused: bool, now: float) -> Schedule:
        return await self._write(partial(schedule_ops.set_paused, self._q, name, paused, now))

    async def fire_schedules(self, now: float) -> set[str]:
        op = partial(schedule_ops.fire, self._q, self._multi_insert, now, FIRE_BATCH)
        return await self._write(op)

    async def publish_workers(self, broker_id: str, snapshot: bytes | None, now: float) -> None:
        await self._write(partial(ops.publish_workers, self._q, broker_id, snapshot, now))

    async def worker_snapshots(self, since: float) -> list[tuple[str, bytes]]:
        return await self._read(partial(ops.worker_snapshots, self._q, since))

    async def set_paused(self, queue: str, paused: bool, now: float) -> None:
        await self._write(partial(ops.set_paused, self._q, queue, paused, now))

    async def paused_queues(self) -> set[str]:
        return await self._read(partial(ops.paused_queues, self._q))

    async def set_rate_limit(self, limit: RateLimit, now: float) -> None:
        await self._write(partial(flow.set_rate_limit, self._q, limit, now))

    async def remove_rate_limit(self, scope: str, name: str) -> bool:
        return await self._write(partial(flow.remove_rate_limit, self._q, scope, name))

    async def rate_limits(self) -> list[RateLimit]:
        return await self._read(partial(flow.rate_limits, self._q))

    async def concurrency_of(self, job_id: int) -> tuple[str, int, int] | None:
        return await self._read(partial(flow.concurrency_of, self._q, job_id))

    async def keyed_queues(self) -> set[str]:
        return await self._read(partial(flow.keyed_queues, self._q))

    async def cancel(self, job_id: int, now: float) -> Job:
        return await self._write(partial(ops.cancel, self._q, job_id, now))

    async def retry(self, job_id: int | None, queue: str | None, now: float) -> list[int]:
        return await self._write(partial(ops.retry_failed, self._q, job_id, queue, now))

    async def append_output(
        self, worker: str, batches: Sequence[OutputBatch], now: float
    ) -> list[int]:
        return await self._write(partial(output.append, self._q, worker, list(batches), now))

    # -- reads -------------------------------------------------------------------------

    async def get(self, job_id: int) -> Job | None:
        return await self._read(partial(ops.get, self._q, job_id))

    async def read_logs(self, job_id: int, after: int = 0, limit: int = MAX_LINES) -> list[LogLine]:
        return await self._read(partial(output.read, self._q, job_id, after, limit))

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
        return await self._read(partial(ops.list_jobs, where, limit))

    async def counts(self) -> dict[str, dict[str, int]]:
        return await self._read(partial(ops.counts, self._q))
