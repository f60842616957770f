"""The SQLite store: WAL, one writer thread with group commit, readers on their own
connections."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from importlib import resources
from typing import Any, TypeVar

import msgspec

from runq.errors import IllegalTransition, StoreError, UnknownJob
from runq.model import Assignment, ErrorInfo, Job, JobSpec, JobState, Outcome, RetryPolicy
from runq.model.job import TERMINAL_STATES
from runq.model.policy import after_failure
from runq.model.retry import DEFAULT_RETRY
from runq.store.base import ReportResult, Requeued
from runq.store.migrate import migrate
from runq.store.sqlite.checkpoint import Checkpointer
from runq.store.sqlite.writer import Writer

T = TypeVar("T")
_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()
_dec_error = msgspec.msgpack.Decoder(ErrorInfo)
_WORKER_LOST = ErrorInfo("worker_lost", "the worker running this job went away")
_LEASE_EXPIRED = ErrorInfo("lease_expired", "the worker stopped heartbeating past its lease")
_ROWS_PER_INSERT = 50  # rows in one multi-row INSERT: fewer statement steps per job


def load_queries() -> dict[str, str]:
    text = resources.files("runq.store.sqlite").joinpath("queries.sql").read_text()
    queries: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        if line.startswith("-- name:"):
            name = line.split(":", 1)[1].strip()
            queries[name] = ""
        elif name and not line.startswith("--"):
            queries[name] += line + "\n"
    return {k: v.strip() for k, v in queries.items()}


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


class SqliteStore:
    def __init__(
        self,
        path: str,
        durability: str = "normal",
        retry: RetryPolicy = DEFAULT_RETRY,
        rand: random.Random | None = None,
    ) -> None:
        self.path = path
        self._q = load_queries()
        values = self._q["insert_plain"].partition("VALUES")[2]
        self._multi_insert = self._q["insert_plain"] + (", " + values) * (_ROWS_PER_INSERT - 1)
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

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._writer.close)
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.close)
        self._readers.shutdown(wait=True)

    # -- submit ------------------------------------------------------------------------

    async def submit_many(self, specs: Sequence[JobSpec], now: float) -> list[int]:
        rows = [_insert_row(s, now) for s in specs]
        return await self._write(partial(self._insert, rows))

    def _insert(self, rows: list[tuple[Any, ...]], conn: sqlite3.Connection) -> list[int]:
        if all(row[8] is None for row in rows):
            # No idempotency keys: one executemany, and the ids are the next ones in
            # sequence (this thread is the only writer).
            before = self._last_id(conn)
            whole = len(rows) - len(rows) % _ROWS_PER_INSERT
            if whole:
                flat = [
                    tuple(v for row in rows[i : i + _ROWS_PER_INSERT] for v in row)
                    for i in range(0, whole, _ROWS_PER_INSERT)
                ]
                conn.executemany(self._multi_insert, flat)
            conn.executemany(self._q["insert_plain"], rows[whole:])
            return list(range(before + 1, before + 1 + len(rows)))
        ids: list[int] = []
        insert, by_key = self._q["insert"], self._q["id_by_key"]
        for row in rows:
            cur = conn.execute(insert, row)
            if cur.rowcount == 1 and cur.lastrowid is not None:
                ids.append(cur.lastrowid)
            else:  # idempotency key already used: answer with the existing job
                ids.append(conn.execute(by_key, (row[8],)).fetchone()[0])
        return ids

    @staticmethod
    def _last_id(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'").fetchone()
        return 0 if row is None else int(row[0])

    # -- claim -------------------------------------------------------------------------

    async def claim(
        self, worker: str, queues: Sequence[str], limit: int, now: float, lease_until: float
    ) -> list[Assignment]:
        if limit <= 0 or not queues:
            return []
        return await self._write(
            partial(self._claim, worker, list(queues), limit, now, lease_until)
        )

    def _claim(
        self,
        worker: str,
        queues: list[str],
        limit: int,
        now: float,
        lease_until: float,
        conn: sqlite3.Connection,
    ) -> list[Assignment]:
        if len(queues) == 1:
            rows = conn.execute(
                self._q["claim_queue"], (worker, lease_until, now, queues[0], limit)
            ).fetchall()
        else:
            candidates: list[tuple[int, float, int]] = []
            for q in queues:
                for id_, prio, run_at in conn.execute(self._q["ready_in_queue"], (q, limit)):
                    candidates.append((-prio, run_at, id_))
            ids = [c[2] for c in sorted(candidates)[:limit]]
            if not ids:
                return []
            rows = conn.execute(
                self._q["claim_ids"], (worker, lease_until, now, msgspec.json.encode(ids))
            ).fetchall()
        rows.sort(key=lambda r: (-r[7], r[8], r[0]))
        return [_assignment(r) for r in rows]

    # -- reports -----------------------------------------------------------------------

    async def report(self, worker: str, outcomes: Sequence[Outcome], now: float) -> ReportResult:
        return await self._write(partial(self._report, worker, list(outcomes), now))

    def _report(
        self, worker: str, outcomes: list[Outcome], now: float, conn: sqlite3.Connection
    ) -> ReportResult:
        res = ReportResult([], [], [], set())
        succeed = self._q["succeed"]
        for o in outcomes:
            if o.ok:
                cur = conn.execute(succeed, (_enc.encode(o.result), now, o.id, o.fence, worker))
                if cur.rowcount == 1:
                    res.accepted.append(o.id)
                    res.finished.append(o.id)
                else:
                    res.stale.append(o.id)
            else:
                self._fail(conn, worker, o, now, res)
        return res

    def _fail(
        self, conn: sqlite3.Connection, worker: str, o: Outcome, now: float, res: ReportResult
    ) -> None:
        row = conn.execute(self._q["running_attempt"], (o.id, o.fence, worker)).fetchone()
        if row is None:
            res.stale.append(o.id)
            return
        attempts, max_attempts, queue = row
        error = o.error or ErrorInfo("error", "the attempt failed")
        state, run_at = after_failure(error, attempts, max_attempts, now, self._retry, self._rand)
        conn.execute(
            self._q["fail_attempt"],
            (str(state), run_at, _enc.encode(error), str(state), now, o.id, o.fence),
        )
        res.accepted.append(o.id)
        if state in TERMINAL_STATES:
            res.finished.append(o.id)
        else:
            res.requeued_queues.add(queue)

    # -- leases ------------------------------------------------------------------------

    async def extend_leases(
        self, worker: str, running: Sequence[tuple[int, int]], lease_until: float
    ) -> list[int]:
        return await self._write(partial(self._extend, worker, list(running), lease_until))

    def _extend(
        self,
        worker: str,
        running: list[tuple[int, int]],
        lease_until: float,
        conn: sqlite3.Connection,
    ) -> list[int]:
        lost: list[int] = []
        sql = self._q["extend_lease"]
        for job_id, fence in running:
            if conn.execute(sql, (lease_until, job_id, fence, worker)).rowcount != 1:
                lost.append(job_id)
        return lost

    async def requeue_worker(self, worker: str, now: float) -> Requeued:
        err = _enc.encode(_WORKER_LOST)
        sql = self._q["requeue_worker"]
        return await self._write(lambda c: _requeued(c.execute(sql, (err, now, worker))))

    async def requeue_expired(self, now: float) -> Requeued:
        err = _enc.encode(_LEASE_EXPIRED)
        sql = self._q["requeue_expired"]
        return await self._write(lambda c: _requeued(c.execute(sql, (err, now, now))))

    async def promote_scheduled(self, now: float) -> set[str]:
        return await self._write(lambda c: {r[0] for r in c.execute(self._q["promote"], (now,))})

    # -- cancel ------------------------------------------------------------------------

    async def cancel(self, job_id: int, now: float) -> Job:
        return await self._write(partial(self._cancel, job_id, now))

    def _cancel(self, job_id: int, now: float, conn: sqlite3.Connection) -> Job:
        before = self._get(job_id, conn)
        if before is None:
            raise UnknownJob.for_id(job_id)
        if conn.execute(self._q["cancel"], (now, job_id)).rowcount != 1:
            raise IllegalTransition(
                f"job {job_id} is already {before.state} and cannot be cancelled"
            )
        return before

    # -- queries -----------------------------------------------------------------------

    async def get(self, job_id: int) -> Job | None:
        return await self._read(partial(self._get, job_id))

    def _get(self, job_id: int, conn: sqlite3.Connection) -> Job | None:
        cur = conn.execute(self._q["get"], (job_id,))
        row = cur.fetchone()
        return None if row is None else _job(row)

    async def list_jobs(
        self,
        state: JobState | None = None,
        queue: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> list[Job]:
        where, params = [], []
        for column, value in (("state", state), ("queue", queue)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(str(value))
        if before is not None:
            where.append("id < ?")
            params.append(str(before))
        sql = "SELECT * FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        args = (*params, limit)
        return await self._read(lambda c: [_job(r) for r in c.execute(sql, args)])

    async def counts(self) -> dict[str, dict[str, int]]:
        def op(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
            out: dict[str, dict[str, int]] = {}
            for queue, state, n in conn.execute(self._q["counts"]):
                out.setdefault(queue, {})[state] = n
            return out

        return await self._read(op)


def _requeued(rows: Iterable[tuple[int, str, str]]) -> Requeued:
    out = Requeued(set(), [])
    for job_id, queue, state in rows:
        if state == "failed":
            out.failed.append(job_id)
        else:
            out.queues.add(queue)
    return out


def _insert_row(s: JobSpec, now: float) -> tuple[Any, ...]:
    run_at = s.ready_at(now)
    state = JobState.SCHEDULED if run_at > now else JobState.QUEUED
    return (
        s.task,
        _enc.encode((s.args, s.kwargs)),
        s.queue,
        s.priority,
        str(state),
        s.max_attempts,
        run_at,
        s.timeout,
        s.key,
        now,
    )


def _assignment(r: tuple[Any, ...]) -> Assignment:
    args, kwargs = _dec.decode(r[3])
    return Assignment(r[0], r[1], r[2], args, kwargs, r[4], r[5], r[6])


def _job(r: tuple[Any, ...]) -> Job:
    (id_, task, args, queue, prio, state, attempts, max_attempts, run_at, timeout, key) = r[:11]
    (result, error, worker, fence, lease, submitted, started, finished) = r[11:]
    a, kw = _dec.decode(args)
    return Job(
        id=id_,
        task=task,
        args=a,
        kwargs=kw,
        queue=queue,
        priority=prio,
        state=JobState(state),
        attempts=attempts,
        max_attempts=max_attempts,
        run_at=run_at,
        submitted_at=submitted,
        timeout=timeout,
        key=key,
        result=None if result is None else _dec.decode(result),
        error=None if error is None else _dec_error.decode(error),
        worker=worker,
        fence=fence,
        lease_until=lease,
        started_at=started,
        finished_at=finished,
    )
