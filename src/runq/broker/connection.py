"""One peer connection: framing, the handshake state and routing to handlers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, cast

import msgspec

from runq.errors import ProtocolError, RunqError
from runq.protocol import codec
from runq.protocol import messages as m

if TYPE_CHECKING:
    from runq.broker.dispatch import WorkerSession
    from runq.broker.server import Broker

log = logging.getLogger("runq.broker")


class Connection(asyncio.Protocol):
    """Serves one socket on the client port (role "client") or worker port ("worker")."""

    def __init__(self, broker: Broker, role: str) -> None:
        self.broker = broker
        self.role = role
        msg_type = m.TO_BROKER_CLIENT if role == "client" else m.TO_BROKER_WORKER
        self._decoder: codec.FrameDecoder[Any] = codec.FrameDecoder(
            msg_type, broker.config.max_frame
        )
        self.transport: asyncio.Transport | None = None
        self.greeted = False
        self.session: WorkerSession | None = None
        self.peer = "?"
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._early: list[Any] | None = None  # messages that came in behind hello

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        loop = asyncio.get_running_loop()
        self._handshake_timer = loop.call_later(
            self.broker.config.handshake_timeout, self._handshake_expired
        )
        self.broker.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        self.broker.connections.discard(self)
        self.transport = None
        for task in self._tasks:
            task.cancel()
        if self.session is not None:
            self.broker.worker_gone(self.session)

    def data_received(self, data: bytes) -> None:
        try:
            messages = self._decoder.feed(data)
        except ProtocolError as exc:
            self.fail(0, exc)
            return
        for msg in messages:
            if self.transport is None:
                return
            self._route(msg)

    # -- routing -----------------------------------------------------------------------

    def _route(self, msg: Any) -> None:
        if self._early is not None:  # hello is being served: keep what follows for after
            self._early.append(msg)
            return
        if not self.greeted:
            if not isinstance(msg, m.Hello):
                self.fail(0, ProtocolError("the first message must be hello"))
                return
            self._early = []
            task = asyncio.ensure_future(self._greet(msg))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        if isinstance(msg, m.Hello):
            self.fail(0, ProtocolError("hello was already sent on this connection"))
            return
        handler = self.broker.handlers[type(msg)]
        self.spawn(handler(self.broker, self, msg), getattr(msg, "req", 0))

    async def _greet(self, msg: m.Hello) -> None:
        """Serve hello; a refused hello closes the connection."""
        try:
            await self.broker.hello(self, msg)
        except RunqError as exc:
            self.fail(0, exc)
            return
        early, self._early = self._early or [], None
        for queued in early:
            if self.transport is None:
                return
            self._route(queued)

    def spawn(self, coro: Coroutine[Any, Any, None], req: int) -> None:
        task = asyncio.ensure_future(self._guard(coro, req))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guard(self, coro: Coroutine[Any, Any, None], req: int) -> None:
        try:
            await coro
        except RunqError as exc:
            self.send(m.Error(req, exc.code, exc.message))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("internal error while serving %s", self.peer)
            self.send(m.Error(req, "internal_error", "the broker failed to serve this request"))

    # -- output ------------------------------------------------------------------------

    def greeted_as(self) -> None:
        self.greeted = True
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None

    def send(self, msg: msgspec.Struct) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(codec.encode(msg))

    def fail(self, req: int, exc: RunqError) -> None:
        """Send one error frame and close: for errors after which the stream is unusable."""
        log.warning("closing %s connection from %s: %s", self.role, self.peer, exc.message)
        self.send(m.Error(req, exc.code, exc.message))
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _handshake_expired(self) -> None:
        self._handshake_timer = None
        if not self.greeted:
            self.fail(0, ProtocolError("no hello within the handshake timeout"))


Handler = Callable[["Broker", Connection, Any], Coroutine[Any, Any, None]]
