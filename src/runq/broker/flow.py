"""Flow control in the broker: claims enforce rate limits and concurrency keys in the
store; this wakes the dispatcher often for the queues whose jobs a claim may have held
back (no submit or requeue will wake them when a token or a slot comes free)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Final

from runq.errors import RunqError
from runq.model.flow import RateLimit

if TYPE_CHECKING:
    from runq.broker.server import Broker

log = logging.getLogger("runq.broker")
FLOW_TICK: Final = 0.05  # seconds between wake-ups of held-back queues


class FlowWatch:
    """The rate limits and the queues with keyed jobs, read from the store each second
    (other brokers share them), and a loop that wakes those queues every tick."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.limits: list[RateLimit] = []
        self.keyed: set[str] = set()

    async def refresh(self) -> None:
        try:
            self.limits = await self.broker.store.rate_limits()
            self.keyed = await self.broker.store.keyed_queues()
        except RunqError as exc:  # unreachable for now: keep what we know
            log.warning("cannot read the rate limits: %s", exc.message)

    def held(self) -> set[str] | None:
        """The queues to wake each tick; None for all of them (a task's limit may hold
        jobs in any queue)."""
        if any(limit.scope == "task" for limit in self.limits):
            return None
        return self.keyed | {limit.name for limit in self.limits}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(FLOW_TICK)
            queues = self.held()
            if queues is None:
                self.broker.dispatcher.forget_empty()
            elif queues:
                self.broker.dispatcher.wake(queues)
