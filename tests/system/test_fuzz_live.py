"""The real `runq server` under a stream of hostile frames on both native ports: mutated
frames of every client and worker message type, plus random bytes, over many
connections (a new one whenever the broker closes one). Afterwards the broker is alive,
answers a normal client, its memory grew by less than a bound, and the store is as it
was.

Keeping the store unchanged: a mutated frame can happen to decode into a valid message,
and a valid ``submit`` or ``cancel`` would change jobs. So each connection's bytes are
decoded first with the broker's own decoder, frame by frame (the most the broker could
act on), and a connection that would carry any message not in READ_ONLY is not sent.
Everything else is: frames that do not decode, read-only requests, and hellos.

100,000 frames take about 10 s here (2 cores), so the normal suite sends them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from pathlib import Path
from typing import Any

import pytest

from runq.errors import ProtocolError
from runq.protocol import codec
from runq.protocol import messages as m
from unit.mutations import HELLO, frames_of, mutate, noise
from unit.test_protocol import SAMPLES

from .harness import Procs, Server, all_jobs

pytestmark = pytest.mark.system

READ_ONLY: dict[str, tuple[type, ...]] = {
    "client": (
        *(m.Hello, m.Get, m.Wait, m.ListJobs, m.GetStats, m.ListWorkers, m.ListQueues),
        *(m.ReadLogs, m.ListSchedules, m.ListRateLimits, m.Explain),
    ),
    "worker": (m.Hello, m.Heartbeat, m.Drain, m.Status),
}
UNION = {"client": m.TO_BROKER_CLIENT, "worker": m.TO_BROKER_WORKER}
ALL_FRAMES = frames_of(SAMPLES)  # every role's: a port is also sent the other's
CONNECTIONS = 48  # at once, well under the per-address cap of 512
FRAMES = 100_000
RSS_GROWTH_MB = 16  # see run_fuzz below


def acted_on(role: str, pieces: list[bytes]) -> list[Any]:
    """Every message the broker could act on, were the pieces read one at a time."""
    decoder: codec.FrameDecoder[Any] = codec.FrameDecoder(UNION[role])
    found: list[Any] = []
    for piece in pieces:
        try:
            found += decoder.feed(piece)
        except ProtocolError:
            break
    return found


class Generator:
    """Connections' worth of hostile frames, deterministic for a seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.sent = 0
        self.skipped = 0

    def connection(self, role: str) -> bytes:
        """A hello (most of the time), then a few mutated frames or random bytes."""
        rng = self.rng
        pieces = [HELLO[role]] if rng.random() < 0.8 else []
        for _ in range(rng.randint(1, 6)):
            frame = rng.choice(ALL_FRAMES)
            pieces.append(noise(rng) if rng.random() < 0.1 else mutate(frame, rng))
        if not all(isinstance(msg, READ_ONLY[role]) for msg in acted_on(role, pieces)):
            self.skipped += 1
            return b""
        self.sent += len(pieces) - (pieces[0] is HELLO[role])
        return b"".join(pieces)


async def one_connection(port: int, data: bytes) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    with contextlib.suppress(OSError, TimeoutError):
        writer.write(data)
        writer.write_eof()  # the broker reads all, then sees the end (or closes first)
        async with asyncio.timeout(5):
            while await reader.read(65536):
                pass
    writer.close()


async def flood(server: Server, frames: int, seed: int) -> Generator:
    made = Generator(seed)
    ports = {"client": server.port, "worker": server.worker_port}

    async def lane(n: int) -> None:
        role = "client" if n % 2 else "worker"
        while made.sent < frames:
            data = made.connection(role)
            if data:
                await one_connection(ports[role], data)

    await asyncio.gather(*(lane(n) for n in range(CONNECTIONS)))
    return made


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def snapshot(server: Server) -> dict[str, Any]:
    with server.client() as client:
        return {
            "jobs": [(j.id, j.state, j.attempts, j.queue, j.finished_at) for j in all_jobs(client)],
            "counts": client.stats()["jobs"],
            "queues": [(q.name, q.paused, q.retention) for q in client.queues()],
            "schedules": client.schedules(),
            "limits": client.rate_limits(),
        }


def run_fuzz(procs: Procs, frames: int) -> None:
    """Warm up with 3,000 frames, measure, send ``frames`` more, compare."""
    server = procs.server()
    with server.client() as client:  # something to keep: jobs that cannot run again
        for n in range(3):
            client.cancel(client.submit("echo", n))
    before = snapshot(server)
    started = time.monotonic()
    asyncio.run(flood(server, 3_000, seed=1))  # warm-up: caches, allocator pools
    warm = rss_mb(server.pid)
    made = asyncio.run(flood(server, frames, seed=2))
    grown = rss_mb(server.pid) - warm
    took = time.monotonic() - started
    print(
        f"{made.sent} frames ({made.skipped} connections skipped) in {took:.1f} s;"
        f" RSS {warm:.0f} MiB after warm-up, grew {grown:.1f} MiB"
    )
    assert server.alive
    assert snapshot(server) == before
    with server.client() as client:
        assert client.get(client.submit("echo", "still here")).id > 3
    # The broker keeps nothing of a closed connection, so after the warm-up only the
    # allocator's high-water mark may move: 48 connections open at once, each with its
    # read buffer and a partial frame (the decoder buffers no more than a frame's
    # declared length, itself at most max_frame = 1 MiB). 16 MiB covers that; a leak of
    # 600 bytes per connection (about 30,000 of them) or 170 per frame would not fit.
    assert grown < RSS_GROWTH_MB, f"RSS grew {grown:.1f} MiB"


def test_hostile_frames_change_nothing_and_leak_nothing(procs: Procs) -> None:
    run_fuzz(procs, FRAMES)
