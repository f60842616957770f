"""The store contract: what every backend must do, checked against each one.

Time is explicit: every operation takes ``now``, so the tests move a FakeClock instead
of sleeping.

Every backend is opened through ``open_store`` from a URL, the way the broker opens it:
``BACKENDS`` holds a URL factory (a fresh database or schema per test) and whether a
closed store can be opened again with its data.

PostgreSQL runs at 127.0.0.1:5432 (database ``test``, user ``postgres``, trust auth); each
test gets its own schema, dropped afterwards. Without the server its tests skip, except
under ``CI=true``, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import msgspec
import pytest

from runq.clock import FakeClock
from runq.errors import (
    AlreadyQueued,
    ConfigError,
    Conflict,
    IllegalTransition,
    InvalidArguments,
    StoreError,
    UnknownJob,
    UnknownSchedule,
)
from runq.model import Assignment, ErrorInfo, Job, JobSpec, JobState, Outcome, RetryPolicy
from runq.model.flow import RateLimit
from runq.model.output import LogLine, OutputBatch
from runq.model.schedule import CatchUp, ScheduleSpec, next_tick
from runq.store.base import Requeued, Store
from runq.store.migrate import migrate, migrations
from runq.store.open import StoreConfig, open_store
from runq.store.postgres.migrate import migrate as pg_migrate

# Back-off the tests can check exactly: a first failed attempt retries in [5, 10] seconds.
RETRY = RetryPolicy(base=10.0, cap=100.0)


@dataclass(frozen=True)
class Backend:
    name: str
    url: str
    durable: bool  # a closed store opened again at the same URL still has its jobs

    def open(self) -> Store:
        return open_store(StoreConfig(url=self.url, retry=RETRY))


PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def fresh_schema() -> str:
    return f"runq_test_{uuid.uuid4().hex[:16]}"


BACKENDS: dict[str, tuple[Callable[[Path], str], bool]] = {
    "sqlite-file": (lambda tmp: f"sqlite:///{tmp / 'runq.db'}", True),
    "sqlite-memory": (lambda tmp: "sqlite:///:memory:", False),
    "postgresql": (lambda tmp: f"{PG_DSN}?schema={fresh_schema()}", True),
}


async def postgres_or_skip() -> Any:
    """A connection to the test database; skip without one (fail under CI=true)."""
    try:
        return await asyncpg.connect(PG_DSN, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL is not reachable at {PG_DSN}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


async def drop_schemas(conn: Any, names: list[str]) -> None:
    try:
        for name in names:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


async def provide(name: str, tmp_path: Path) -> AsyncIterator[Backend]:
    make_url, durable = BACKENDS[name]
    backend = Backend(name, make_url(tmp_path), durable)
    if not name.startswith("postgres"):
        yield backend
        return
    conn = await postgres_or_skip()
    try:
        yield backend
    finally:
        await drop_schemas(conn, parse_qs(urlsplit(backend.url).query)["schema"])


@pytest.fixture(params=sorted(BACKENDS))
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for b in provide(request.param, tmp_path):
        yield b


@pytest.fixture(params=sorted(name for name, (_, durable) in BACKENDS.items() if durable))
async def durable_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for b in provide(request.param, tmp_path):
        yield b


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    s = backend.open()
    try:
        yield s
    finally:
        await s.close()


S = JobState
LEASE = 30.0
BOOM = ErrorInfo("task_failed", "boom")
PERMANENT = ErrorInfo("unknown_task", "no such task", retryable=False)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def claim(
    store: Store,
    clock: FakeClock,
    worker: str = "w1",
    queues: tuple[str, ...] = ("default",),
    limit: int = 100,
) -> list[Assignment]:
    return await store.claim(worker, queues, limit, clock(), clock() + LEASE)


async def claim_one(store: Store, clock: FakeClock, worker: str = "w1") -> Assignment:
    (job,) = await claim(store, clock, worker, limit=1)
    return job


async def state_of(store: Store, job_id: int) -> JobState:
    job = await store.get(job_id)
    assert job is not None
    return job.state


# -- submit -------------------------------------------------------------------------------


async def test_submit_many_returns_increasing_ids_and_stores_every_field(
    store: Store, clock: FakeClock
) -> None:
    full = JobSpec(
        "wordcount",
        args=["a b", 1, 2.5, None, [True, {"x": b"bytes"}]],
        kwargs={"k": {"nested": [1, 2]}, "e": ""},
        queue="emails",
        priority=-7,
        max_attempts=9,
        timeout=2.5,
        key="order-1",
    )
    ids = await store.submit_many([JobSpec("echo"), full, JobSpec("echo", args=["x"])], clock())
    assert ids == sorted(ids) and len(set(ids)) == 3
    later = await store.submit_many([JobSpec("echo")], clock.advance(1))
    assert later[0] > ids[-1]

    job = await store.get(ids[1])
    assert job is not None
    assert (job.id, job.task, job.args, job.kwargs) == (ids[1], full.task, full.args, full.kwargs)
    assert (job.queue, job.priority, job.max_attempts) == ("emails", -7, 9)
    assert (job.timeout, job.key) == (2.5, "order-1")
    assert job.state is S.QUEUED
    assert (job.run_at, job.submitted_at) == (clock.now - 1, clock.now - 1)
    assert (job.attempts, job.fence) == (0, 0)
    assert job.result is job.error is job.worker is job.lease_until is None
    assert job.started_at is job.finished_at is None
    assert not job.finished

    first = await store.get(ids[0])
    assert first is not None
    assert (first.args, first.kwargs, first.queue, first.priority) == ([], {}, "default", 0)
    assert (first.max_attempts, first.timeout, first.key) == (3, None, None)


async def test_an_idempotency_key_returns_the_same_id_and_stores_one_job(
    store: Store, clock: FakeClock
) -> None:
    (first,) = await store.submit_many([JobSpec("echo", args=["one"], key="k")], clock())
    again = await store.submit_many(
        [JobSpec("echo", args=["two"], key="k"), JobSpec("echo"), JobSpec("echo", key="k")],
        clock.advance(1),
    )
    assert again[0] == again[2] == first
    assert again[1] != first
    job = await store.get(first)
    assert job is not None and job.args == ["one"]  # the first submit wins
    assert await store.counts() == {"default": {"queued": 2}}


async def test_concurrent_submits_each_get_the_ids_of_their_own_jobs(
    store: Store, clock: FakeClock
) -> None:
    """Submits committed together (group commit), with and without keys, keep their ids."""

    def batch(i: int) -> list[JobSpec]:
        key = (lambda k: f"key-{i}-{k}") if i % 3 == 0 else (lambda k: None)
        return [JobSpec("echo", args=[i, k], key=key(k)) for k in range(5)]

    batches = await asyncio.gather(*(store.submit_many(batch(i), clock()) for i in range(20)))
    ids = [job_id for b in batches for job_id in b]
    assert len(set(ids)) == 100
    for i, b in enumerate(batches):
        assert b == sorted(b)
        for k, job_id in enumerate(b):
            job = await store.get(job_id)
            assert job is not None and job.args == [i, k], (i, k, job_id)
    assert await store.counts() == {"default": {"queued": 100}}


async def test_a_delayed_job_is_scheduled_until_promoted(store: Store, clock: FakeClock) -> None:
    t0 = clock()
    (job_id,) = await store.submit_many([JobSpec("echo", delay=10)], t0)
    job = await store.get(job_id)
    assert job is not None
    assert (job.state, job.run_at) == (S.SCHEDULED, t0 + 10)
    assert await claim(store, clock) == []

    assert await store.promote_scheduled(t0 + 9.5) == set()
    assert await state_of(store, job_id) is S.SCHEDULED

    assert await store.promote_scheduled(t0 + 10) == {"default"}
    assert await state_of(store, job_id) is S.QUEUED
    assert await store.promote_scheduled(t0 + 11) == set()  # nothing left to move
    clock.advance(10)
    assert [a.id for a in await claim(store, clock)] == [job_id]


async def test_run_at_in_the_future_is_scheduled_and_in_the_past_is_queued_now(
    store: Store, clock: FakeClock
) -> None:
    t0 = clock()
    future, past = await store.submit_many(
        [JobSpec("echo", run_at=t0 + 60, queue="later"), JobSpec("echo", run_at=t0 - 60)], t0
    )
    f, p = await store.get(future), await store.get(past)
    assert f is not None and p is not None
    assert (f.state, f.run_at) == (S.SCHEDULED, t0 + 60)
    assert (p.state, p.run_at) == (S.QUEUED, t0)
    assert await store.promote_scheduled(t0 + 60) == {"later"}


# -- unique jobs --------------------------------------------------------------------------


def unique(*args: Any, key: str | None = None, **options: Any) -> JobSpec:
    return JobSpec("echo", args=list(args), key=key, unique_for=600.0, **options)


async def count_jobs(store: Store) -> int:
    return sum(sum(by_state.values()) for by_state in (await store.counts()).values())


async def test_a_unique_twin_is_merged_while_the_first_is_unfinished_and_in_its_window(
    store: Store, clock: FakeClock
) -> None:
    # Given: a unique job, queued
    (first,) = await store.submit_many([unique("a", kwargs={"x": 1, "y": [2]})], clock())
    # When: its twin comes (kwargs in another order), and so do jobs that differ
    again = await store.submit_many([unique("a", kwargs={"y": [2], "x": 1})], clock.advance(1))
    other = await store.submit_many(
        [unique("b"), unique("a", queue="other"), JobSpec("echo", args=["a"])], clock()
    )
    # Then: the twin answers with the first job and says so; the others are new jobs
    assert list(again) == [first] and again.merged == [0]
    assert first not in other and len(set(other)) == 3 and other.merged == []
    assert await count_jobs(store) == 4
    # a running twin merges too, and so does a scheduled one
    assert (await claim_one(store, clock)).id == first
    assert list(await store.submit_many([unique("a", kwargs={"x": 1, "y": [2]})], clock())) == [
        first
    ]
    (later,) = await store.submit_many([unique("c", delay=60.0)], clock())
    assert await state_of(store, later) is S.SCHEDULED
    assert (await store.submit_many([unique("c")], clock())).merged == [0]


async def test_a_unique_job_is_new_again_once_its_twin_finished_or_its_window_passed(
    store: Store, clock: FakeClock
) -> None:
    (first,) = await store.submit_many([unique("a")], clock())
    job = await claim_one(store, clock)
    await store.report("w1", [Outcome(job.id, job.fence, True, "a")], clock())
    # finished: a new job
    (second,) = await store.submit_many([unique("a")], clock.advance(1))
    assert second != first
    (cancelled,) = await store.submit_many([unique("x")], clock())
    await store.cancel(cancelled, clock())
    assert (await store.submit_many([unique("x")], clock())).merged == []
    # still queued, but 600 s have passed since it was submitted: a new job
    (third,) = await store.submit_many([unique("a")], clock.advance(600))
    assert third not in (first, second)
    # ... whose own window now holds its twins
    again = await store.submit_many([unique("a")], clock.advance(1))
    assert list(again) == [third] and again.merged == [0]


async def test_a_unique_jobs_key_is_its_identity_not_an_idempotency_key(
    store: Store, clock: FakeClock
) -> None:
    (first,) = await store.submit_many([unique("a", key="report")], clock())
    same = await store.submit_many([unique("other args", key="report")], clock())
    assert list(same) == [first] and same.merged == [0]
    # the same key without unique_for is an idempotency key of its own
    (plain,) = await store.submit_many([JobSpec("echo", key="report")], clock())
    assert plain != first
    job = await claim_one(store, clock)
    await store.report("w1", [Outcome(job.id, job.fence, True, None)], clock())
    (after,) = await store.submit_many([unique("a", key="report")], clock())
    assert after not in (first, plain)


async def test_twins_inside_one_batch_are_merged_into_the_first(
    store: Store, clock: FakeClock
) -> None:
    ids = await store.submit_many(
        [unique("a"), JobSpec("echo", key="k"), unique("b"), unique("a"), JobSpec("echo")],
        clock(),
    )
    assert ids[0] == ids[3] and len(set(ids)) == 4 and ids.merged == [3]
    again = await store.submit_many(
        [JobSpec("echo", key="k"), unique("b"), JobSpec("echo"), unique("new")], clock()
    )
    assert (again[0], again[1]) == (ids[1], ids[2]) and again.merged == [0, 1]
    assert await count_jobs(store) == 6


async def test_a_refused_twin_names_the_job_and_stores_nothing(
    store: Store, clock: FakeClock
) -> None:
    (first,) = await store.submit_many([unique("a")], clock())
    with pytest.raises(AlreadyQueued, match=f"^job {first} is already queued with the same task"):
        await store.submit_many([JobSpec("echo"), unique("a", unique_mode="refuse")], clock())
    with pytest.raises(AlreadyQueued, match="same key") as refused:
        await store.submit_many([unique(key="k"), unique(key="k", unique_mode="refuse")], clock())
    assert refused.value.job_id is None  # the twin was in the batch
    with pytest.raises(InvalidArguments, match="unique_mode needs unique_for"):
        await store.submit_many([JobSpec("echo"), JobSpec("echo", unique_mode="refuse")], clock())
    assert await count_jobs(store) == 1
    try:
        await store.submit_many([unique("a", unique_mode="refuse")], clock())
    except AlreadyQueued as exc:
        assert exc.job_id == first
    # the store still takes other work
    assert len(await store.submit_many([unique("b", unique_mode="refuse")], clock())) == 1


async def test_many_unique_submits_at_once_make_one_job(store: Store, clock: FakeClock) -> None:
    answers = await asyncio.gather(
        *(store.submit_many([JobSpec("echo"), unique("a")], clock()) for _ in range(20))
    )
    assert len({a[1] for a in answers}) == 1
    assert sorted(len(a.merged) for a in answers) == [0] + [1] * 19
    assert await count_jobs(store) == 21


# -- claim --------------------------------------------------------------------------------


async def test_claim_order_is_priority_then_run_at_then_id(store: Store, clock: FakeClock) -> None:
    t0 = clock()
    # "late" has the lowest id among the priority-1 jobs but the latest run_at.
    (late,) = await store.submit_many([JobSpec("late", priority=1, delay=5)], t0)
    low, high, mid_a, mid_b, top = await store.submit_many(
        [
            JobSpec("low", priority=-1),
            JobSpec("high", priority=10),
            JobSpec("mid-a", priority=1),
            JobSpec("mid-b", priority=1),
            JobSpec("top", priority=1_000_000),
        ],
        clock.advance(1),
    )
    await store.promote_scheduled(clock.advance(4))
    expected = [top, high, mid_a, mid_b, late, low]

    first_two = await claim(store, clock, limit=2)
    assert [a.id for a in first_two] == expected[:2]
    rest = await claim(store, clock)
    assert [a.id for a in rest] == expected[2:]


async def test_claim_across_several_queues_merges_them_in_claim_order(
    store: Store, clock: FakeClock
) -> None:
    ids = await store.submit_many(
        [
            JobSpec("a0", queue="a", priority=0),
            JobSpec("b5", queue="b", priority=5),
            JobSpec("a5", queue="a", priority=5),
            JobSpec("c9", queue="c", priority=9),
            JobSpec("b0", queue="b", priority=0),
            JobSpec("a9", queue="a", priority=9),
        ],
        clock(),
    )
    by_task = dict(zip(["a0", "b5", "a5", "c9", "b0", "a9"], ids, strict=True))

    got = await claim(store, clock, queues=("a", "b"), limit=3)
    assert [a.task for a in got] == ["a9", "b5", "a5"]
    got = await claim(store, clock, queues=("b", "a"))
    assert [a.task for a in got] == ["a0", "b0"]
    assert await state_of(store, by_task["c9"]) is S.QUEUED
    assert await claim(store, clock, queues=("a", "b")) == []
    assert await claim(store, clock, queues=("nobody",)) == []


async def test_claim_marks_the_job_running_for_the_worker(store: Store, clock: FakeClock) -> None:
    (job_id,) = await store.submit_many(
        [JobSpec("echo", args=["hi"], kwargs={"k": 1}, max_attempts=4, timeout=3.0)], clock()
    )
    now = clock.advance(2)
    (a,) = await store.claim("w1", ["default"], 10, now, now + LEASE)
    assert a == Assignment(job_id, 1, "echo", ["hi"], {"k": 1}, 1, 4, 3.0, "default")

    job = await store.get(job_id)
    assert job is not None
    assert (job.state, job.worker, job.fence, job.attempts) == (S.RUNNING, "w1", 1, 1)
    assert (job.lease_until, job.started_at, job.finished_at) == (now + LEASE, now, None)


async def test_claim_respects_the_limit_and_skips_running_jobs(
    store: Store, clock: FakeClock
) -> None:
    await store.submit_many([JobSpec("echo")] * 5, clock())
    assert await claim(store, clock, limit=0) == []
    assert await store.claim("w1", [], 5, clock(), clock() + LEASE) == []
    assert len(await claim(store, clock, limit=2)) == 2
    assert len(await claim(store, clock, "w2", limit=10)) == 3
    assert await claim(store, clock, "w3") == []


async def test_concurrent_claims_never_hand_out_a_job_twice(store: Store, clock: FakeClock) -> None:
    await store.submit_many([JobSpec("echo")] * 40, clock())
    claims = await asyncio.gather(*(claim(store, clock, f"w{i}", limit=7) for i in range(8)))
    ids = [a.id for batch in claims for a in batch]
    assert len(ids) == len(set(ids)) == 40


# -- reports ------------------------------------------------------------------------------


async def test_a_report_with_the_current_fence_is_accepted_exactly_once(
    store: Store, clock: FakeClock
) -> None:
    (job_id,) = await store.submit_many([JobSpec("echo")], clock())
    a = await claim_one(store, clock)
    done = clock.advance(3)

    res = await store.report("w1", [Outcome(a.id, a.fence, True, {"answer": 42})], done)
    assert (res.accepted, res.stale, res.finished, res.requeued_queues) == (
        [job_id],
        [],
        [job_id],
        set(),
    )
    job = await store.get(job_id)
    assert job is not None
    assert (job.state, job.result, job.error) == (S.SUCCEEDED, {"answer": 42}, None)
    assert (job.finished_at, job.lease_until, job.attempts) == (done, None, 1)
    assert job.finished

    again = await store.report("w1", [Outcome(a.id, a.fence, True, "late")], clock.advance(1))
    assert (again.accepted, again.stale, again.finished) == ([], [job_id], [])
    failed_again = await store.report("w1", [Outcome(a.id, a.fence, False, None, BOOM)], done)
    assert failed_again.stale == [job_id]
    job = await store.get(job_id)
    assert job is not None and job.result == {"answer": 42} and job.finished_at == done


async def test_reports_from_the_wrong_worker_or_fence_are_refused(
    store: Store, clock: FakeClock
) -> None:
    (job_id,) = await store.submit_many([JobSpec("echo")], clock())
    a = await claim_one(store, clock)
    bad = [
        ("w2", Outcome(a.id, a.fence, True, "thief")),
        ("w2", Outcome(a.id, a.fence, False, None, BOOM)),
        ("w1", Outcome(a.id, a.fence + 1, True, "future")),
        ("w1", Outcome(a.id, a.fence - 1, False, None, BOOM)),
        ("w1", Outcome(job_id + 1000, 1, True, "nobody")),
    ]
    for worker, outcome in bad:
        res = await store.report(worker, [outcome], clock())
        assert (res.accepted, res.stale) == ([], [outcome.id])
    job = await store.get(job_id)
    assert job is not None
    assert (job.state, job.worker, job.fence, job.result, job.error) == (
        S.RUNNING,
        "w1",
        a.fence,
        None,
        None,
    )


async def test_one_report_can_mix_accepted_and_stale_outcomes(
    store: Store, clock: FakeClock
) -> None:
    x, y = await store.submit_many([JobSpec("echo"), JobSpec("echo")], clock())
    ax, ay = await claim(store, clock)
    res = await store.report(
        "w1", [Outcome(ax.id, ax.fence, True, 1), Outcome(ay.id, 99, True, 2)], clock()
    )
    assert (res.accepted, res.stale, res.finished) == ([x], [y], [x])


async def test_a_retryable_failure_is_rescheduled_after_a_back_off(
    store: Store, clock: FakeClock
) -> None:
    (job_id,) = await store.submit_many([JobSpec("flaky", max_attempts=3)], clock())
    a = await claim_one(store, clock)
    now = clock.advance(1)
    res = await store.report("w1", [Outcome(a.id, a.fence, False, None, BOOM)], now)
    assert (res.accepted, res.finished, res.requeued_queues) == ([job_id], [], {"default"})

    job = await store.get(job_id)
    assert job is not None
    assert (job.state, job.error, job.attempts, job.finished_at) == (S.SCHEDULED, BOOM, 1, None)
    assert now + RETRY.base / 2 <= job.run_at <= now + RETRY.base
    assert job.lease_until is None
    assert await claim(store, clock) == []

    assert await store.promote_scheduled(job.run_at) == {"default"}
    clock.now = job.run_at
    b = await claim_one(store, clock)
    assert (b.id, b.attempt, b.fence) == (job_id, 2, a.fence + 1)
    stale = await store.report("w1", [Outcome(a.id, a.fence, True, "old")], clock())
    assert stale.stale == [job_id]


async def test_a_non_retryable_failure_ends_the_job_at_once(store: Store, clock: FakeClock) -> None:
    (job_id,) = await store.submit_many([JobSpec("nope", max_attempts=5)], clock())
    a = await claim_one(store, clock)
    now = clock.advance(1)
    res = await store.report("w1", [Outcome(a.id, a.fence, False, None, PERMANENT)], now)
    assert (res.accepted, res.finished, res.requeued_queues) == ([job_id], [job_id], set())
    job = await store.get(job_id)
    assert job is not None
    assert (job.state, job.error, job.attempts, job.finished_at) == (S.FAILED, PERMANENT, 1, now)


async def test_a_failure_on_the_last_attempt_ends_the_job(store: Store, clock: FakeClock) -> None:
    (job_id,) = await store.submit_many([JobSpec("flaky", max_attempts=1)], clock())
    a = await claim_one(store, clock)
    res = await store.report("w1", [Outcome(a.id, a.fence, False, None, BOOM)], clock())
    assert res.finished == [job_id]
    job = await store.get(job_id)
    assert job is not None
    assert (job.state, job.error, job.attempts) == (S.FAILED, BOOM, 1)


async def test_a_failure_without_details_still_ends_up_recorded(
    store: Store, clock: FakeClock
) -> None:
    (job_id,) = await store.submit_many([JobSpec("flaky", max_attempts=1)], clock())
    a = await claim_one(store, clock)
    await store.report("w1", [Outcome(a.id, a.fence, False)], clock())
    job = await store.get(job_id)
    assert job is not None and job.state is S.FAILED
    assert job.error is not None and job.error.message


# -- lost workers and leases --------------------------------------------------------------


async def test_requeue_worker_gives_back_its_jobs_with_a_new_fence_next_time(
    store: Store, clock: FakeClock
) -> None:
    again, last, other = await store.submit_many(
        [
            JobSpec("echo", max_attempts=3),
            JobSpec("echo", max_attempts=1, queue="once"),
            JobSpec("echo", queue="other"),
        ],
        clock(),
    )
    a, b = await claim(store, clock, "w1", queues=("default", "once"))
    (c,) = await claim(store, clock, "w2", queues=("other",))

    now = clock.advance(5)
    assert await store.requeue_worker("w1", now) == Requeued({"default"}, [last])
    j_again, j_last, j_other = [await store.get(i) for i in (again, last, other)]
    assert j_again is not None and j_last is not None and j_other is not None
    assert (j_again.state, j_again.lease_until, j_again.attempts) == (S.QUEUED, None, 1)
    assert j_again.error is not None and j_again.error.code == "worker_lost"
    assert (j_last.state, j_last.finished_at) == (S.FAILED, now)
    assert j_last.error is not None and j_last.error.code == "worker_lost"
    assert (j_other.state, j_other.worker) == (S.RUNNING, "w2")

    assert await store.requeue_worker("w1", now) == Requeued(set(), [])  # idempotent
    n = await claim_one(store, clock, "w3")
    assert (n.id, n.fence, n.attempt) == (again, a.fence + 1, 2)
    late = await store.report("w1", [Outcome(a.id, a.fence, True, "late")], clock())
    assert late.stale == [again]
    assert (await store.report("w3", [Outcome(n.id, n.fence, True, "ok")], clock())).accepted == [
        again
    ]
    assert b.id == last and c.id == other


async def test_requeue_expired_touches_only_expired_leases(store: Store, clock: FakeClock) -> None:
    t0 = clock()
    short, long_, queued = await store.submit_many(
        [JobSpec("echo"), JobSpec("echo", queue="slow"), JobSpec("echo", queue="idle")], t0
    )
    (a,) = await store.claim("w1", ["default"], 1, t0, t0 + 30)
    (b,) = await store.claim("w2", ["slow"], 1, t0, t0 + 60)

    assert await store.requeue_expired(t0 + 29) == Requeued(set(), [])
    assert await store.requeue_expired(t0 + 45) == Requeued({"default"}, [], {(short, "w1")})
    assert await state_of(store, short) is S.QUEUED
    assert await state_of(store, long_) is S.RUNNING
    assert await state_of(store, queued) is S.QUEUED
    job = await store.get(short)
    assert job is not None and job.error is not None and job.error.code == "lease_expired"

    stale = await store.report("w1", [Outcome(a.id, a.fence, True, "too late")], t0 + 46)
    assert stale.stale == [short]
    assert await store.requeue_expired(t0 + 61) == Requeued({"slow"}, [], {(long_, "w2")})
    assert b.id == long_


async def test_an_expired_lease_on_the_last_attempt_fails_the_job(
    store: Store, clock: FakeClock
) -> None:
    (job_id,) = await store.submit_many([JobSpec("echo", max_attempts=1)], clock())
    await claim_one(store, clock)
    now = clock.advance(LEASE + 1)
    assert await store.requeue_expired(now) == Requeued(set(), [job_id], {(job_id, "w1")})
    job = await store.get(job_id)
    assert job is not None
    assert (job.state, job.finished_at) == (S.FAILED, now)


async def test_extend_leases_returns_the_ids_no_longer_held(store: Store, clock: FakeClock) -> None:
    t0 = clock()
    queues = ["held", "refenced", "cancelled", "theirs", "done"]
    held, refenced, cancelled, theirs, done = await store.submit_many(
        [JobSpec("echo", queue=q) for q in queues], t0
    )

    async def take(worker: str, queue: str, lease_until: float) -> Assignment:
        (a,) = await store.claim(worker, [queue], 1, clock(), lease_until)
        return a

    old = await take("w1", "refenced", t0 + 1)
    await store.requeue_expired(clock.advance(2))
    new = await take("w1", "refenced", clock() + LEASE)  # same worker, new fence
    h = await take("w1", "held", clock() + LEASE)
    c = await take("w1", "cancelled", clock() + LEASE)
    await store.cancel(cancelled, clock())
    t = await take("w2", "theirs", clock() + LEASE)
    d = await take("w1", "done", clock() + LEASE)
    await store.report("w1", [Outcome(d.id, d.fence, True)], clock())

    running = [(h.id, h.fence), (old.id, old.fence), (c.id, c.fence), (t.id, t.fence)]
    running += [(d.id, d.fence), (10_000, 1)]
    new_lease = clock.advance(10) + LEASE
    lost = await store.extend_leases("w1", running, new_lease)
    assert sorted(lost) == sorted([refenced, cancelled, theirs, done, 10_000])

    jobs = [await store.get(i) for i in (held, refenced, theirs)]
    leases = [j.lease_until for j in jobs if j is not None]
    assert leases == [new_lease, t0 + 2 + LEASE, t0 + 2 + LEASE]  # only the held one moved
    assert await store.extend_leases("w1", [(new.id, new.fence)], new_lease) == []
    assert await store.extend_leases("w1", [], new_lease) == []


# -- cancel -------------------------------------------------------------------------------


async def test_cancel_queued_scheduled_and_running_jobs(store: Store, clock: FakeClock) -> None:
    queued, scheduled, running = await store.submit_many(
        [JobSpec("echo"), JobSpec("echo", delay=60), JobSpec("echo", queue="r")], clock()
    )
    (a,) = await claim(store, clock, "w1", queues=("r",))
    now = clock.advance(1)
    for job_id, was in ((queued, S.QUEUED), (scheduled, S.SCHEDULED), (running, S.RUNNING)):
        before = await store.cancel(job_id, now)
        assert (before.id, before.state) == (job_id, was)
        job = await store.get(job_id)
        assert job is not None
        assert (job.state, job.finished_at, job.lease_until) == (S.CANCELLED, now, None)

    late = await store.report("w1", [Outcome(a.id, a.fence, True, "late")], now)
    assert late.stale == [running]
    assert await store.promote_scheduled(now + 120) == set()
    assert await claim(store, clock, queues=("default", "r")) == []


async def test_cancel_tells_who_ran_a_running_job(store: Store, clock: FakeClock) -> None:
    (job_id,) = await store.submit_many([JobSpec("echo")], clock())
    await claim_one(store, clock, "w7")
    before = await store.cancel(job_id, clock())
    assert (before.state, before.worker) == (S.RUNNING, "w7")


@pytest.mark.parametrize("end", [S.SUCCEEDED, S.FAILED, S.CANCELLED])
async def test_cancel_a_finished_job_raises_illegal_transition(
    store: Store, clock: FakeClock, end: JobState
) -> None:
    (job_id,) = await store.submit_many([JobSpec("echo", max_attempts=1)], clock())
    if end is S.CANCELLED:
        await store.cancel(job_id, clock())
    else:
        a = await claim_one(store, clock)
        outcome = (
            Outcome(a.id, a.fence, True)
            if end is S.SUCCEEDED
            else Outcome(a.id, a.fence, False, None, BOOM)
        )
        await store.report("w1", [outcome], clock())
    assert await state_of(store, job_id) is end
    finished = await store.get(job_id)

    with pytest.raises(IllegalTransition, match=f"job {job_id} is already {end}"):
        await store.cancel(job_id, clock.advance(1))
    assert await store.get(job_id) == finished


async def test_cancel_an_unknown_job_raises_unknown_job(store: Store, clock: FakeClock) -> None:
    with pytest.raises(UnknownJob, match="no job with id 12345"):
        await store.cancel(12345, clock())


async def test_a_refused_cancel_does_not_disturb_other_writes(
    store: Store, clock: FakeClock
) -> None:
    """Operations committed together must not fail together."""
    results = await asyncio.gather(
        store.submit_many([JobSpec("echo")], clock()),
        store.cancel(999, clock()),
        store.submit_many([JobSpec("echo")], clock()),
        return_exceptions=True,
    )
    assert isinstance(results[1], UnknownJob)
    assert await store.counts() == {"default": {"queued": 2}}


# -- queries ------------------------------------------------------------------------------


async def test_get_an_unknown_job_is_none(store: Store) -> None:
    assert await store.get(1) is None
    assert await store.get(2**62) is None


async def test_list_jobs_is_newest_first_with_filters(store: Store, clock: FakeClock) -> None:
    ids = await store.submit_many(
        [JobSpec("echo", queue="a" if i % 2 else "b") for i in range(6)], clock()
    )
    await claim(store, clock, "w1", queues=("a",), limit=1)  # ids[1] -> running

    assert [j.id for j in await store.list_jobs()] == ids[::-1]
    assert [j.id for j in await store.list_jobs(queue="a")] == [ids[5], ids[3], ids[1]]
    assert [j.id for j in await store.list_jobs(state=S.RUNNING)] == [ids[1]]
    assert [j.id for j in await store.list_jobs(state=S.QUEUED, queue="a")] == [ids[5], ids[3]]
    assert [j.id for j in await store.list_jobs(limit=2)] == [ids[5], ids[4]]
    assert await store.list_jobs(state=S.FAILED) == []
    assert await store.list_jobs(queue="nope") == []
    listed = await store.list_jobs(state=S.RUNNING)
    one = await store.get(ids[1])
    assert one is not None and len(one.history) == 1  # a single read carries the history
    assert listed == [msgspec.structs.replace(one, history=[])]


async def test_list_jobs_pages_back_with_before(store: Store, clock: FakeClock) -> None:
    ids = await store.submit_many([JobSpec("echo", queue="q") for _ in range(25)], clock())
    pages: list[list[int]] = []
    before: int | None = None
    while True:
        page = [j.id for j in await store.list_jobs(queue="q", limit=7, before=before)]
        if not page:
            break
        pages.append(page)
        before = page[-1]
    assert [len(p) for p in pages] == [7, 7, 7, 4]
    assert [i for p in pages for i in p] == ids[::-1]
    assert [j.id for j in await store.list_jobs(before=ids[10], limit=3)] == ids[7:10][::-1]


async def test_list_jobs_by_task_key_and_submit_time(store: Store, clock: FakeClock) -> None:
    first = await store.submit_many([JobSpec("resize"), JobSpec("email", key="k-1")], clock())
    clock.advance(10)
    middle = clock()
    later = await store.submit_many([JobSpec("resize"), JobSpec("email")], clock())

    assert [j.id for j in await store.list_jobs(task="resize")] == [later[0], first[0]]
    assert [j.id for j in await store.list_jobs(key="k-1")] == [first[1]]
    assert await store.list_jobs(key="k-2") == []
    assert [j.id for j in await store.list_jobs(since=middle)] == later[::-1]
    assert [j.id for j in await store.list_jobs(until=middle)] == first[::-1]
    found = await store.list_jobs(task="email", since=middle - 20, until=middle + 1)
    assert [j.id for j in found] == [later[1], first[1]]
    assert await store.list_jobs(task="resize", queue="other") == []


@pytest.mark.parametrize("size", [100, 1_999, 2_000])
async def test_large_batches_keep_every_field_and_their_order(
    store: Store, clock: FakeClock, size: int
) -> None:
    """Batches of 100 jobs or more without keys take another way in on PostgreSQL (COPY,
    row by row under 2,000 rows): the same ids, fields and states as any other submit."""
    (before,) = await store.submit_many([JobSpec("echo")], clock())
    specs = [
        JobSpec(
            "wordcount",
            args=[i, "x"],
            kwargs={"k": [i]},
            queue=f"q{i % 3}",
            priority=i % 5 - 2,
            max_attempts=7,
            timeout=2.5 if i % 2 else None,
            backoff=0.5 if i % 4 == 0 else None,
            delay=10 if i % 10 == 0 else 0,
        )
        for i in range(size)
    ]
    ids = await store.submit_many(specs, clock())
    assert ids == sorted(ids) and len(set(ids)) == size and ids[0] > before
    (after,) = await store.submit_many([JobSpec("echo")], clock())
    assert after > ids[-1]
    for i in (0, 1, 2, 3, size // 2, size - 1):
        job, spec = await store.get(ids[i]), specs[i]
        assert job is not None
        assert (job.task, job.args, job.kwargs, job.queue) == (
            spec.task,
            spec.args,
            spec.kwargs,
            spec.queue,
        )
        assert (job.priority, job.max_attempts, job.timeout, job.backoff) == (
            spec.priority,
            spec.max_attempts,
            spec.timeout,
            spec.backoff,
        )
        assert job.state is (S.SCHEDULED if i % 10 == 0 else S.QUEUED)
        assert job.submitted_at == clock.now
    counts = await store.counts()
    assert sum(n for by_state in counts.values() for n in by_state.values()) == size + 2


async def test_paused_queues_are_kept_until_resumed(store: Store, clock: FakeClock) -> None:
    assert await store.paused_queues() == set()
    await store.set_paused("emails", True, clock())
    await store.set_paused("emails", True, clock())  # pausing twice is one pause
    await store.set_paused("reports", True, clock())
    assert await store.paused_queues() == {"emails", "reports"}
    await store.set_paused("emails", False, clock())
    await store.set_paused("never-paused", False, clock())
    assert await store.paused_queues() == {"reports"}


async def test_purge_deletes_only_jobs_finished_before_the_cut_oldest_first(
    store: Store, clock: FakeClock
) -> None:
    # Given: two jobs that finished (one earlier), one cancelled later, one running and
    # one queued.
    ids = await store.submit_many([JobSpec("echo", [str(i)]) for i in range(5)], clock())
    first, second = await claim(store, clock, limit=2)
    await store.report("w1", [Outcome(first.id, first.fence, True, "a")], clock.advance(1))
    t_first = clock()
    await store.report("w1", [Outcome(second.id, second.fence, True, "b")], clock.advance(1))
    await store.cancel(ids[2], clock.advance(1))
    (running,) = await claim(store, clock, limit=1)
    before = clock.advance(10)

    # When: purging what finished before the cut, one at a time, then in one go.
    assert await store.purge(t_first + 0.5, 10) == 1  # only the first had finished by then
    assert await store.get(first.id) is None
    assert await store.purge(before, 1) == 1
    assert await store.get(second.id) is None
    assert await store.purge(before, 10) == 1  # the cancelled one
    assert await store.purge(before, 10) == 0

    # Then: the running and the queued jobs stay, with their history.
    kept = await store.get(running.id)
    assert kept is not None and kept.state is S.RUNNING and len(kept.history) == 1
    left = await store.get(ids[4])
    assert left is not None and left.state is S.QUEUED
    assert await store.counts() == {"default": {"running": 1, "queued": 1}}


async def test_brokers_publish_their_workers_for_each_other(store: Store, clock: FakeClock) -> None:
    t0 = clock()
    await store.publish_workers("b-1", b"one", t0)
    await store.publish_workers("b-2", b"two", t0)
    await store.publish_workers("b-1", b"one again", clock.advance(5))
    assert await store.worker_snapshots(t0 - 1) == [("b-1", b"one again"), ("b-2", b"two")]
    assert await store.worker_snapshots(t0 + 1) == [("b-1", b"one again")]  # b-2 is stale
    await store.publish_workers("b-1", None, clock())
    assert await store.worker_snapshots(t0 - 1) == [("b-2", b"two")]


async def test_counts_by_queue_then_state(store: Store, clock: FakeClock) -> None:
    assert await store.counts() == {}
    await store.submit_many(
        [JobSpec("echo", queue="a")] * 3 + [JobSpec("echo", queue="b", delay=5)] * 2, clock()
    )
    (a,) = await claim(store, clock, queues=("a",), limit=1)
    await store.report("w1", [Outcome(a.id, a.fence, True)], clock())
    (a,) = await claim(store, clock, queues=("a",), limit=1)
    assert await store.counts() == {
        "a": {"succeeded": 1, "running": 1, "queued": 1},
        "b": {"scheduled": 2},
    }


# -- durability ---------------------------------------------------------------------------


async def test_reopening_a_store_keeps_every_committed_change(
    durable_backend: Backend, clock: FakeClock
) -> None:
    store = durable_backend.open()
    try:
        ids = await store.submit_many(
            [
                JobSpec("echo", args=["done"], key="k1"),
                JobSpec("echo", args=["fails"], max_attempts=1),
                JobSpec("echo", args=["cancelled"]),
                JobSpec("echo", args=["running"]),
                JobSpec("echo", args=["later"], delay=60),
                JobSpec("echo", args=["waiting"], queue="other"),
            ],
            clock(),
        )
        a, b = await claim(store, clock, limit=2)
        await store.report("w1", [Outcome(a.id, a.fence, True, "done")], clock.advance(1))
        await store.report("w1", [Outcome(b.id, b.fence, False, None, BOOM)], clock())
        await store.cancel(ids[2], clock())
        await claim(store, clock, "w2", limit=1)
        before = [await store.get(i) for i in ids]
        counts = await store.counts()
    finally:
        await store.close()

    reopened = durable_backend.open()
    try:
        assert [await reopened.get(i) for i in ids] == before
        assert await reopened.counts() == counts
        assert [j.state for j in before if j is not None] == [
            S.SUCCEEDED,
            S.FAILED,
            S.CANCELLED,
            S.RUNNING,
            S.SCHEDULED,
            S.QUEUED,
        ]
        (again,) = await reopened.submit_many([JobSpec("echo", key="k1")], clock())
        assert again == ids[0]
        (new,) = await reopened.submit_many([JobSpec("echo")], clock())
        assert new > max(ids)
    finally:
        await reopened.close()


async def test_a_closed_store_refuses_work(store: Store, clock: FakeClock) -> None:
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.submit_many([JobSpec("echo")], clock())
    await store.close()  # closing twice is fine


# -- per-queue retention, the purge by hand, jobs ahead (011_retention.sql) ---------------


async def finish(store: Store, clock: FakeClock, queue: str, n: int = 1) -> list[int]:
    """``n`` jobs of ``queue`` that succeed now."""
    ids = await store.submit_many(
        [JobSpec("echo", [str(i)], queue=queue) for i in range(n)], clock()
    )
    done = await store.claim("w1", [queue], n, clock(), clock() + LEASE)
    await store.report("w1", [Outcome(a.id, a.fence, True, "ok") for a in done], clock())
    return list(ids)


async def test_retention_overrides_are_set_replaced_and_reset(
    store: Store, clock: FakeClock
) -> None:
    assert await store.retention_overrides() == {}
    await store.set_retention("audit", None, clock())  # forever
    await store.set_retention("tmp", 3600.0, clock())
    await store.set_retention("tmp", 60.0, clock())  # replaced
    assert await store.retention_overrides() == {"audit": None, "tmp": 60.0}
    await store.reset_retention("tmp")
    await store.reset_retention("nothing")  # not set: nothing to do
    assert await store.retention_overrides() == {"audit": None}


async def test_purge_finished_by_queue_skip_and_state(store: Store, clock: FakeClock) -> None:
    # Given: finished jobs in two queues, a failed one, and a queued one.
    a = await finish(store, clock, "a", 2)
    b = await finish(store, clock, "b", 1)
    (failed,) = await store.submit_many([JobSpec("echo", queue="b", max_attempts=1)], clock())
    (job,) = await store.claim("w1", ["b"], 1, clock(), clock() + LEASE)
    await store.report("w1", [Outcome(job.id, job.fence, False, error=BOOM)], clock())
    (waiting,) = await store.submit_many([JobSpec("echo", queue="a")], clock())
    cut = clock.advance(10)

    # When/Then: only failed jobs of b; then a's, one batch at a time; b is skipped.
    assert await store.purge_finished(cut, 10, queue="b", states=[S.FAILED]) == 1
    assert await store.get(failed) is None and await store.get(b[0]) is not None
    assert await store.purge_finished(cut, 10, skip=["b"]) == 2
    assert await store.get(b[0]) is not None
    assert await store.purge_finished(cut - 20, 10, queue="b") == 0  # not finished before
    assert await store.purge_finished(cut, 1, queue="b") == 1
    assert await store.purge_finished(cut, 10) == 0  # idempotent: nothing left
    assert (await store.get(waiting)) is not None
    for gone in a:
        assert await store.get(gone) is None
    with pytest.raises(ValueError, match="running"):
        await store.purge_finished(cut, 10, states=[S.RUNNING])


async def test_count_ahead_follows_claim_order(store: Store, clock: FakeClock) -> None:
    # Given: jobs of several priorities and times in one queue, and one in another queue.
    low, mid1, mid2, high = await store.submit_many(
        [JobSpec("echo", priority=p) for p in (0, 5, 5, 9)], clock()
    )
    await store.submit_many([JobSpec("echo", queue="other", priority=99)], clock())
    (later_mid,) = await store.submit_many([JobSpec("echo", priority=5)], clock.advance(1))

    # Then: higher priority first, then earlier run_at, then lower id.
    ahead = {i: await store.count_ahead(await get(store, i)) for i in (low, mid1, mid2, high)}
    assert ahead == {high: 0, mid1: 1, mid2: 2, low: 4}
    assert await store.count_ahead(await get(store, later_mid)) == 3


async def get(store: Store, job_id: int) -> Job:
    found = await store.get(job_id)
    assert found is not None
    return found


# -- flow control: concurrency keys and rate limits (009_flow.sql) ------------------------


def keyed(key: str, bound: int, n: int, queue: str = "default") -> list[JobSpec]:
    return [
        JobSpec("echo", [str(i)], queue=queue, concurrency_key=key, max_concurrent=bound)
        for i in range(n)
    ]


async def running_by_key(store: Store, ids: dict[int, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job_id, key in ids.items():
        if await state_of(store, job_id) is S.RUNNING:
            counts[key] = counts.get(key, 0) + 1
    return counts


async def test_a_claim_starts_no_more_jobs_of_a_key_than_its_bound(
    store: Store, clock: FakeClock
) -> None:
    # Given: five jobs of key a (at most 2), three of key b (at most 1), then two plain.
    a = await store.submit_many(keyed("a", 2, 5), clock())
    b = await store.submit_many(keyed("b", 1, 3), clock())
    plain = await store.submit_many([JobSpec("echo"), JobSpec("echo")], clock())
    # When: one claim asks for everything, and a second one asks again.
    first = await claim(store, clock)
    second = await claim(store, clock, worker="w2")
    # Then: two of a, one of b and the plain jobs behind them; nothing more after.
    assert [j.id for j in first] == [a[0], a[1], b[0], *plain]
    assert second == []
    assert await store.keyed_queues() == {"default"}
    # When: one job of a ends, a claim starts the next job of a (and only it).
    done = first[0]
    await store.report("w1", [Outcome(done.id, done.fence, True, None)], clock.advance(1))
    assert [j.id for j in await claim(store, clock, worker="w2")] == [a[2]]


async def test_interleaved_claims_never_exceed_a_keys_bound(store: Store, clock: FakeClock) -> None:
    # Given: 30 jobs of key a (at most 2) and 30 of key b (at most 3) in two queues.
    ids = dict.fromkeys(await store.submit_many(keyed("a", 2, 30), clock()), "a")
    ids |= dict.fromkeys(await store.submit_many(keyed("b", 3, 30, "other"), clock()), "b")
    for _ in range(4):
        # When: eight workers claim at once, then half of what runs ends.
        claims = await asyncio.gather(
            *(
                store.claim(f"w{i}", ["default", "other"], 5, clock(), clock() + LEASE)
                for i in range(8)
            )
        )
        # Then: never more than the bound of a key runs.
        running = await running_by_key(store, ids)
        assert running.get("a", 0) <= 2 and running.get("b", 0) <= 3
        assert running == {"a": 2, "b": 3}
        for n, jobs in enumerate(claims):
            for job in jobs[:1]:
                await store.report(f"w{n}", [Outcome(job.id, job.fence, True, None)], clock())


async def test_a_queue_rate_limit_hands_out_its_tokens_only(store: Store, clock: FakeClock) -> None:
    # Given: a limit of 2 a second (burst 2) on queue "slow", and 20 jobs there.
    await store.set_rate_limit(RateLimit("queue", "slow", 120, "m"), clock())
    await store.submit_many([JobSpec("echo", queue="slow") for _ in range(20)], clock())
    await store.submit_many([JobSpec("echo") for _ in range(3)], clock())
    # When/Then: a full bucket gives 2, then none; half a second gives 1; a long quiet
    # spell gives no more than the burst. Other queues are not limited.
    assert len(await claim(store, clock, queues=("slow",))) == 2
    assert await claim(store, clock, queues=("slow",)) == []
    assert len(await claim(store, clock, queues=("slow",), limit=1)) == 0
    clock.advance(0.5)
    assert len(await claim(store, clock, queues=("slow",))) == 1
    clock.advance(60)
    assert len(await claim(store, clock, queues=("slow", "default"))) == 2 + 3


async def test_a_task_rate_limit_holds_only_that_tasks_jobs(store: Store, clock: FakeClock) -> None:
    await store.set_rate_limit(RateLimit("task", "send", 1), clock())
    await store.submit_many([JobSpec("send") for _ in range(3)], clock())
    await store.submit_many([JobSpec("echo") for _ in range(2)], clock())
    assert sorted(j.task for j in await claim(store, clock)) == ["echo", "echo", "send"]
    assert await claim(store, clock) == []
    clock.advance(1)
    assert [j.task for j in await claim(store, clock)] == ["send"]


async def test_rate_limits_are_set_listed_changed_and_removed(
    store: Store, clock: FakeClock
) -> None:
    assert await store.rate_limits() == []
    await store.set_rate_limit(RateLimit("queue", "emails", 600, "m"), clock())
    await store.set_rate_limit(RateLimit("task", "send", 5, "s", burst=10), clock())
    await store.set_rate_limit(RateLimit("queue", "emails", 100, "s"), clock())  # a change
    assert await store.rate_limits() == [
        RateLimit("queue", "emails", 100, "s", burst=100),
        RateLimit("task", "send", 5, "s", burst=10),
    ]
    assert await store.remove_rate_limit("queue", "emails") is True
    assert await store.remove_rate_limit("queue", "emails") is False
    assert await store.remove_rate_limit("task", "emails") is False
    assert [x.name for x in await store.rate_limits()] == ["send"]


# -- SQLite only: migrations --------------------------------------------------------------


def schema_of(conn: sqlite3.Connection) -> list[tuple[str, str, str, object]]:
    """Tables by their columns (ALTER TABLE rewrites a table's SQL text), indexes by SQL."""
    rows = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        " ORDER BY type, name"
    ).fetchall()
    return [
        (t, n, tbl, conn.execute(f"PRAGMA table_xinfo({n})").fetchall())
        if t == "table"
        else (t, n, tbl, " ".join(sql.split()))
        for t, n, tbl, sql in rows
    ]


