"""Flow control helpers shared by the SQLite and PostgreSQL stores: the concurrency keys
of a submitted batch, token buckets as rows, and the claim's candidates in order."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from typing import Any, Final

from runq.model import JobSpec
from runq.model.flow import Budget, Candidate, RateLimit, refill
from runq.model.unique import SubmitIds

ROUNDS: Final = 4  # candidate reads a flow claim makes at most
OVERSCAN: Final = 2  # candidates read per job wanted (some are held by a key or limit)


def has_keys(specs: Sequence[JobSpec]) -> bool:
    return any(s.concurrency_key is not None for s in specs)


def key_rows(specs: Sequence[JobSpec], ids: SubmitIds) -> list[tuple[str, int, int]]:
    """(key, max_concurrent, id) of each new job with a concurrency key (a job merged
    into an existing one keeps that one's)."""
    merged = set(ids.merged)
    return [
        (s.concurrency_key, s.max_concurrent, job_id)
        for i, (s, job_id) in enumerate(zip(specs, ids, strict=True))
        if s.concurrency_key is not None and s.max_concurrent is not None and i not in merged
    ]


def rate_limit(row: Sequence[Any]) -> RateLimit:
    """From (scope, name, count, per, burst)."""
    return RateLimit(*row)


def limit_row(limit: RateLimit, now: float) -> tuple[Any, ...]:
    """(scope, name, count, per, rate, burst, tokens, updated_at) of a new bucket (full)."""
    cap = limit.capacity
    return (limit.scope, limit.name, limit.count, limit.per, limit.rate, cap, cap, now)


def budget(buckets: Iterable[Sequence[Any]], now: float) -> Budget:
    """From rows of (scope, name, rate, burst, tokens, updated_at), filled up to now."""
    b = Budget({}, {}, {})
    for scope, name, rate, burst, tokens, updated_at in buckets:
        (b.queues if scope == "queue" else b.tasks)[name] = refill(
            tokens, updated_at, rate, burst, now
        )
    return b


def spent(b: Budget, now: float) -> list[tuple[float, float, str, str]]:
    """(tokens, now, scope, name) of every bucket, to write back."""
    return [(t, now, "queue", n) for n, t in b.queues.items()] + [
        (t, now, "task", n) for n, t in b.tasks.items()
    ]


def open_queues(queues: Sequence[str], b: Budget) -> list[str]:
    return [q for q in queues if b.queues.get(q, 1.0) >= 1.0]


def empty_tasks(b: Budget) -> list[str]:
    return [t for t, tokens in b.tasks.items() if tokens < 1.0]


def merged(per_queue: Iterable[Iterable[Sequence[Any]]]) -> list[Candidate]:
    """Rows of (id, queue, task, key, max_concurrent, priority, run_at), each list in
    claim order, as one list in claim order."""
    order = heapq.merge(*per_queue, key=lambda r: (-r[5], r[6], r[0]))
    return [Candidate(r[0], r[1], r[2], r[3], r[4]) for r in order]
