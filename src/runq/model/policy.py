"""Pure decisions about what happens to a job after an attempt."""

from __future__ import annotations

import random
from typing import NamedTuple

from runq.model.job import ErrorInfo, JobState
from runq.model.retry import RetryPolicy, should_retry


class AfterFailure(NamedTuple):
    state: JobState
    run_at: float | None  # when the next attempt may start, for a retry


def after_failure(
    error: ErrorInfo,
    attempts: int,
    max_attempts: int,
    now: float,
    policy: RetryPolicy,
    rand: random.Random | None = None,
) -> AfterFailure:
    """A failed attempt is retried after a back-off, or ends the job ``failed``."""
    if not should_retry(error.retryable, attempts, max_attempts):
        return AfterFailure(JobState.FAILED, None)
    return AfterFailure(JobState.SCHEDULED, now + policy.delay(attempts, rand))


def after_lost_worker(attempts: int, max_attempts: int) -> JobState:
    """A lost worker's attempt counts; the job runs again at once while attempts remain."""
    return JobState.QUEUED if attempts < max_attempts else JobState.FAILED
