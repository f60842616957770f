"""The dashboard in a real browser: pages open, stay live, and their buttons act on the
broker. Each test runs a real broker with HTTP and real worker agents on port 0."""

from __future__ import annotations

import asyncio
import re

import pytest
from browser_support import DESKTOP, PHONE, Dashboard, FailsOnce, Gate
from playwright.async_api import Route, expect

from runq.client import AsyncClient, JobFailed
from runq.model import JobState
from runq.testing import RunningBroker

S = JobState


async def fail_once(client: AsyncClient, text: str, queue: str = "default") -> int:
    """Submit a job of the "once" task with no retries and wait until it has failed."""
    job_id = await client.submit("once", text, queue=queue, retries=0)
    with pytest.raises(JobFailed):
        await client.result(job_id, timeout=10)
    return job_id


async def test_a_submitted_job_appears_running_then_finishes(
    rb: RunningBroker, client: AsyncClient, dash: Dashboard
) -> None:
    gate = Gate()
    await rb.add_worker(executors=[gate])
    await dash.open("/jobs")
    await expect(dash.page.locator("[data-empty=jobs]")).to_be_visible()

    # Given a job submitted after the page loaded, the page shows it running by itself
    job_id = await client.submit("gate")
    row = dash.page.locator(f"#jobs tr[data-job='{job_id}']")
    await expect(row).to_have_attribute("data-state", "running")
    await expect(row.locator(".state")).to_have_text("running")
    await expect(dash.page.locator("[data-empty=jobs]")).to_be_hidden()

    # When it finishes, the same row says so without a reload
    gate.opened.set()
    await expect(row).to_have_attribute("data-state", "succeeded")
    assert (await client.get(job_id)).state is S.SUCCEEDED

    # The overview counts it and draws it; its page shows the result and one attempt
    await dash.open("/")
    await expect(dash.page.locator("[data-total=succeeded]")).to_have_text("1")
    await expect(dash.page.locator("[data-hour=succeeded]")).to_have_text("1")
    await expect(dash.page.locator("[data-hour=failure_rate]")).to_have_text("0.0%")
    chart = dash.page.locator("#chart-throughput svg")
    await expect(chart.locator("[data-series=succeeded]")).to_have_count(1)
    await expect(dash.page.locator("#queue-depths tr[data-queue=default]")).to_be_visible()
    await dash.open(f"/jobs/{job_id}")
    await expect(dash.page.locator("#result")).to_have_text('"opened"')
    await expect(dash.page.locator("#timeline [data-outcome]")).to_have_count(1)


async def test_retry_a_failed_job_by_clicking(
    rb: RunningBroker, client: AsyncClient, dash: Dashboard
) -> None:
    tasks = FailsOnce()
    await rb.add_worker(executors=[tasks])
    job_id = await fail_once(client, "parcel-7")
    await rb.stop_workers()  # so the retried job waits where we can see it

    await dash.open("/failed")
    row = dash.page.locator(f"#jobs tr[data-job='{job_id}']")
    await expect(row.locator(".error-text")).to_contain_text("RuntimeError: first run of parcel-7")
    await row.get_by_role("button", name="Retry").click()

    await expect(dash.page.locator("#flash")).to_have_text(f"Job {job_id} queued again.")
    await expect(row).to_have_count(0)
    await expect(dash.page.locator("[data-empty=jobs]")).to_be_visible()
    assert (await client.get(job_id)).state is S.QUEUED

    # Its page shows it queued, then running again and done once a worker is back
    await dash.open(f"/jobs/{job_id}")
    await expect(dash.page.locator("#job-state")).to_have_attribute("data-state", "queued")
    await expect(dash.page.locator("#traceback")).to_contain_text("RuntimeError")
    await rb.add_worker(executors=[tasks])
    await expect(dash.page.locator("#job-state")).to_have_attribute("data-state", "succeeded")
    outcomes = dash.page.locator("#timeline [data-outcome]")
    await expect(outcomes).to_have_count(2)
    assert await outcomes.evaluate_all("els => els.map(e => e.dataset.outcome)") == [
        "failed",
        "succeeded",
    ]
    await expect(dash.page.locator("#result")).to_have_text('"parcel-7"')


