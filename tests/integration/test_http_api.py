"""The REST API over real HTTP against a real broker (and real workers where jobs run)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from integration_waiting import eventually

from runq.testing import RunningBroker, run_broker


@pytest.fixture
async def hb() -> AsyncIterator[RunningBroker]:
    async with run_broker(http=True) as running:
        yield running


@pytest.fixture
async def http(hb: RunningBroker) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hb.http_url, timeout=10) as c:
        yield c


async def job_state(http: httpx.AsyncClient, job_id: int) -> str:
    r = await http.get(f"/api/v1/jobs/{job_id}")
    assert r.status_code == 200
    state: str = r.json()["state"]
    return state


async def test_submit_one_answers_the_job_and_a_worker_runs_it(
    hb: RunningBroker, http: httpx.AsyncClient
) -> None:
    body = {"task": "wordcount", "args": ["hello world"], "kwargs": {}, "queue": "default"}
    r = await http.post("/api/v1/jobs", json=body)
    assert r.status_code == 201
    job = r.json()
    assert job["state"] == "queued" and job["task"] == "wordcount" and job["id"] >= 1

    await hb.add_worker(concurrency=1)

    async def done() -> bool:
        return await job_state(http, job["id"]) == "succeeded"

    await eventually(done, what="the job to succeed")
    finished = (await http.get(f"/api/v1/jobs/{job['id']}")).json()
    assert finished["result"] == "word count: 2"
    assert [a["outcome"] for a in finished["history"]] == ["succeeded"]
    assert finished["worker"] and finished["started_at"] <= finished["finished_at"]


async def test_submit_with_a_delay_is_scheduled(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/jobs", json={"task": "echo", "delay": 60, "priority": 5})
    assert r.status_code == 201
    job = r.json()
    assert job["state"] == "scheduled" and job["priority"] == 5
    assert job["run_at"] >= job["submitted_at"] + 59


async def test_batch_submit_answers_ids_in_order(http: httpx.AsyncClient) -> None:
    jobs = [{"task": "echo", "args": [i]} for i in range(1000)]
    r = await http.post("/api/v1/jobs/batch", json={"jobs": jobs})
    assert r.status_code == 201
    ids = r.json()["ids"]
    assert len(ids) == 1000 and ids == sorted(ids)
    assert (await http.get(f"/api/v1/jobs/{ids[7]}")).json()["args"] == [7]


async def test_an_idempotency_key_gives_the_same_job(http: httpx.AsyncClient) -> None:
    first = (await http.post("/api/v1/jobs", json={"task": "echo", "key": "order-1"})).json()
    again = (await http.post("/api/v1/jobs", json={"task": "echo", "key": "order-1"})).json()
    assert first["id"] == again["id"]
    found = (await http.get("/api/v1/jobs", params={"key": "order-1"})).json()["jobs"]
    assert [j["id"] for j in found] == [first["id"]]


async def test_list_filters_and_pages_with_a_cursor(http: httpx.AsyncClient) -> None:
    specs = [{"task": "a" if i % 2 else "b", "queue": "q1" if i < 6 else "q2"} for i in range(10)]
    ids = (await http.post("/api/v1/jobs/batch", json={"jobs": specs})).json()["ids"]

    seen: list[int] = []
    cursor: int | None = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        page = (await http.get("/api/v1/jobs", params=params)).json()
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == ids[::-1]

    async def listed(**params: Any) -> list[int]:
        r = await http.get("/api/v1/jobs", params=params)
        assert r.status_code == 200, r.text
        return [j["id"] for j in r.json()["jobs"]]

    assert await listed(queue="q2") == ids[6:][::-1]
    assert await listed(task="a", queue="q1") == [ids[5], ids[3], ids[1]]
    assert await listed(state="queued", limit=2) == [ids[9], ids[8]]
    assert await listed(state="failed") == []
    assert await listed(since=2**39) == []


async def test_cancel_then_cancel_again_conflicts(http: httpx.AsyncClient) -> None:
    job = (await http.post("/api/v1/jobs", json={"task": "echo"})).json()
    r = await http.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    again = await http.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "illegal_transition"


async def test_retry_a_failed_job_and_retry_all_failed(
    hb: RunningBroker, http: httpx.AsyncClient
) -> None:
    specs = [{"task": "fail", "max_attempts": 1, "queue": q} for q in ("x", "x", "y")]
    ids = (await http.post("/api/v1/jobs/batch", json={"jobs": specs})).json()["ids"]
    await hb.add_worker(concurrency=3, queues=("x", "y"))

    async def all_failed() -> bool:
        return all([await job_state(http, i) == "failed" for i in ids])

    await eventually(all_failed, what="the jobs to fail")
    failed = (await http.get(f"/api/v1/jobs/{ids[0]}")).json()
    assert failed["error"]["code"] and failed["history"][0]["outcome"] == "failed"
    await hb.stop_workers()

    r = await http.post(f"/api/v1/jobs/{ids[0]}/retry")
    assert r.status_code == 200 and r.json()["state"] == "queued"
    r = await http.post("/api/v1/jobs/retry-failed", json={"queue": "x"})
    assert r.json() == {"ids": [ids[1]]}
    r = await http.post("/api/v1/jobs/retry-failed", json={})
    assert r.json() == {"ids": [ids[2]]}
    not_failed = await http.post(f"/api/v1/jobs/{ids[0]}/retry")
    assert not_failed.status_code == 409


async def test_stats_workers_and_queues(hb: RunningBroker, http: httpx.AsyncClient) -> None:
    await http.post("/api/v1/jobs/batch", json={"jobs": [{"task": "echo", "queue": "s"}] * 4})
    await hb.add_worker(concurrency=2, queues=("other",), worker_id="w-http-test")

    stats = (await http.get("/api/v1/stats")).json()
    assert stats["jobs"]["queued"] == 4 and stats["workers"] == 1
    workers = (await http.get("/api/v1/workers")).json()
    assert [(w["id"], w["queues"], w["concurrency"]) for w in workers] == [
        ("w-http-test", ["other"], 2)
    ]
    queues = (await http.get("/api/v1/queues")).json()
    kept = {"retention": 7 * 86400.0, "retention_set": False}  # the broker's retention
    assert queues == [{"name": "s", "counts": {"queued": 4}, "paused": False, **kept}]
    activity = (await http.get("/api/v1/activity", params={"minutes": 5})).json()
    assert len(activity) == 5 and activity[-1]["submitted"] == 4


async def test_a_paused_queue_is_not_dispatched_until_resumed(
    hb: RunningBroker, http: httpx.AsyncClient
) -> None:
    r = await http.post("/api/v1/queues/slow/pause")
    assert r.status_code == 200 and r.json()["paused"] is True
    await hb.add_worker(concurrency=1, queues=("slow",))
    job = (await http.post("/api/v1/jobs", json={"task": "echo", "queue": "slow"})).json()
    await asyncio.sleep(0.3)
    assert await job_state(http, job["id"]) == "queued"
    queues = (await http.get("/api/v1/queues")).json()
    kept = {"retention": 7 * 86400.0, "retention_set": False}  # the broker's retention
    assert queues == [{"name": "slow", "counts": {"queued": 1}, "paused": True, **kept}]

    assert (await http.post("/api/v1/queues/slow/resume")).json()["paused"] is False

    async def done() -> bool:
        return await job_state(http, job["id"]) == "succeeded"

    await eventually(done, what="the resumed queue's job to run")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/api/v1/jobs", b"{not json", 400, "protocol_error"),
        ("POST", "/api/v1/jobs", b'{"task": 5}', 422, "protocol_error"),
        ("POST", "/api/v1/jobs", b'{"task": "x", "priority": 1e12}', 422, "protocol_error"),
        ("POST", "/api/v1/jobs", b'{"task": "x", "surprise": 1}', 422, "protocol_error"),
        ("POST", "/api/v1/jobs", b'{"task": "no spaces allowed"}', 422, "protocol_error"),
        ("POST", "/api/v1/jobs", b'{"task": "x", "delay": -1}', 422, "protocol_error"),
        ("POST", "/api/v1/jobs/batch", b'{"jobs": []}', 422, "protocol_error"),
        ("GET", "/api/v1/jobs/12345", None, 404, "unknown_job"),
        ("GET", "/api/v1/jobs/0", None, 422, "protocol_error"),
        ("GET", "/api/v1/jobs?state=lost", None, 422, "protocol_error"),
        ("GET", "/api/v1/jobs?limit=0", None, 422, "protocol_error"),
        ("POST", "/api/v1/jobs/12345/cancel", None, 404, "unknown_job"),
        ("POST", "/api/v1/queues/bad%20name/pause", None, 422, "protocol_error"),
        ("GET", "/api/v1/nothing-here", None, 404, "not_found"),
    ],
)
async def test_bad_requests_get_a_clear_error_and_change_nothing(
    hb: RunningBroker,
    http: httpx.AsyncClient,
    method: str,
    path: str,
    body: bytes | None,
    status: int,
    code: str,
) -> None:
    before = await hb.broker.store.counts()
    headers = {"content-type": "application/json"}
    r = await http.request(method, path, content=body, headers=headers)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code and error["message"] and "Traceback" not in r.text
    assert await hb.broker.store.counts() == before
    assert hb.broker.paused_queues == set()


async def test_an_oversized_body_is_refused_with_413(
    hb: RunningBroker, http: httpx.AsyncClient
) -> None:
    big = {"task": "echo", "args": ["x" * (2 * 1024 * 1024)]}
    r = await http.post("/api/v1/jobs", json=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "frame_too_large"
    assert await hb.broker.store.counts() == {}


async def test_health_ready_and_the_openapi_document(http: httpx.AsyncClient) -> None:
    assert (await http.get("/health")).json() == {"status": "ok"}
    assert (await http.get("/ready")).json() == {"status": "ready"}
    doc = (await http.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    for path in ("/api/v1/jobs", "/api/v1/jobs/batch", "/api/v1/work/claim", "/health"):
        assert path in doc["paths"], path
    docs = await http.get("/api/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_ready_fails_while_the_broker_shuts_down(
    hb: RunningBroker, http: httpx.AsyncClient
) -> None:
    hb.broker.accepting = False
    r = await http.get("/ready")
    assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
    refused = await http.post("/api/v1/jobs", json={"task": "echo"})
    assert refused.status_code == 503
    hb.broker.accepting = True


async def test_a_start_time_past_the_calendar_renders_everywhere(http: httpx.AsyncClient) -> None:
    job = (await http.post("/api/v1/jobs", json={"task": "echo", "run_at": 2**40})).json()
    for path in (f"/jobs/{job['id']}", "/jobs", "/", f"/api/v1/jobs/{job['id']}/explain"):
        r = await http.get(path)
        assert r.status_code == 200, (path, r.text[:200])
    assert "1099511627776 s after" in (await http.get(f"/jobs/{job['id']}")).text
