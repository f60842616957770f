"""Waiting helpers shared by the integration tests (no fake clock can stand in where
another task, thread or process makes the change)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from runq.client import AsyncClient
from runq.model import JobState


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0, what: str = ""
) -> None:
    """Wait until ``check`` holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
        await asyncio.sleep(0.005)


async def state_is(client: AsyncClient, job_id: int, state: JobState) -> bool:
    return (await client.get(job_id)).state is state
