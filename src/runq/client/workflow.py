"""Chains and groups of jobs, built on dependencies (``after``) and result passing.

    flow = runq.chain(
        runq.step("download", url),
        runq.group(runq.step("resize", size=64), runq.step("resize", size=512)),
        runq.step("notify", "done"),
    )
    ids = await flow.submit(client)        # AsyncClient
    ids = flow.submit_sync(client)         # Client

Each step after the first waits for the step (or every member of the group) before it
and receives its result as the keyword ``previous``: one result after a step, a list in
member order after a group. If a step fails for good, everything after it is cancelled.
The jobs are submitted one link after another, so a client that dies half way leaves
the links it sent (waiting for nothing more); the ids come back in submit order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runq.errors import InvalidArguments

if TYPE_CHECKING:
    from runq.client.aio import AsyncClient
    from runq.client.sync import Client

RESERVED = frozenset({"after", "after_any", "pass_results"})


@dataclass(frozen=True)
class Step:
    """One job of a chain or group: a task, its arguments and its job options."""

    task: str | Callable[..., Any]
    args: tuple[Any, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)

    async def _submit(self, client: AsyncClient, after: Sequence[int]) -> int:
        links = {"after": list(after), "pass_results": True} if after else {}
        return await client.submit_one(self.task, *self.args, **self.options, **links)


def step(task: str | Callable[..., Any], *args: Any, **options: Any) -> Step:
    """A job for a chain or group; ``options`` are submit options and task keywords."""
    clash = RESERVED & options.keys()
    if clash:
        raise InvalidArguments(f"a chain sets {', '.join(sorted(clash))} itself")
    return Step(task, args, options)


@dataclass(frozen=True)
class Group:
    """Jobs that run side by side; what follows waits for all of them."""

    steps: tuple[Step, ...]

    async def _submit(self, client: AsyncClient, after: Sequence[int]) -> list[int]:
        return [await s._submit(client, after) for s in self.steps]

    async def submit(self, client: AsyncClient) -> list[int]:
        return await self._submit(client, [])

    def submit_sync(self, client: Client) -> list[int]:
        return client._run(self.submit(client._aio))


def group(*steps: Step) -> Group:
    if not steps or not all(isinstance(s, Step) for s in steps):
        raise InvalidArguments("a group takes one or more runq.step(...)")
    return Group(tuple(steps))


@dataclass(frozen=True)
class Chain:
    """Steps (or groups) that run one after another, each given the one before's result."""

    links: tuple[Step | Group, ...]

    async def submit(self, client: AsyncClient) -> list[int]:
        ids: list[int] = []
        previous: list[int] = []
        for link in self.links:
            if isinstance(link, Group):
                previous = await link._submit(client, previous)
            else:
                previous = [await link._submit(client, previous)]
            ids += previous
        return ids

    def submit_sync(self, client: Client) -> list[int]:
        return client._run(self.submit(client._aio))


def chain(*links: Step | Group) -> Chain:
    if not links or not all(isinstance(link, Step | Group) for link in links):
        raise InvalidArguments("a chain takes one or more runq.step(...) or runq.group(...)")
    return Chain(tuple(links))
