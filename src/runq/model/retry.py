"""Retry policy: exponential back-off with full jitter (pure)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base: float = 1.0
    cap: float = 300.0

    def delay(self, attempt: int, rand: random.Random | None = None) -> float:
        return backoff_delay(attempt, self.base, self.cap, rand)


DEFAULT_RETRY = RetryPolicy()


def backoff_delay(
    attempt: int, base: float = 1.0, cap: float = 300.0, rand: random.Random | None = None
) -> float:
    """Seconds to wait before the attempt after ``attempt`` (1-based).

    The ceiling grows as ``base * 2**(attempt-1)`` up to ``cap``; the delay is drawn from
    ``[ceiling/2, ceiling]`` so retries spread out but never fire at once.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    ceiling: float = min(cap, base * (2 ** min(attempt - 1, 62)))
    r = (rand or random).random()
    return ceiling / 2 + r * ceiling / 2


def should_retry(retryable: bool, attempts: int, max_attempts: int) -> bool:
    return retryable and attempts < max_attempts
