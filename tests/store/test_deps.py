"""Store contract for dependencies between jobs (JobSpec.after), on every backend."""

from __future__ import annotations

import pytest
from test_contract import (  # type: ignore[import-not-found]
    BOOM,
    PERMANENT,
    Backend,
    backend,
    claim,
    clock,
    state_of,
    store,
)

from runq.clock import FakeClock
from runq.errors import UnknownJob
from runq.model import JobSpec, JobState, Outcome
from runq.store.base import Store

__all__ = ["Backend", "backend", "clock", "store"]  # fixtures shared with the contract

S = JobState


async def run_one(store: Store, clock: FakeClock, ok: bool, result: object = None) -> int:
    """Claim the one ready job and report it."""
    (a,) = await claim(store, clock)
    o = Outcome(a.id, a.fence, ok, result if ok else None, None if ok else PERMANENT)
    res = await store.report("w1", [o], clock())
    assert res.accepted == [a.id]
    return a.id


async def test_a_dependent_waits_until_every_parent_succeeded(
    store: Store, clock: FakeClock
) -> None:
    p1, p2 = await store.submit_many([JobSpec("echo"), JobSpec("echo")], clock())
    (child,) = await store.submit_many([JobSpec("echo", after=[p1, p2])], clock())
    job = await store.get(child)
    assert job is not None and job.state is S.WAITING and job.after == [p1, p2]
    (a, b) = await claim(store, clock)  # only the parents are ready
    assert {a.id, b.id} == {p1, p2}
    res = await store.report("w1", [Outcome(a.id, a.fence, True, 1)], clock())
    assert await state_of(store, child) is S.WAITING and res.requeued_queues == set()
    res = await store.report("w1", [Outcome(b.id, b.fence, True, 2)], clock())
    assert res.requeued_queues == {"default"}
    assert await state_of(store, child) is S.QUEUED


async def test_a_failed_parent_cancels_dependents_with_a_reason_and_cascades(
    store: Store, clock: FakeClock
) -> None:
    (p,) = await store.submit_many([JobSpec("echo", max_attempts=1)], clock())
    (c1,) = await store.submit_many([JobSpec("echo", after=[p])], clock())
    (c2,) = await store.submit_many([JobSpec("echo", after=[c1])], clock())
    (a,) = await claim(store, clock)
    res = await store.report("w1", [Outcome(a.id, a.fence, False, error=BOOM)], clock())
    assert set(res.finished) == {p, c1, c2}
    for child, why in ((c1, f"dependency {p} failed"), (c2, f"dependency {c1} was cancelled")):
        job = await store.get(child)
        assert job is not None and job.state is S.CANCELLED
        assert job.error is not None and job.error.code == "dependency_failed"
        assert job.error.message == why


async def test_a_retried_parent_does_not_cancel_its_dependents(
    store: Store, clock: FakeClock
) -> None:
    (p,) = await store.submit_many([JobSpec("echo", max_attempts=3)], clock())
    (c,) = await store.submit_many([JobSpec("echo", after=[p])], clock())
    (a,) = await claim(store, clock)
    await store.report("w1", [Outcome(a.id, a.fence, False, error=BOOM)], clock())
    assert await state_of(store, c) is S.WAITING


async def test_cancelling_a_parent_cancels_dependents(store: Store, clock: FakeClock) -> None:
    (p,) = await store.submit_many([JobSpec("echo")], clock())
    (c,) = await store.submit_many([JobSpec("echo", after=[p])], clock())
    await store.cancel(p, clock())
    job = await store.get(c)
    assert job is not None and job.state is S.CANCELLED
    assert job.error is not None and job.error.message == f"dependency {p} was cancelled"


async def test_a_waiting_job_can_be_cancelled(store: Store, clock: FakeClock) -> None:
    (p,) = await store.submit_many([JobSpec("echo")], clock())
    (c,) = await store.submit_many([JobSpec("echo", after=[p])], clock())
    before = await store.cancel(c, clock())
    assert before.state is S.WAITING and await state_of(store, c) is S.CANCELLED


