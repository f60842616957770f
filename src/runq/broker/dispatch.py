"""Dispatch: claim ready jobs for workers with free capacity and push them out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runq.model import Assignment
from runq.protocol import messages as m

if TYPE_CHECKING:
    from runq.broker.connection import Connection
    from runq.broker.server import Broker

log = logging.getLogger("runq.broker")
NONE: frozenset[str] = frozenset()


@dataclass(eq=False)
class WorkerSession:
    """A connected worker: what it serves, how much it can take, what it runs."""

    id: str
    conn: Connection
    queues: list[str]
    concurrency: int
    connected_at: float
    info: dict[str, str | int | float] = field(default_factory=dict)
    inflight: dict[int, int] = field(default_factory=dict)  # job id -> fence
    done: int = 0
    closed: bool = False
    draining: bool = False  # the worker is stopping: assign nothing more
    status: m.Status | None = None  # its last status message
    # held while its output is stored: its lines go in in order, and before its report
    output_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # the input files it may read, by job (broker/files.py); (job, fence) -> artifacts
    # opened as (count, bytes)
    inputs: dict[int, frozenset[str]] = field(default_factory=dict)
    artifacts: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)

    @property
    def free(self) -> int:
        return self.concurrency - len(self.inflight)

    def assign(self, jobs: list[Assignment]) -> None:
        if len(self.inputs) > 2 * self.concurrency:  # forget the jobs it no longer holds
            self.inputs = {j: b for j, b in self.inputs.items() if j in self.inflight}
        for job in jobs:
            self.inflight[job.id] = job.fence
            self.inputs[job.id] = frozenset(f.blob for f in job.files) if job.files else NONE
        self.conn.send(m.Assign(jobs))

    def may_read(self, blob: str) -> bool:
        """``blob`` is an input of a job this worker holds."""
        return any(blob in b and j in self.inflight for j, b in self.inputs.items())

    def describe(self) -> m.WorkerInfo:
        return m.WorkerInfo(
            self.id,
            self.queues,
            self.concurrency,
            len(self.inflight),
            self.done,
            self.connected_at,
            self.info,
            self.draining,
            self.status.rss_mb if self.status else 0.0,
            self.status.procs if self.status else [],
        )


class Dispatcher:
    """One loop: on each wake-up, claim for every worker that has room, in one round.

    Queues known to be empty are skipped until something puts a job in them (a submit,
    a promotion, a requeue). A version number per queue keeps a claim that raced with a
    submit from marking the queue empty after the submit's wake-up.
    """

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.sessions: dict[str, WorkerSession] = {}
        self._wake = asyncio.Event()
        self._empty: set[str] = set()
        self._version: dict[str, int] = {}
        self.paused = False  # set while the broker shuts down
        self._epoch = 0  # bumped by forget_empty
        self._watchers: set[asyncio.Future[None]] = set()  # pulling claimers waiting

    def next_wake(self) -> asyncio.Future[None]:
        """A future done at the next wake-up (jobs may be ready): long-polling claims
        wait on it."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watchers.add(fut)
        fut.add_done_callback(self._watchers.discard)
        return fut

    def forget_empty(self) -> None:
        """Claim from every queue again (after a change that may touch any queue); a
        round already claiming must not mark any queue empty when it ends."""
        self._epoch += 1
        self.wake(list(self._empty))

    def wake(self, queues: Iterable[str] | None = None) -> None:
        if queues is not None:
            for q in queues:
                self._empty.discard(q)
                self._version[q] = self._version.get(q, 0) + 1
        self._wake.set()
        for fut in list(self._watchers):
            if not fut.done():
                fut.set_result(None)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatch round failed; retrying shortly")
                await asyncio.sleep(0.5)
                self._wake.set()

    def open_queues(self, queues: Iterable[str]) -> list[str]:
        """``queues`` without the paused ones."""
        paused = self.broker.paused_queues
        return [q for q in queues if q not in paused]

    def _hungry(self) -> list[WorkerSession]:
        # A session is registered before its hello is done (its running jobs' leases are
        # being extended): nothing may reach the worker ahead of its welcome. A worker
        # that does not read what it was sent gets no more until it does.
        return [
            s
            for s in self.sessions.values()
            if s.free > 0
            and s.conn.greeted
            and not s.conn.writes_paused
            and not (s.closed or s.draining or self.paused)
            and any(q not in self._empty for q in self.open_queues(s.queues))
        ]

    async def _round(self) -> None:
        sessions = self._hungry()
        if not sessions:
            return
        broker = self.broker
        now = broker.clock()
        lease_until = now + broker.config.lease
        batch = broker.config.claim_batch
        queues = [self.open_queues(s.queues) for s in sessions]
        versions = [{q: self._version.get(q, 0) for q in qs} for qs in queues]
        epoch = self._epoch
        asks = [min(s.free, batch) for s in sessions]
        claims = await asyncio.gather(
            *(
                broker.store.claim(s.id, qs, n, now, lease_until)
                for s, qs, n in zip(sessions, queues, asks, strict=True)
            )
        )
        for session, asked, jobs, seen in zip(sessions, asks, claims, versions, strict=True):
            if jobs:
                self._deliver(session, jobs)
            if len(jobs) < asked and epoch == self._epoch:
                self._empty.update(q for q, v in seen.items() if self._version.get(q, 0) == v)
            else:
                self._wake.set()  # it may have room for more

    def _deliver(self, session: WorkerSession, jobs: list[Assignment]) -> None:
        if session.closed:
            # The worker left while we claimed: give the jobs straight back.
            self.broker.spawn(self.broker.requeue_worker(session.id))
            return
        session.assign(jobs)
        self.broker.count_started(jobs)
