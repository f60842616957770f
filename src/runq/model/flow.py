"""Flow control, pure: rate limits as token buckets and the choice of which ready jobs a
claim may start under rate limits and concurrency keys (docs/scheduling.md)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta

from runq.model.spec import Name

Scope = Literal["queue", "task"]
Per = Literal["s", "m", "h"]
_PER: Final[dict[str, Per]] = {"s": "s", "m": "m", "h": "h"}
SCOPES: Final = ("queue", "task")
PERIODS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0}
MAX_RATE: Final = 1_000_000  # jobs a period
Rate = Annotated[float, Meta(gt=0, le=MAX_RATE)]
Burst = Annotated[float, Meta(ge=1, le=MAX_RATE)]
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")


class RateLimit(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """At most ``count`` jobs per ``per`` (s, m or h) start from a queue or of a task,
    over every broker; ``burst`` jobs may start at once after a quiet spell."""

    scope: Scope
    name: Name
    count: Rate
    per: Per = "s"
    burst: Burst | None = None  # default: one second's worth, at least 1

    @property
    def rate(self) -> float:
        """Tokens per second."""
        return self.count / PERIODS[self.per]

    @property
    def capacity(self) -> float:
        return self.burst if self.burst is not None else max(1.0, self.rate)

    def text(self) -> str:
        return f"{self.count:g}/{self.per}"


def parse_rate(text: str) -> tuple[float, Per]:
    """``"100/s"``, ``"600/m"``, ``"10/hour"`` to (count, period letter); ValueError
    with the reason otherwise."""
    found = _RATE.match(text)
    if found is None:
        raise ValueError(f"invalid rate {text!r}: give COUNT/PERIOD, like 100/s, 600/m or 10/h")
    count = float(found.group(1))
    if not 0 < count <= MAX_RATE:
        raise ValueError(f"invalid rate {text!r}: the count must be above 0 and at most {MAX_RATE}")
    return count, _PER[found.group(2)[0]]


def refill(tokens: float, updated_at: float, rate: float, capacity: float, now: float) -> float:
    """A bucket's tokens at ``now``: what it had plus what the time since added."""
    return min(capacity, tokens + max(0.0, now - updated_at) * rate)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A ready job a claim may start."""

    id: int
    queue: str
    task: str
    key: str | None
    max_concurrent: int | None


@dataclass(slots=True)
class Budget:
    """What a claim may still start: whole tokens per limited queue and task, and the
    jobs running per concurrency key."""

    queues: dict[str, float]
    tasks: dict[str, float]
    running: dict[str, int]

    def admit(self, c: Candidate) -> bool:
        """Take ``c`` if every limit it is under has room, and count it."""
        if self.queues.get(c.queue, 1.0) < 1.0 or self.tasks.get(c.task, 1.0) < 1.0:
            return False
        if c.key is not None and self.running.get(c.key, 0) >= (c.max_concurrent or 1):
            return False
        if c.queue in self.queues:
            self.queues[c.queue] -= 1.0
        if c.task in self.tasks:
            self.tasks[c.task] -= 1.0
        if c.key is not None:
            self.running[c.key] = self.running.get(c.key, 0) + 1
        return True


def choose(candidates: Iterable[Candidate], budget: Budget, limit: int) -> list[int]:
    """The ids to start, in claim order (the order of ``candidates``), at most ``limit``."""
    chosen: list[int] = []
    for c in candidates:
        if len(chosen) >= limit:
            break
        if budget.admit(c):
            chosen.append(c.id)
    return chosen