def test_all_migrations_in_order_give_the_fresh_schema() -> None:
    steps = migrations()
    assert [n for n, _ in steps] == list(range(1, len(steps) + 1))

    migrated = sqlite3.connect(":memory:", isolation_level=None)
    assert migrate(migrated) == len(steps)
    assert migrated.execute("PRAGMA user_version").fetchone()[0] == len(steps)

    fresh = sqlite3.connect(":memory:", isolation_level=None)
    fresh.executescript(resources.files("runq.store.sqlite").joinpath("schema.sql").read_text())
    assert schema_of(migrated) == schema_of(fresh)
    assert schema_of(fresh)  # the comparison is not vacuous
    for table in ("jobs", "attempts"):
        cols = f"PRAGMA table_info({table})"
        assert migrated.execute(cols).fetchall() == fresh.execute(cols).fetchall()


def test_migrating_one_step_at_a_time_gives_the_same_schema() -> None:
    stepwise = sqlite3.connect(":memory:", isolation_level=None)
    for number, sql in migrations():
        stepwise.executescript(sql)
        stepwise.execute(f"PRAGMA user_version = {number}")
    assert migrate(stepwise) == len(migrations())  # nothing left to do
    once = sqlite3.connect(":memory:", isolation_level=None)
    migrate(once)
    assert schema_of(stepwise) == schema_of(once)


