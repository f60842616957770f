"""The whole cluster's workers: each broker records its own in the store every few
seconds and reads the others' records, so `runq workers` and `runq stats` answer for
every broker on the store, whichever one is asked."""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Final

import msgspec

from runq.protocol import messages as m

if TYPE_CHECKING:
    from runq.broker.server import Broker

log = logging.getLogger("runq.broker")
PUBLISH_EVERY: Final = 2.0  # seconds between records of this broker's workers
STALE_AFTER: Final = 10.0  # a record older than this is a broker that has gone
_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(list[m.WorkerInfo])


class Cluster:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.id = f"b-{secrets.token_hex(3)}"

    def mine(self) -> list[m.WorkerInfo]:
        return [s.describe() for s in self.broker.dispatcher.sessions.values()]

    async def publish(self, now: float) -> None:
        await self.broker.store.publish_workers(self.id, _enc.encode(self.mine()), now)

    async def withdraw(self) -> None:
        await self.broker.store.publish_workers(self.id, None, self.broker.clock())

    async def workers(self) -> list[m.WorkerInfo]:
        """This broker's workers as they are now, then the other brokers' as recorded."""
        found = self.mine()
        since = self.broker.clock() - STALE_AFTER
        for broker_id, snapshot in await self.broker.store.worker_snapshots(since):
            if broker_id == self.id:
                continue
            try:
                found += _dec.decode(snapshot)
            except msgspec.DecodeError:  # written by another version: leave it out
                log.warning("cannot read the workers recorded by broker %s", broker_id)
        return found
