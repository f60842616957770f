"""`runq explain`: the sentence for each reason a job is not running yet."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest

from runq.broker.explain import Facts, explain, ids_text, span
from runq.model import ErrorInfo, Job, JobState

NOW = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC
QUEUED = Job(
    id=7,
    task="send_report",
    args=[],
    kwargs={},
    queue="reports",
    priority=0,
    state=JobState.QUEUED,
    attempts=0,
    max_attempts=3,
    run_at=NOW - 5,
    submitted_at=NOW - 5,
)


def facts(job: Job = QUEUED, **given: object) -> Facts:
    return dataclasses.replace(Facts(job, NOW, serving=1), **given)  # type: ignore[arg-type]


def job(**changes: object) -> Job:
    return msgspec.structs.replace(QUEUED, **changes)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.2, "1s"), (45, "45s"), (60, "1m"), (3900, "1h 5m"), (90061, "1d 1h"), (7 * 86400, "7d")],
)
def test_span_gives_the_two_largest_units(seconds: float, text: str) -> None:
    assert span(seconds) == text


def test_ids_text_reads_as_english() -> None:
    assert ids_text([3]) == "job 3"
    assert ids_text([3, 4]) == "jobs 3 and 4"
    assert ids_text([3, 4, 5]) == "jobs 3, 4 and 5"


def test_a_job_whose_time_has_not_come_says_when() -> None:
    later = job(state=JobState.SCHEDULED, run_at=NOW + 3900)
    assert explain(facts(later)) == (
        "job 7 has a start time that has not come: it runs at 2027-01-15 09:05:00 UTC, in 1h 5m"
    )


def test_a_job_in_retry_back_off_says_so() -> None:
    retrying = job(state=JobState.SCHEDULED, run_at=NOW + 30, attempts=1)
    assert explain(facts(retrying)) == (
        "job 7 waits out its retry back-off: it runs again at 2027-01-15 08:00:30 UTC, in 30s"
    )


def test_a_scheduled_job_that_is_due_is_about_to_be_queued() -> None:
    due = job(state=JobState.SCHEDULED, run_at=NOW - 1)
    assert explain(facts(due)) == "job 7 is due and becomes queued within a moment"


def test_a_job_waiting_for_others_names_them() -> None:
    assert explain(facts(waiting_for=[3, 4])) == "job 7 waits for jobs 3 and 4 to finish"
    waiting = job(state=JobState("waiting"))
    assert explain(facts(waiting)) == "job 7 waits for the jobs it depends on to finish"


def test_a_paused_queue_holds_the_job() -> None:
    assert explain(facts(paused=True, ahead=4)) == (
        "job 7 is queued but queue reports is paused (runq queue resume reports)"
    )


def test_a_limit_holds_the_job() -> None:
    held = facts(held_by="the rate limit 10/s of queue reports")
    assert explain(held) == "job 7 is queued but held by the rate limit 10/s of queue reports"


def test_no_worker_serves_the_queue() -> None:
    assert explain(facts(serving=0)) == (
        "job 7 is queued but no connected worker serves queue reports"
    )


def test_no_serving_worker_knows_the_task() -> None:
    assert explain(facts(task_known=False)) == (
        "job 7 is queued but no connected worker serving queue reports knows task send_report"
    )
    assert "knows task" not in explain(facts(task_known=None))  # not knowable: not said


def test_jobs_ahead_are_counted() -> None:
    assert explain(facts(ahead=1)) == (
        "job 7 is waiting behind 1 job of higher priority (or older) in queue reports"
    )
    assert "behind 12 jobs" in explain(facts(ahead=12))


def test_a_job_next_in_line() -> None:
    assert explain(facts()) == "job 7 is next in queue reports and should start within a moment"
    assert explain(facts(busy=True)) == (
        "job 7 is next in queue reports; every worker serving it is busy"
    )


def test_running_and_finished_jobs_get_a_plain_sentence() -> None:
    running = job(state=JobState.RUNNING, worker="w-1", started_at=NOW - 60, attempts=2)
    assert explain(facts(running)) == (
        "job 7 is running on worker w-1 since 2027-01-15 07:59:00 UTC (attempt 2 of 3)"
    )
    done = job(state=JobState.SUCCEEDED, finished_at=NOW, attempts=1)
    assert explain(facts(done)) == "job 7 finished: succeeded at 2027-01-15 08:00:00 UTC"
    failed = job(state=JobState.FAILED, finished_at=NOW, attempts=3, error=ErrorInfo("x", "boom"))
    assert explain(facts(failed)) == (
        "job 7 finished: failed at 2027-01-15 08:00:00 UTC after 3 attempts: boom"
    )
    cancelled = job(state=JobState.CANCELLED, finished_at=NOW)
    assert explain(facts(cancelled)) == "job 7 finished: cancelled at 2027-01-15 08:00:00 UTC"


def test_a_start_time_past_the_calendar_is_still_a_sentence() -> None:
    far = job(state=JobState.SCHEDULED, run_at=2.0**40)
    assert "1099511627776 s after the Unix epoch" in explain(facts(far))
