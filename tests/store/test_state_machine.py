"""A Hypothesis state machine over a real SQLite store on a temporary file.

Time is explicit (a float ``now`` that only the "advance" rule moves), so every rule is
deterministic. The machine keeps a model of every job: it predicts what each operation
must answer and what each job must look like afterwards, and after every step it checks
the promises of DESIGN.md against what the store says:

- at most one accepted report per attempt, and one accepted report that finishes a job
  (until the job is retried by hand from the dead-letter set);
- fences only grow; every observed change of state between two steps is in TRANSITIONS;
- a running job has a worker, a lease and a fence >= 1; a finished job has finished_at;
  attempts never exceed max_attempts;
- the history has one entry per claim, with outcomes matching what happened;
- closing and opening the store again keeps every committed change.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from runq.errors import IllegalTransition, UnknownJob
from runq.model import (
    TERMINAL_STATES,
    TRANSITIONS,
    ErrorInfo,
    Job,
    JobSpec,
    JobState,
    Outcome,
    RetryPolicy,
)
from runq.model.job import AttemptInfo
from runq.store.base import Requeued
from runq.store.sqlite.store import SqliteStore

T = TypeVar("T")
S = JobState
RETRY = RetryPolicy(base=4.0, cap=50.0)
WORKERS = ("w1", "w2", "w3")
QUEUES = ("a", "b")
KEYS = ("k1", "k2", "k3", "k4")
START = 1_700_000_000.0
UNKNOWN_ID = 1_000_000

BOOM = ErrorInfo("task_failed", "boom")
PERMANENT = ErrorInfo("invalid_arguments", "bad arguments", retryable=False)
BARE = ErrorInfo("error", "the attempt failed")  # what the store records for ok=False alone
LEASE_EXPIRED = "lease_expired"
WORKER_LOST = "worker_lost"


@dataclass
class Attempt:
    """What one history entry must say."""

    attempt: int
    worker: str
    fence: int
    started_at: float
    finished_at: float | None = None
    outcome: str | None = None
    error: str | None = None  # error code


@dataclass
class Model:
    """What one job must look like."""

    id: int
    marker: int  # args[0], to tell that an id names the job it was given for
    queue: str
    priority: int
    max_attempts: int
    backoff: float | None
    key: str | None
    state: JobState
    run_at: float
    submitted_at: float
    attempts: int = 0
    fence: int = 0
    worker: str | None = None
    lease_until: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    result: Any = None
    error: str | None = None
    history: list[Attempt] = field(default_factory=list)
    accepted_fences: set[int] = field(default_factory=set)  # fences whose report was taken
    completions: int = 0  # accepted reports that finished it, since the last hand retry

    def end_attempt(self, now: float, outcome: str, error: str | None) -> None:
        last = self.history[-1]
        assert last.fence == self.fence and last.outcome is None
        last.finished_at, last.outcome, last.error = now, outcome, error
        event(f"attempt ended: {outcome}")  # --hypothesis-show-statistics shows coverage

    def holds(self, worker: str, fence: int) -> bool:
        return self.state is S.RUNNING and self.worker == worker and self.fence == fence


spec_strategy = st.fixed_dictionaries(
    {
        "queue": st.sampled_from(QUEUES),
        "priority": st.sampled_from([0, 0, 1]),
        "delay": st.sampled_from([None, None, 0.0, 5.0, 30.0]),
        "max_attempts": st.integers(1, 3),
        "key": st.one_of(st.none(), st.none(), st.sampled_from(KEYS)),
        "backoff": st.sampled_from([None, None, 1.0]),
    }
)
pick = st.integers(min_value=0, max_value=10_000)
outcome_kind = st.sampled_from(["ok", "fail", "permanent", "bare"])


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = Path(tempfile.mkdtemp(prefix="runq-sm-"))
        self.path = str(self.tmp / "runq.db")
        self.store = self._open()
        self.now = START
        self.jobs: dict[int, Model] = {}
        self.by_key: dict[str, int] = {}
        self.markers = 0
        self.seen: dict[int, tuple[JobState, int]] = {}  # state and fence at the last check
        self.dirty: set[int] = set()  # jobs whose history to read at the next check

    # -- plumbing ----------------------------------------------------------------------

    def _open(self) -> SqliteStore:
        return SqliteStore(self.path, retry=RETRY, rand=random.Random(0))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            self.run(self.store.close())
            self.run(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def job_at(self, index: int, prefer: JobState | None = S.RUNNING) -> Model:
        """A job chosen by ``index``: an even index picks among the jobs in state
        ``prefer`` when there are some (so that reports and hand-backs often hit)."""
        ids = sorted(self.jobs)
        preferred = [i for i in ids if self.jobs[i].state is prefer]
        if preferred and index % 2 == 0:
            ids, index = preferred, index // 2
        return self.jobs[ids[index % len(ids)]]

    @staticmethod
    def fence_for(job: Model, stale: bool) -> int:
        if not stale:
            return job.fence
        return job.fence - 1 if job.fence > 1 else job.fence + 1

    def has_jobs(self) -> bool:
        return bool(self.jobs)

    def has_running(self) -> bool:
        return any(j.state is S.RUNNING for j in self.jobs.values())

    # -- rules: submitting and claiming ------------------------------------------------

    @initialize(
        specs=st.lists(spec_strategy, min_size=2, max_size=6),
        claims=st.integers(0, 3),
        worker=st.sampled_from(WORKERS),
    )
    def start_with_jobs(self, specs: list[dict[str, Any]], claims: int, worker: str) -> None:
        """Some jobs, some of them running already (whichever rules swarm testing turns
        off in this example, there is something to work on)."""
        self.submit(specs)
        self.jobs_match_the_model_and_the_rules()  # see them born before they run
        if claims:
            self.claim(worker, QUEUES, claims, 20.0, [])

    @rule(specs=st.lists(spec_strategy, min_size=1, max_size=4))
    def submit(self, specs: list[dict[str, Any]]) -> None:
        built = []
        for raw in specs:
            self.markers += 1
            built.append(JobSpec("echo", args=[self.markers], **raw))
        before = max(self.jobs, default=0)
        ids = self.run(self.store.submit_many(built, self.now))
        assert len(ids) == len(built)
        new_ids: list[int] = []
        for spec, job_id in zip(built, ids, strict=True):
            if spec.key is not None and spec.key in self.by_key:
                assert job_id == self.by_key[spec.key], "a used key must answer its job's id"
                continue
            assert job_id > before and job_id not in self.jobs, "a new job must get a new id"
            assert all(job_id > i for i in new_ids)
            new_ids.append(job_id)
            run_at = spec.ready_at(self.now)
            self.jobs[job_id] = Model(
                id=job_id,
                marker=spec.args[0],
                queue=spec.queue,
                priority=spec.priority,
                max_attempts=spec.max_attempts,
                backoff=spec.backoff,
                key=spec.key,
                state=S.SCHEDULED if run_at > self.now else S.QUEUED,
                run_at=run_at,
                submitted_at=self.now,
            )
            if spec.key is not None:
                self.by_key[spec.key] = job_id
            self.dirty.add(job_id)

    @rule(
        worker=st.sampled_from(WORKERS),
        queues=st.sampled_from([("a",), ("b",), ("a", "b"), ("b", "a")]),
        limit=st.integers(1, 3),
        lease=st.sampled_from([5.0, 20.0]),
        then=st.lists(st.sampled_from(["hold", "ok", "fail", "permanent", "release"]), max_size=3),
    )
    def claim(
        self, worker: str, queues: tuple[str, ...], limit: int, lease: float, then: list[str]
    ) -> None:
        """A worker claims jobs, and may at once finish or hand back some of them (the
        i-th claimed job gets the i-th action; "hold" or none keeps it running)."""
        ready = [j for j in self.jobs.values() if j.state is S.QUEUED and j.queue in queues]
        ready.sort(key=lambda j: (-j.priority, j.run_at, j.id))
        expected = ready[:limit]
        got = self.run(self.store.claim(worker, queues, limit, self.now, self.now + lease))
        assert [a.id for a in got] == [j.id for j in expected], "claim order or choice"
        for a, job in zip(got, expected, strict=True):
            job.state, job.worker = S.RUNNING, worker
            job.fence += 1
            job.attempts += 1
            job.lease_until = self.now + lease
            job.started_at, job.finished_at = self.now, None
            job.history.append(Attempt(job.attempts, worker, job.fence, self.now))
            if job.accepted_fences and job.completions == 0 and job.fence > 1:
                event("a job runs again after an accepted report (back-off or hand retry)")
            assert (a.fence, a.attempt, a.max_attempts) == (
                job.fence,
                job.attempts,
                job.max_attempts,
            )
            assert (a.task, a.args) == ("echo", [job.marker])
            self.dirty.add(job.id)
        for a, action in zip(got, then, strict=False):
            if action == "hold":
                continue
            now_running = self.run(self.store.get(a.id))  # observe each transition
            assert now_running is not None
            check_rules(now_running)
            self.check_change(now_running)
            if action == "release":
                self.give_back(worker, [(a.id, a.fence)])
            else:
                self.send_report(worker, [make_outcome(a.id, a.fence, action)])

    # -- rules: workers talking back ---------------------------------------------------

    @precondition(has_jobs)
    @rule(
        worker=st.sampled_from(WORKERS),
        picks=st.lists(st.tuples(pick, st.booleans()), min_size=1, max_size=3),
        unknown=st.booleans(),
        lease=st.sampled_from([5.0, 20.0]),
    )
    def heartbeat(
        self, worker: str, picks: list[tuple[int, bool]], unknown: bool, lease: float
    ) -> None:
        running = []
        for index, stale in picks:
            job = self.job_at(index)
            running.append((job.id, self.fence_for(job, stale)))
        if unknown:
            running.append((UNKNOWN_ID, 1))
        expected_lost = [
            i for i, f in running if i not in self.jobs or not self.jobs[i].holds(worker, f)
        ]
        lost = self.run(self.store.extend_leases(worker, running, self.now + lease))
        assert lost == expected_lost
        for job_id, fence in running:
            job = self.jobs.get(job_id)
            if job is not None and job.holds(worker, fence):
                job.lease_until = self.now + lease

    @precondition(has_running)
    @rule(index=pick, kind=outcome_kind)
    def finish(self, index: int, kind: str) -> None:
        """A worker reports on a job it holds, as a well-behaved worker does."""
        job = self.job_at(index * 2)
        assert job.worker is not None
        self.send_report(job.worker, [make_outcome(job.id, job.fence, kind)])

    @precondition(has_jobs)
    @rule(
        owner=st.booleans(),
        other=st.sampled_from(WORKERS),
        picks=st.lists(st.tuples(pick, st.booleans(), outcome_kind), min_size=1, max_size=2),
        unknown=st.booleans(),
    )
    def report(
        self,
        owner: bool,
        other: str,
        picks: list[tuple[int, bool, str]],
        unknown: bool,
    ) -> None:
        first = self.job_at(picks[0][0])
        worker = (first.worker or other) if owner else other
        outcomes = []
        for index, stale, kind in picks:
            job = self.job_at(index)
            outcomes.append(make_outcome(job.id, self.fence_for(job, stale), kind))
        if unknown:
            outcomes.append(Outcome(UNKNOWN_ID, 1, True, "nobody"))
        self.send_report(worker, outcomes)

    def send_report(self, worker: str, outcomes: list[Outcome]) -> None:
        taken, stale, finished, requeued = self.expect_report(worker, outcomes)
        res = self.run(self.store.report(worker, outcomes, self.now))
        assert (res.accepted, res.stale) == ([o.id for o in taken], stale)
        if any(i in self.jobs and self.jobs[i].fence > 0 for i in stale):
            event("a report of a claimed job is refused")
        assert (res.finished, res.requeued_queues) == (finished, requeued)
        for o in taken:
            self.accept(o)

    def expect_report(
        self, worker: str, outcomes: list[Outcome]
    ) -> tuple[list[Outcome], list[int], list[int], set[str]]:
        """Which outcomes the store must take, which ids it must refuse, which jobs
        finish and which queues get a job back."""
        taken: list[Outcome] = []
        stale: list[int] = []
        finished: list[int] = []
        requeued: set[str] = set()
        for o in outcomes:
            job = self.jobs.get(o.id)
            # A second outcome for the same job in one report finds it no longer running.
            if job is None or o.id in {t.id for t in taken} or not job.holds(worker, o.fence):
                stale.append(o.id)
                continue
            taken.append(o)
            error = o.error or BARE
            if o.ok or not error.retryable or job.attempts >= job.max_attempts:
                finished.append(o.id)
            else:
                requeued.add(job.queue)
        return taken, stale, finished, requeued

    def accept(self, o: Outcome) -> None:
        job = self.jobs[o.id]
        # The promise: one accepted report per attempt, one that finishes per job.
        assert o.fence not in job.accepted_fences, f"job {o.id}: fence {o.fence} taken twice"
        assert job.completions == 0, f"job {o.id} finished twice without a hand retry"
        job.accepted_fences.add(o.fence)
        job.lease_until = None
        self.dirty.add(job.id)
        if o.ok:
            job.state, job.result, job.error = S.SUCCEEDED, o.result, None
            job.finished_at = self.now
            job.end_attempt(self.now, "succeeded", None)
            job.completions += 1
            return
        error = o.error or BARE
        job.error = error.code
        job.end_attempt(self.now, "failed", error.code)
        if error.retryable and job.attempts < job.max_attempts:
            job.state = S.SCHEDULED
            self.check_back_off(job)
        else:
            job.state, job.finished_at = S.FAILED, self.now
            job.completions += 1

    def check_back_off(self, job: Model) -> None:
        """The retry waits base * 2**(attempt-1), capped, with jitter down to half."""
        stored = self.run(self.store.get(job.id))
        assert stored is not None
        base = RETRY.base if job.backoff is None else job.backoff
        ceiling = min(RETRY.cap, base * 2 ** (job.attempts - 1))
        assert self.now + ceiling / 2 <= stored.run_at <= self.now + ceiling
        job.run_at = stored.run_at

    @precondition(has_jobs)
    @rule(
        worker=st.sampled_from(WORKERS),
        owner=st.booleans(),
        picks=st.lists(st.tuples(pick, st.booleans()), min_size=1, max_size=2),
    )
    def release(self, worker: str, owner: bool, picks: list[tuple[int, bool]]) -> None:
        if owner:
            worker = self.job_at(picks[0][0]).worker or worker
        running = []
        for index, stale in picks:
            job = self.job_at(index)
            running.append((job.id, self.fence_for(job, stale)))
        self.give_back(worker, running)

    def give_back(self, worker: str, running: list[tuple[int, int]]) -> None:
        expected = {self.jobs[i].queue for i, f in running if self.jobs[i].holds(worker, f)}
        queues = self.run(self.store.release(worker, running, self.now))
        assert queues == expected
        for job_id, fence in running:
            job = self.jobs[job_id]
            if job.holds(worker, fence):
                job.state, job.lease_until = S.QUEUED, None
                job.attempts -= 1  # a hand-back does not count as an attempt
                job.end_attempt(self.now, "released", None)
                self.dirty.add(job_id)

    # -- rules: time and the broker's duties -------------------------------------------

    @rule(
        seconds=st.sampled_from([0.0, 0.5, 5.0, 15.0, 20.0, 31.0]),  # leases are 5 or 20
        duties=st.sampled_from(["none", "expire", "promote", "both"]),
    )
    def advance(self, seconds: float, duties: str) -> None:
        """Time passes (or not); then the broker's periodic duties may run."""
        self.now += seconds
        if duties in ("expire", "both"):
            self.requeue_expired()
        if duties in ("promote", "both"):
            self.promote_scheduled()

    def requeue_expired(self) -> None:
        gone = [
            j
            for j in self.jobs.values()
            if j.state is S.RUNNING and j.lease_until is not None and j.lease_until < self.now
        ]
        got = self.run(self.store.requeue_expired(self.now))
        holders = {(j.id, j.worker) for j in gone if j.worker is not None}
        self.check_requeued(got, gone, holders, LEASE_EXPIRED)

    def promote_scheduled(self) -> None:
        due = [j for j in self.jobs.values() if j.state is S.SCHEDULED and j.run_at <= self.now]
        queues = self.run(self.store.promote_scheduled(self.now))
        assert queues == {j.queue for j in due}
        for job in due:
            job.state = S.QUEUED

    @rule(worker=st.sampled_from(WORKERS))
    def requeue_worker(self, worker: str) -> None:
        gone = [j for j in self.jobs.values() if j.state is S.RUNNING and j.worker == worker]
        got = self.run(self.store.requeue_worker(worker, self.now))
        self.check_requeued(got, gone, set(), WORKER_LOST)

    def check_requeued(
        self, got: Requeued, gone: list[Model], holders: set[tuple[int, str]], code: str
    ) -> None:
        out = [j for j in gone if j.attempts >= j.max_attempts]
        back = [j for j in gone if j.attempts < j.max_attempts]
        assert got.queues == {j.queue for j in back}
        assert sorted(got.failed) == sorted(j.id for j in out)
        assert got.holders == frozenset(holders)
        for job in gone:
            job.end_attempt(self.now, code, code)
            job.error, job.lease_until = code, None
            if job.attempts >= job.max_attempts:
                job.state, job.finished_at = S.FAILED, self.now
            else:
                job.state = S.QUEUED
            self.dirty.add(job.id)

    # -- rules: what clients ask for ---------------------------------------------------

    @precondition(has_jobs)
    @rule(index=pick, unknown=st.booleans())
    def cancel(self, index: int, unknown: bool) -> None:
        if unknown:
            with pytest.raises(UnknownJob):
                self.run(self.store.cancel(UNKNOWN_ID, self.now))
            return
        job = self.job_at(index)
        if job.state in TERMINAL_STATES:
            with pytest.raises(IllegalTransition):
                self.run(self.store.cancel(job.id, self.now))
            return
        before = self.run(self.store.cancel(job.id, self.now))
        assert (before.id, before.state, before.fence) == (job.id, job.state, job.fence)
        if job.state is S.RUNNING:
            job.end_attempt(self.now, "cancelled", None)
        job.state, job.finished_at, job.lease_until = S.CANCELLED, self.now, None
        self.dirty.add(job.id)

    @precondition(has_jobs)
    @rule(index=pick, what=st.sampled_from(["one", "one", "unknown", "all", *QUEUES]))
    def retry(self, index: int, what: str) -> None:
        """Retry by hand from the dead-letter set: one job, an unknown id, every failed
        job, or those of one queue."""
        if what == "unknown":
            with pytest.raises(UnknownJob):
                self.run(self.store.retry(UNKNOWN_ID, None, self.now))
            return
        if what != "one":
            queue = None if what == "all" else what
            due = [
                j
                for j in self.jobs.values()
                if j.state is S.FAILED and (queue is None or j.queue == queue)
            ]
            ids = self.run(self.store.retry(None, queue, self.now))
            assert sorted(ids) == sorted(j.id for j in due)
            for job in due:
                self.retried(job)
            return
        job = self.job_at(index, prefer=S.FAILED)
        if job.state is not S.FAILED:
            with pytest.raises(IllegalTransition):
                self.run(self.store.retry(job.id, None, self.now))
            return
        assert self.run(self.store.retry(job.id, None, self.now)) == [job.id]
        self.retried(job)

    def retried(self, job: Model) -> None:
        job.state, job.attempts, job.run_at = S.QUEUED, 0, self.now
        job.finished_at = job.lease_until = None
        job.completions = 0  # retried by hand: it may finish once more
        self.dirty.add(job.id)

    # -- rules: durability -------------------------------------------------------------

    @rule()
    def reopen(self) -> None:
        if self.has_running():
            event("reopened with running jobs")
        before = {i: self.run(self.store.get(i)) for i in self.jobs}
        counts = self.run(self.store.counts())
        self.run(self.store.close())
        self.store = self._open()
        after = {i: self.run(self.store.get(i)) for i in self.jobs}
        assert after == before, "reopening must keep every committed change"
        assert self.run(self.store.counts()) == counts

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def jobs_match_the_model_and_the_rules(self) -> None:
        listed = self.run(self.store.list_jobs(limit=10_000))
        by_id = {j.id: j for j in listed}
        assert sorted(by_id) == sorted(self.jobs)
        for job_id, job in by_id.items():
            check_rules(job)
            self.check_change(job)
            assert observed(job) == expected(self.jobs[job_id])
        for job_id in sorted(self.dirty):
            full = self.run(self.store.get(job_id))
            assert full is not None
            assert [observed_attempt(a) for a in full.history] == self.jobs[job_id].history
        self.dirty.clear()
        assert self.run(self.store.counts()) == model_counts(self.jobs.values())

    def check_change(self, job: Job) -> None:
        prev = self.seen.get(job.id)
        if prev is None:
            assert job.state in (S.QUEUED, S.SCHEDULED), f"job {job.id} born {job.state}"
        else:
            state, fence = prev
            assert job.state == state or job.state in TRANSITIONS[state], (
                f"job {job.id}: {state} -> {job.state} is not a legal transition"
            )
            assert job.fence >= fence, f"job {job.id}: fence went back {fence} -> {job.fence}"
        self.seen[job.id] = (job.state, job.fence)


