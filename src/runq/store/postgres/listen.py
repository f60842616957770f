"""Wake-ups between brokers: one dedicated connection LISTENs on ``runq.<schema>``.

Notifications are only hints (the store stays the truth): the broker also re-checks on
its own every second, so a lost listen connection slows wake-ups down to that, and
nothing is missed for good. While reconnecting, every reconnect says "everything may
have changed" (``None``) to both callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any, Final

import asyncpg

from runq.store.postgres.dsn import PgUrl

log = logging.getLogger("runq.store")
OnReady = Callable[[set[str] | None], None]  # None: any queue
OnFinished = Callable[[list[int] | None], None]  # None: any job
RECONNECT_MIN: Final = 0.1
RECONNECT_MAX: Final = 2.0


def channel(schema: str) -> str:
    return f"runq.{schema}"


def decode(payload: str) -> tuple[str, Any]:
    """``("r", set of queues | None)`` or ``("f", list of ids | None)``; ``("", None)``
    for a payload this runq does not know."""
    kind, body = payload[:1], payload[1:]
    if kind not in ("r", "f"):
        return "", None
    if body == "*":
        return kind, None
    try:
        items = json.loads(body)
    except ValueError:
        return kind, None
    if kind == "r":
        return kind, {str(q) for q in items}
    return kind, [int(i) for i in items]


class Listener:
    def __init__(self, url: PgUrl, on_ready: OnReady, on_finished: OnFinished) -> None:
        self.url = url
        self.on_ready = on_ready
        self.on_finished = on_finished
        self.up = asyncio.Event()  # set while the listen connection is open
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        kind, body = decode(str(payload))
        if kind == "r":
            self.on_ready(body)
        elif kind == "f":
            self.on_finished(body)

    async def _run(self) -> None:
        delay = RECONNECT_MIN
        while True:
            try:
                await self._listen()
                delay = RECONNECT_MIN
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("listen connection to %s failed: %s", self.url.where, exc)
            self.up.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    async def _listen(self) -> None:
        conn: asyncpg.Connection[Any] = await asyncpg.connect(self.url.dsn, timeout=10)
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        try:
            await conn.add_listener(channel(self.url.schema), self._notified)
            self.up.set()
            self.on_ready(None)  # what was missed while down
            self.on_finished(None)
            while not lost.is_set():  # a check every few seconds finds a silent drop
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), 5.0)
                if not lost.is_set():
                    await conn.execute("SELECT 1", timeout=5.0)
        finally:
            self.up.clear()
            if not conn.is_closed():
                conn.terminate()