async def test_after_any_runs_once_every_parent_ended(store: Store, clock: FakeClock) -> None:
    p1, p2 = await store.submit_many([JobSpec("echo", max_attempts=1)] * 2, clock())
    (c,) = await store.submit_many([JobSpec("echo", after=[p1, p2], after_any=True)], clock())
    a, b = await claim(store, clock)
    await store.report("w1", [Outcome(a.id, a.fence, False, error=BOOM)], clock())
    assert await state_of(store, c) is S.WAITING
    await store.report("w1", [Outcome(b.id, b.fence, True, None)], clock())
    assert await state_of(store, c) is S.QUEUED


async def test_results_are_passed_to_a_dependent_that_asks(store: Store, clock: FakeClock) -> None:
    (p,) = await store.submit_many([JobSpec("echo")], clock())
    spec = JobSpec("echo", kwargs={"x": 1}, after=[p], pass_results=True)
    (c,) = await store.submit_many([spec], clock())
    await run_one(store, clock, True, {"n": 42})
    (a,) = await claim(store, clock)
    assert a.id == c and a.kwargs == {"x": 1, "previous": {"n": 42}}


async def test_a_dependent_of_several_gets_their_results_in_order(
    store: Store, clock: FakeClock
) -> None:
    p1, p2 = await store.submit_many([JobSpec("echo"), JobSpec("echo")], clock())
    spec = JobSpec("echo", after=[p2, p1], pass_results=True)
    (c,) = await store.submit_many([spec], clock())
    a, b = sorted(await claim(store, clock), key=lambda x: x.id)
    await store.report(
        "w1", [Outcome(a.id, a.fence, True, "one"), Outcome(b.id, b.fence, True, "two")], clock()
    )
    (got,) = await claim(store, clock)
    assert got.id == c and got.kwargs == {"previous": ["two", "one"]}


async def test_an_unknown_parent_is_refused_and_nothing_stored(
    store: Store, clock: FakeClock
) -> None:
    (p,) = await store.submit_many([JobSpec("echo")], clock())
    with pytest.raises(UnknownJob, match="999999"):
        await store.submit_many([JobSpec("echo"), JobSpec("echo", after=[p, 999999])], clock())
    assert [j.id for j in await store.list_jobs()] == [p]


async def test_parents_that_ended_before_the_submit_settle_it_at_once(
    store: Store, clock: FakeClock
) -> None:
    good, bad = await store.submit_many([JobSpec("echo"), JobSpec("echo", max_attempts=1)], clock())
    a, b = sorted(await claim(store, clock), key=lambda x: x.id)
    await store.report(
        "w1", [Outcome(a.id, a.fence, True, 7), Outcome(b.id, b.fence, False, error=BOOM)], clock()
    )
    ready, cancelled = await store.submit_many(
        [JobSpec("echo", after=[good], pass_results=True), JobSpec("echo", after=[bad])], clock()
    )
    assert await state_of(store, cancelled) is S.CANCELLED
    (got,) = await claim(store, clock)
    assert got.id == ready and got.kwargs == {"previous": 7}


async def test_a_dependent_with_a_future_run_at_is_scheduled(
    store: Store, clock: FakeClock
) -> None:
    (p,) = await store.submit_many([JobSpec("echo")], clock())
    (c,) = await store.submit_many([JobSpec("echo", after=[p], delay=60)], clock())
    await run_one(store, clock, True)
    assert await state_of(store, c) is S.SCHEDULED


async def test_counts_include_waiting_jobs(store: Store, clock: FakeClock) -> None:
    (p,) = await store.submit_many([JobSpec("echo")], clock())
    await store.submit_many([JobSpec("echo", after=[p])], clock())
    assert (await store.counts())["default"] == {"queued": 1, "waiting": 1}