def make_outcome(job_id: int, fence: int, kind: str) -> Outcome:
    if kind == "ok":
        return Outcome(job_id, fence, True, {"by": fence})
    if kind == "bare":
        return Outcome(job_id, fence, False)
    return Outcome(job_id, fence, False, None, BOOM if kind == "fail" else PERMANENT)


def check_rules(job: Job) -> None:
    """What must hold of any job, whatever happened before."""
    assert job.state in TRANSITIONS
    assert 0 <= job.attempts <= job.max_attempts, f"job {job.id}: attempts {job.attempts}"
    if job.state is S.RUNNING:
        assert job.worker is not None and job.lease_until is not None and job.fence >= 1
        assert job.started_at is not None
    else:
        assert job.lease_until is None, f"job {job.id} is {job.state} but holds a lease"
    if job.state in TERMINAL_STATES:
        assert job.finished_at is not None, f"job {job.id} is {job.state} without finished_at"
    else:
        assert job.finished_at is None, f"job {job.id} is {job.state} with finished_at"


# What the invariant compares between a stored job and its model, field by field.
FIELDS = (
    *("queue", "priority", "max_attempts", "backoff", "key", "state", "run_at"),
    *("submitted_at", "attempts", "fence", "worker", "lease_until", "started_at"),
    *("finished_at", "result"),
)


