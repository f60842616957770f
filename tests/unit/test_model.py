"""The job model: states and transitions, job specs and their bounds, retry policy."""

from __future__ import annotations

import itertools
import random
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runq.errors import IllegalTransition
from runq.model import (
    TERMINAL_STATES,
    TRANSITIONS,
    ErrorInfo,
    JobSpec,
    JobState,
    RetryPolicy,
    backoff_delay,
    should_retry,
    transition,
)
from runq.model.job import sources
from runq.model.policy import after_failure, after_lost_worker
from runq.model.spec import MAX_ATTEMPTS, MAX_NAME, MAX_PRIORITY

S = JobState
NOW = 1_700_000_000.0

# The life of a job as DESIGN.md draws it, written out by hand so that a change to the
# table has to be a change to this list too.
LEGAL = {
    (S.WAITING, S.QUEUED),  # every job it depends on succeeded
    (S.WAITING, S.SCHEDULED),  # ... and its run_at is still ahead
    (S.WAITING, S.CANCELLED),  # by hand, or a job it depends on failed
    (S.SCHEDULED, S.QUEUED),
    (S.SCHEDULED, S.CANCELLED),
    (S.QUEUED, S.RUNNING),
    (S.QUEUED, S.CANCELLED),
    (S.RUNNING, S.SUCCEEDED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.QUEUED),  # lost worker, expired lease
    (S.RUNNING, S.SCHEDULED),  # retry after a back-off
    (S.FAILED, S.QUEUED),  # retried by hand from the dead-letter set
}
ALL_PAIRS = list(itertools.product(JobState, JobState))