def test_migrate_twice_changes_nothing() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    first = schema_of(conn)
    assert migrate(conn) == len(migrations())
    assert schema_of(conn) == first


def test_a_store_newer_than_this_runq_is_refused() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute(f"PRAGMA user_version = {len(migrations()) + 1}")
    with pytest.raises(StoreError, match="newer than this runq knows"):
        migrate(conn)


# -- PostgreSQL only: migrations and URLs -------------------------------------------------


@pytest.fixture
async def pg() -> AsyncIterator[tuple[Any, Callable[[], str]]]:
    """A connection to the test database and a maker of schema names dropped afterwards."""
    conn = await postgres_or_skip()
    made: list[str] = []

    def schema() -> str:
        made.append(fresh_schema())
        return made[-1]

    try:
        yield conn, schema
    finally:
        await drop_schemas(conn, made)


async def pg_schema_of(conn: Any, schema: str) -> list[tuple[object, ...]]:
    """Columns, indexes and table options of ``schema`` (without the version table)."""
    columns = await conn.fetch(
        "SELECT table_name, ordinal_position, column_name, data_type, is_nullable,"
        " column_default, is_identity, identity_generation FROM information_schema.columns"
        " WHERE table_schema = $1 AND table_name <> 'schema_version'"
        " ORDER BY table_name, ordinal_position",
        schema,
    )
    indexes = await conn.fetch(
        "SELECT tablename, indexname, replace(indexdef, $1 || '.', '') FROM pg_indexes"
        " WHERE schemaname = $1 AND tablename <> 'schema_version' ORDER BY indexname",
        schema,
    )
    options = await conn.fetch(
        "SELECT c.relname, c.relkind, c.reloptions FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = $1 AND c.relname NOT LIKE 'schema_version%' ORDER BY c.relname",
        schema,
    )
    return [tuple(r) for r in (*columns, *indexes, *options)]


