"""One peer connection: framing, the handshake state and routing to handlers."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, cast

import msgspec

from runq.broker import access
from runq.broker.guard import Deadlines
from runq.errors import ProtocolError, RunqError, TooManyConnections, TooSlow
from runq.model.token import Grant
from runq.protocol import codec
from runq.protocol import messages as m

if TYPE_CHECKING:
    from runq.broker.dispatch import WorkerSession
    from runq.broker.files import Transfers
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
        self.transfers: Transfers | None = None  # its uploads and reads (broker/files.py)
        self.grant = Grant([])  # what its token allows: nothing until hello
        self.peer = "?"
        self.address = "?"  # the peer's IP address, without its port
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._early: list[Any] | None = None  # messages that came in behind hello
        self._loop = asyncio.get_running_loop()
        self._deadlines = Deadlines.of(broker.config, self._loop.time())
        self._watch: asyncio.TimerHandle | None = None  # fires at _check_at
        self._check_at = math.inf
        self._counted = False  # in the broker's count of connections by address

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        self._handshake_timer = self._loop.call_later(
            self.broker.config.handshake_timeout, self._handshake_expired
        )
        self.broker.connections.add(self)
        self._counted = True
        if not self.broker.addresses.admit(self.address):
            self.fail(0, TooManyConnections(self.broker.addresses.refusal(self.address)))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        if self._watch is not None:
            self._watch.cancel()
        if self._counted:
            self.broker.addresses.release(self.address)
            self._counted = False
        self.broker.connections.discard(self)
        self.transport = None
        for task in self._tasks:
            task.cancel()
        if self.session is not None:
            self.broker.worker_gone(self.session)

    def data_received(self, data: bytes) -> None:
        now = self._loop.time()
        times = self._deadlines
        times.active = now
        try:
            messages = self._decoder.feed(data)
        except ProtocolError as exc:
            self.fail(0, exc)
            return
        if not self._decoder.buffered:
            times.partial = None
        elif messages or times.partial is None:  # a frame began: it has frame_timeout
            times.partial = now
            self._expect(now + times.frame_timeout)
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
            task.add_done_callback(self._task_done)
            return
        if isinstance(msg, m.Hello):
            self.fail(0, ProtocolError("hello was already sent on this connection"))
            return
        try:
            access.check(self.grant, msg, self.role)
        except RunqError as exc:
            self._refuse(msg, exc)
            return
        handler = self.broker.handlers[type(msg)]
        self.spawn(handler(self.broker, self, msg), getattr(msg, "req", 0))

    def _refuse(self, msg: Any, exc: RunqError) -> None:
        """A request its token does not allow: answered with an error (a worker's
        message, which has no request id, is dropped and logged)."""
        if self.role == "worker":
            log.warning("dropped a %s from worker %s: %s", type(msg).__name__, self.peer, exc)
        else:
            self.send(m.Error(getattr(msg, "req", 0), exc.code, exc.message))

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
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._deadlines.active = self._loop.time()  # idleness counts from the reply

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
        self._expect(self._deadlines.next_check(self._loop.time(), True, True))

    def send(self, msg: msgspec.Struct) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if (
            self._deadlines.paused is not None
            and transport.get_write_buffer_size() > self.broker.config.max_pending_output
        ):
            self._expire(TooSlow("too many replies left unread"))
            return
        transport.write(codec.encode(msg))

    def fail(self, req: int, exc: RunqError) -> None:
        """Send one error frame and close: for errors after which the stream is unusable."""
        self.broker.quiet.warning(
            self._loop.time(),
            "closing %s connection from %s: %s",
            self.role,
            self.peer,
            exc.message,
        )
        self.send(m.Error(req, exc.code, exc.message))
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _handshake_expired(self) -> None:
        self._handshake_timer = None
        if not self.greeted:
            self.fail(0, ProtocolError("no hello within the handshake timeout"))

    # -- slow peers (broker/guard.py) --------------------------------------------------

    @property
    def writes_paused(self) -> bool:
        """The peer does not read its replies fast enough: send it nothing unasked."""
        return self._deadlines.paused is not None

    def pause_writing(self) -> None:
        """Our replies pile up unread: read no more requests until they drain."""
        now = self._loop.time()
        self._deadlines.paused = now
        if self.transport is not None:
            self.transport.pause_reading()
        self._expect(now + self._deadlines.write_timeout)

    def resume_writing(self) -> None:
        self._deadlines.paused = None
        self._deadlines.active = self._loop.time()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
        if self.session is not None:
            self.broker.dispatcher.wake()  # it may take assignments again

    def _expect(self, when: float) -> None:
        """Look at the time limits at ``when``, unless a look comes sooner."""
        if when < self._check_at:
            if self._watch is not None:
                self._watch.cancel()
            self._check_at = when
            self._watch = self._loop.call_at(when, self._check)

    def _check(self) -> None:
        self._watch, self._check_at = None, math.inf
        if self.transport is None:
            return
        now, busy = self._loop.time(), bool(self._tasks)
        error = self._deadlines.overdue(now, busy, self.greeted)
        if error is None:
            self._expect(self._deadlines.next_check(now, busy, self.greeted))
        else:
            self._expire(error)

    def _expire(self, error: RunqError) -> None:
        """Close a connection that overstayed a limit. A peer that does not read gets
        no error frame (it would not read it) and its unsent replies are dropped."""
        if self.transport is None:
            return
        if self._deadlines.paused is not None:
            self.broker.quiet.warning(
                self._loop.time(), "dropping %s connection from %s: %s", self.role, self.peer, error
            )
            self.transport.abort()
        elif isinstance(error, TooSlow):
            self.fail(0, error)
        else:  # idle: an ordinary end, the peer reconnects when it needs to
            log.info("closing %s connection from %s: %s", self.role, self.peer, error)
            self.send(m.Error(0, error.code, error.message))
            self.close()


Handler = Callable[["Broker", Connection, Any], Coroutine[Any, Any, None]]
