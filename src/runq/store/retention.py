"""What both stores share for per-queue retention and the purge by hand."""

from __future__ import annotations

from collections.abc import Sequence

from runq.model import JobState
from runq.model.job import TERMINAL_STATES


def finished_states(states: Sequence[JobState] | None) -> list[str]:
    """The states a purge may delete: those given (each must be finished) or all
    finished ones. An unfinished state is a caller's bug: ValueError."""
    if states is None:
        return sorted(str(s) for s in TERMINAL_STATES)
    bad = [str(s) for s in states if s not in TERMINAL_STATES]
    if bad:
        raise ValueError(f"only finished jobs are purged, not {', '.join(bad)}")
    return [str(s) for s in states]
