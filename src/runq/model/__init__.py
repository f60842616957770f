"""The job model: pure data and rules, no I/O."""

from runq.model.job import (
    TERMINAL_STATES,
    TRANSITIONS,
    Assignment,
    ErrorInfo,
    Job,
    JobState,
    Outcome,
    transition,
)
from runq.model.retry import RetryPolicy, backoff_delay, should_retry
from runq.model.spec import JobSpec

__all__ = [
    "TERMINAL_STATES",
    "TRANSITIONS",
    "Assignment",
    "ErrorInfo",
    "Job",
    "JobSpec",
    "JobState",
    "Outcome",
    "RetryPolicy",
    "backoff_delay",
    "should_retry",
    "transition",
]