async def test_retry_all_failed_jobs_by_clicking(
    rb: RunningBroker, client: AsyncClient, dash: Dashboard
) -> None:
    await rb.add_worker(executors=[FailsOnce()], queues=["default", "mail"])
    ids = [await fail_once(client, f"n{i}", queue=q) for i, q in enumerate(["default", "mail"])]
    await rb.stop_workers()

    await dash.open("/failed")
    await expect(dash.page.locator("#jobs tbody tr")).to_have_count(2)
    await dash.page.get_by_role("button", name="Retry all failed").click()

    await expect(dash.page.locator("#flash")).to_have_text("2 failed jobs queued again.")
    await expect(dash.page.locator("#jobs tbody tr")).to_have_count(0)
    assert [(await client.get(i)).state for i in ids] == [S.QUEUED, S.QUEUED]


async def test_a_refused_click_says_why(
    rb: RunningBroker, client: AsyncClient, dash: Dashboard
) -> None:
    await rb.add_worker(executors=[FailsOnce()])
    job_id = await fail_once(client, "twice")
    await rb.stop_workers()

    # Given a failed-jobs page whose list cannot refresh, and its job retried meanwhile
    release = asyncio.Event()

    async def hold(route: Route) -> None:
        await release.wait()
        await route.continue_()

    await dash.page.route(lambda url: "/api/v1/jobs?" in url, hold)
    await dash.open("/failed")
    await client.retry(job_id)

    # When its stale Retry button is clicked, the page says why the broker refused
    row = dash.page.locator(f"tr[data-job='{job_id}']")
    await row.get_by_role("button", name="Retry").click()
    flash = dash.page.locator("#flash")
    await expect(flash).to_have_attribute("data-kind", "error")
    await expect(flash).to_contain_text("queued")
    dash.expect_error("409")

    # And once the list refreshes it catches up
    release.set()
    await expect(row).to_have_count(0)
    assert (await client.get(job_id)).state is S.QUEUED


async def test_cancel_a_waiting_job_by_clicking(
    rb: RunningBroker, client: AsyncClient, dash: Dashboard
) -> None:
    job_id = await client.submit("echo", "later", delay=3600)
    await dash.open(f"/jobs/{job_id}")
    state = dash.page.locator("#job-state")
    await expect(state).to_have_attribute("data-state", "scheduled")

    await dash.page.get_by_role("button", name="Cancel").click()
    await expect(dash.page.locator("#flash")).to_have_text(f"Job {job_id} cancelled.")
    await expect(state).to_have_attribute("data-state", "cancelled")
    await expect(dash.page.get_by_role("button", name="Cancel")).to_have_count(0)
    assert (await client.get(job_id)).state is S.CANCELLED


async def test_pause_and_resume_a_queue_by_clicking(
    rb: RunningBroker, client: AsyncClient, dash: Dashboard
) -> None:
    await rb.add_worker(queues=["default", "other"])
    await client.wait(await client.submit("echo", "first"), 10)
    await dash.open("/queues")
    row = dash.page.locator("#queues tr[data-queue=default]")
    await expect(row.locator("[data-count=succeeded]")).to_have_text("1")

    # When the queue is paused by its button
    await row.get_by_role("button", name="Pause").click()
    await expect(row).to_have_attribute("data-paused", "true")
    await expect(row.get_by_role("button", name="Resume")).to_be_visible()
    assert rb.broker.paused_queues == {"default"}

    # Then a job submitted to it stays queued, while another queue's job is dispatched
    held = await client.submit("echo", "held")
    passed = await client.submit("echo", "passed", queue="other")
    assert await client.result(passed, timeout=10) == "passed"
    assert (await client.get(held)).state is S.QUEUED
    await expect(row.locator("[data-count=queued]")).to_have_text("1")

    # When it is resumed, the held job runs
    await row.get_by_role("button", name="Resume").click()
    await expect(row).to_have_attribute("data-paused", "false")
    assert await client.result(held, timeout=10) == "held"
    assert rb.broker.paused_queues == set()
    await expect(row.locator("[data-count=queued]")).to_have_text("0")
    await expect(row.locator("[data-count=succeeded]")).to_have_text("2")


