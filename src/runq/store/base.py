"""The Store protocol: domain operations only, no SQL or driver types.

Every state change is one guarded write inside a transaction; an operation that finds
its guard false (wrong state, stale fence) changes nothing and says so in its result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from runq.model import Assignment, Job, JobSpec, JobState, Outcome
from runq.model.files import BlobInfo
from runq.model.flow import RateLimit
from runq.model.output import MAX_LINES, LogLine, OutputBatch
from runq.model.schedule import Schedule, ScheduleSpec
from runq.model.token import TokenInfo
from runq.model.unique import SubmitIds


class ReportResult(NamedTuple):
    accepted: list[int]  # ids whose report was taken
    stale: list[int]  # ids whose report was refused (old fence, not running, unknown)
    finished: list[int]  # accepted ids whose job is now in a terminal state
    requeued_queues: set[str]  # queues that got a job back (retry or requeue)


class Requeued(NamedTuple):
    queues: set[str]  # queues that got a job back
    failed: list[int]  # jobs that were out of attempts and ended failed instead
    # (job id, worker) of each job taken from its worker (lease expiry only)
    holders: frozenset[tuple[int, str]] = frozenset()


class FileStore(Protocol):
    """Blobs: the bytes of job inputs and artifacts (model/files.py), written in order a
    chunk at a time and read back only once complete. SQLite keeps the bytes in files in
    a directory next to the database; PostgreSQL in a chunk table, so every broker can
    serve every file. Memory stays flat: nothing holds more than a chunk."""

    async def create_blob(self, blob: BlobInfo) -> None:
        """Start a blob (nothing received yet)."""
        ...

    async def blob(self, blob_id: str) -> BlobInfo | None: ...

    async def write_blob(self, blob_id: str, offset: int, data: bytes, now: float) -> int:
        """Store ``data`` at ``offset``, which must equal what is stored so far (Conflict
        otherwise, or when it would pass the declared size); the bytes now stored."""
        ...

    async def finish_blob(self, blob_id: str, now: float) -> BlobInfo:
        """Check the stored bytes against the declared size and SHA-256 and mark the blob
        complete. A mismatch raises FileMismatch and drops the bytes (received goes back
        to 0). Finishing a complete blob again answers it as it is."""
        ...

    async def read_blob(self, blob_id: str, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes of a complete blob from ``offset`` (b"" at its end)."""
        ...

    async def stored_bytes(self) -> int:
        """The declared sizes of every blob kept, for the quota."""
        ...

    async def sweep_blobs(self, now: float, grace: float) -> int:
        """Delete, with their bytes, blobs nobody needs: uploads left unfinished for
        ``grace`` seconds, complete inputs no job names after ``grace`` seconds, inputs
        and artifacts of jobs that are gone, artifacts of attempts whose report was not
        accepted once their job has finished. The number deleted."""
        ...


