"""Declaring Python tasks: ``@runq.task`` and explicit registries.

``@runq.task`` only marks a function (no global registry): a worker started with
``runq worker MODULE`` imports the module and collects every marked function in it.
``runq worker --app module:registry`` loads an explicit ``Registry`` instead.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from runq.errors import ConfigError, ScheduleError
from runq.model.schedule import TASK_PREFIX, CatchUp, ScheduleSpec, check_cron
from runq.model.spec import DEFAULT_QUEUE, JobSpec

F = TypeVar("F", bound=Callable[..., Any])
MARK = "__runq_task__"


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """A task's name and the defaults its jobs get when submitted by function."""

    name: str
    retries: int | None = None
    timeout: float | None = None
    queue: str | None = None
    priority: int | None = None
    backoff: float | None = None
    cron: str | None = None  # a periodic schedule: a job of the task at each tick
    tz: str = "UTC"  # the cron's time zone
    catch_up: str = "last"  # ticks missed while no broker ran: none, last or all

    def submit_defaults(self) -> dict[str, Any]:
        fields = ("retries", "timeout", "queue", "priority", "backoff")
        return {f: getattr(self, f) for f in fields if getattr(self, f) is not None}

    def schedule(self) -> ScheduleSpec | None:
        """The schedule ``task:<name>`` a worker declares for a task with a cron."""
        if self.cron is None:
            return None
        job = JobSpec(
            self.name,
            queue=self.queue or DEFAULT_QUEUE,
            priority=self.priority or 0,
            max_attempts=3 if self.retries is None else self.retries + 1,
            timeout=self.timeout,
            backoff=self.backoff,
        )
        return ScheduleSpec(
            TASK_PREFIX + self.name, self.cron, job, self.tz, CatchUp(self.catch_up)
        )


def default_name(fn: Callable[..., Any]) -> str:
    module = fn.__module__
    if module == "__main__":
        raise ConfigError(f"name the task {fn.__qualname__}: a task in __main__ needs name=")
    return f"{module}.{fn.__qualname__}"


@overload
def task(fn: F, /) -> F: ...


@overload
def task(
    *,
    name: str | None = None,
    retries: int | None = None,
    timeout: float | None = None,
    queue: str | None = None,
    priority: int | None = None,
    backoff: float | None = None,
    cron: str | None = None,
    tz: str = "UTC",
    catch_up: str = "last",
) -> Callable[[F], F]: ...


def task(fn: Any = None, /, **options: Any) -> Any:
    """Mark a function as a runq task, bare (``@runq.task``) or with options.
    ``cron="*/5 * * * *"`` (with ``tz=`` and ``catch_up=``) also runs it at each tick,
    once a tick, while a worker that has it has connected to the brokers' store."""

    def mark(f: F) -> F:
        if not callable(f):
            raise ConfigError("@runq.task decorates functions")
        name = options.get("name") or default_name(f)
        opts = TaskOptions(**{**options, "name": name})
        if opts.cron is not None:
            _check_schedule(opts)
        setattr(f, MARK, opts)
        return f

    return mark(fn) if fn is not None else mark


def _check_schedule(opts: TaskOptions) -> None:
    try:
        check_cron(opts.cron or "", opts.tz)
        CatchUp(opts.catch_up)
    except ScheduleError as exc:
        raise ConfigError(f"task {opts.name}: {exc.message}") from None
    except ValueError:
        raise ConfigError(f"task {opts.name}: catch_up is none, last or all") from None


def options_of(fn: Callable[..., Any]) -> TaskOptions | None:
    found = getattr(fn, MARK, None)
    return found if isinstance(found, TaskOptions) else None


class Registry:
    """An explicit set of tasks by name."""

    def __init__(self) -> None:
        self._tasks: dict[str, tuple[Callable[..., Any], TaskOptions]] = {}

    def task(self, fn: Any = None, /, **options: Any) -> Any:
        """Like ``@runq.task``, and registers the function here."""

        def add(f: F) -> F:
            marked = task(**options)(f)
            self.add(marked)
            return marked

        return add(fn) if fn is not None else add

    def add(self, fn: Callable[..., Any]) -> None:
        opts = options_of(fn) or TaskOptions(default_name(fn))
        if opts.name in self._tasks and self._tasks[opts.name][0] is not fn:
            raise ConfigError(f"two tasks are named {opts.name!r}")
        self._tasks[opts.name] = (fn, opts)

    def get(self, name: str) -> Callable[..., Any] | None:
        found = self._tasks.get(name)
        return None if found is None else found[0]

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def __iter__(self) -> Iterator[tuple[Callable[..., Any], TaskOptions]]:
        return iter(self._tasks.values())

    def __len__(self) -> int:
        return len(self._tasks)

    def merge(self, other: Registry) -> None:
        for fn, _ in other:
            self.add(fn)


def load(spec: str) -> Registry:
    """``module`` (collect marked functions) or ``module:attribute`` (a Registry)."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import task module {module_name!r}: {exc}") from None
    if attr:
        found = getattr(module, attr, None)
        if not isinstance(found, Registry):
            raise ConfigError(f"{spec!r} is not a runq.Registry")
        return found
    registry = Registry()
    for _, value in inspect.getmembers(module):
        if callable(value) and options_of(value) is not None:
            registry.add(value)
    if not len(registry):
        raise ConfigError(f"module {module_name!r} has no @runq.task functions")
    return registry