async def test_postgres_migrations_in_order_give_the_fresh_schema(pg: Any) -> None:
    conn, schema = pg
    steps = migrations("runq.store.postgres")
    assert [n for n, _ in steps] == list(range(1, len(steps) + 1))

    migrated = schema()
    assert await pg_migrate(conn, migrated) == len(steps)
    versions = await conn.fetch(f'SELECT version FROM "{migrated}".schema_version ORDER BY 1')
    assert [r[0] for r in versions] == [n for n, _ in steps]

    fresh = schema()
    sql = resources.files("runq.store.postgres").joinpath("schema.sql").read_text()
    async with conn.transaction():
        await conn.execute(f'CREATE SCHEMA "{fresh}"; SET LOCAL search_path TO "{fresh}"')
        await conn.execute(sql)
    assert await pg_schema_of(conn, migrated) == await pg_schema_of(conn, fresh)
    assert len(await pg_schema_of(conn, fresh)) > 20  # the comparison is not vacuous


async def test_postgres_brokers_starting_together_migrate_once(pg: Any) -> None:
    conn, schema = pg
    name = schema()
    others = [await asyncpg.connect(PG_DSN) for _ in range(4)]
    try:
        done = await asyncio.gather(*(pg_migrate(c, name) for c in others))
    finally:
        await asyncio.gather(*(c.close() for c in others))
    newest = len(migrations("runq.store.postgres"))
    assert done == [newest] * 4
    assert await conn.fetchval(f'SELECT count(*) FROM "{name}".schema_version') == newest
    assert await pg_migrate(conn, name) == newest  # and again changes nothing


