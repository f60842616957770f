"""The job a task process is running now, for the calls a task makes about itself.

A task process runs one job at a time (runq.worker.capture sets the slot for the
length of each job); anywhere else, a test calling the task function directly or a
script, there is no current job and ``progress`` only checks its arguments.
"""

from __future__ import annotations

import math
from typing import Protocol

MAX_MESSAGE = 200  # characters of a progress message (model.output.MAX_MESSAGE)


class Reporter(Protocol):
    def progress(self, fraction: float, message: str) -> None: ...


_current: Reporter | None = None


def progress(fraction: float, message: str = "") -> None:
    """Report how far the running job has got: ``fraction`` from 0.0 to 1.0 (clamped
    into that range), with a short message (cut at 200 characters). `runq status`,
    `runq logs` and the HTTP API show the latest. Outside a task process it checks its
    arguments and does nothing, so a task can be called directly in tests."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise TypeError(f"progress takes a number from 0 to 1, not {type(fraction).__name__}")
    if math.isnan(fraction):
        raise ValueError("progress cannot be NaN")
    value = min(1.0, max(0.0, float(fraction)))
    reporter = _current
    if reporter is not None:
        reporter.progress(value, str(message)[:MAX_MESSAGE])


def set_current(reporter: Reporter | None) -> None:
    """Set (or clear, with None) the running job's reporter: for the task process."""
    global _current
    _current = reporter
