"""Slow and greedy peers: stalled frames and requests are closed on time, one address
holds a bounded number of connections, silent connections are closed, and a peer that
never reads its replies is cut before its replies fill the broker's memory. Meanwhile a
normal client keeps working. (Small limits through BrokerConfig; docs/limits.md.)"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from runq.broker import BrokerConfig
from runq.broker.connection import Connection
from runq.client import AsyncClient
from runq.errors import Timeout
from runq.protocol import codec
from runq.protocol import limits as L
from runq.protocol import messages as m
from runq.testing import RunningBroker, run_broker

SHORT = 0.6  # seconds: the limit under test
MARGIN = 1.5  # seconds a close may come after its limit on a loaded 2-core machine
HELLO = codec.encode(m.Hello(role="client", version=L.PROTOCOL_VERSION))


@contextlib.asynccontextmanager
async def broker(http: bool = False, **limits: object) -> AsyncIterator[RunningBroker]:
    config = BrokerConfig(**limits)  # type: ignore[arg-type]
    async with run_broker(http=http, config=config) as rb:
        yield rb


async def closed_after(reader: asyncio.StreamReader, limit: float) -> tuple[float, bytes]:
    """Seconds until the broker closed the connection, and what it sent before."""
    start = time.monotonic()
    got = b""
    async with asyncio.timeout(limit + MARGIN):
        with contextlib.suppress(ConnectionResetError):
            while chunk := await reader.read(65536):
                got += chunk
    return time.monotonic() - start, got


async def trickle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes, every: float
) -> tuple[float, bytes]:
    """Send ``data`` a byte at a time until the broker closes the connection: how long
    that took from the first byte, and what the broker sent."""
    start = time.monotonic()
    closing = asyncio.ensure_future(closed_after(reader, SHORT + every * len(data)))
    for byte in data:
        if closing.done():
            break
        writer.write(bytes([byte]))
        await asyncio.sleep(every)
    _, got = await closing
    return time.monotonic() - start, got


def frames(data: bytes, role: str = "client") -> list[object]:
    decoder = codec.client_side() if role == "client" else codec.worker_side()
    return list(decoder.feed(data))


async def busy_client(rb: RunningBroker, stop: asyncio.Event) -> int:
    """A normal client working while others stall: the number of round trips it made."""
    done = 0
    async with rb.client() as client:
        while not stop.is_set():
            job = await client.submit("echo", done)
            assert (await client.get(job)).id == job
            done += 1
            await asyncio.sleep(0.01)
    return done


@contextlib.asynccontextmanager
async def meanwhile(rb: RunningBroker) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.ensure_future(busy_client(rb, stop))
    yield
    stop.set()
    assert await task > 0  # it was served all along, without an error


async def greeted(rb: RunningBroker) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", rb.broker.client_port)
    writer.write(HELLO)
    decoder = codec.client_side()
    while not (got := decoder.feed(await reader.read(65536))):
        pass
    assert isinstance(got[0], m.Welcome)
    return reader, writer


# -- stalls -------------------------------------------------------------------------------


async def test_a_stalled_hello_is_closed_at_the_handshake_timeout() -> None:
    async with broker(handshake_timeout=SHORT) as rb, meanwhile(rb):
        reader, writer = await asyncio.open_connection("127.0.0.1", rb.broker.client_port)
        writer.write(HELLO[:3])  # not even a whole header
        took, got = await closed_after(reader, SHORT)
        assert SHORT * 0.8 <= took <= SHORT + MARGIN
        [error] = frames(got)
        assert isinstance(error, m.Error) and "handshake" in error.message
        writer.close()


async def test_a_frame_trickled_in_is_closed_at_the_frame_timeout() -> None:
    async with broker(frame_timeout=SHORT) as rb, meanwhile(rb):
        reader, writer = await greeted(rb)
        frame = codec.encode(m.Get(1, 1)) * 10
        took, got = await trickle(reader, writer, frame, SHORT / 5)  # bytes keep coming
        assert SHORT * 0.8 <= took <= SHORT + MARGIN
        [error] = frames(got)
        assert isinstance(error, m.Error) and error.code == "too_slow", error
        assert "did not arrive whole within 0.6 s" in error.message
        writer.close()


async def test_http_headers_trickled_byte_by_byte_are_closed_on_time() -> None:
    async with broker(http=True, frame_timeout=SHORT) as rb, meanwhile(rb):
        port = rb.http.port if rb.http else 0
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"GET /health HTTP/1.1\r\nhost: x\r\nx-slow: " + b"a" * 1000
        took, got = await trickle(reader, writer, request, 0.02)
        assert SHORT * 0.8 <= took <= SHORT + MARGIN
        assert got.startswith(b"HTTP/1.1 408 ")
        async with httpx.AsyncClient(base_url=rb.http_url) as http:  # others are served
            assert (await http.get("/health")).status_code == 200
        writer.close()


async def test_an_http_connection_that_sends_nothing_is_closed() -> None:
    async with broker(http=True, frame_timeout=SHORT) as rb:
        port = rb.http.port if rb.http else 0
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        took, got = await closed_after(reader, SHORT)
        assert SHORT * 0.8 <= took <= SHORT + MARGIN
        assert got.startswith(b"HTTP/1.1 408 ")
        writer.close()


async def test_http_headers_past_their_bound_are_refused() -> None:
    async with broker(http=True) as rb, httpx.AsyncClient(base_url=rb.http_url) as http:
        reply = await http.get("/health", headers={"x-big": "a" * 70_000})
        assert reply.status_code == 431
        assert (await http.get("/health")).status_code == 200


# -- connections per address ----------------------------------------------------------------


async def test_connections_per_address_are_capped_on_the_native_ports() -> None:
    async with broker(max_connections_per_address=3) as rb:
        clients = [await AsyncClient(rb.client_address).connect() for _ in range(3)]
        reader, writer = await asyncio.open_connection("127.0.0.1", rb.broker.worker_port)
        _, got = await closed_after(reader, 0)
        [error] = frames(got, "worker")
        assert isinstance(error, m.Error) and error.code == "too_many_connections"
        assert "127.0.0.1 already holds 3 connections" in error.message
        writer.close()
        assert await clients[0].stats()  # those in are served
        await clients.pop().close()
        await asyncio.sleep(0.1)
        async with rb.client() as again:  # a place freed up
            assert await again.stats()
        for client in clients:
            await client.close()


async def test_connections_per_address_are_capped_on_http() -> None:
    async with broker(http=True, max_connections_per_address=2) as rb:
        port = rb.http.port if rb.http else 0
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        _, got = await closed_after(reader, 0)
        assert got.startswith(b"HTTP/1.1 503 ")
        assert b"already holds 2 connections" in got
        for _, w in held:
            w.close()
        writer.close()
        await asyncio.sleep(0.1)
        async with httpx.AsyncClient(base_url=rb.http_url) as http:
            assert (await http.get("/health")).status_code == 200


# -- idleness -------------------------------------------------------------------------------


async def test_idle_connections_are_closed_but_busy_ones_and_workers_are_not() -> None:
    idle = 4.0  # the reference worker sends a status every 2 s: twice the slack
    async with broker(idle_timeout=idle) as rb:
        agent = await rb.add_worker(queues=["elsewhere"])
        waiter = await AsyncClient(rb.client_address).connect()
        sleeper = await AsyncClient(rb.client_address).connect()
        job = await waiter.submit("never_runs")
        with pytest.raises(Timeout):  # one WAIT request of 1.6 idle timeouts
            await waiter.wait(job, timeout=idle * 1.6)
        transport = sleeper._transport
        assert transport is not None and transport.closed  # cut, silently idle
        assert agent.connected.is_set() and agent._greetings == 1  # never cut
        assert (await sleeper.get(job)).id == job  # and it reconnects on its next call
        await waiter.close()
        await sleeper.close()


# -- slow readers ---------------------------------------------------------------------------


async def test_a_peer_that_never_reads_is_cut_with_bounded_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cap, patience = 256 * 1024, 1.0
    async with broker(max_pending_output=cap, write_timeout=patience) as rb, meanwhile(rb):
        async with rb.client() as client:
            await client.submit_many([{"task": "echo", "args": ["x" * 200]}] * 500)
            reply = len(codec.encode(m.JobList(1, await client.list(limit=1000))))
        sock = socket.create_connection(("127.0.0.1", rb.broker.client_port))
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_sendall(sock, HELLO)
            conn = await _connection_of(rb, sock)
            flood = b"".join(codec.encode(m.ListJobs(i + 1, limit=1000)) for i in range(50))
            most = 0
            deadline = time.monotonic() + 10
            while conn.transport is not None and time.monotonic() < deadline:
                with contextlib.suppress(BlockingIOError, OSError):
                    sock.send(flood)  # and never read a byte
                most = max(most, conn.transport.get_write_buffer_size())
                await asyncio.sleep(0.005)
        finally:
            sock.close()
        assert conn.transport is None, "the slow reader was not cut"
        # it was cut while its requests were no longer read ("dropping": writes paused)
        port = conn.peer.rsplit(":", 1)[1]
        cut = [r.getMessage() for r in caplog.records if f":{port}:" in r.getMessage()]
        assert cut and cut[0].startswith("dropping client connection"), cut
        assert most <= cap + reply  # at most one reply past the cap was ever held


async def _connection_of(rb: RunningBroker, sock: socket.socket) -> Connection:
    port = sock.getsockname()[1]
    for _ in range(200):
        for conn in rb.broker.connections:
            if conn.peer.endswith(f":{port}") and conn.greeted:
                return conn
        await asyncio.sleep(0.01)
    raise AssertionError("the broker does not know this connection")
