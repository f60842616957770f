"""uvicorn's httptools protocol with the bounds of the native ports: connections per
address, a deadline for each request to arrive whole (request line, headers and body),
and a cap on the bytes of a request's line and headers (httptools has none).

uvicorn on its own waits forever for the first request of a connection and for a
request trickled in a byte at a time; between requests its keep-alive timeout applies.
docs/limits.md lists every bound.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from runq.broker.config import BrokerConfig
from runq.broker.guard import AddressCount

MAX_HEADER_BYTES: Final = 64 * 1024  # a request's line and headers


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_connections_per_address: int = 512
    request_timeout: float = 30.0  # seconds from a request's first byte to its last
    max_header_bytes: int = MAX_HEADER_BYTES

    @classmethod
    def of(cls, config: BrokerConfig) -> HttpLimits:
        """The broker's bounds: its per-address cap and its frame timeout."""
        return cls(config.max_connections_per_address, config.frame_timeout)


def protocol(limits: HttpLimits) -> type[GuardedHttp]:
    """A protocol class for one server, with its own count of connections by address."""

    class Guarded(GuardedHttp):
        pass

    Guarded.limits = limits
    Guarded.addresses = AddressCount(limits.max_connections_per_address)
    return Guarded


class GuardedHttp(HttpToolsProtocol):
    limits: ClassVar[HttpLimits] = HttpLimits()
    addresses: ClassVar[AddressCount] = AddressCount(limits.max_connections_per_address)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._address: str | None = None  # set while counted
        self._header_bytes = 0
        self._in_headers = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else "?"
        self._address = address
        if not self.addresses.admit(address):
            self._reply(503, self.addresses.refusal(address))
            return
        self._start_clock()  # the first request, too, must come in time

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        if self._address is not None:
            self.addresses.release(self._address)
            self._address = None
        super().connection_lost(exc)

    # -- parser callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._in_headers = True
        self._start_clock()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._stop_clock()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if self._header_bytes > self.limits.max_header_bytes:
            self._reply(431, f"request line and headers over {self.limits.max_header_bytes} bytes")
        else:
            super().send_400_response(msg)

    # -- bounds ------------------------------------------------------------------------

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.limits.max_header_bytes:
            raise ValueError("request headers too large")  # the parser answers with 400

    def _start_clock(self) -> None:
        if self._deadline is None:
            timeout = self.limits.request_timeout
            self._deadline = self.loop.call_later(timeout, self._too_slow)

    def _stop_clock(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._in_headers or self.cycle is None:  # no response can have started
            self._reply(408, f"the request did not arrive within {self.limits.request_timeout:g} s")
        else:
            self.transport.close()

    def _reply(self, status: int, text: str) -> None:
        """A plain-text answer, then close (the connection is refused or abandoned)."""
        body = text.encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()


_REASONS: Final = {
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}
