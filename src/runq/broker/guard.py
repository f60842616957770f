"""Bounds on a peer's connections and time: how many one address may hold open, and
when a connection has overstayed (a frame trickling in, silence, replies left unread).

Bookkeeping only: a connection tells it the times things happened (``loop.time()``)
and asks what is overdue, so the rules are tested without sleeping. docs/limits.md
lists every bound and its default.
"""

from __future__ import annotations

import collections
import logging
import math
from dataclasses import dataclass

from runq.broker.config import BrokerConfig
from runq.errors import IdleTimeout, RunqError, TooSlow


class AddressCount:
    """Open connections by IP address, for one set of listeners."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: collections.Counter[str] = collections.Counter()

    def admit(self, address: str) -> bool:
        """Count one more connection from ``address``; False when that is one too many.
        Either way it is counted: ``release`` it when it closes."""
        self._open[address] += 1
        return self._open[address] <= self.limit

    def release(self, address: str) -> None:
        left = self._open[address] - 1
        if left > 0:
            self._open[address] = left
        else:
            del self._open[address]

    def count(self, address: str) -> int:
        return self._open.get(address, 0)

    def refusal(self, address: str) -> str:
        return f"{address} already holds {self.limit} connections to this server"


@dataclass(slots=True)
class Deadlines:
    """When a native connection last did what; which of its time limits it overstays.

    ``active``: when the peer last sent bytes or one of its requests ended. ``partial``:
    when the frame being received began (None: no partial frame). ``paused``: since
    when its replies wait for it to read (None: they do not).
    """

    frame_timeout: float
    idle_timeout: float | None
    write_timeout: float
    active: float
    partial: float | None = None
    paused: float | None = None

    @classmethod
    def of(cls, config: BrokerConfig, now: float) -> Deadlines:
        return cls(config.frame_timeout, config.idle_timeout, config.write_timeout, now)

    def overdue(self, now: float, busy: bool, greeted: bool) -> RunqError | None:
        """The error to close with, if a limit has run out. ``busy``: a request of the
        peer is being served (a long ``wait`` is not idleness)."""
        if self.paused is not None:  # reading is paused too: only this clock runs
            if now - self.paused >= self.write_timeout:
                return TooSlow(f"replies left unread for {self.write_timeout:g} s")
            return None
        if self.partial is not None:
            if now - self.partial >= self.frame_timeout:
                return TooSlow(f"a frame did not arrive whole within {self.frame_timeout:g} s")
            return None
        idle = self.idle_timeout
        if greeted and not busy and idle is not None and now - self.active >= idle:
            return IdleTimeout(f"the connection sent nothing for {idle:g} s")
        return None

    def next_check(self, now: float, busy: bool, greeted: bool) -> float:
        """When a limit may next run out (inf: not before something changes)."""
        if self.paused is not None:
            return self.paused + self.write_timeout
        if self.partial is not None:
            return self.partial + self.frame_timeout
        if greeted and self.idle_timeout is not None:
            return (now if busy else self.active) + self.idle_timeout
        return math.inf


class QuietLog:
    """At most ``per_second`` warnings a second about closed connections: a flood of bad
    peers must not flood the log too. What is held back is counted and said once the
    next second begins."""

    def __init__(self, log: logging.Logger, per_second: int = 10) -> None:
        self._log = log
        self._per_second = per_second
        self._second = -1
        self._said = 0
        self._held = 0
        self.total = 0  # every warning asked for, said or held back

    def warning(self, now: float, text: str, *args: object) -> None:
        self.total += 1
        second = int(now)
        if second != self._second:
            if self._held:
                self._log.warning("… and %d more connections closed like that", self._held)
            self._second, self._said, self._held = second, 0, 0
        if self._said < self._per_second:
            self._said += 1
            self._log.warning(text, *args)
        else:
            self._held += 1
