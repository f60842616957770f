"""The client's connection: pipelined requests matched to replies by request id."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import ssl
from typing import Any, cast

import msgspec

from runq.errors import ConnectionLost, InvalidArguments, ProtocolError, RunqError, from_code
from runq.protocol import codec
from runq.protocol import limits as L
from runq.protocol import messages as m
from runq.tls import connect_args
from runq.tls import reason as tls_reason

DEFAULT_PORT = 1209
CHUNKS_IN_FLIGHT = 8  # the broker lets 16 wait per connection
CLOSED = "the broker closed the connection"
HINTS = {  # why a broker may close a connection before its welcome, with TLS or without
    True: "does it serve TLS? then trust its CA: tls_ca, --tls-ca or $RUNQ_TLS_CA",
    False: "does it want a client certificate? tls_cert and tls_key, --tls-cert and"
    " --tls-key or $RUNQ_TLS_CERT and $RUNQ_TLS_KEY",
}


def parse_server(server: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``host[:port]`` (``[v6addr]:port`` too) into a host and a port."""
    from runq.errors import ConfigError

    text = server.strip()
    if not text:
        raise ConfigError("the server address is empty")
    host, sep, port_text = text.rpartition(":")
    if not sep or (host.count(":") and not host.endswith("]")):
        host, port_text = text, ""
    host = host.strip("[]") or "127.0.0.1"
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"bad port in server address {server!r}")
    return host, int(port_text)


def parse_servers(servers: str, default_port: int = DEFAULT_PORT) -> list[tuple[str, int]]:
    """A comma-separated list of ``host[:port]`` (brokers to fail over between), in order."""
    from runq.errors import ConfigError

    parts = [p for p in servers.split(",") if p.strip()]
    if not parts:
        raise ConfigError("the server address is empty")
    return list(dict.fromkeys(parse_server(p, default_port) for p in parts))


def format_server(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Transport(asyncio.Protocol):
    def __init__(self) -> None:
        self._decoder: codec.FrameDecoder[Any] = codec.client_side()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._transport: asyncio.Transport | None = None
        self._welcome: asyncio.Future[m.Welcome] | None = None
        self._lost: RunqError | None = None
        self.max_frame = L.MAX_FRAME  # the broker's limit, learnt from its welcome
        # upload chunks in flight on this connection, over all uploads (client/files.py)
        self.chunks = asyncio.Semaphore(CHUNKS_IN_FLIGHT)

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        token: str | None,
        timeout: float,
        tls: ssl.SSLContext | None = None,
    ) -> Transport:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                tls_args = connect_args(tls, host, timeout)
                _, proto = await loop.create_connection(cls, host, port, **tls_args)
                try:
                    await proto._handshake(token)
                except BaseException:
                    proto.close()  # refused (a bad token, too many connections): ours too
                    raise
        except TimeoutError:
            raise ConnectionLost(f"no answer from a broker at {host}:{port}") from None
        except ConnectionLost as exc:
            if not exc.message.startswith(CLOSED):
                raise
            detail = exc.message[len(CLOSED) :]  # "" or " (the TLS reason)"
            raise ConnectionLost(
                f"the broker at {host}:{port} closed the connection{detail} before its"
                f" welcome ({HINTS[tls is None]})"
            ) from None
        except ssl.SSLError as exc:
            raise ConnectionLost(
                f"TLS with the broker at {host}:{port} failed ({tls_reason(exc)})"
            ) from None
        except OSError as exc:
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            raise ConnectionLost(
                f"cannot reach a broker at {host}:{port} ({reason}); is `runq server` running?"
            ) from None
        return proto

    async def _handshake(self, token: str | None) -> None:
        self._welcome = asyncio.get_running_loop().create_future()
        self._write(m.Hello(role="client", version=L.PROTOCOL_VERSION, token=token))
        self.max_frame = (await self._welcome).max_frame

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            messages = self._decoder.feed(data)
        except ProtocolError as exc:
            self._fail_all(exc)
            self.close()
            return
        for msg in messages:
            self._dispatch(msg)

    def _dispatch(self, msg: Any) -> None:
        if isinstance(msg, m.Welcome):
            if self._welcome is not None and not self._welcome.done():
                self._welcome.set_result(msg)
            return
        req = getattr(msg, "req", 0)
        if req == 0 and isinstance(msg, m.Error):
            self._fail_all(from_code(msg.code, msg.message))
            return
        fut = self._pending.pop(req, None)
        if fut is None or fut.done():
            return
        if isinstance(msg, m.Error):
            fut.set_exception(from_code(msg.code, msg.message))
        else:
            fut.set_result(msg)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if isinstance(exc, ssl.SSLError):  # e.g. the broker refused our certificate
            self._fail_all(ConnectionLost(f"{CLOSED} ({tls_reason(exc)})"))
        else:
            self._fail_all(ConnectionLost(CLOSED))

    def _fail_all(self, exc: RunqError) -> None:
        self._lost = self._lost or exc
        futures = list(self._pending.values())
        if self._welcome is not None:
            futures.append(self._welcome)
        self._pending.clear()
        for fut in futures:
            if not fut.done():
                fut.set_exception(exc)

    def next_id(self) -> int:
        return next(self._ids)

    def request(self, msg: msgspec.Struct | bytes, req: int) -> asyncio.Future[Any]:
        """Send ``msg`` (built with request id ``req``, or already a frame); the future
        gets the reply."""
        if self._transport is None or self._transport.is_closing():
            raise self._lost or ConnectionLost("not connected to a broker")
        try:
            frame = msg if isinstance(msg, bytes) else codec.encode(msg)
        except (OverflowError, TypeError, ValueError) as exc:
            raise InvalidArguments(f"cannot send this request: {exc}") from None
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req] = fut
        self._transport.write(frame)
        return fut

    def _write(self, msg: msgspec.Struct) -> None:
        assert self._transport is not None
        self._transport.write(codec.encode(msg))

    @property
    def closed(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
