"""Dependencies between jobs: when a waiting job may run, or must be cancelled.

A job submitted with ``JobSpec.after`` waits until every parent has finished. The store
asks :func:`settle` each time a parent ends (and once at submit time, for parents that
ended before) and applies the answer with a guarded write from ``waiting``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, NamedTuple

from runq.model.job import TERMINAL_STATES, ErrorInfo, JobState

DEPENDENCY_FAILED: Final = "dependency_failed"  # the error code of a cancelled dependent
PREVIOUS: Final = "previous"  # the kwarg that gets the parents' results (pass_results)


class Settled(NamedTuple):
    state: JobState  # QUEUED (the store picks SCHEDULED for a future run_at) or CANCELLED
    reason: ErrorInfo | None = None  # why it was cancelled


def settle(parents: Sequence[tuple[int, JobState]], after_any: bool) -> Settled | None:
    """What becomes of a waiting job whose parents are ``(id, state)``, in the order it
    named them: None while it must still wait."""
    if not after_any:
        for parent, state in parents:
            if state in (JobState.FAILED, JobState.CANCELLED):
                how = "failed" if state is JobState.FAILED else "was cancelled"
                reason = ErrorInfo(DEPENDENCY_FAILED, f"dependency {parent} {how}", False)
                return Settled(JobState.CANCELLED, reason)
    if all(state in TERMINAL_STATES for _, state in parents):
        return Settled(JobState.QUEUED)
    return None


def with_previous(kwargs: dict[str, Any], results: Sequence[Any]) -> dict[str, Any]:
    """The kwargs of a job that takes its parents' results: the one parent's result, or
    the list of them in the order the job named its parents."""
    return {**kwargs, PREVIOUS: results[0] if len(results) == 1 else list(results)}