PAGES = [
    ("overview", "/", "Overview"),
    ("queues", "/queues", "Queues"),
    ("jobs", "/jobs", "Jobs"),
    ("job", "/jobs/{failed}", "Job {failed} once"),
    ("failed", "/failed", "Failed jobs"),
    ("workers", "/workers", "Workers"),
]


async def test_every_page_opens_on_a_desktop_and_a_phone(
    rb: RunningBroker, client: AsyncClient, dash: Dashboard
) -> None:
    await rb.add_worker(executors=[FailsOnce()], queues=["default", "mail"])
    failed = await fail_once(client, "broken")
    for i in range(5):
        await client.wait(await client.submit("wordcount", f"hello world {i}", queue="mail"), 10)
    await client.submit("echo", "later", delay=3600)

    for size, viewport in [("desktop", DESKTOP), ("phone", PHONE)]:
        await dash.page.set_viewport_size(viewport)
        for name, path, heading in PAGES:
            reply = await dash.open(path.format(failed=failed))
            assert reply.status == 200, (path, reply.status)
            assert reply.headers["content-type"].startswith("text/html")
            assert "script-src 'self'" in reply.headers["content-security-policy"]
            await expect(dash.page.locator("h1")).to_have_text(heading.format(failed=failed))
            await dash.polled()  # its script ran and read the API
            width = await dash.page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"], f"{path} is {width} px wide on a {size}"
            await dash.screenshot(f"{size}-{name}")

    shots = sorted(p.name for p in dash.shots.iterdir())
    assert shots == sorted(f"{s}-{n}.png" for s in ("desktop", "phone") for n, _, _ in PAGES)


async def test_workers_page_shows_memory_and_task_processes(
    rb: RunningBroker, dash: Dashboard
) -> None:
    agent = await rb.add_worker(concurrency=3, executors=[FailsOnce()])
    await dash.open("/workers")
    row = dash.page.locator(f"#workers tr[data-worker='{agent.id}']")
    await expect(row.locator("[data-count=running]")).to_have_text("0/3")
    # the worker's status (its memory and processes) arrives within a couple of seconds
    await expect(row).to_contain_text(re.compile(r"\d+\.\d MB"))
    await expect(row.locator("[data-pid='4242']")).to_have_text("4242 busy · 7 jobs · 12.5 MB")
    await expect(row.locator("[data-pid='4243']")).to_have_text("4243 idle · 3 jobs · 11.0 MB")

    second = await rb.add_worker(queues=["mail"])
    await expect(dash.page.locator(f"#workers tr[data-worker='{second.id}']")).to_be_visible()
    await expect(dash.page.locator("#workers tbody tr")).to_have_count(2)


