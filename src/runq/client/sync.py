"""Client: the blocking facade over AsyncClient, on a private event loop."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from runq.client.aio import AsyncClient
from runq.model import Job, JobSpec
from runq.protocol.messages import QueueInfo, WorkerInfo

T = TypeVar("T")


class Client:
    """Every method blocks until the broker answers. Not for use inside a running loop."""

    def __init__(self, server: str = "127.0.0.1", *, token: str | None = None) -> None:
        # The stdlib loop: run_until_complete costs a third of uvloop's per call here.
        self._loop = asyncio.new_event_loop()
        self._aio = AsyncClient(server, token=token)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coro)

    def connect(self) -> Client:
        self._run(self._aio.connect())
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

    def submit_many(self, jobs: Iterable[JobSpec | Mapping[str, Any]]) -> list[int]:
        return self._run(self._aio.submit_many(jobs))

    def get(self, job_id: int) -> Job:
        return self._run(self._aio.get(job_id))

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

    def pause(self, queue: str) -> QueueInfo:
        return self._run(self._aio.pause(queue))

    def resume(self, queue: str) -> QueueInfo:
        return self._run(self._aio.resume(queue))