class Store(FileStore, Protocol):
    async def submit_many(self, specs: Sequence[JobSpec], now: float) -> SubmitIds:
        """Insert jobs in one transaction; an existing idempotency key returns its id, and
        so does a unique job's unfinished twin (model/unique.py), or it raises
        AlreadyQueued and nothing is stored. ``merged`` lists those positions."""
        ...

    async def claim(
        self, worker: str, queues: Sequence[str], limit: int, now: float, lease_until: float
    ) -> list[Assignment]:
        """Mark up to ``limit`` ready jobs running for ``worker`` in claim order."""
        ...

    async def report(self, worker: str, outcomes: Sequence[Outcome], now: float) -> ReportResult:
        """Apply attempt outcomes whose fence is still current."""
        ...

    async def extend_leases(
        self, worker: str, running: Sequence[tuple[int, int]], lease_until: float
    ) -> list[int]:
        """Extend the leases ``worker`` holds; return the ids it no longer holds."""
        ...

    async def requeue_worker(self, worker: str, now: float) -> Requeued:
        """Give back every job ``worker`` runs (its connection is gone)."""
        ...

    async def requeue_expired(self, now: float) -> Requeued:
        """Give back jobs whose lease ran out."""
        ...

    async def release(
        self, worker: str, running: Sequence[tuple[int, int]], now: float
    ) -> set[str]:
        """Take back jobs ``worker`` hands back unfinished (a graceful stop): they are
        queued again and the attempt does not count. Returns their queues."""
        ...

    async def retry(self, job_id: int | None, queue: str | None, now: float) -> list[int]:
        """Queue failed jobs again with fresh attempts: one job (UnknownJob if there is
        none, IllegalTransition unless it failed), or every failed job of ``queue`` (all
        queues when None). Returns the ids queued."""
        ...

    async def publish_workers(self, broker_id: str, snapshot: bytes | None, now: float) -> None:
        """Record what broker ``broker_id`` serves (None: it has gone)."""
        ...

    async def worker_snapshots(self, since: float) -> list[tuple[str, bytes]]:
        """Every broker's last record, for those seen since ``since``."""
        ...

    async def set_paused(self, queue: str, paused: bool, now: float) -> None:
        """Pause (or resume) the dispatch of ``queue``'s jobs, for every broker."""
        ...

    async def paused_queues(self) -> set[str]:
        """The queues whose dispatch is paused."""
        ...

    async def set_rate_limit(self, limit: RateLimit, now: float) -> None:
        """Add or change a rate limit, for every broker: claims start at most its rate
        of jobs from the queue (or of the task). A new limit starts with a full bucket."""
        ...

    async def remove_rate_limit(self, scope: str, name: str) -> bool:
        """Drop a rate limit; False if there was none."""
        ...

    async def rate_limits(self) -> list[RateLimit]:
        """Every rate limit, by scope and name."""
        ...

    async def concurrency_of(self, job_id: int) -> tuple[str, int, int] | None:
        """A job's concurrency key, its max_concurrent and how many jobs of that key run
        now; None for a job without a key (or no such job)."""
        ...

    async def keyed_queues(self) -> set[str]:
        """The queues with queued jobs that have a concurrency key."""
        ...

    async def clock_offset(self) -> float:
        """Seconds the store's clock is ahead of this host's: brokers on several hosts
        keep leases and schedules in the store's time (0 for an embedded store)."""
        ...

    async def warnings(self, older_than: float = 60.0) -> list[str]:
        """What an operator should know about the store: transactions open for more
        than ``older_than`` seconds (they hold back vacuum in PostgreSQL)."""
        ...

    async def purge(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` finished jobs that finished before ``before`` (oldest
        first), with their history. Returns how many went."""
        ...

    async def purge_finished(
        self,
        before: float,
        limit: int,
        *,
        queue: str | None = None,
        skip: Sequence[str] = (),
        states: Sequence[JobState] | None = None,
    ) -> int:
        """Delete up to ``limit`` finished jobs (in ``states``, all finished states when
        None; an unfinished state is a ValueError) that finished before ``before``,
        oldest first, with their history: of ``queue``, or of every queue but those in
        ``skip``. Returns how many went."""
        ...

    async def retention_overrides(self) -> dict[str, float | None]:
        """Queues whose retention overrides the broker's: seconds, or None (forever)."""
        ...

    async def set_retention(self, queue: str, retention: float | None, now: float) -> None:
        """Keep ``queue``'s finished jobs ``retention`` seconds (None: forever)."""
        ...

    async def reset_retention(self, queue: str) -> None:
        """``queue`` follows the broker's retention again."""
        ...

    async def count_ahead(self, job: Job) -> int:
        """Queued jobs of ``job``'s queue that are claimed before it (claim order)."""
        ...

    async def promote_scheduled(self, now: float) -> set[str]:
        """Move scheduled jobs whose time has come to queued. Returns their queues."""
        ...

    async def cancel(self, job_id: int, now: float) -> Job:
        """Cancel a job that has not finished; raises UnknownJob or IllegalTransition."""
        ...

    async def get(self, job_id: int) -> Job | None: ...

    async def list_jobs(
        self,
        state: JobState | None = None,
        queue: str | None = None,
        limit: int = 50,
        before: int | None = None,
        task: str | None = None,
        key: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[Job]:
        """Newest first; ``before`` pages back from an id. Every filter given must
        match; ``since`` and ``until`` bound the submit time."""
        ...

    async def counts(self) -> dict[str, dict[str, int]]:
        """Job counts by queue, then by state."""
        ...

    async def subscribe(
        self,
        on_ready: Callable[[set[str] | None], None],
        on_finished: Callable[[list[int] | None], None],
    ) -> None:
        """Hear of changes other brokers make: queues that got ready jobs and ids of jobs
        that finished (``None``: anything may have changed). Hints only, with no promise
        of delivery; a store with one broker (SQLite) does nothing."""
        ...

    async def append_output(
        self, worker: str, batches: Sequence[OutputBatch], now: float
    ) -> list[int]:
        """Keep what running jobs wrote: each batch's lines, numbered on from the job's
        last line, and its progress (replacing the job's last). A batch is taken only
        while ``worker`` holds its fence (the job may have finished since); returns the
        ids of the batches refused."""
        ...

    async def read_logs(self, job_id: int, after: int = 0, limit: int = MAX_LINES) -> list[LogLine]:
        """Up to ``limit`` lines of a job with ``seq`` past ``after``, oldest first (none
        for a job that does not exist)."""
        ...

    # -- periodic schedules (cron) ------------------------------------------------------

    async def add_schedule(self, spec: ScheduleSpec, now: float) -> Schedule:
        """Store a checked schedule whose first tick is the first after ``now``; a name
        that exists already raises Conflict."""
        ...

    async def upsert_schedules(self, specs: Sequence[ScheduleSpec], now: float) -> None:
        """Add or update schedules by name (a worker's @runq.task(cron=...)); one whose
        cron and zone are unchanged keeps its next tick and its pause."""
        ...

    async def schedules(self) -> list[Schedule]:
        """Every schedule, by name."""
        ...

    async def remove_schedule(self, name: str) -> Schedule:
        """Delete a schedule (UnknownSchedule if there is none); returns it as it was."""
        ...

    async def pause_schedule(self, name: str, paused: bool, now: float) -> Schedule:
        """Stop (or restart) firing a schedule's ticks; a resumed schedule skips the
        ticks that passed while it was paused. UnknownSchedule if there is none."""
        ...

    async def fire_schedules(self, now: float) -> set[str]:
        """Fire the ticks that are due at ``now`` (per each schedule's catch-up policy):
        each tick's job is inserted, with the key ``schedule:NAME:TICK``, in the
        transaction that moves the schedule's next tick on with a guarded write, so a
        tick fires once whichever broker fires it. Returns the queues that got jobs."""
        ...

    async def add_token(self, info: TokenInfo, digest: str) -> None:
        """Keep a new token: its public part and the SHA-256 of its secret."""
        ...

    async def tokens(self) -> list[TokenInfo]:
        """Every token, revoked and expired ones too, oldest first."""
        ...

    async def token(self, token_id: str) -> tuple[TokenInfo, str] | None:
        """A token and its secret's digest, by id (None: no such token)."""
        ...

    async def revoke_token(self, ident: str, now: float) -> TokenInfo:
        """Revoke the token with id ``ident`` or the one unrevoked token so named
        (UnknownToken; Conflict when the name is shared). Revoking twice keeps the first
        time."""
        ...

    async def has_tokens(self) -> bool:
        """Whether any token was ever made: then every request must present one."""
        ...

    async def close(self) -> None: ...
