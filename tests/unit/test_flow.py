"""Flow control, pure: rates, token buckets, and which candidates a claim starts."""

from __future__ import annotations

import msgspec
import pytest

from runq.errors import ScheduleError
from runq.model.flow import Budget, Candidate, RateLimit, choose, parse_rate, refill
from runq.model.schedule import ScheduleSpec, check
from runq.model.spec import JobSpec, validate


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("100/s", (100, "s")),
        ("600/m", (600, "m")),
        ("2.5 / sec", (2.5, "s")),
        ("10/hour", (10, "h")),
    ],
)
def test_rates_are_parsed(text: str, parsed: tuple[float, str]) -> None:
    assert parse_rate(text) == parsed


@pytest.mark.parametrize(
    "text", ["0/s", "fast", "-1/s", "10", "10/fortnight", "1e3/s", "2000000/s"]
)
def test_bad_rates_are_refused_with_the_reason(text: str) -> None:
    with pytest.raises(ValueError, match="invalid rate"):
        parse_rate(text)


def test_a_limit_has_a_rate_per_second_and_a_burst_of_one_seconds_worth() -> None:
    assert RateLimit("queue", "q", 600, "m").rate == 10.0
    assert RateLimit("queue", "q", 600, "m").capacity == 10.0
    assert RateLimit("queue", "q", 6, "m").capacity == 1.0
    assert RateLimit("queue", "q", 6, "m", burst=4).capacity == 4.0
    assert RateLimit("task", "t", 2.5).text() == "2.5/s"


def test_a_bucket_fills_at_its_rate_up_to_its_capacity() -> None:
    assert refill(0.0, 100.0, 2.0, 5.0, 101.0) == 2.0
    assert refill(0.0, 100.0, 2.0, 5.0, 200.0) == 5.0
    assert refill(3.0, 100.0, 2.0, 5.0, 99.0) == 3.0  # a clock step back adds nothing


def test_choose_keeps_claim_order_and_every_bound() -> None:
    cands = [
        Candidate(1, "q", "send", "a", 2),
        Candidate(2, "q", "send", "a", 2),
        Candidate(3, "q", "send", "a", 2),
        Candidate(4, "q", "other", None, None),
        Candidate(5, "r", "send", None, None),
        Candidate(6, "q", "other", None, None),
    ]
    budget = Budget(queues={"q": 3.5}, tasks={"send": 2.0}, running={"a": 1})
    # a has room for one; send for two tokens; q for three whole tokens
    assert choose(cands, budget, 10) == [1, 4, 5, 6]
    assert budget.queues == {"q": 0.5} and budget.tasks == {"send": 0.0}
    assert choose(cands, Budget({}, {}, {}), 2) == [1, 2]


def test_a_concurrency_key_goes_with_its_bound() -> None:
    for raw in ({"task": "t", "concurrency_key": "a"}, {"task": "t", "max_concurrent": 2}):
        with pytest.raises(msgspec.ValidationError, match="go together"):
            msgspec.convert(raw, JobSpec)
    for bad in (0, 100_001):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert({"task": "t", "concurrency_key": "a", "max_concurrent": bad}, JobSpec)
    ok = validate(JobSpec("t", concurrency_key="customer-42", max_concurrent=2))
    assert (ok.concurrency_key, ok.max_concurrent) == ("customer-42", 2)


def test_a_schedules_job_takes_no_concurrency_key() -> None:
    job = JobSpec("t", concurrency_key="a", max_concurrent=1)
    with pytest.raises(ScheduleError, match="no concurrency_key"):
        check(ScheduleSpec("nightly", "0 3 * * *", job))
