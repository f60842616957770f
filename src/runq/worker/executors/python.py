"""Python tasks in a pool of task processes owned by the worker.

Each task process (``runq.worker.executors.child``) imports the task modules once and
runs one job at a time. It is the leader of its own process group, so a timeout or a
cancel kills it with everything it started. A process that dies fails its job with
``worker_lost`` and is replaced; ``max_jobs`` and ``max_memory`` recycle processes
between jobs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import msgspec
import psutil

from runq.errors import ConfigError
from runq.model import Assignment, ErrorInfo
from runq.model.schedule import ScheduleSpec
from runq.protocol.messages import ProcInfo
from runq.worker.files import artifacts_made
from runq.worker.output import Output

log = logging.getLogger("runq.worker")
_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()
START_TIMEOUT = 60.0  # seconds a task process may take to import the task modules
RELOAD_POLL = 1.0  # seconds between checks of the task sources with --reload
HEALTH_EVERY = 5.0  # seconds between health checks of idle task processes
HEALTH_TIMEOUT = 5.0  # seconds an idle task process has to answer one
PING_JOB = Assignment(0, 0, "", [], {}, 0, 0, None)  # the health check's frame


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


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
    window: int = 2  # jobs sent to one task process at once (one runs, one waits its turn)
    reload: bool = False  # replace the processes gracefully when a task's source changes


class NotStarted(Exception):
    """The job was queued in a task process that went away before starting it."""


class TaskProcess(asyncio.Protocol):
    """One task process and the socket to it. Jobs sent to it queue in order (up to the
    pool's window), so the process goes from one job to the next without waiting for
    the worker; the first job in ``outstanding`` is the one running."""

    def __init__(self, proc: asyncio.subprocess.Process, output: Output | None = None) -> None:
        self.proc = proc
        self.output = output  # where the running job's lines and progress go
        self.pid = proc.pid
        self.transport: asyncio.Transport | None = None
        self.outstanding: collections.deque[tuple[Assignment, asyncio.Future[Any]]] = (
            collections.deque()
        )
        self.jobs = 0
        self.retiring = False
        self.dead = False
        self.killed = False
        self.names: list[str] = []
        self.timeouts: dict[str, float] = {}
        self.sources: list[str] = []
        self.schedules: list[ScheduleSpec] = []  # of its tasks with a cron
        self._buf = bytearray()
        self._failing: asyncio.Future[None] | None = None
        self._hello: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    @classmethod
    async def start(cls, config: PoolConfig, output: Output | None = None) -> TaskProcess:
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
        self = cls(proc, output)
        await asyncio.get_running_loop().connect_accepted_socket(lambda: self, parent)
        try:
            hello = await asyncio.wait_for(self._hello, START_TIMEOUT)
        except (TimeoutError, ConnectionError):
            self.kill()
            raise ConfigError("the task process did not start") from None
        if hello[0] == "error":
            self.kill()
            raise ConfigError(str(hello[1]))
        self.names = list(hello[2])
        self.timeouts = dict(hello[3])
        self.sources = list(hello[4])
        self.schedules = msgspec.convert(hello[5] if len(hello) > 5 else [], list[ScheduleSpec])
        return self

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        while len(buf) - pos >= 4:
            size = int.from_bytes(buf[pos : pos + 4], "big")
            if len(buf) - pos - 4 < size:
                break
            self._reply(_dec.decode(buf[pos + 4 : pos + 4 + size]))
            pos += 4 + size
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.dead = True
        self.transport = None
        if not self._hello.done():
            self._hello.set_exception(ConnectionError("the task process went away"))
        lost = list(self.outstanding)
        self.outstanding.clear()
        if lost:
            self._failing = asyncio.ensure_future(self._fail(lost))

    async def _fail(self, lost: list[tuple[Assignment, asyncio.Future[Any]]]) -> None:
        why = await self._death()
        for n, (_, fut) in enumerate(lost):
            if fut.done():
                continue
            if n == 0 and not self.killed:  # it died running this job
                fut.set_exception(TaskFailed(ErrorInfo("worker_lost", why)))
            else:  # never started, or cut short by a kill aimed at another job: run again
                fut.set_exception(NotStarted())

    def _reply(self, reply: Any) -> None:
        if not self._hello.done():
            self._hello.set_result(reply)
            return
        if reply[0] == "out":
            self._output(reply)
            return
        job, fut = self.outstanding.popleft()
        if job is not PING_JOB:
            self.jobs += 1
        if fut.done():  # abandoned (cancelled while it waited in the queue)
            return
        if reply[1]:
            fut.set_result(artifacts_made(reply[2], reply[3]) if len(reply) > 3 else reply[2])
        else:
            _, _, code, message, retryable, tb = reply
            fut.set_exception(TaskFailed(ErrorInfo(code, message, retryable, tb)))

    def _output(self, frame: Any) -> None:
        """["out", job id, lines, progress, message] from the job running now."""
        running = self.outstanding[0][0] if self.outstanding else None
        if self.output is None or running is None or len(frame) != 5 or frame[1] != running.id:
            return
        _, _, lines, progress, message = frame
        self.output.add(running.id, running.fence, lines, progress, message)

    # -- jobs ------------------------------------------------------------------------

    def send(self, job: Assignment) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.transport is None:
            fut.set_exception(NotStarted())
            return fut
        body = _enc.encode([job.id, job.task, job.args, job.kwargs, job.attempt, job.workdir])
        self.transport.write(len(body).to_bytes(4, "big") + body)
        self.outstanding.append((job, fut))
        return fut

    async def ping(self, timeout: float) -> bool:
        """Whether an idle process answers a health check in time."""
        try:
            await asyncio.wait_for(self.send(PING_JOB), timeout)
        except (TimeoutError, NotStarted, TaskFailed):
            return False
        return True

    def holds(self, job: Assignment) -> bool:
        return any(queued is job for queued, _ in self.outstanding)

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
        """Kill the process and everything in its process group (on purpose: the jobs it
        holds besides the one it was killed for are run again elsewhere)."""
        self.killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.close()

    def close(self) -> None:
        """Ask it to stop: it exits when its socket closes."""
        if self.transport is not None:
            self.transport.close()


class PythonExecutor:
    """Runs ``@runq.task`` functions of the configured modules in task processes."""

    def __init__(self, config: PoolConfig) -> None:
        self.config = config
        self.names: frozenset[str] = frozenset()
        self._procs: list[TaskProcess] = []
        self._waiting: collections.deque[
            tuple[Assignment, bool, asyncio.Future[tuple[TaskProcess, Any]]]
        ] = collections.deque()
        self._closing = False
        self._restarts = 0
        self._timeouts: dict[str, float] = {}
        self._sources: dict[str, float] = {}
        self._schedules: list[ScheduleSpec] = []
        self._watcher: asyncio.Future[None] | None = None
        self._health: asyncio.Future[None] | None = None
        self._output: Output | None = None

    def attach_output(self, output: Output) -> None:
        """Where the jobs' lines and progress go (the agent's, before ``open``)."""
        self._output = output

    async def open(self) -> None:
        first = await TaskProcess.start(self.config, self._output)
        self._learn(first)
        self._adopt(first)
        if self.config.reload:
            self._watcher = asyncio.ensure_future(self._watch())
        self._health = asyncio.ensure_future(self._check_health())
        await asyncio.gather(*(self._spawn() for _ in range(self.config.size - 1)))
        names = ", ".join(sorted(self.names))
        log.info("task processes ready: %d, tasks: %s", self.config.size, names)

    def _learn(self, proc: TaskProcess) -> None:
        self.names = frozenset(proc.names)
        self._timeouts = proc.timeouts
        self._sources = {path: _mtime(path) for path in proc.sources}
        self._schedules = proc.schedules

    async def _watch(self) -> None:
        """--reload: poll the task sources; on a change, replace every process after
        its current job (new processes import the new code)."""
        while not self._closing:
            await asyncio.sleep(RELOAD_POLL)
            if all(_mtime(path) == seen for path, seen in self._sources.items()):
                continue
            log.info("task code changed: replacing the task processes after their jobs")
            try:
                fresh = await TaskProcess.start(self.config, self._output)
            except ConfigError as exc:  # broken code: keep the old processes
                log.error("the changed task code does not load: %s", exc.message)
                self._sources = {path: _mtime(path) for path in self._sources}
                continue
            self._learn(fresh)
            old = [p for p in self._procs if not p.retiring]
            for n, proc in enumerate(old):
                proc.retiring = True
                if n:  # the fresh one takes the place of the first
                    self._replace(proc)
                if not proc.outstanding:
                    proc.close()
            self._procs = [p for p in self._procs if not (p.retiring and not p.outstanding)]
            self._adopt(fresh)

    async def _check_health(self) -> None:
        """Ping idle task processes; one that does not answer is hung: replace it."""
        while not self._closing:
            await asyncio.sleep(HEALTH_EVERY)
            for proc in [p for p in self._procs if p.dead and not p.retiring]:
                log.warning("task process %d died while idle; replacing it", proc.pid)
                self._replace(proc)  # (one that dies running a job is replaced at once)
            idle = [p for p in self._procs if not (p.dead or p.retiring or p.outstanding)]
            answers = await asyncio.gather(*(p.ping(HEALTH_TIMEOUT) for p in idle))
            for proc, alive in zip(idle, answers, strict=True):
                if not alive and not proc.dead:
                    log.warning("task process %d does not answer; replacing it", proc.pid)
                    proc.kill()
                    self._replace(proc)
            self._dispatch()

    async def close(self) -> None:
        self._closing = True
        for watcher in (self._watcher, self._health):
            if watcher is not None:
                watcher.cancel()
        procs, self._procs = self._procs, []
        for proc in procs:
            proc.kill()
        await asyncio.gather(*(p.proc.wait() for p in procs), return_exceptions=True)

    def knows(self, task: str) -> bool:
        return task in self.names

    def schedules(self) -> list[ScheduleSpec]:
        return list(self._schedules)

    def tasks(self) -> list[str] | None:
        return sorted(self.names)

    def default_timeout(self, task: str) -> float | None:
        return self._timeouts.get(task)

    def start(self, job: Assignment) -> Any:
        return self._run(job)

    def processes(self) -> Sequence[TaskProcess]:
        return list(self._procs)

    def describe(self) -> list[ProcInfo]:
        return [
            ProcInfo(
                p.pid,
                "retiring" if p.retiring else "busy" if p.outstanding else "idle",
                p.jobs,
                round(p.rss_mb(), 1),
            )
            for p in self._procs
            if not p.dead
        ]

    async def _run(self, job: Assignment) -> Any:
        alone = bool(job.timeout or self._timeouts.get(job.task))  # timed: never queued
        while True:
            proc, fut = await self._send(job, alone)
            try:
                result = await fut
            except NotStarted:
                continue  # its process went away before starting it: another one runs it
            except TaskFailed as failed:
                if failed.info.code == "worker_lost":
                    self._replace(proc)
                else:
                    self._after_job(proc)
                raise
            except asyncio.CancelledError:  # timeout, cancel or shutdown
                self._withdraw(proc, job)
                raise
            self._after_job(proc)
            return result

    async def _send(self, job: Assignment, alone: bool) -> tuple[TaskProcess, Any]:
        """Send ``job`` to a task process once one has room, first come first served."""
        ticket: asyncio.Future[tuple[TaskProcess, Any]] = asyncio.get_running_loop().create_future()
        self._waiting.append((job, alone, ticket))
        self._dispatch()
        try:
            return await ticket
        except asyncio.CancelledError:
            if ticket.done() and not ticket.cancelled():  # sent just before the cancel
                self._withdraw(ticket.result()[0], job)
            raise

    def _dispatch(self) -> None:
        """Hand waiting jobs, in order, to task processes with room."""
        while self._waiting:
            job, alone, ticket = self._waiting[0]
            if ticket.cancelled():
                self._waiting.popleft()
                continue
            proc = self._ready(alone)
            if proc is None:
                return
            self._waiting.popleft()
            ticket.set_result((proc, proc.send(job)))

    def _ready(self, alone: bool) -> TaskProcess | None:
        window = 1 if alone else self.config.window
        most = self.config.max_jobs
        ready = [
            p
            for p in self._procs
            if not (p.dead or p.retiring)
            and len(p.outstanding) < window
            and (most is None or p.jobs + len(p.outstanding) < most)
        ]
        return min(ready, key=lambda p: len(p.outstanding)) if ready else None

    def _withdraw(self, proc: TaskProcess, job: Assignment) -> None:
        """Kill the process holding ``job`` with all it started, so the job never runs
        (a job running there for another reason starts over elsewhere)."""
        if proc.holds(job):
            proc.kill()
            self._replace(proc)

    def _after_job(self, proc: TaskProcess) -> None:
        cfg = self.config
        if not proc.retiring:
            worn = cfg.max_jobs is not None and proc.jobs >= cfg.max_jobs
            fat = cfg.max_memory_mb is not None and proc.rss_mb() > cfg.max_memory_mb
            if worn or fat:
                why = "jobs" if worn else "memory"
                log.info("recycling task process %d (%s)", proc.pid, why)
                proc.retiring = True
                self._replace(proc)
        if proc.retiring and not proc.outstanding:
            proc.close()
        self._dispatch()

    def _adopt(self, proc: TaskProcess) -> None:
        self._procs.append(proc)
        self._dispatch()

    def _replace(self, proc: TaskProcess) -> None:
        if proc in self._procs and not self._closing:
            if not proc.retiring:
                self._procs.remove(proc)
            task = asyncio.ensure_future(self._spawn(delay=min(0.05 * self._restarts, 5.0)))
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
        self._dispatch()

    async def _spawn(self, delay: float = 0.0) -> None:
        if delay:
            await asyncio.sleep(delay)
        self._procs = [p for p in self._procs if not (p.retiring and not p.outstanding)]
        while not self._closing:
            try:
                proc = await TaskProcess.start(self.config, self._output)
                if self._closing:  # closed while it started
                    proc.kill()
                    return
                self._adopt(proc)
                return
            except ConfigError as exc:
                self._restarts += 1
                log.error("task process failed to start: %s", exc.message)
                await asyncio.sleep(min(0.1 * 2**self._restarts, 10.0))
