"""The Executor protocol and the translation of exceptions into attempt errors."""

from __future__ import annotations

import traceback
from collections.abc import Awaitable
from typing import Any, Protocol

from runq.errors import RunqError, TaskError
from runq.model import Assignment, ErrorInfo
from runq.model.schedule import ScheduleSpec
from runq.protocol.messages import ProcInfo

MAX_TRACEBACK = 8 * 1024
NON_RETRYABLE = frozenset(
    {"unknown_task", "invalid_arguments", "permanent", "command_not_allowed", "bad_result"}
)


class Executor(Protocol):
    async def open(self) -> None:
        """Get ready (start processes); called before the worker connects."""
        ...

    async def close(self) -> None:
        """Stop whatever runs; called when the worker stops."""
        ...

    def knows(self, task: str) -> bool:
        """Whether this executor runs ``task``."""
        ...

    def default_timeout(self, task: str) -> float | None:
        """The task's own timeout, for jobs that set none."""
        ...

    def describe(self) -> list[ProcInfo]:
        """The processes it runs jobs in, for `runq workers`."""
        ...

    def schedules(self) -> list[ScheduleSpec]:
        """The periodic schedules of its tasks (``@runq.task(cron=...)``)."""
        ...

    def tasks(self) -> list[str] | None:
        """The names of the tasks it runs (after ``open``), or None when it cannot list
        them (then the worker does not say which tasks it knows)."""
        ...

    def start(self, job: Assignment) -> Any | Awaitable[Any]:
        """Run ``job``: return its result, or an awaitable of it. Raise to fail."""
        ...


class InlineExecutor:
    """A base for executors that run in the worker's event loop and need no set-up:
    subclasses give ``knows`` and ``start``."""

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def default_timeout(self, task: str) -> float | None:
        return None

    def describe(self) -> list[ProcInfo]:
        return []

    def schedules(self) -> list[ScheduleSpec]:
        return []

    def tasks(self) -> list[str] | None:
        return None


def error_info(exc: BaseException) -> ErrorInfo:
    """An attempt error for ``exc``: our own errors keep their code, others are 'error'."""
    info = getattr(exc, "info", None)
    if isinstance(info, ErrorInfo):  # reported by a task process as it is
        return info
    if isinstance(exc, RunqError):
        code = exc.code
        message = exc.message
    else:
        code = "error"
        message = f"{type(exc).__name__}: {exc}"
    retryable = getattr(exc, "retryable", code not in NON_RETRYABLE)
    tb = None
    if not isinstance(exc, TaskError):
        tb = "".join(traceback.format_exception(exc))[-MAX_TRACEBACK:]
    return ErrorInfo(code, message[:MAX_TRACEBACK], bool(retryable), tb)
