"""Periodic duties. Each ``run_*`` takes ``now`` so tests can drive it with a fake clock."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runq.broker.server import Broker

log = logging.getLogger("runq.broker")


class Duties:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def promote(self, now: float) -> int:
        """Scheduled jobs whose time has come become queued."""
        queues = await self.broker.store.promote_scheduled(now)
        if queues:
            self.broker.dispatcher.wake(queues)
        return len(queues)

    async def expire_leases(self, now: float) -> int:
        """Running jobs whose lease ran out go back to the queue (or fail, out of tries)."""
        requeued = await self.broker.store.requeue_expired(now)
        if requeued.queues:
            names = ",".join(sorted(requeued.queues))
            log.warning("leases expired in queues %s: jobs re-queued", names)
            self.broker.dispatcher.wake(requeued.queues)
        self.broker.job_finished(requeued.failed)
        self.broker.counters["lease_expiries"] += len(requeued.workers)
        for worker_id in requeued.workers:
            session = self.broker.dispatcher.sessions.get(worker_id)
            if session is not None:  # connected but silent: it is no longer trusted
                log.warning("worker %s let its lease run out; closing its connection", worker_id)
                session.conn.close()
        return len(requeued.queues) + len(requeued.failed)

    async def run(self) -> None:
        cfg = self.broker.config
        loop = asyncio.get_running_loop()
        next_sweep = loop.time()
        while True:
            try:
                await self.promote(self.broker.clock())
                if loop.time() >= next_sweep:
                    await self.expire_leases(self.broker.clock())
                    next_sweep = loop.time() + cfg.sweep_every
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("periodic duty failed: %s", exc)
            await asyncio.sleep(cfg.promote_every)