class FixedRandom(random.Random):
    """A random source that always draws the same number (the policy takes any source)."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


# -- transitions --------------------------------------------------------------------------


def test_the_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(JobState)


def test_the_table_holds_exactly_the_designed_transitions() -> None:
    table = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert table == LEGAL


@pytest.mark.parametrize(("current", "target"), sorted(LEGAL))
def test_a_legal_transition_returns_the_target(current: JobState, target: JobState) -> None:
    assert transition(current, target) is target


@pytest.mark.parametrize(("current", "target"), [pair for pair in ALL_PAIRS if pair not in LEGAL])
def test_an_illegal_transition_raises(current: JobState, target: JobState) -> None:
    with pytest.raises(IllegalTransition, match=f"a {current} job cannot become {target}"):
        transition(current, target)


def test_no_state_moves_to_itself() -> None:
    for state in JobState:
        assert state not in TRANSITIONS[state]


def test_terminal_states_have_no_exit_but_a_manual_retry_of_failed() -> None:
    assert {S.SUCCEEDED, S.FAILED, S.CANCELLED} == TERMINAL_STATES
    assert TRANSITIONS[S.SUCCEEDED] == frozenset()
    assert TRANSITIONS[S.CANCELLED] == frozenset()
    assert TRANSITIONS[S.FAILED] == frozenset({S.QUEUED})


def test_only_unfinished_jobs_can_be_cancelled() -> None:
    assert set(sources(S.CANCELLED)) == {S.WAITING, S.SCHEDULED, S.QUEUED, S.RUNNING}
    assert sources(S.RUNNING) == (S.QUEUED,)


@given(st.sampled_from(JobState), st.sampled_from(JobState))
def test_transition_agrees_with_the_table(current: JobState, target: JobState) -> None:
    if target in TRANSITIONS[current]:
        assert transition(current, target) is target
    else:
        with pytest.raises(IllegalTransition):
            transition(current, target)


def test_every_state_is_reachable_and_every_unfinished_state_can_finish() -> None:
    def reachable(start: JobState) -> set[JobState]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in TRANSITIONS[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    assert reachable(S.WAITING) == set(JobState)  # a job submitted with dependencies
    for state in set(JobState) - TERMINAL_STATES:
        assert reachable(state) & TERMINAL_STATES


@given(st.sampled_from([S.QUEUED, S.SCHEDULED]), st.lists(st.sampled_from(JobState), max_size=30))
def test_succeeded_and_cancelled_jobs_never_change_again(
    start: JobState, walk: list[JobState]
) -> None:
    state = start
    for target in walk:
        try:
            nxt = transition(state, target)
        except IllegalTransition:
            continue
        assert state not in (S.SUCCEEDED, S.CANCELLED)
        state = nxt


# -- job specs ----------------------------------------------------------------------------


def decode_spec(raw: dict[str, Any]) -> JobSpec:
    """Decode a spec the way the broker does: msgpack bytes into the typed struct."""
    return msgspec.msgpack.decode(msgspec.msgpack.encode(raw), type=JobSpec)


def test_a_minimal_spec_takes_the_defaults() -> None:
    spec = msgspec.convert({"task": "echo"}, JobSpec)
    assert spec == JobSpec(task="echo")
    assert (spec.args, spec.kwargs, spec.queue, spec.priority) == ([], {}, "default", 0)
    assert (spec.max_attempts, spec.delay, spec.run_at, spec.timeout, spec.key) == (
        3,
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    "raw",
    [
        {"task": "a" * MAX_NAME},
        {"task": "pkg.mod:func@v2/x-y_z"},
        {"task": "t", "queue": "emails.high"},
        {"task": "t", "priority": MAX_PRIORITY},
        {"task": "t", "priority": -MAX_PRIORITY},
        {"task": "t", "max_attempts": 1},
        {"task": "t", "max_attempts": MAX_ATTEMPTS},
        {"task": "t", "delay": 0},
        {"task": "t", "run_at": 0},
        {"task": "t", "timeout": 0.001},
        {"task": "t", "key": "any text at all, even spaces"},
        {"task": "t", "args": [1, "two", [3.0, None]], "kwargs": {"k": {"nested": True}}},
    ],
)
def test_specs_at_the_edges_of_the_bounds_are_accepted(raw: dict[str, Any]) -> None:
    assert msgspec.convert(raw, JobSpec) == decode_spec(raw)


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"task": ""}, "$.task"),
        ({"task": "a" * (MAX_NAME + 1)}, "$.task"),
        ({"task": "has space"}, "$.task"),
        ({"task": "semi;colon"}, "$.task"),
        ({"task": "naïve"}, "$.task"),
        ({"task": "line\nbreak"}, "$.task"),
        ({"task": 7}, "$.task"),
        ({"task": "t", "queue": ""}, "$.queue"),
        ({"task": "t", "queue": "no spaces"}, "$.queue"),
        ({"task": "t", "priority": MAX_PRIORITY + 1}, "$.priority"),
        ({"task": "t", "priority": -MAX_PRIORITY - 1}, "$.priority"),
        ({"task": "t", "priority": 1.5}, "$.priority"),
        ({"task": "t", "max_attempts": 0}, "$.max_attempts"),
        ({"task": "t", "max_attempts": MAX_ATTEMPTS + 1}, "$.max_attempts"),
        ({"task": "t", "delay": -1}, "$.delay"),
        ({"task": "t", "delay": 11 * 365 * 86400.0}, "$.delay"),
        ({"task": "t", "run_at": -1}, "$.run_at"),
        ({"task": "t", "timeout": 0}, "$.timeout"),
        ({"task": "t", "key": ""}, "$.key"),
        ({"task": "t", "args": {"not": "a list"}}, "$.args"),
        ({"task": "t", "kwargs": {1: "non-string key"}}, "$.kwargs"),
        ({"task": "t", "colour": "blue"}, "colour"),
        ({}, "task"),
    ],
)
def test_specs_out_of_bounds_are_refused(raw: dict[str, Any], where: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=where.replace("$", r"\$")):
        msgspec.convert(raw, JobSpec)
    with pytest.raises(msgspec.ValidationError):
        decode_spec(raw)


def test_ready_at_without_a_time_is_now() -> None:
    assert JobSpec("t").ready_at(NOW) == NOW


def test_ready_at_with_a_delay_is_relative_to_now() -> None:
    assert JobSpec("t", delay=2.5).ready_at(NOW) == NOW + 2.5


def test_ready_at_with_a_future_run_at_is_that_time() -> None:
    assert JobSpec("t", run_at=NOW + 60).ready_at(NOW) == NOW + 60


def test_ready_at_with_a_past_run_at_is_now() -> None:
    assert JobSpec("t", run_at=NOW - 60).ready_at(NOW) == NOW


def test_ready_at_with_run_at_and_delay_adds_them() -> None:
    assert JobSpec("t", run_at=NOW + 60, delay=5).ready_at(NOW) == NOW + 65


@given(
    run_at=st.none() | st.floats(0, 2**40),
    delay=st.none() | st.floats(0, 10 * 365 * 86400.0),
    now=st.floats(0, 2**40),
)
def test_ready_at_is_never_before_now_unless_an_absolute_time_says_so(
    run_at: float | None, delay: float | None, now: float
) -> None:
    ready = JobSpec("t", run_at=run_at, delay=delay).ready_at(now)
    if run_at is None:
        assert ready >= now
    elif delay is None:
        assert ready == max(run_at, now)
    else:
        assert ready == run_at + delay


# -- back-off and retry policy ------------------------------------------------------------


def ceiling(attempt: int, base: float = 1.0, cap: float = 300.0) -> float:
    return min(cap, base * 2 ** (attempt - 1))


def test_backoff_stays_within_half_to_full_ceiling() -> None:
    rand = random.Random(1209)
    for attempt in range(1, 30):
        for _ in range(50):
            delay = backoff_delay(attempt, 1.0, 300.0, rand)
            assert ceiling(attempt) / 2 <= delay <= ceiling(attempt)


def test_backoff_with_the_same_draw_grows_then_stops_at_the_cap() -> None:
    delays = [backoff_delay(a, 1.0, 300.0, random.Random(7)) for a in range(1, 20)]
    assert delays == sorted(delays)
    assert delays[1] > delays[0]
    assert delays[-1] == delays[-2]  # capped
    assert max(delays) <= 300.0


def test_backoff_draws_cover_the_whole_jitter_range() -> None:
    assert backoff_delay(4, 1.0, 300.0, FixedRandom(0.0)) == 4.0
    assert backoff_delay(4, 1.0, 300.0, FixedRandom(0.999999)) == pytest.approx(8.0, abs=1e-5)
    assert backoff_delay(30, 1.0, 300.0, FixedRandom(0.0)) == 150.0


def test_backoff_survives_absurd_attempt_numbers() -> None:
    assert 150.0 <= backoff_delay(10**9, 1.0, 300.0, random.Random(0)) <= 300.0


def test_backoff_counts_attempts_from_one() -> None:
    with pytest.raises(ValueError, match="1-based"):
        backoff_delay(0)


def test_a_retry_policy_uses_its_base_and_cap() -> None:
    policy = RetryPolicy(base=0.5, cap=3.0)
    assert policy.delay(1, FixedRandom(0.0)) == 0.25
    assert policy.delay(10, FixedRandom(0.0)) == 1.5


@given(
    attempt=st.integers(1, 10_000),
    base=st.floats(0.001, 100.0),
    cap=st.floats(0.001, 10_000.0),
    seed=st.integers(0, 2**32),
)
def test_backoff_property(attempt: int, base: float, cap: float, seed: int) -> None:
    delay = backoff_delay(attempt, base, cap, random.Random(seed))
    top = min(cap, base * 2 ** min(attempt - 1, 62))
    assert top / 2 <= delay <= top
    assert delay <= cap


@pytest.mark.parametrize(
    ("retryable", "attempts", "max_attempts", "expected"),
    [
        (True, 1, 3, True),
        (True, 2, 3, True),
        (True, 3, 3, False),
        (True, 4, 3, False),
        (True, 1, 1, False),
        (False, 1, 3, False),
    ],
)
def test_should_retry(retryable: bool, attempts: int, max_attempts: int, expected: bool) -> None:
    assert should_retry(retryable, attempts, max_attempts) is expected


def test_a_retryable_failure_is_scheduled_after_a_back_off() -> None:
    policy = RetryPolicy(base=10.0, cap=100.0)
    error = ErrorInfo("task_failed", "boom")
    state, run_at = after_failure(error, 2, 5, NOW, policy, random.Random(3))
    assert state is S.SCHEDULED
    assert run_at is not None
    assert NOW + 10.0 <= run_at <= NOW + 20.0  # attempt 2: ceiling 20


def test_a_non_retryable_failure_ends_the_job() -> None:
    error = ErrorInfo("unknown_task", "no such task", retryable=False)
    assert after_failure(error, 1, 5, NOW, RetryPolicy()) == (S.FAILED, None)


def test_a_failure_on_the_last_attempt_ends_the_job() -> None:
    error = ErrorInfo("task_failed", "boom")
    assert after_failure(error, 3, 3, NOW, RetryPolicy()) == (S.FAILED, None)


@given(
    retryable=st.booleans(),
    max_attempts=st.integers(1, MAX_ATTEMPTS),
    data=st.data(),
)
def test_after_failure_property(retryable: bool, max_attempts: int, data: st.DataObject) -> None:
    attempts = data.draw(st.integers(1, max_attempts))
    policy = RetryPolicy(base=1.0, cap=300.0)
    state, run_at = after_failure(
        ErrorInfo("e", "m", retryable), attempts, max_attempts, NOW, policy, random.Random(0)
    )
    if retryable and attempts < max_attempts:
        assert state is S.SCHEDULED
        assert run_at is not None
        assert NOW < run_at <= NOW + 300.0
        assert transition(S.RUNNING, state) is state
    else:
        assert (state, run_at) == (S.FAILED, None)


def test_a_lost_worker_costs_an_attempt() -> None:
    assert after_lost_worker(1, 3) is S.QUEUED
    assert after_lost_worker(2, 3) is S.QUEUED
    assert after_lost_worker(3, 3) is S.FAILED
