"""File transfer: upload and download throughput on loopback, and the memory of the
broker and of a worker while a large file goes through them, against a real
`runq server` and `runq worker` on a temporary SQLite store.

A sparse file of --size bytes (default 2 GiB) is uploaded by the client, downloaded by
a worker that computes its SHA-256 (the `sha256` built-in), and downloaded back by the
client. RSS is read from /proc every 50 ms.

    python bench/files.py [--size 2GiB]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import runq
from runq.model.files import file_marker

PORTS = re.compile(r"clients on [^:]+:(\d+), workers on [^:]+:(\d+)")
MiB = 2**20


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Peak(threading.Thread):
    """The highest RSS of a process while it runs."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, rss_mib(pid), True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_mib(self.pid))
            time.sleep(0.05)

    def stop(self) -> float:
        self.running = False
        self.join()
        return self.peak


def start(args: list[str]) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "runq", *args, "--log-level", "warning"]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="2GiB", help="bytes of the file (2GiB, 500MiB)")
    size_text = parser.parse_args().size
    units = {"gib": 2**30, "mib": 2**20}
    size = int(float(size_text[:-3]) * units[size_text[-3:].lower()])
    with tempfile.TemporaryDirectory(prefix="runq-bench-files-") as tmp:
        root = Path(tmp)
        big = root / "big.bin"
        with big.open("wb") as f:  # sparse: costs no disk until copied
            f.truncate(size)
        limit = f"{size // MiB + 1}MiB"
        store = f"sqlite:///{root / 'f.db'}"
        args = ["server", "--store", store, "--port", "0", "--worker-port", "0", "--no-http"]
        server = start([*args, "--max-file-size", limit, "--max-job-files", limit])
        assert server.stderr is not None
        for line in server.stderr:
            if found := PORTS.search(line):
                client_port, worker_port = found.groups()
                break
        else:
            raise SystemExit("the broker did not start")
        worker = None
        try:
            worker = start(["worker", "--server", f"127.0.0.1:{worker_port}", "-c", "1"])
            run(root, big, size, server.pid, worker.pid, f"127.0.0.1:{client_port}")
        finally:
            for proc in (worker, server):
                if proc is not None:
                    proc.terminate()
                    proc.wait(20)


def run(root: Path, big: Path, size: int, broker: int, worker: int, address: str) -> None:
    expected = sha256_of(big)
    with runq.Client(address) as client:
        base = rss_mib(broker)
        peak = Peak(broker)
        peak.start()
        t = time.perf_counter()
        ref = client.upload(big)
        up = time.perf_counter() - t
        wbase = rss_mib(worker)
        wpeak = Peak(worker)
        wpeak.start()
        t = time.perf_counter()
        job = client.submit_many(
            [{"task": "sha256", "args": [file_marker(ref.name)], "files": [ref]}]
        )[0]
        found = client.result(job, timeout=600)
        work = time.perf_counter() - t
        worker_peak = wpeak.stop()
        t = time.perf_counter()
        client.download_file(ref, root / "back.bin", job_id=job)
        down = time.perf_counter() - t
        broker_peak = peak.stop()
    assert found == expected, (found, expected)
    assert sha256_of(root / "back.bin") == expected
    mb = size / 1e6
    print(f"file of {size / 2**30:.2f} GiB ({size:,} bytes), loopback, SQLite store")
    print(f"upload (client -> broker)           {mb / up:8.0f} MB/s  ({up:.1f} s)")
    print(f"worker download + sha256 job        {mb / work:8.0f} MB/s  ({work:.1f} s)")
    print(f"download (broker -> client)         {mb / down:8.0f} MB/s  ({down:.1f} s)")
    for name, before, most in (("broker", base, broker_peak), ("worker", wbase, worker_peak)):
        print(f"{name} RSS  {before:6.1f} MiB before, peak {most:6.1f} MiB (+{most - before:.1f})")


if __name__ == "__main__":
    os.environ.pop("RUNQ_TOKEN", None)
    main()
