"""The bash worker of examples/ drains jobs over HTTP from a real `runq server`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from .harness import Cli, Procs, wait_until

pytestmark = pytest.mark.system

SCRIPT = Path(__file__).parents[2] / "examples" / "http-worker.sh"


def test_the_bash_http_worker_runs_jobs_with_their_fences(procs: Procs, tmp_path: Path) -> None:
    for tool in ("bash", "curl", "jq"):
        assert shutil.which(tool), f"{tool} is needed (make test installs it)"
    # Given: a broker with 20 word counts, 5 upper-casings and one task the worker lacks.
    server = procs.server()
    http = httpx.Client(base_url=server.http_url, timeout=10)
    texts = [" ".join(["word"] * (i % 7 + 1)) for i in range(20)]
    jobs = [{"task": "wordcount", "args": [t]} for t in texts]
    jobs += [{"task": "upper", "args": [f"shout {i}"]} for i in range(5)]
    jobs.append({"task": "resize", "args": ["photo.jpg"], "max_attempts": 5})
    ids = http.post("/api/v1/jobs/batch", json={"jobs": jobs}).raise_for_status().json()["ids"]

    # When: the example worker runs until it has handled all 26 jobs.
    env = {**os.environ, "RUNQ_HTTP": server.http_url, "WORKER": "bash-1", "WAIT": "1"}
    env["MAX_JOBS"] = str(len(ids))
    log = (tmp_path / "bash-worker.log").open("wb")
    worker = subprocess.Popen(["bash", str(SCRIPT)], env=env, stdout=log, stderr=log)
    try:
        assert worker.wait(timeout=90) == 0, (tmp_path / "bash-worker.log").read_text()
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
        log.close()

    # Then: every job ended as the worker reported it, on its first attempt.
    def job(job_id: int) -> dict[str, object]:
        found: dict[str, object] = http.get(f"/api/v1/jobs/{job_id}").json()
        return found

    def all_finished() -> list[dict[str, object]] | None:
        found = [job(i) for i in ids]
        return found if all(j["state"] in ("succeeded", "failed") for j in found) else None

    finished = wait_until(all_finished, 10, what="every job to finish")
    by_id = {j["id"]: j for j in finished}
    for job_id, text in zip(ids, texts, strict=False):
        assert by_id[job_id]["state"] == "succeeded" and by_id[job_id]["result"] == len(
            text.split()
        )
    for n, job_id in enumerate(ids[20:25]):
        assert by_id[job_id]["result"] == f"SHOUT {n}"
    unknown = by_id[ids[-1]]
    assert unknown["state"] == "failed" and unknown["attempts"] == 1
    assert unknown["error"] == {
        "code": "unknown_task",
        "message": "this worker has no task resize",
        "retryable": False,
    }
    assert {a["worker"] for j in finished for a in j["history"]} == {"bash-1"}
    http.close()


def test_the_bash_http_worker_presents_its_token(procs: Procs, tmp_path: Path, cli: Cli) -> None:
    # Given: a store with tokens, a work token for queue "q" and a submit token.
    url = f"sqlite:///{tmp_path / 'runq.db'}"
    work = cli("token", "create", "--scope", "work:q", "--json", "--store", url).json()["token"]
    sub = cli("token", "create", "--scope", "submit:q", "--json", "--store", url).json()["token"]
    server = procs.server()
    http = httpx.Client(
        base_url=server.http_url, timeout=10, headers={"Authorization": f"Bearer {sub}"}
    )
    jobs = [{"task": "upper", "args": [f"x{i}"], "queue": "q"} for i in range(3)]
    ids = http.post("/api/v1/jobs/batch", json={"jobs": jobs}).raise_for_status().json()["ids"]
    # When: the example worker runs with the work token in RUNQ_TOKEN.
    env = {**os.environ, "RUNQ_HTTP": server.http_url, "WORKER": "bash-t", "WAIT": "1"}
    env |= {"MAX_JOBS": "3", "QUEUE": "q", "RUNQ_TOKEN": work}
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # Then: it ran them, and the submitter reads their results with its own token.
    results = [http.get(f"/api/v1/jobs/{i}").json()["result"] for i in ids]
    assert results == ["X0", "X1", "X2"]
    http.close()
