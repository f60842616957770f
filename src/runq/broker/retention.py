"""How long finished jobs stay: per-queue retention (overriding the broker's
``--retention``) and the purge by hand. The periodic purge is in duties.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runq.errors import ProtocolError
from runq.model import TERMINAL_STATES, JobState

if TYPE_CHECKING:
    from runq.broker.server import Broker

PURGE_BATCH = 1000  # jobs deleted in one transaction by `runq purge`


async def set_retention(broker: Broker, queue: str, retention: float | None, reset: bool) -> None:
    """Keep ``queue``'s finished jobs ``retention`` seconds (None: forever), or with
    ``reset`` follow the broker's retention again. Every broker on the store sees it at
    its next purge."""
    if reset:
        await broker.store.reset_retention(queue)
    else:
        await broker.store.set_retention(queue, retention, broker.clock())


def finished_state(name: str | None) -> list[JobState] | None:
    """The state a purge by hand deletes (None: every finished state); an unknown or
    unfinished state is refused."""
    if name is None:
        return None
    finished = ", ".join(sorted(s.value for s in TERMINAL_STATES))
    try:
        state = JobState(name)
    except ValueError:
        raise ProtocolError(f"unknown state {name!r}; purge one of {finished}") from None
    if state not in TERMINAL_STATES:
        raise ProtocolError(
            f"only finished jobs can be purged ({finished}); {name} jobs are not finished"
        )
    return [state]


async def purge(broker: Broker, older_than: float, state: str | None, queue: str | None) -> int:
    """Delete the finished jobs (of ``state`` and ``queue`` when given) that finished
    more than ``older_than`` seconds ago, in batches; returns how many went."""
    states = finished_state(state)
    before = broker.clock() - older_than
    gone = 0
    while True:
        n = await broker.store.purge_finished(before, PURGE_BATCH, queue=queue, states=states)
        gone += n
        if n < PURGE_BATCH:
            return gone