def observed(job: Job) -> dict[str, Any]:
    seen = {name: getattr(job, name) for name in FIELDS}
    seen["marker"] = job.args[0]
    seen["error"] = None if job.error is None else job.error.code
    return seen


def expected(model: Model) -> dict[str, Any]:
    return {name: getattr(model, name) for name in (*FIELDS, "marker", "error")}


def observed_attempt(a: AttemptInfo) -> Attempt:
    error = None if a.error is None else a.error.code
    return Attempt(a.attempt, a.worker, a.fence, a.started_at, a.finished_at, a.outcome, error)


def model_counts(jobs: Any) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for job in jobs:
        states = out.setdefault(job.queue, {})
        states[str(job.state)] = states.get(str(job.state), 0) + 1
    return out


# 100 examples of up to 40 steps take about 7 s. Deterministic (derandomize) by default;
# RUNQ_STATE_MACHINE_EXAMPLES=5000 explores that many fresh random examples instead.
DEEP = int(os.environ.get("RUNQ_STATE_MACHINE_EXAMPLES", "0"))
StoreMachine.TestCase.settings = settings(
    max_examples=DEEP or 100,
    stateful_step_count=40,
    deadline=None,
    derandomize=not DEEP,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# Shrinking a failure replays many examples against the store: give it time to finish and
# print the smallest failing sequence rather than be cut off by the per-test timeout.
TestStoreStateMachine = pytest.mark.timeout(600 + DEEP)(StoreMachine.TestCase)
