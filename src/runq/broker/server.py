"""The broker: owns the store, the two listening ports, the dispatcher and its duties."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any

import msgspec

from runq.broker import handlers
from runq.broker.activity import Activity
from runq.broker.auth import Gate
from runq.broker.cluster import Cluster
from runq.broker.config import BrokerConfig
from runq.broker.connection import Connection, Handler
from runq.broker.dispatch import Dispatcher, WorkerSession
from runq.broker.duties import Duties
from runq.broker.flow import FlowWatch
from runq.broker.guard import AddressCount, QuietLog
from runq.broker.metrics import Metrics
from runq.clock import Clock, system_clock
from runq.errors import AuthError, Forbidden, ProtocolError, RunqError, Unauthorized, UnknownJob
from runq.model import Assignment, Job, JobState, Outcome
from runq.protocol import limits as L
from runq.protocol import messages as m
from runq.store.base import ReportResult, Store

log = logging.getLogger("runq.broker")
SERVER_NAME = "runq"
RECHECK_EVERY = 1.0  # seconds: claims and waiters look at the store at least this often


class Broker:
    def __init__(self, store: Store, config: BrokerConfig, clock: Clock = system_clock) -> None:
        self.store = store
        self.config = config
        # Brokers sharing a store keep its time: the system clock plus the store's offset
        # (measured at start and every minute). A clock passed in (tests) is used as is.
        self._offset = 0.0
        self.clock: Clock = self._store_time if clock is system_clock else clock
        self.dispatcher = Dispatcher(self)
        self.duties = Duties(self)
        self.cluster = Cluster(self)
        self.gate = Gate(self)  # who is asking: tokens, failed attempts
        self.connections: set[Connection] = set()
        self.addresses = AddressCount(config.max_connections_per_address)  # both ports
        self.quiet = QuietLog(log)  # warnings about closed connections, at most 10 a second
        self.handlers: dict[type, Handler] = {
            **handlers.CLIENT_HANDLERS,
            **handlers.WORKER_HANDLERS,
        }
        self.counters: collections.Counter[str] = collections.Counter()
        self.activity = Activity()
        self.metrics = Metrics()
        self.paused_queues: set[str] = set()  # queues whose jobs are not dispatched
        self.paused_version = 0  # bumped by each pause or resume made here
        self.flow = FlowWatch(self)  # rate limits and keyed queues, read each second
        self.started_at = clock()
        self.stopping = False
        self.accepting = True  # false while shutting down: submits are refused
        self.client_port = 0
        self.worker_port = 0
        self._waiters: dict[int, set[asyncio.Future[None]]] = {}
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._finished_times: collections.deque[tuple[float, int]] = collections.deque()

    # -- life cycle --------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        await self.gate.check_bind()
        tls: dict[str, Any] = {}  # one context, built once, for both ports
        if cfg.tls is not None:
            tls = {"ssl": cfg.tls.context(), "ssl_handshake_timeout": cfg.handshake_timeout}
        client = await loop.create_server(
            lambda: Connection(self, "client"), cfg.host, cfg.port, reuse_address=True, **tls
        )
        worker = await loop.create_server(
            lambda: Connection(self, "worker"), cfg.host, cfg.worker_port, reuse_address=True, **tls
        )
        self._servers = [client, worker]
        self.client_port = client.sockets[0].getsockname()[1]
        self.worker_port = worker.sockets[0].getsockname()[1]
        self.spawn(self.dispatcher.run())
        self.spawn(self.duties.run())
        await self._measure_offset()
        await self.refresh_paused()
        await self.flow.refresh()
        self.spawn(self.flow.run())
        self.started_at = self.clock()
        self.spawn(self._recheck())
        await self.store.subscribe(self._on_ready, self.job_finished)
        self.dispatcher.wake()
        log.info(
            "broker listening on %s: clients on %d, workers on %d%s",
            cfg.host,
            self.client_port,
            self.worker_port,
            " (TLS)" if tls else "",
        )

    async def stop(self, grace: float = 0.0) -> None:
        """Stop taking work, wait up to ``grace`` seconds for the reports of running jobs,
        then close every connection and the store. Workers keep running what they have
        and report it to the next broker with their fences."""
        if self.stopping:
            return
        self.dispatcher.paused = True
        self.accepting = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while loop.time() < deadline and any(s.inflight for s in self.dispatcher.sessions.values()):
            await asyncio.sleep(0.05)
        self.stopping = True
        for server in self._servers:
            server.close()
        for conn in list(self.connections):
            conn.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        with contextlib.suppress(RunqError):  # the store may be gone; its record ages out
            await self.cluster.withdraw()
        await self.store.close()
        log.info("broker stopped")

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed: %r", task.exception())

    # -- handshake ---------------------------------------------------------------------

    async def hello(self, conn: Connection, msg: m.Hello) -> None:
        if msg.version != L.PROTOCOL_VERSION:
            raise ProtocolError(
                f"protocol version {msg.version} is not supported (this broker speaks"
                f" {L.PROTOCOL_VERSION})"
            )
        if msg.role != conn.role:
            raise AuthError(f"this port serves {conn.role}s, not {msg.role}s")
        conn.grant = await self.gate.admit(msg.token, conn.address)
        self._check_role(conn, msg)
        lost: list[int] = []
        if conn.role == "worker":
            lost = await self._worker_hello(conn, msg)
        conn.greeted_as()
        lease, max_frame = self.config.lease, self.config.max_frame
        conn.send(m.Welcome(L.PROTOCOL_VERSION, SERVER_NAME, lease, max_frame))
        if lost:  # jobs it still runs but no longer holds: tell it to stop them
            conn.send(m.CancelJobs(lost))

    @staticmethod
    def _check_role(conn: Connection, msg: m.Hello) -> None:
        grant = conn.grant
        if conn.role == "client" and not grant.client:
            raise Forbidden("this token may not use the client port (it is a worker's token)")
        if conn.role == "worker":
            refused = [q for q in msg.queues or ["default"] if not grant.may_work(q)]
            if refused:
                raise Forbidden(f"this token may not work on queue {refused[0]!r}")

    async def _worker_hello(self, conn: Connection, msg: m.Hello) -> list[int]:
        if not msg.worker_id:
            raise ProtocolError("a worker's hello must carry its worker_id")
        if msg.worker_id in self.dispatcher.sessions:
            raise ProtocolError(f"a worker with id {msg.worker_id!r} is already connected")
        queues = list(dict.fromkeys(msg.queues or ["default"]))
        session = WorkerSession(
            msg.worker_id, conn, queues, msg.concurrency, self.clock(), msg.info
        )
        conn.session = session
        self.dispatcher.sessions[session.id] = session
        log.info("worker %s connected from %s (queues %s)", session.id, conn.peer, ",".join(queues))
        lost: set[int] = set()
        if msg.running:
            lease_until = self.clock() + self.config.lease
            lost = set(await self.store.extend_leases(session.id, msg.running, lease_until))
            session.inflight.update((i, f) for i, f in msg.running if i not in lost)
        self.dispatcher.wake()
        return sorted(lost)

    def worker_gone(self, session: WorkerSession) -> None:
        session.closed = True
        self.metrics.forget(session.inflight)
        if self.dispatcher.sessions.get(session.id) is session:
            del self.dispatcher.sessions[session.id]
        log.info("worker %s disconnected", session.id)
        if not self.stopping:
            self.spawn(self.requeue_worker(session.id))

    async def requeue_worker(self, worker_id: str) -> None:
        if worker_id in self.dispatcher.sessions:
            return  # it came back already and holds its jobs again
        requeued = await self.store.requeue_worker(worker_id, self.clock())
        if requeued.queues:
            log.info("re-queued the jobs of worker %s", worker_id)
            self.dispatcher.wake(requeued.queues)
        self.job_finished(requeued.failed)

    def stop_running(self, worker_id: str, ids: Sequence[int]) -> None:
        session = self.dispatcher.sessions.get(worker_id)
        if session is not None:
            for job_id in ids:
                session.inflight.pop(job_id, None)
            if session.conn.greeted:  # else its next heartbeat hears of it, after welcome
                session.conn.send(m.CancelJobs(list(ids)))
            self.dispatcher.wake()

    # -- completion and waiting --------------------------------------------------------

    def count_started(self, jobs: list[Assignment]) -> None:
        self.counters["started"] += len(jobs)
        self.activity.add("started", len(jobs), self.clock())
        self.metrics.on_start(jobs)

    def count_report(self, outcomes: Sequence[Outcome], res: ReportResult) -> None:
        accepted = set(res.accepted)
        ok = sum(1 for o in outcomes if o.ok and o.id in accepted)
        self.counters["succeeded"] += ok
        self.counters["failed_attempts"] += len(accepted) - ok
        now = self.clock()
        self.activity.add("succeeded", ok, now)
        self.activity.add("failed", len(accepted) - ok, now)
        self.counters["stale_reports"] += len(res.stale)
        self.metrics.stale_reports.inc(len(res.stale))
        self.metrics.on_report(outcomes, accepted, set(res.finished))
        if res.stale:
            log.warning("refused %d stale report(s): %s", len(res.stale), res.stale[:10])
        if res.finished:
            self._finished_times.append((time.monotonic(), len(res.finished)))
            self.job_finished(res.finished)

    def _on_ready(self, queues: set[str] | None) -> None:
        """Another broker (or this one) left jobs ready in ``queues`` (None: any)."""
        if queues is None:
            self.dispatcher.forget_empty()
        else:
            self.dispatcher.wake(queues)

    async def _recheck(self) -> None:
        """Wake-ups from other brokers are hints that can be lost (a dropped listen
        connection): claim from every queue again at least once a second. Once a
        minute, measure the store's clock again."""
        ticks = 0
        while True:
            await asyncio.sleep(RECHECK_EVERY)
            self.dispatcher.forget_empty()
            await self.refresh_paused()
            await self.flow.refresh()
            ticks += 1
            if ticks % 2 == 0:
                await self._close_unauthorized()
            if ticks % 60 == 0:
                await self._measure_offset()

    async def _close_unauthorized(self) -> None:
        """Close the connections whose token was revoked or expired since their hello
        (or that came in with none, before the store had its first token)."""
        for conn in [c for c in self.connections if c.greeted]:
            try:
                valid = await self.gate.still_valid(conn.grant)
            except RunqError as exc:  # the store is unreachable: look again later
                log.warning("cannot check access tokens: %s", exc.message)
                return
            if not valid:
                conn.fail(0, Unauthorized("the access token of this connection no longer works"))

    async def refresh_paused(self) -> None:
        """Read which queues are paused (other brokers may have paused or resumed some)."""
        version = self.paused_version
        try:
            found = await self.store.paused_queues()
        except RunqError as exc:  # unreachable for now: keep what we know
            log.warning("cannot read the paused queues: %s", exc.message)
            return
        if version != self.paused_version:
            return  # a pause or resume here raced with the read: it is newer
        resumed = self.paused_queues - found
        self.paused_queues = found
        if resumed:
            self.dispatcher.wake(resumed)

    def _store_time(self) -> float:
        return time.time() + self._offset

    async def _measure_offset(self) -> None:
        try:
            self._offset = await self.store.clock_offset()
        except RunqError as exc:  # unreachable for now: keep the last offset
            log.warning("cannot read the store's clock: %s", exc.message)

    def job_finished(self, ids: Iterable[int] | None) -> None:
        """Wake the waiters of ``ids`` (None: every waiter, to look again)."""
        for job_id in list(self._waiters) if ids is None else ids:
            for fut in self._waiters.pop(job_id, ()):
                if not fut.done():
                    fut.set_result(None)

    async def wait_for(self, job_id: int, timeout: float) -> Job:
        """The job once it has finished, or as it is when ``timeout`` runs out. The
        store is read again on every wake-up and at least once a second."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(job_id, set()).add(fut)
            try:
                job = await self.store.get(job_id)
                if job is None:
                    raise UnknownJob.for_id(job_id)
                left = deadline - loop.time()
                if job.finished or left <= 0:
                    return job
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(fut, min(left, RECHECK_EVERY))
            finally:
                self._forget_waiter(job_id, fut)

    def _forget_waiter(self, job_id: int, fut: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(job_id)
        if waiters is not None:
            waiters.discard(fut)
            if not waiters:
                del self._waiters[job_id]

    # -- stats -------------------------------------------------------------------------

    def throughput(self, window: float = 10.0) -> float:
        now = time.monotonic()
        times = self._finished_times
        while times and times[0][0] < now - window:
            times.popleft()
        if not times:
            return 0.0
        span = max(min(window, now - self.started_mono), 1e-3)
        return sum(n for _, n in times) / span

    @property
    def started_mono(self) -> float:
        return time.monotonic() - (self.clock() - self.started_at)

    async def stats(self) -> dict[str, Any]:
        by_queue = await self.store.counts()
        totals = {str(s): 0 for s in JobState}
        for states in by_queue.values():
            for state, n in states.items():
                totals[state] = totals.get(state, 0) + n
        done = totals["succeeded"] + totals["failed"]
        everyone = await self.cluster.workers()
        return {
            "jobs": totals,
            "queues": by_queue,
            "processed": done,
            "success_rate": round(totals["succeeded"] / done, 4) if done else None,
            "workers": len(everyone),
            "worker_slots": sum(w.concurrency for w in everyone),
            "busy_slots": sum(w.running for w in everyone),
            "throughput": round(self.throughput(), 1),
            "stale_reports": self.counters["stale_reports"],
            "warnings": await self.store.warnings(),
            "activity": [msgspec.to_builtins(p) for p in self.activity.series(self.clock())],
            "since_start": dict(self.counters),
            "uptime": round(self.clock() - self.started_at, 1),
        }
