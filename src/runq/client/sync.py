"""Client: the blocking facade over AsyncClient, on a private event loop."""

from __future__ import annotations

import asyncio
import builtins
import os
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from runq.client.aio import FOLLOW_POLL, AsyncClient
from runq.model import TERMINAL_STATES, Job, JobSpec
from runq.model.files import FileRef
from runq.model.flow import RateLimit
from runq.model.output import MAX_LINES, JobLogs, LogLine
from runq.model.schedule import Schedule
from runq.model.token import TokenInfo
from runq.model.unique import SubmitIds
from runq.protocol.messages import QueueInfo, WorkerInfo
from runq.tls import TlsConfig

T = TypeVar("T")


class Client:
    """Every method blocks until the broker answers. Not for use inside a running loop."""

    def __init__(
        self, server: str = "127.0.0.1", *, token: str | None = None, tls: TlsConfig | None = None
    ) -> None:
        self._aio = AsyncClient(server, token=token, tls=tls)
        # The stdlib loop: run_until_complete costs a third of uvloop's per call here.
        self._loop = asyncio.new_event_loop()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coro)

    def connect(self) -> Client:
        try:
            self._run(self._aio.connect())
        except BaseException:
            self.close()  # the loop and its sockets go with the failed attempt
            raise
        return self

    def close(self) -> None:
        if not self._loop.is_closed():
            self._run(self._aio.close())
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    def __enter__(self) -> Client:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, task: str | Callable[..., Any], *args: Any, **options: Any) -> int:
        return self._run(self._aio.submit_one(task, *args, **options))

    def submit_command(self, argv: Sequence[str], **options: Any) -> int:
        return self._run(self._aio.submit_command(argv, **options))

    def submit_many(self, jobs: Iterable[JobSpec | Mapping[str, Any]]) -> SubmitIds:
        return self._run(self._aio.submit_many(jobs))

    def upload(self, path: str | os.PathLike[str], name: str | None = None) -> FileRef:
        return self._run(self._aio.upload(path, name))

    def download_file(
        self, ref: FileRef, dest: str | os.PathLike[str], job_id: int | None = None
    ) -> Path:
        return self._run(self._aio.download_file(ref, dest, job_id))

    def download(self, job_id: int, directory: str | os.PathLike[str] = ".") -> builtins.list[Path]:
        return self._run(self._aio.download(job_id, directory))

    def get(self, job_id: int) -> Job:
        return self._run(self._aio.get(job_id))

    def logs(self, job_id: int, after: int = 0, limit: int = MAX_LINES) -> JobLogs:
        return self._run(self._aio.logs(job_id, after, limit))

    def follow(self, job_id: int, after: int = 0, poll: float = FOLLOW_POLL) -> Iterator[LogLine]:
        """The job's output lines as they come, until it has finished and all are read."""
        while True:
            page = self.logs(job_id, after)
            yield from page.lines
            after = page.next
            if len(page.lines) < MAX_LINES:
                if page.state in TERMINAL_STATES:
                    return
                time.sleep(poll)

    def wait(self, job_id: int, timeout: float | None = None) -> Job:
        return self._run(self._aio.wait(job_id, timeout))

    def result(self, job_id: int, timeout: float | None = None) -> Any:
        return self._run(self._aio.result(job_id, timeout))

    def cancel(self, job_id: int) -> Job:
        return self._run(self._aio.cancel(job_id))

    def retry(self, job_id: int) -> int:
        return self._run(self._aio.retry(job_id))

    def retry_failed(self, queue: str | None = None) -> builtins.list[int]:
        return self._run(self._aio.retry_failed(queue))

    def list(
        self,
        state: str | None = None,
        queue: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> list[Job]:
        return self._run(self._aio.list(state, queue, limit, before))

    def stats(self) -> dict[str, Any]:
        return self._run(self._aio.stats())

    def workers(self) -> builtins.list[WorkerInfo]:
        return self._run(self._aio.workers())

    def queues(self) -> builtins.list[QueueInfo]:
        return self._run(self._aio.queues())

    def set_rate_limit(
        self, scope: str, name: str, rate: str, burst: float | None = None
    ) -> RateLimit:
        return self._run(self._aio.set_rate_limit(scope, name, rate, burst))

    def remove_rate_limit(self, scope: str, name: str) -> RateLimit:
        return self._run(self._aio.remove_rate_limit(scope, name))

    def rate_limits(self) -> builtins.list[RateLimit]:
        return self._run(self._aio.rate_limits())

    def pause(self, queue: str) -> QueueInfo:
        return self._run(self._aio.pause(queue))

    def resume(self, queue: str) -> QueueInfo:
        return self._run(self._aio.resume(queue))

    def set_retention(self, queue: str, retention: float | str | None) -> QueueInfo:
        return self._run(self._aio.set_retention(queue, retention))

    def purge(
        self, older_than: float, *, state: str | None = None, queue: str | None = None
    ) -> int:
        return self._run(self._aio.purge(older_than, state=state, queue=queue))

    def explain(self, job_id: int) -> str:
        return self._run(self._aio.explain(job_id))

    def add_schedule(
        self, name: str, cron: str, task: str | Callable[..., Any], *args: Any, **options: Any
    ) -> Schedule:
        return self._run(self._aio.add_schedule(name, cron, task, *args, **options))

    def schedules(self) -> builtins.list[Schedule]:
        return self._run(self._aio.schedules())

    def remove_schedule(self, name: str) -> Schedule:
        return self._run(self._aio.remove_schedule(name))

    def pause_schedule(self, name: str) -> Schedule:
        return self._run(self._aio.pause_schedule(name))

    def resume_schedule(self, name: str) -> Schedule:
        return self._run(self._aio.resume_schedule(name))

    def create_token(
        self, scopes: Sequence[str], name: str | None = None, ttl: float | None = None
    ) -> tuple[str, TokenInfo]:
        return self._run(self._aio.create_token(scopes, name, ttl))

    def tokens(self) -> builtins.list[TokenInfo]:
        return self._run(self._aio.tokens())

    def revoke_token(self, token: str) -> TokenInfo:
        return self._run(self._aio.revoke_token(token))