async def test_jobs_filter_search_and_pages(
    rb: RunningBroker, client: AsyncClient, dash: Dashboard
) -> None:
    await rb.add_worker(queues=["a", "b"])
    a_ids = [await client.submit("echo", f"a{i}", queue="a") for i in range(7)]
    b_ids = [await client.submit("wordcount", f"b{i}", queue="b", key=f"k-{i}") for i in range(3)]
    for job_id in a_ids + b_ids:
        await client.wait(job_id, 10)

    # Filter by queue and task with the form
    await dash.open("/jobs")
    await dash.page.get_by_label("Queue", exact=True).fill("b")
    await dash.page.get_by_label("Task", exact=True).fill("wordcount")
    await dash.page.get_by_role("button", name="Filter").click()
    await expect(dash.page).to_have_url(re.compile(r"queue=b"))
    ids = dash.page.locator("#jobs tbody tr")
    await expect(ids).to_have_count(3)
    await dash.polled()  # the live update keeps the filter
    assert await ids.evaluate_all("rs => rs.map(r => +r.dataset.job)") == b_ids[::-1]

    # Search by key, then by id (which opens the job)
    await dash.open("/jobs")
    await dash.page.get_by_label("Job id or key").fill("k-1")
    await dash.page.get_by_label("Job id or key").press("Enter")
    await expect(ids).to_have_count(1)
    await expect(ids.first).to_have_attribute("data-job", str(b_ids[1]))
    await dash.page.get_by_label("Job id or key").fill(str(a_ids[2]))
    await dash.page.get_by_label("Job id or key").press("Enter")
    await expect(dash.page).to_have_url(f"{rb.http_url}/jobs/{a_ids[2]}")
    await expect(dash.page.locator("#args")).to_contain_text('"a2"')

    # Pages of three, older and older, and back to the newest; the live updates stay on
    # the page being read
    await dash.open("/jobs?queue=a&limit=3")
    seen = []
    for expected in ([6, 5, 4], [3, 2, 1], [0]):
        want = [a_ids[i] for i in expected]
        await expect(ids).to_have_count(len(want))
        await dash.polled()
        assert await ids.evaluate_all("rs => rs.map(r => +r.dataset.job)") == want
        seen += want
        older = dash.page.locator("[data-pager=older]")
        if expected != [0]:
            await older.click()
    await expect(older).to_be_hidden()
    assert seen == a_ids[::-1]
    await dash.page.locator("[data-pager=newest]").click()
    await expect(ids.first).to_have_attribute("data-job", str(a_ids[6]))


async def test_an_unknown_job_is_a_404_page(rb: RunningBroker, dash: Dashboard) -> None:
    for path in ["/jobs/424242", "/jobs/not-a-number", "/jobs/99999999999999999999999"]:
        reply = await dash.open(path)
        assert reply.status == 404, path
        assert reply.headers["content-type"].startswith("text/html")
        await expect(dash.page.locator("h1")).to_have_text("Not found")
        await expect(dash.page.locator("[data-error]")).to_contain_text("There is no job")
        dash.expect_error("404")
    reply = await dash.open("/jobs?state=nonsense")
    assert reply.status == 422
    await expect(dash.page.locator("[data-error]")).to_contain_text("unknown state 'nonsense'")
    dash.expect_error("422")
    await dash.screenshot("not-found")


async def test_what_jobs_carry_is_shown_as_text(
    rb: RunningBroker, client: AsyncClient, dash: Dashboard
) -> None:
    await rb.add_worker(executors=[FailsOnce()])
    html = "<img src=x onerror=\"document.title='pwned'\">"
    job_id = await client.submit("once", html, key=f"<b>{html}</b>", retries=0)
    with pytest.raises(JobFailed):
        await client.result(job_id, timeout=10)

    await dash.open(f"/jobs/{job_id}")
    await expect(dash.page.locator("#args")).to_contain_text(html.replace('"', '\\"'))
    await expect(dash.page.locator("#error")).to_contain_text(f"first run of {html}")
    await expect(dash.page.locator(".facts")).to_contain_text(f"<b>{html}</b>")
    await dash.open("/failed")  # rows drawn by the script
    await dash.polled()
    await expect(dash.page.locator(f"tr[data-job='{job_id}'] .error-text")).to_contain_text(html)
    for path in (f"/jobs/{job_id}", "/failed"):
        await dash.open(path)
        await dash.polled()
        assert await dash.page.locator("main img, main b").count() == 0
        assert "pwned" not in await dash.page.title()
