"""runq's own trusted tasks. They run inside the worker's event loop (the file built-ins
of ``filetasks`` do their work in threads)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

from runq.errors import InvalidArguments, TaskError
from runq.model import Assignment
from runq.worker.executors.base import InlineExecutor
from runq.worker.executors.filetasks import FILE_TASKS

Builtin = Callable[[list[Any], dict[str, Any]], Any]


class TaskFailed(TaskError):
    """What the ``fail`` built-in raises: an ordinary, retryable failure."""

    code = "task_failed"


def _text(args: list[Any], kwargs: dict[str, Any]) -> str:
    if kwargs:
        raise InvalidArguments(f"takes no keyword arguments, got {', '.join(sorted(kwargs))}")
    if not all(isinstance(a, str | int | float) for a in args):
        raise InvalidArguments("takes text arguments")
    return " ".join(str(a) for a in args)


def echo(args: list[Any], kwargs: dict[str, Any]) -> str:
    return _text(args, kwargs)


def wordcount(args: list[Any], kwargs: dict[str, Any]) -> str:
    return f"word count: {len(_text(args, kwargs).split())}"


def charcount(args: list[Any], kwargs: dict[str, Any]) -> str:
    return f"char count: {sum(1 for c in _text(args, kwargs) if not c.isspace())}"


def capitalize(args: list[Any], kwargs: dict[str, Any]) -> str:
    return _text(args, kwargs).upper()


def fail(args: list[Any], kwargs: dict[str, Any]) -> str:
    raise TaskFailed(_text(args, kwargs) or "failed on purpose")


def sleep(args: list[Any], kwargs: dict[str, Any]) -> Awaitable[str]:
    text = _text(args, kwargs)
    try:
        seconds = float(text)
    except ValueError:
        raise InvalidArguments(f"sleep takes a number of seconds, not {text!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidArguments(f"sleep takes a non-negative number of seconds, not {text!r}")

    async def run() -> str:
        await asyncio.sleep(seconds)
        return f"slept {seconds:g}"

    return run()


BUILTINS: dict[str, Builtin] = {
    "echo": echo,
    "wordcount": wordcount,
    "charcount": charcount,
    "capitalize": capitalize,
    "sleep": sleep,
    "fail": fail,
}


class BuiltinExecutor(InlineExecutor):
    def knows(self, task: str) -> bool:
        return task in BUILTINS or task in FILE_TASKS

    def tasks(self) -> list[str] | None:
        return sorted([*BUILTINS, *FILE_TASKS])

    def wants_workdir(self, task: str) -> bool:
        """The file built-ins write their outputs into the job's working directory."""
        return task in FILE_TASKS

    def start(self, job: Assignment) -> Any:
        found = FILE_TASKS.get(job.task)
        if found is not None:
            return found(job)
        return BUILTINS[job.task](job.args, job.kwargs)
