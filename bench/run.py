"""`make bench`: the throughput/latency benchmark, then the queue-depth benchmark."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    jobs = sys.argv[1] if len(sys.argv) > 1 else "100000"
    print(f"== runq bench --jobs {jobs} --workers 2 --concurrency 50", flush=True)
    cmd = [sys.executable, "-m", "runq", "bench", "--jobs", jobs, "--workers", "2"]
    rc = subprocess.call([*cmd, "--concurrency", "50"])
    print("== queue depth: broker memory and claim latency", flush=True)
    rc = rc or subprocess.call([sys.executable, str(HERE / "depth.py")])
    print("== recovery: kill -9 and SIGSTOP of a worker", flush=True)
    rc = rc or subprocess.call([sys.executable, str(HERE / "recovery.py")])
    print("== execution: Python tasks in task processes, command jobs", flush=True)
    rc = rc or subprocess.call([sys.executable, str(HERE / "execution.py")])
    print("== HTTP: single and batch submits over the REST API", flush=True)
    rc = rc or subprocess.call([sys.executable, str(HERE / "http_submit.py")])
    print("== files: a 2 GiB file up, through a worker and down; broker and worker RSS")
    return rc or subprocess.call([sys.executable, str(HERE / "files.py")])


if __name__ == "__main__":
    sys.exit(main())
