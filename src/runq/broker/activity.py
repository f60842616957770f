"""What happened minute by minute over the last hour, for the dashboard's charts.

Kept in the broker's memory (60 small buckets): it is this broker's own view and starts
empty when the broker starts. Counts that must survive restarts live in the store.
"""

from __future__ import annotations

import collections
from typing import Final

import msgspec

MINUTE: Final = 60.0
KEEP: Final = 60  # minutes
KINDS: Final = ("submitted", "started", "succeeded", "failed")


class Point(msgspec.Struct, frozen=True):
    minute: float  # the minute's start, seconds since the epoch
    submitted: int
    started: int
    succeeded: int
    failed: int  # failed attempts (retried or not)


class Activity:
    def __init__(self) -> None:
        self._buckets: collections.OrderedDict[int, dict[str, int]] = collections.OrderedDict()

    def add(self, kind: str, n: int, now: float) -> None:
        if n <= 0:
            return
        minute = int(now // MINUTE)
        bucket = self._buckets.get(minute)
        if bucket is None:
            bucket = self._buckets[minute] = dict.fromkeys(KINDS, 0)
            while len(self._buckets) > KEEP + 1:
                self._buckets.popitem(last=False)
        bucket[kind] += n

    def series(self, now: float, minutes: int = KEEP) -> list[Point]:
        """One point a minute, oldest first, ending with the minute of ``now``."""
        last = int(now // MINUTE)
        empty = dict.fromkeys(KINDS, 0)
        points = []
        for minute in range(last - minutes + 1, last + 1):
            b = self._buckets.get(minute, empty)
            points.append(
                Point(minute * MINUTE, b["submitted"], b["started"], b["succeeded"], b["failed"])
            )
        return points
