"""Python tasks in a pool of task processes owned by the worker.

Each task process (``runq.worker.executors.child``) imports the task modules once and
runs one job at a time. It is the leader of its own process group, so a timeout or a
cancel kills it with everything it started. A process that dies fails its job with
``worker_lost`` and is replaced; ``max_jobs`` and ``max_memory`` recycle processes
between jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import psutil

from runq.errors import ConfigError
from runq.model import Assignment, ErrorInfo

log = logging.getLogger("runq.worker")
_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()
START_TIMEOUT = 60.0  # seconds a task process may take to import the task modules


class TaskFailed(Exception):
    """A job's failure as the task process reported it."""

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(info.message)
        self.info = info


@dataclass(frozen=True, slots=True)
class PoolConfig:
    modules: tuple[str, ...]
    size: int
    max_jobs: int | None = None  # jobs a process runs before it is replaced
    max_memory_mb: float | None = None  # RSS after a job past which it is replaced
    env: tuple[tuple[str, str], ...] = ()  # the whole environment of task processes


class TaskProcess:
    """One task process and the socket to it."""

    def __init__(self, proc: asyncio.subprocess.Process, sock: socket.socket) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.sock = sock
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.jobs = 0
        self.names: list[str] = []
        self.timeouts: dict[str, float] = {}

    @classmethod
    async def start(cls, config: PoolConfig) -> TaskProcess:
        parent, child = socket.socketpair()
        cmd = [sys.executable, "-m", "runq.worker.executors.child", *config.modules]
        cmd += ["--fd", str(child.fileno())]
        env = dict(config.env) if config.env else None  # None: the worker's environment
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            pass_fds=[child.fileno()],
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        child.close()
        self = cls(proc, parent)
        self.reader, self.writer = await asyncio.open_connection(sock=parent)
        try:
            hello = await asyncio.wait_for(self._read(), START_TIMEOUT)
        except (TimeoutError, asyncio.IncompleteReadError):
            self.kill()
            raise ConfigError("the task process did not start") from None
        if hello[0] == "error":
            self.kill()
            raise ConfigError(str(hello[1]))
        self.names = list(hello[2])
        self.timeouts = dict(hello[3])
        return self

    async def _read(self) -> Any:
        assert self.reader is not None
        header = await self.reader.readexactly(4)
        return _dec.decode(await self.reader.readexactly(int.from_bytes(header, "big")))

    async def run(self, job: Assignment) -> Any:
        """Run one job; returns its result or raises TaskFailed."""
        assert self.writer is not None
        body = _enc.encode([job.id, job.task, job.args, job.kwargs, job.attempt])
        self.writer.write(len(body).to_bytes(4, "big") + body)
        try:
            reply = await self._read()
        except (asyncio.IncompleteReadError, ConnectionError):
            raise TaskFailed(ErrorInfo("worker_lost", await self._death())) from None
        self.jobs += 1
        if reply[1]:
            return reply[2]
        _, _, code, message, retryable, tb = reply
        raise TaskFailed(ErrorInfo(code, message, retryable, tb))

    async def _death(self) -> str:
        code = await self.proc.wait()
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"the task process died of {name}"
        return f"the task process exited with code {code}"

    def rss_mb(self) -> float:
        try:
            return float(psutil.Process(self.pid).memory_info().rss) / 2**20
        except psutil.Error:
            return 0.0

    def kill(self) -> None:
        """Kill the process and everything in its process group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.writer is not None:
            self.writer.close()
        self.sock.close()

    def close(self) -> None:
        """Ask it to stop: it exits when its socket closes."""
        if self.writer is not None:
            self.writer.close()
        self.sock.close()


class PythonExecutor:
    """Runs ``@runq.task`` functions of the configured modules in task processes."""

    def __init__(self, config: PoolConfig) -> None:
        self.config = config
        self.names: frozenset[str] = frozenset()
        self._idle: asyncio.Queue[TaskProcess] = asyncio.Queue()
        self._all: set[TaskProcess] = set()
        self._closing = False
        self._restarts = 0
        self._timeouts: dict[str, float] = {}

    async def open(self) -> None:
        first = await TaskProcess.start(self.config)
        self.names = frozenset(first.names)
        self._timeouts = first.timeouts
        self._adopt(first)
        await asyncio.gather(*(self._spawn() for _ in range(self.config.size - 1)))
        log.info(
            "task processes ready: %d, tasks: %s", self.config.size, ", ".join(sorted(self.names))
        )

    async def close(self) -> None:
        self._closing = True
        for proc in list(self._all):
            proc.kill()
        await asyncio.gather(*(p.proc.wait() for p in self._all), return_exceptions=True)
        self._all.clear()

    def knows(self, task: str) -> bool:
        return task in self.names

    def default_timeout(self, task: str) -> float | None:
        return self._timeouts.get(task)

    def start(self, job: Assignment) -> Any:
        return self._run(job)

    def processes(self) -> Sequence[TaskProcess]:
        return list(self._all)

    async def _run(self, job: Assignment) -> Any:
        proc = await self._idle.get()
        try:
            result = await proc.run(job)
        except TaskFailed as failed:
            if failed.info.code == "worker_lost":
                self._replace(proc)
            else:
                self._release(proc)
            raise
        except BaseException:  # cancelled (timeout, cancel, shutdown): kill the job
            proc.kill()
            self._replace(proc)
            raise
        self._release(proc)
        return result

    def _release(self, proc: TaskProcess) -> None:
        cfg = self.config
        worn = cfg.max_jobs is not None and proc.jobs >= cfg.max_jobs
        fat = cfg.max_memory_mb is not None and proc.rss_mb() > cfg.max_memory_mb
        if worn or fat:
            log.info("recycling task process %d (%s)", proc.pid, "jobs" if worn else "memory")
            proc.close()
            self._replace(proc)
        else:
            self._idle.put_nowait(proc)

    def _adopt(self, proc: TaskProcess) -> None:
        self._all.add(proc)
        self._idle.put_nowait(proc)

    def _replace(self, proc: TaskProcess) -> None:
        self._all.discard(proc)
        if not self._closing:
            task = asyncio.ensure_future(self._spawn(delay=min(0.05 * self._restarts, 5.0)))
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _spawn(self, delay: float = 0.0) -> None:
        if delay:
            await asyncio.sleep(delay)
        while not self._closing:
            try:
                self._adopt(await TaskProcess.start(self.config))
                return
            except ConfigError as exc:
                self._restarts += 1
                log.error("task process failed to start: %s", exc.message)
                await asyncio.sleep(min(0.1 * 2**self._restarts, 10.0))
