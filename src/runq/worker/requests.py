"""Requests a worker sends the broker on its connection, and the replies they await.

Most of what a worker sends needs no answer (reports are confirmed by ``seq``); the file
messages do: ``openartifact``, ``resumeupload``, ``uploadchunk``, ``finishupload`` and
``readfile`` each carry a request id ``req``, and the broker answers with the same
``req`` (``uploadstate``, ``uploaded``, ``filedata``, or ``error``). A dropped
connection fails every request still waiting with ``ConnectionLost``; the caller waits
for the next connection (``ready``) and carries on from what it knows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

from runq.errors import ConnectionLost, FileError, from_code
from runq.protocol import messages as m

REPLY_TIMEOUT: Final = 60.0  # seconds the broker has to answer one file request
# upload chunks in flight on the connection, all jobs together (a broker lets each
# connection have 16 waiting to be stored)
CHUNKS_IN_FLIGHT: Final = 8
REPLIES: Final = (m.UploadState, m.Uploaded, m.FileData)


class Requests:
    """The worker's requests waiting for their replies, by ``req``."""

    def __init__(self, send: Callable[[Any], bool], connected: asyncio.Event) -> None:
        self._send = send  # False: not sent (no connection)
        self._connected = connected
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._req = 0
        self.chunks = asyncio.Semaphore(CHUNKS_IN_FLIGHT)  # taken per upload chunk sent

    def __len__(self) -> int:
        return len(self._pending)

    async def ready(self) -> None:
        """Wait until the worker is connected."""
        await self._connected.wait()

    def request(self, make: Callable[[int], Any]) -> asyncio.Future[Any]:
        """Send ``make(req)`` now and return the future of its reply; ConnectionLost
        when there is no connection to send it on."""
        self._req += 1
        req = self._req
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self._send(make(req)):
            raise ConnectionLost("not connected to the broker")
        self._pending[req] = fut
        fut.add_done_callback(lambda _: self._pending.pop(req, None))
        return fut

    async def ask(self, make: Callable[[int], Any]) -> Any:
        """Send one request and return its reply (an error reply is raised)."""
        return await reply_of(self.request(make))

    def answer(self, msg: Any) -> bool:
        """Resolve the request ``msg`` answers; False when it answers none of ours
        (not a reply, or an error not tied to a request)."""
        if not isinstance(msg, REPLIES) and not (isinstance(msg, m.Error) and msg.req):
            return False
        fut = self._pending.pop(msg.req, None)
        if fut is not None and not fut.done():
            if isinstance(msg, m.Error):
                fut.set_exception(from_code(msg.code, msg.message))
            else:
                fut.set_result(msg)
        return True

    def lost(self) -> None:
        """The connection dropped: no reply will come to what waits."""
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(ConnectionLost("the connection to the broker dropped"))


async def reply_of(fut: asyncio.Future[Any]) -> Any:
    """The reply ``fut`` brings, within REPLY_TIMEOUT."""
    try:
        return await asyncio.wait_for(fut, REPLY_TIMEOUT)
    except TimeoutError:
        raise FileError(
            f"the broker did not answer a file request within {REPLY_TIMEOUT:g} s"
        ) from None


def drop(futures: Any) -> None:
    """Give up on replies nobody will read (their errors are not worth a warning)."""
    for fut in futures:
        if not fut.done():
            fut.cancel()
        elif not fut.cancelled():
            fut.exception()
