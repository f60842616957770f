"""Serve the HTTP app with uvicorn inside the broker's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import uvicorn
from litestar import Litestar

from runq.http.guard import HttpLimits, protocol
from runq.tls import ServerTls

log = logging.getLogger("runq.http")
DEFAULT_HTTP_PORT = 1280


class _InLoopServer(uvicorn.Server):
    """uvicorn without its signal handlers: the process that runs the broker owns them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _ssl_options(tls: ServerTls | None) -> dict[str, Any]:
    """uvicorn's TLS settings: the broker's certificate and, with a client CA, client
    certificates required as on the native ports."""
    if tls is None:
        return {}
    found: dict[str, Any] = {"ssl_certfile": tls.cert, "ssl_keyfile": tls.key}
    if tls.client_ca is not None:
        found |= {"ssl_ca_certs": tls.client_ca, "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return found


class HttpServer:
    def __init__(
        self,
        app: Litestar,
        host: str = "127.0.0.1",
        port: int = DEFAULT_HTTP_PORT,
        tls: ServerTls | None = None,
        limits: HttpLimits | None = None,  # connections, request time, header bytes
    ):
        self.app = app
        self.limits = limits or HttpLimits()
        self.host = host
        self.port = port
        self.tls = tls
        self.scheme = "http" if tls is None else "https"
        self._server: _InLoopServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    async def start(self) -> None:
        """Bind now (so a port in use fails here, and port 0 is known), then serve."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        sock.listen(1024)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._sock = sock  # uvicorn serves a copy on uvloop: this one is closed by stop()
        config = uvicorn.Config(
            self.app,
            loop="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=2,
            timeout_keep_alive=30,
            http=protocol(self.limits),
            **_ssl_options(self.tls),
        )
        self._server = _InLoopServer(config)
        self._task = asyncio.ensure_future(self._server.serve(sockets=[sock]))
        while not self._server.started and not self._task.done():
            await asyncio.sleep(0.01)
        if self._task.done():
            sock.close()
            self._task.result()  # raises what stopped it
        log.info("HTTP API and dashboard on %s://%s:%d/", self.scheme, self.host, self.port)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        finally:
            self._server = None
            if self._sock is not None:
                self._sock.close()