async def test_postgres_store_newer_than_this_runq_is_refused(pg: Any, clock: FakeClock) -> None:
    conn, schema = pg
    name = schema()
    newer = len(migrations("runq.store.postgres")) + 1
    await pg_migrate(conn, name)
    await conn.execute(f'INSERT INTO "{name}".schema_version (version) VALUES ($1)', newer)
    with pytest.raises(StoreError, match="newer than this runq knows"):
        await pg_migrate(conn, name)
    store = open_store(StoreConfig(url=f"{PG_DSN}?schema={name}"))
    try:
        with pytest.raises(StoreError, match=f"schema version {newer}, newer"):
            await store.submit_many([JobSpec("echo")], clock())
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://u@127.0.0.1:port/test", "bad port"),
        ("postgres://u:secret@127.0.0.1:99999/test", "bad port"),
        (f"{PG_DSN}?schema=no-dashes", "bad schema name"),
        (f"{PG_DSN}?schema={'x' * 64}", "bad schema name"),
        (f"{PG_DSN}?pool_size=0", "pool_size must be"),
    ],
)
def test_a_bad_postgres_url_is_a_one_line_config_error(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        open_store(StoreConfig(url=url))
    assert "\n" not in caught.value.message and "secret" not in caught.value.message


async def one_line_store_error(url: str, message: str, clock: FakeClock) -> None:
    store = open_store(StoreConfig(url=url))
    try:
        for _ in range(2):  # and it tries again on the next operation
            with pytest.raises(StoreError, match=message) as caught:
                await store.submit_many([JobSpec("echo")], clock())
            assert "\n" not in caught.value.message
    finally:
        await store.close()


async def test_an_unreachable_postgres_is_a_one_line_store_error(clock: FakeClock) -> None:
    url = "postgresql://postgres@127.0.0.1:1/test"
    await one_line_store_error(url, "cannot connect to PostgreSQL at 127.0.0.1:1/test", clock)


async def test_a_missing_postgres_database_is_a_one_line_store_error(
    pg: Any, clock: FakeClock
) -> None:
    url = "postgresql://postgres@127.0.0.1:5432/runq_no_such_database"
    await one_line_store_error(url, 'database "runq_no_such_database" does not exist', clock)


# -- what running jobs write: lines and progress ------------------------------------------


def lines_of(*texts: str, stream: str = "stdout") -> list[tuple[float, str, str]]:
    return [(1.5, stream, t) for t in texts]


async def test_output_lines_are_numbered_per_job_and_read_after_a_seq(
    store: Store, clock: FakeClock
) -> None:
    a, b = await store.submit_many([JobSpec("echo"), JobSpec("echo")], clock())
    ja, jb = await claim(store, clock)
    batches = [
        OutputBatch(ja.id, ja.fence, lines_of("one", "two")),
        OutputBatch(jb.id, jb.fence, lines_of("b1", stream="stderr")),
    ]
    assert await store.append_output("w1", batches, clock()) == []
    more = OutputBatch(ja.id, ja.fence, [(2.0, "log", "INFO three"), (2.5, "runq", "x" * 4096)])
    assert await store.append_output("w1", [more], clock()) == []
    got = await store.read_logs(a)
    assert [(x.seq, x.stream, x.text) for x in got] == [
        (1, "stdout", "one"),
        (2, "stdout", "two"),
        (3, "log", "INFO three"),
        (4, "runq", "x" * 4096),
    ]
    assert got[0] == LogLine(1, 1, 1.5, "stdout", "one")
    assert [x.text for x in await store.read_logs(a, after=2)] == ["INFO three", "x" * 4096]
    assert [x.seq for x in await store.read_logs(a, after=1, limit=2)] == [2, 3]
    assert await store.read_logs(a, after=4) == []
    assert [(x.seq, x.text) for x in await store.read_logs(b)] == [(1, "b1")]
    assert await store.read_logs(10**9) == []


async def test_output_of_an_attempt_no_longer_held_is_refused(
    store: Store, clock: FakeClock
) -> None:
    (job_id,) = await store.submit_many([JobSpec("echo", max_attempts=3)], clock())
    first = await claim_one(store, clock)
    await store.requeue_worker("w1", clock())
    second = await claim_one(store, clock, worker="w2")
    late = OutputBatch(job_id, first.fence, lines_of("late"), progress=0.9, message="old")
    assert await store.append_output("w1", [late], clock()) == [job_id]
    wrong_worker = OutputBatch(job_id, second.fence, lines_of("not yours"))
    assert await store.append_output("w1", [wrong_worker], clock()) == [job_id]
    ok = OutputBatch(job_id, second.fence, lines_of("mine"), progress=0.25, message="a quarter")
    assert await store.append_output("w2", [ok], clock()) == []
    assert [(x.text, x.attempt) for x in await store.read_logs(job_id)] == [("mine", 2)]
    job = await store.get(job_id)
    assert job is not None
    assert (job.progress, job.progress_message) == (0.25, "a quarter")


async def test_progress_belongs_to_the_current_attempt_and_outlives_its_end(
    store: Store, clock: FakeClock
) -> None:
    (job_id,) = await store.submit_many([JobSpec("echo", max_attempts=3)], clock())
    queued = await store.get(job_id)
    assert queued is not None and (queued.progress, queued.progress_message) == (None, None)
    first = await claim_one(store, clock)
    await store.append_output("w1", [OutputBatch(job_id, first.fence, progress=0.5)], clock())
    running = await store.get(job_id)
    assert running is not None and (running.progress, running.progress_message) == (0.5, "")
    listed = await store.list_jobs()
    assert listed[0].progress is None  # lists leave it out, like the history

    await store.report("w1", [Outcome(job_id, first.fence, False, None, BOOM)], clock())
    waiting = await store.get(job_id)
    assert waiting is not None and waiting.progress is None  # a new attempt starts afresh
    await store.promote_scheduled(clock.advance(100))
    second = await claim_one(store, clock)
    again = await store.get(job_id)
    assert again is not None and again.progress is None
    done = OutputBatch(job_id, second.fence, lines_of("end"), progress=1.0, message="done")
    await store.append_output("w1", [done], clock())
    await store.report("w1", [Outcome(job_id, second.fence, True, "ok")], clock())
    # lines sent after the report (the fence still holds) are kept too
    tail = OutputBatch(job_id, second.fence, lines_of("after"))
    assert await store.append_output("w1", [tail], clock()) == []
    finished = await store.get(job_id)
    assert finished is not None and finished.state is S.SUCCEEDED
    assert (finished.progress, finished.progress_message) == (1.0, "done")
    assert [x.text for x in await store.read_logs(job_id)] == ["end", "after"]


async def test_output_goes_with_its_job_in_the_retention_purge(
    store: Store, clock: FakeClock
) -> None:
    old, young = await store.submit_many([JobSpec("echo"), JobSpec("echo")], clock())
    for job in await claim(store, clock):
        batch = OutputBatch(job.id, job.fence, lines_of("hi"), progress=1.0, message="m")
        await store.append_output("w1", [batch], clock())
        await store.report("w1", [Outcome(job.id, job.fence, True, None)], clock())
        clock.advance(10)
    assert await store.purge(clock() - 15, 100) == 1  # the first finished 20 s ago
    assert await store.get(old) is None
    assert await store.read_logs(old) == []
    assert [x.text for x in await store.read_logs(young)] == ["hi"]


# -- periodic schedules (cron) ------------------------------------------------------------

EVERY_5 = "*/5 * * * *"


def every_5(name: str, catch_up: CatchUp = CatchUp.LAST, queue: str = "default") -> ScheduleSpec:
    return ScheduleSpec(name, EVERY_5, JobSpec("echo", ["tick"], queue=queue), catch_up=catch_up)


async def tick_keys(store: Store, name: str) -> list[str]:
    jobs = await store.list_jobs(limit=1000)
    return sorted(j.key for j in jobs if j.key and j.key.startswith(f"schedule:{name}:"))


async def test_a_schedule_fires_each_tick_once(store: Store, clock: FakeClock) -> None:
    added = await store.add_schedule(every_5("five", queue="cron"), clock())
    first = next_tick(EVERY_5, "UTC", clock())
    assert (added.next_at, added.last_at, added.paused) == (first, None, False)
    assert await store.fire_schedules(clock()) == set()  # not yet
    clock.now = first
    assert await store.fire_schedules(clock()) == {"cron"}
    assert await store.fire_schedules(clock.advance(0.5)) == set()  # fired already
    assert await tick_keys(store, "five") == ["schedule:five:2023-11-14T22:15:00Z"]
    (job,) = await store.list_jobs(queue="cron")
    assert (job.task, job.args, job.state) == ("echo", ["tick"], S.QUEUED)
    (now,) = await store.schedules()
    assert (now.next_at, now.last_at) == (first + 300, first)
    clock.now = first + 300
    await store.fire_schedules(clock())
    assert len(await tick_keys(store, "five")) == 2


async def test_a_unique_schedule_fires_no_twin_of_an_unfinished_job(
    store: Store, clock: FakeClock
) -> None:
    # Given: a schedule whose job is unique for an hour, catching up every missed tick.
    job = JobSpec("echo", ["tick"], queue="cron", unique_for=3600.0)
    await store.add_schedule(ScheduleSpec("u", EVERY_5, job, catch_up=CatchUp.ALL), clock())
    first = next_tick(EVERY_5, "UTC", clock())

    # When: three ticks are due at once, then one more while the first job is queued.
    clock.now = first + 600 + 120
    assert await store.fire_schedules(clock()) == {"cron"}
    assert await store.fire_schedules(clock.advance(300)) == set()

    # Then: one job stands for them all, keyed by its tick; once it finished, the next
    # tick makes a new job; a plain submit of a twin merges into the unfinished one.
    assert await tick_keys(store, "u") == ["schedule:u:2023-11-14T22:15:00Z"]
    (done,) = await claim(store, clock, queues=("cron",))
    await store.report("w1", [Outcome(done.id, done.fence, True, None)], clock())
    assert await store.fire_schedules(clock.advance(300)) == {"cron"}
    assert len(await tick_keys(store, "u")) == 2
    (twin,) = await store.submit_many([job], clock())
    assert twin in [j.id for j in await store.list_jobs(state=S.QUEUED, queue="cron")]
    assert len(await store.list_jobs(queue="cron")) == 2


async def test_missed_ticks_follow_the_catch_up_policy(store: Store, clock: FakeClock) -> None:
    for policy in CatchUp:
        await store.add_schedule(every_5(f"p-{policy}", policy), clock())
    first = next_tick(EVERY_5, "UTC", clock())
    clock.now = first + 3600 + 120  # 13 ticks passed; the latest is two minutes late
    await store.fire_schedules(clock())
    assert await tick_keys(store, "p-none") == []
    assert await tick_keys(store, "p-last") == ["schedule:p-last:2023-11-14T23:15:00Z"]
    assert len(await tick_keys(store, "p-all")) == 13
    for s in await store.schedules():
        assert s.next_at == first + 3900  # each goes on from the next tick
    assert await store.fire_schedules(clock()) == set()


async def test_bad_schedule_requests_change_nothing(store: Store, clock: FakeClock) -> None:
    await store.add_schedule(every_5("five"), clock())
    with pytest.raises(Conflict, match="exists already"):
        await store.add_schedule(every_5("five", CatchUp.ALL), clock())
    (kept,) = await store.schedules()
    assert kept.catch_up is CatchUp.LAST
    for op in (
        store.remove_schedule("nope"),
        store.pause_schedule("nope", True, clock()),
        store.pause_schedule("nope", False, clock()),
    ):
        with pytest.raises(UnknownSchedule, match="no schedule named 'nope'"):
            await op
    assert [s.name for s in await store.schedules()] == ["five"]
    gone = await store.remove_schedule("five")
    assert gone.name == "five" and await store.schedules() == []


async def test_a_paused_schedule_skips_the_ticks_it_missed(store: Store, clock: FakeClock) -> None:
    await store.add_schedule(every_5("five", CatchUp.ALL), clock())
    paused = await store.pause_schedule("five", True, clock())
    assert paused.paused
    clock.advance(3600)
    assert await store.fire_schedules(clock()) == set()
    resumed = await store.pause_schedule("five", False, clock())
    assert not resumed.paused and resumed.next_at == next_tick(EVERY_5, "UTC", clock())
    assert await store.fire_schedules(clock()) == set()
    clock.now = resumed.next_at
    await store.fire_schedules(clock())
    assert len(await tick_keys(store, "five")) == 1


async def test_upsert_keeps_the_next_tick_unless_the_cron_changes(
    store: Store, clock: FakeClock
) -> None:
    spec = every_5("task:t")
    await store.upsert_schedules([spec], clock())
    await store.pause_schedule("task:t", True, clock())
    await store.upsert_schedules([spec], clock.advance(3600))  # a worker connects again
    (same,) = await store.schedules()
    assert same.paused and same.next_at == next_tick(EVERY_5, "UTC", clock.now - 3600)
    hourly = msgspec.structs.replace(spec, cron="0 * * * *", tz="Europe/Berlin")
    await store.upsert_schedules([hourly], clock())
    (changed,) = await store.schedules()
    assert (changed.cron, changed.tz, changed.paused) == ("0 * * * *", "Europe/Berlin", True)
    assert changed.next_at == next_tick("0 * * * *", "Europe/Berlin", clock())


async def test_two_stores_firing_at_once_fire_each_tick_once(
    durable_backend: Backend, clock: FakeClock
) -> None:
    a, b = durable_backend.open(), durable_backend.open()
    try:
        for n in range(5):
            await a.add_schedule(every_5(f"s{n}", CatchUp.ALL), clock())
        clock.advance(3600)
        for _ in range(3):
            await asyncio.gather(a.fire_schedules(clock()), b.fire_schedules(clock()))
        jobs = await a.list_jobs(limit=1000)
        assert len(jobs) == 5 * 12
        assert len({j.key for j in jobs}) == len(jobs)
    finally:
        await a.close()
        await b.close()


async def test_concurrency_of_says_a_jobs_key_bound_and_running_count(
    store: Store, clock: FakeClock
) -> None:
    specs = [JobSpec("echo", [str(i)], concurrency_key="c-1", max_concurrent=2) for i in range(3)]
    ids = await store.submit_many([*specs, JobSpec("echo")], clock())
    assert await store.concurrency_of(ids[0]) == ("c-1", 2, 0)
    assert await store.concurrency_of(ids[3]) is None  # no key
    assert await store.concurrency_of(2**62) is None  # no job
    await claim(store, clock, limit=10)  # two of the key start; the third must wait
    assert await store.concurrency_of(ids[2]) == ("c-1", 2, 2)


async def test_purging_dependent_jobs_works_by_both_ways_of_purging(
    store: Store, clock: FakeClock
) -> None:
    (parent,) = await store.submit_many([JobSpec("echo")], clock())
    (child,) = await store.submit_many([JobSpec("echo", after=[parent])], clock())
    await store.cancel(parent, clock())  # the child is cancelled with it
    clock.advance(100)
    assert await store.purge(clock() - 10, 100) == 2
    assert await store.get(child) is None
    (again,) = await store.submit_many([JobSpec("echo")], clock())
    (other,) = await store.submit_many([JobSpec("echo", after=[again])], clock())
    await store.cancel(again, clock())
    clock.advance(100)
    assert await store.purge_finished(clock() - 10, 100) == 2
    assert await store.get(other) is None
