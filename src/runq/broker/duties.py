"""Periodic duties. Each ``run_*`` takes ``now`` so tests can drive it with a fake clock."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runq.broker.server import Broker

from runq.broker.cluster import PUBLISH_EVERY

log = logging.getLogger("runq.broker")
PURGE_BATCH = 1000  # finished jobs deleted in one transaction
PURGE_ROUNDS = 10  # batches in one purge call
SCHEDULE_EVERY = 0.5  # seconds between looks for due schedule ticks
BLOB_SWEEP_EVERY = 60.0  # seconds between sweeps of files nobody needs


class Duties:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def promote(self, now: float) -> int:
        """Scheduled jobs whose time has come become queued."""
        queues = await self.broker.store.promote_scheduled(now)
        if queues:
            self.broker.dispatcher.wake(queues)
        return len(queues)

    async def fire_schedules(self, now: float) -> int:
        """Ticks of periodic schedules that are due become jobs (each tick once, whichever
        broker fires it); the dispatcher hears of the queues that got them."""
        queues = await self.broker.store.fire_schedules(now)
        if queues:
            self.broker.dispatcher.wake(queues)
        return len(queues)

    async def expire_leases(self, now: float) -> int:
        """Running jobs whose lease ran out go back to the queue (or fail, out of tries).
        A worker still connected that held one of them over its connection went silent:
        it gets nothing more and its connection is closed."""
        requeued = await self.broker.store.requeue_expired(now)
        if not (requeued.queues or requeued.failed):
            return 0
        log.warning("leases expired: %d job(s) taken back", len(requeued.holders))
        self.broker.counters["lease_expiries"] += len(requeued.holders)
        self.broker.metrics.lease_expiries.inc(len(requeued.holders))
        self.broker.metrics.forget(job_id for job_id, _ in requeued.holders)
        by_worker: dict[str, list[int]] = {}
        for job_id, worker_id in requeued.holders:
            by_worker.setdefault(worker_id, []).append(job_id)
        for worker_id, ids in by_worker.items():
            self._silent(worker_id, ids)
        self.broker.job_finished(requeued.failed)
        if requeued.queues:
            self.broker.dispatcher.wake(requeued.queues)
        return len(requeued.holders)

    def _silent(self, worker_id: str, ids: list[int]) -> None:
        session = self.broker.dispatcher.sessions.get(worker_id)
        if session is None:
            return
        held = [job_id for job_id in ids if session.inflight.pop(job_id, None) is not None]
        if held:  # sent over this connection and never heard of again: not to be trusted
            log.warning("worker %s let its lease run out; closing its connection", worker_id)
            session.closed = True
            session.conn.close()
        # (a job a previous broker claimed for it but never sent is only re-queued)

    async def purge(self, now: float) -> int:
        """Finished jobs older than their queue's retention (its own, set with `runq queue
        retention`, or the broker's) go, in batches of PURGE_BATCH (at most PURGE_ROUNDS
        a call, so one call never holds the writer for long). Each batch is its own
        guarded delete: brokers that purge at once delete each job once."""
        overrides = await self.broker.store.retention_overrides()
        # (cut, queue): a queue with its own retention, then every other queue
        plan: list[tuple[float, str | None]] = [
            (now - r, q) for q, r in overrides.items() if r is not None
        ]
        retention = self.broker.config.retention
        if retention is not None:
            plan.append((now - retention, None))
        gone, rounds = 0, PURGE_ROUNDS
        for before, queue in plan:
            n, rounds = await self._purge_rounds(before, queue, sorted(overrides), rounds)
            gone += n
        if gone:
            log.info("purged %d finished job(s) past the retention period", gone)
        return gone

    async def _purge_rounds(
        self, before: float, queue: str | None, skip: list[str], rounds: int
    ) -> tuple[int, int]:
        """Batches of ``queue`` (None: the queues not in ``skip``) until one is short or
        ``rounds`` run out; returns the jobs gone and the rounds left."""
        gone = 0
        while rounds > 0:
            rounds -= 1
            n = await self.broker.store.purge_finished(
                before, PURGE_BATCH, queue=queue, skip=() if queue is not None else skip
            )
            gone += n
            if n < PURGE_BATCH:
                break
        return gone, rounds

    async def sweep_blobs(self, now: float) -> int:
        """Files nobody needs go, with their bytes: uploads left unfinished and inputs no
        job named for ``file_grace`` seconds, artifacts of attempts whose report was not
        accepted once their job finished (store/base.FileStore.sweep_blobs)."""
        gone = await self.broker.store.sweep_blobs(now, self.broker.config.file_grace)
        if gone:
            log.info("swept %d file(s) nobody needs", gone)
        return gone

    async def run(self) -> None:
        cfg = self.broker.config
        loop = asyncio.get_running_loop()
        next_sweep = next_purge = next_publish = next_fire = next_blobs = loop.time()
        while True:
            try:
                await self.promote(self.broker.clock())
                if loop.time() >= next_sweep:
                    await self.expire_leases(self.broker.clock())
                    next_sweep = loop.time() + cfg.sweep_every
                if loop.time() >= next_fire:
                    await self.fire_schedules(self.broker.clock())
                    next_fire = loop.time() + SCHEDULE_EVERY
                if loop.time() >= next_purge:
                    await self.purge(self.broker.clock())
                    next_purge = loop.time() + cfg.purge_every
                if loop.time() >= next_blobs:
                    await self.sweep_blobs(self.broker.clock())
                    next_blobs = loop.time() + BLOB_SWEEP_EVERY
                if loop.time() >= next_publish:
                    await self.broker.cluster.publish(self.broker.clock())
                    next_publish = loop.time() + PUBLISH_EVERY
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("periodic duty failed: %s", exc)
            await asyncio.sleep(cfg.promote_every)
