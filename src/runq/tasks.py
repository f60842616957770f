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

from runq.errors import ConfigError

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

    def submit_defaults(self) -> dict[str, Any]:
        fields = ("retries", "timeout", "queue", "priority", "backoff")
        return {f: getattr(self, f) for f in fields if getattr(self, f) is not None}


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
) -> Callable[[F], F]: ...


def task(fn: Any = None, /, **options: Any) -> Any:
    """Mark a function as a runq task, bare (``@runq.task``) or with options."""

    def mark(f: F) -> F:
        if not callable(f):
            raise ConfigError("@runq.task decorates functions")
        name = options.get("name") or default_name(f)
        setattr(f, MARK, TaskOptions(**{**options, "name": name}))
        return f

    return mark(fn) if fn is not None else mark


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
