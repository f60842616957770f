"""HTTP submit throughput: single submits from many keep-alive connections, and batches
of 1,000, against a real `runq server` on a temporary SQLite store.

The load comes from a small asyncio HTTP/1.1 client (keep-alive, one request in flight
per connection), so the broker, not the load generator, is what is measured.

    python bench/http_submit.py [--singles 20000] [--connections 32] [--batches 200]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

HTTP_PORT = re.compile(r"HTTP on [^:]+:(\d+)")


def start_broker(tmp: Path) -> tuple[subprocess.Popen[str], int]:
    cmd = [sys.executable, "-m", "runq", "server", "--store", f"sqlite:///{tmp / 'h.db'}"]
    cmd += ["--port", "0", "--worker-port", "0", "--http-port", "0", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        found = HTTP_PORT.search(line)
        if found:
            return proc, int(found.group(1))
    raise SystemExit("the broker did not start")


class Conn:
    """One keep-alive HTTP/1.1 connection: POST a body, read the answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)


async def connect(port: int) -> Conn:
    return Conn(*await asyncio.open_connection("127.0.0.1", port))


async def load(port: int, path: str, body: bytes, requests: int, connections: int) -> float:
    """Send ``requests`` POSTs of ``body`` over ``connections`` keep-alive connections;
    answer the seconds it took."""
    conns = [await connect(port) for _ in range(connections)]
    left = requests

    async def run(conn: Conn) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            status, _ = await conn.post(path, body)
            assert status == 201, status

    began = time.perf_counter()
    await asyncio.gather(*(run(c) for c in conns))
    return time.perf_counter() - began


async def singles(port: int, total: int, connections: int) -> float:
    body = msgspec.json.encode({"task": "echo", "args": ["hello"]})
    return total / await load(port, "/api/v1/jobs", body, total, connections)


async def batches(port: int, count: int, size: int, connections: int) -> float:
    body = msgspec.json.encode({"jobs": [{"task": "echo", "args": [i]} for i in range(size)]})
    return count * size / await load(port, "/api/v1/jobs/batch", body, count, connections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--singles", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="runq-bench-http-") as tmp:
        proc, port = start_broker(Path(tmp))
        try:
            asyncio.run(singles(port, 500, 4))  # warm up
            rate = asyncio.run(singles(port, args.singles, args.connections))
            print(
                f"HTTP single submits: {rate:,.0f} jobs/s"
                f" ({args.singles:,} submits over {args.connections} connections)"
            )
            for conns in (1, 2):
                rate = asyncio.run(batches(port, args.batches, 1000, conns))
                print(
                    f"HTTP batch submits: {rate:,.0f} jobs/s ({args.batches} batches of 1,000,"
                    f" {conns} connection{'s' if conns > 1 else ''})"
                )
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
