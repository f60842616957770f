"""The broker's Prometheus metrics: what it did (counters and latency histograms, by
queue and task) and, at each scrape, how things stand (queue depths, workers).

Each broker counts what passes through it; sum over brokers in PromQL. Depths and
workers are read from the store and cover the whole cluster.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable, Sequence
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from runq.model import Assignment, JobSpec, Outcome

UNKNOWN: Final = "unknown"  # labels of a job this broker did not hand out
MAX_TRACKED: Final = 200_000  # running jobs whose labels and start time are kept
LATENCY_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
RUN_BUCKETS: Final = (0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600)


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        job_labels = ["queue", "task"]
        self.submitted = Counter("runq_jobs_submitted", "Jobs submitted", job_labels, registry=r)
        self.started = Counter(
            "runq_jobs_started", "Attempts handed to workers", job_labels, registry=r
        )
        self.succeeded = Counter("runq_jobs_succeeded", "Jobs succeeded", job_labels, registry=r)
        self.failed = Counter(
            "runq_jobs_failed", "Jobs failed for good (out of attempts)", job_labels, registry=r
        )
        self.retried = Counter(
            "runq_jobs_retried", "Failed attempts queued to run again", job_labels, registry=r
        )
        self.cancelled = Counter("runq_jobs_cancelled", "Jobs cancelled", job_labels, registry=r)
        self.lease_expiries = Counter(
            "runq_lease_expiries", "Running jobs taken back when their lease ran out", registry=r
        )
        self.stale_reports = Counter(
            "runq_stale_reports", "Reports refused for an old fence", registry=r
        )
        self.submit_seconds = Histogram(
            "runq_submit_seconds",
            "From a submit's arrival to its commit in the store",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.run_seconds = Histogram(
            "runq_job_run_seconds",
            "From handing an attempt to a worker to its report",
            ["queue"],
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.depth = Gauge(
            "runq_queue_jobs", "Jobs by queue and state", ["queue", "state"], registry=r
        )
        self.running = Gauge("runq_running_jobs", "Jobs running now", registry=r)
        self.workers = Gauge("runq_workers_connected", "Workers connected", registry=r)
        self.slots = Gauge("runq_worker_slots", "Jobs all workers can run at once", registry=r)
        # job id -> (queue, task, monotonic time handed out), for jobs this broker handed out
        self._running: collections.OrderedDict[int, tuple[str, str, float]] = (
            collections.OrderedDict()
        )

    def on_submit(self, specs: Sequence[JobSpec], seconds: float) -> None:
        self.submit_seconds.observe(seconds)
        tally = collections.Counter((s.queue, s.task) for s in specs)
        for (queue, task), n in tally.items():
            self.submitted.labels(queue, task).inc(n)

    def on_start(self, jobs: Iterable[Assignment]) -> None:
        now = time.monotonic()
        for job in jobs:
            queue = job.queue or UNKNOWN
            self.started.labels(queue, job.task).inc()
            self._running[job.id] = (queue, job.task, now)
            self._running.move_to_end(job.id)
        while len(self._running) > MAX_TRACKED:
            self._running.popitem(last=False)

    def on_report(
        self, outcomes: Sequence[Outcome], accepted: set[int], finished: set[int]
    ) -> None:
        now = time.monotonic()
        for outcome in outcomes:
            if outcome.id not in accepted:
                continue
            queue, task, since = self._running.pop(outcome.id, (UNKNOWN, UNKNOWN, None))
            if since is not None:
                self.run_seconds.labels(queue).observe(now - since)
            if outcome.ok:
                self.succeeded.labels(queue, task).inc()
            elif outcome.id in finished:
                self.failed.labels(queue, task).inc()
            else:
                self.retried.labels(queue, task).inc()

    def on_cancel(self, job_id: int, queue: str, task: str) -> None:
        self.cancelled.labels(queue, task).inc()
        self._running.pop(job_id, None)

    def forget(self, ids: Iterable[int]) -> None:
        """Jobs taken back unreported (a lost worker, an expired lease, a release)."""
        for job_id in ids:
            self._running.pop(job_id, None)

    def set_depths(self, counts: dict[str, dict[str, int]]) -> None:
        self.depth.clear()
        running = 0
        for queue, states in counts.items():
            for state, n in states.items():
                self.depth.labels(queue, state).set(n)
                if state == "running":
                    running += n
        self.running.set(running)
