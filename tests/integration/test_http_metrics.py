"""/metrics over real HTTP, parsed with prometheus-client's own parser."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from integration_waiting import eventually
from prometheus_client.parser import text_string_to_metric_families

from runq.testing import run_broker


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


async def test_metrics_count_jobs_by_queue_and_task_and_show_depths() -> None:
    async with run_broker(http=True) as rb, httpx.AsyncClient(base_url=rb.http_url) as http:
        # Given: three word counts, two jobs that fail for good, one cancelled, and two
        # left queued in a queue nobody serves.
        jobs = [{"task": "wordcount", "args": ["a b"], "queue": "q1"}] * 3
        jobs += [{"task": "fail", "max_attempts": 2, "backoff": 0.01, "queue": "q1"}] * 2
        jobs += [{"task": "echo", "queue": "idle"}] * 3
        ids = (await http.post("/api/v1/jobs/batch", json={"jobs": jobs})).json()["ids"]
        await http.post(f"/api/v1/jobs/{ids[-1]}/cancel")
        await rb.add_worker(concurrency=4, queues=("q1",))

        async def settled() -> bool:
            q1 = (await http.get("/api/v1/queues")).json()
            counts = {q["name"]: q["counts"] for q in q1}
            return counts.get("q1") == {"succeeded": 3, "failed": 2}

        await eventually(settled, timeout=10, what="q1's jobs to finish")

        # When: Prometheus scrapes.
        r = await http.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        got = samples(r.text)

    # Then: each counter and gauge says what happened.
    def v(name: str, **labels: str) -> float:
        return got.get((name, tuple(sorted(labels.items()))), 0.0)

    assert v("runq_jobs_submitted_total", queue="q1", task="wordcount") == 3
    assert v("runq_jobs_submitted_total", queue="q1", task="fail") == 2
    assert v("runq_jobs_submitted_total", queue="idle", task="echo") == 3
    assert v("runq_jobs_started_total", queue="q1", task="wordcount") == 3
    assert v("runq_jobs_started_total", queue="q1", task="fail") == 4  # two attempts each
    assert v("runq_jobs_succeeded_total", queue="q1", task="wordcount") == 3
    assert v("runq_jobs_retried_total", queue="q1", task="fail") == 2
    assert v("runq_jobs_failed_total", queue="q1", task="fail") == 2
    assert v("runq_jobs_cancelled_total", queue="idle", task="echo") == 1
    assert v("runq_queue_jobs", queue="idle", state="queued") == 2
    assert v("runq_queue_jobs", queue="q1", state="succeeded") == 3
    assert v("runq_running_jobs") == 0
    assert v("runq_workers_connected") == 1 and v("runq_worker_slots") == 4
    assert v("runq_submit_seconds_count") == 1  # one batch
    assert v("runq_job_run_seconds_count", queue="q1") == 7
    assert v("runq_lease_expiries_total") == 0 and v("runq_stale_reports_total") == 0


async def test_the_grafana_dashboard_asks_only_for_metrics_runq_exports() -> None:
    dashboard = json.loads(
        (Path(__file__).parents[2] / "docs" / "grafana-dashboard.json").read_text()
    )
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    wanted = {name for e in exprs for name in re.findall(r"\brunq_[a-z_]+", e)}
    async with run_broker(http=True) as rb, httpx.AsyncClient(base_url=rb.http_url) as http:
        await http.post("/api/v1/jobs", json={"task": "echo"})
        text = (await http.get("/metrics")).text
    suffixes = ("", "_total", "_bucket", "_count", "_sum")
    families = [f.name for f in text_string_to_metric_families(text)]
    exported = {name + suffix for name in families for suffix in suffixes}
    assert wanted, "the dashboard has queries"
    assert wanted <= exported, wanted - exported
