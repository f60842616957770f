"""The worker agent: holds the broker connection, runs what arrives, reports back.

Outcomes are batched: every outcome produced in one turn of the event loop goes out in
one REPORT. Reports stay in ``unacked`` until the broker confirms their commit, and are
sent again after a reconnect, so no result is lost when the broker restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil

from runq.errors import ConnectionLost, ProtocolError, RunqError, Timeout, UnknownTask
from runq.model import Assignment, Outcome
from runq.protocol import codec
from runq.protocol import limits as L
from runq.protocol import messages as m
from runq.tls import TlsConfig, connect_args
from runq.worker.executors.base import Executor, error_info
from runq.worker.executors.builtin import BuiltinExecutor
from runq.worker.files import FileStage
from runq.worker.output import FLUSH_EVERY, Output, WritesOutput
from runq.worker.requests import Requests

log = logging.getLogger("runq.worker")
STATUS_EVERY = 2.0  # seconds between status messages


def new_worker_id() -> str:
    return f"w-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    host: str = "127.0.0.1"
    port: int = 1205
    worker_id: str = field(default_factory=new_worker_id)
    queues: tuple[str, ...] = ("default",)
    concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)
    prefetch: int = 0  # jobs held beyond ``concurrency``, waiting for a free slot
    pool: str | None = None  # the pool it belongs to (a label for `runq workers`)
    token: str | None = None
    reconnect_min: float = 0.05
    reconnect_max: float = 5.0
    # brokers to fail over between, in order (empty: just host:port)
    servers: tuple[tuple[str, int], ...] = ()
    tls: TlsConfig | None = None  # speak TLS to the broker (docs/tls.md)
    # where jobs get their working directories (None: a temporary one, removed on exit)
    workroot: str | None = None

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        return self.servers or ((self.host, self.port),)


@dataclass(eq=False)
class Running:
    fence: int
    task: asyncio.Task[Any] | None = None


class Agent:
    def __init__(self, config: WorkerConfig, executors: Sequence[Executor] = ()) -> None:
        self.config = config
        self.id = config.worker_id
        self._tls = None if config.tls is None else config.tls.context()  # built once
        self.executors: list[Executor] = [*executors, BuiltinExecutor()]
        self.output = Output()  # lines and progress of running jobs, not sent yet
        for executor in self.executors:
            if isinstance(executor, WritesOutput):
                executor.attach_output(self.output)
        self.running: dict[int, Running] = {}
        self.unacked: dict[int, m.Report | m.Release] = {}  # by seq, until acknowledged
        self.done = 0
        self.connected = asyncio.Event()
        self.requests = Requests(self._send, self.connected)  # file requests awaiting replies
        self.files = FileStage(self.requests, config.workroot)
        self._outbox: list[Outcome] = []
        self._flush_scheduled = False
        self._seq = 0
        self._writer: asyncio.StreamWriter | None = None
        self._lease = 30.0
        self._stopping = False
        self._draining = False
        self._server = 0  # index of the broker in use in config.addresses
        self._greetings = 0  # handshakes completed (a reconnect resets the back-off)

    # -- connection life -----------------------------------------------------------------

    async def run(self) -> None:
        """Open the executors, then serve until ``stop()``; reconnect with back-off
        whenever the broker goes away."""
        for executor in self.executors:
            await executor.open()
        self.files.open()
        cfg = self.config
        where = ",".join(f"{h}:{p}" for h, p in cfg.addresses)
        log.info("worker %s: serving %s on %s", self.id, ",".join(cfg.queues), where)
        try:
            await self._serve()
        finally:
            for executor in self.executors:
                await executor.close()
            await self.files.close()

    async def _serve(self) -> None:
        delay = self.config.reconnect_min
        while not self._stopping:
            greeted = self._greetings
            why = ""
            try:
                await self._session()
            except (OSError, ConnectionLost, asyncio.IncompleteReadError) as exc:
                why = str(exc)
            except RunqError as exc:
                log.error("worker %s: broker refused us: %s", self.id, exc.message)
            if self._stopping:
                break
            # the next broker of the list (the running jobs are reported there, fenced)
            self._server = (self._server + 1) % len(self.config.addresses)
            if self._greetings != greeted:  # it was connected: a new outage starts over
                delay = self.config.reconnect_min
            if why:
                log.info(
                    "worker %s: broker unreachable (%s); retrying in %.2fs", self.id, why, delay
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.config.reconnect_max)

    def stop(self) -> None:
        """Stop at once: close the connection (the broker re-queues what we ran)."""
        self._stopping = True
        if self._writer is not None:
            self._writer.close()

    async def shutdown(self, grace: float, ack_timeout: float = 5.0) -> None:
        """Stop gracefully: take nothing new, let running jobs finish for up to ``grace``
        seconds, hand the rest back (their attempt does not count), then stop."""
        loop = asyncio.get_running_loop()
        if not self._draining:
            self._draining = True
            self._send(m.Drain())
            log.info("worker %s: draining, %d job(s) running", self.id, len(self.running))
        deadline = loop.time() + grace
        while self.running and loop.time() < deadline:
            await asyncio.sleep(0.02)
        self._release(list(self.running))
        self._flush()
        deadline = loop.time() + ack_timeout
        while self.unacked and self._writer is not None and loop.time() < deadline:
            await asyncio.sleep(0.01)
        self.stop()

    def stop_now(self) -> None:
        """Hand back whatever runs and stop without waiting (a second signal)."""
        self._draining = True
        self._release(list(self.running))
        self._flush()
        self.stop()

    def _release(self, ids: list[int]) -> None:
        """Give jobs back to the broker unfinished."""
        running = []
        for job_id in ids:
            entry = self.running.pop(job_id, None)
            if entry is None:
                continue
            running.append((job_id, entry.fence))
            if entry.task is not None:
                entry.task.cancel()
        if running:
            self._seq += 1
            self.unacked[self._seq] = msg = m.Release(self._seq, running)
            self._send(msg)
            log.info("worker %s: handed back %d unfinished job(s)", self.id, len(running))

    async def _session(self) -> None:
        host, port = self.config.addresses[self._server]
        reader, writer = await asyncio.open_connection(host, port, **connect_args(self._tls, host))
        with contextlib.suppress(OSError):
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        decoder = codec.worker_side()
        try:
            writer.write(codec.encode(self._hello()))
            welcome, behind = await self._welcome(reader, decoder)
            self._lease = welcome.lease
            self._greetings += 1
            self._writer = writer
            self.connected.set()
            log.info("worker %s connected to %s:%d", self.id, host, port)
            self._resend()
            self._declare_schedules()
            for msg in behind:
                self._handle(msg)
            beat = asyncio.ensure_future(self._heartbeats())
            flusher = asyncio.ensure_future(self._send_output_often())
            try:
                await self._read(reader, decoder)
            finally:
                beat.cancel()
                flusher.cancel()
        finally:
            self._writer = None
            self.connected.clear()
            self.requests.lost()
            writer.close()

    def _hello(self) -> m.Hello:
        reported = {
            o.id for msg in self.unacked.values() if isinstance(msg, m.Report) for o in msg.outcomes
        }
        reported.update(o.id for o in self._outbox)
        running = [(i, r.fence) for i, r in self.running.items() if i not in reported]
        return m.Hello(
            role="worker",
            version=L.PROTOCOL_VERSION,
            token=self.config.token,
            worker_id=self.id,
            queues=list(self.config.queues),
            concurrency=self.config.concurrency + self.config.prefetch,
            running=running,
            info={
                "pid": os.getpid(),
                "host": socket.gethostname(),
                **({"pool": self.config.pool} if self.config.pool else {}),
                **self._tasks_info(),
            },
        )

    def _tasks_info(self) -> dict[str, str]:
        """``{"tasks": "a,b,c"}`` when every executor can list its tasks (so `runq
        explain` can tell that no worker knows a task), else nothing."""
        found: list[str] = []
        for executor in self.executors:
            names = executor.tasks()
            if names is None:
                return {}
            found += names
        return {"tasks": ",".join(sorted(set(found)))}

    async def _welcome(
        self, reader: asyncio.StreamReader, decoder: Any
    ) -> tuple[m.Welcome, list[Any]]:
        """The broker's welcome, and whatever came in the same read behind it."""
        while True:
            data = await reader.read(65536)
            if not data:
                raise ConnectionLost("the broker closed the connection during the handshake")
            messages = decoder.feed(data)
            for n, msg in enumerate(messages):
                if isinstance(msg, m.Welcome):
                    return msg, messages[n + 1 :]
                if isinstance(msg, m.Error):
                    raise ProtocolError(f"{msg.code}: {msg.message}")
                raise ProtocolError(f"unexpected {type(msg).__name__} before welcome")

    async def _read(self, reader: asyncio.StreamReader, decoder: Any) -> None:
        while True:
            data = await reader.read(262144)
            if not data:
                raise ConnectionLost("the broker closed the connection")
            for msg in decoder.feed(data):
                self._handle(msg)

    def _handle(self, msg: Any) -> None:
        if self.requests.answer(msg):
            return
        if isinstance(msg, m.Assign):
            for job in msg.jobs:
                self._start(job)
        elif isinstance(msg, m.Reported):
            self.unacked.pop(msg.seq, None)
        elif isinstance(msg, m.CancelJobs):
            self._cancel(msg.ids)
        elif isinstance(msg, m.Error):
            log.error("worker %s: broker error %s: %s", self.id, msg.code, msg.message)

    async def _heartbeats(self) -> None:
        """Heartbeats every lease/5 while jobs run; a status every STATUS_EVERY s."""
        loop = asyncio.get_running_loop()
        next_status = loop.time()
        while True:
            if loop.time() >= next_status:
                self._send(self._status())
                next_status = loop.time() + STATUS_EVERY
            await asyncio.sleep(min(self._lease / 5, STATUS_EVERY))
            running = [(i, r.fence) for i, r in self.running.items()]
            if running:
                self._send(m.Heartbeat(running))

    async def _send_output_often(self) -> None:
        """What running jobs wrote, every FLUSH_EVERY seconds (a frame for many lines)."""
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            self._send_output()

    def _send_output(self) -> None:
        if self.output and self._writer is not None:
            for msg in self.output.take():
                self._send(msg)

    def _status(self) -> m.Status:
        procs = [p for executor in self.executors for p in executor.describe()]
        rss = psutil.Process().memory_info().rss / 2**20
        return m.Status(round(rss, 1), procs)

    # -- running jobs --------------------------------------------------------------------

    def _executor(self, task: str) -> Executor | None:
        for executor in self.executors:
            if executor.knows(task):
                return executor
        return None

    def _start(self, job: Assignment) -> None:
        if job.id in self.running:
            return  # already running it (assigned again after a reconnect)
        if self._draining:  # assigned before the broker saw our drain: give it back
            self.running[job.id] = Running(job.fence)
            self._release([job.id])
            return
        executor = self._executor(job.task)
        if executor is None:
            self._finish(job, exc=UnknownTask(f"no task named {job.task!r} on worker {self.id}"))
            return
        try:
            value = self.files.start(job, executor)
        except Exception as exc:
            self._finish(job, exc=exc)
            return
        if not inspect.isawaitable(value):
            self._finish(job, result=value)
            return
        entry = Running(job.fence)
        self.running[job.id] = entry
        timeout = job.timeout or executor.default_timeout(job.task)
        entry.task = asyncio.ensure_future(self._await(job, value, timeout))

    async def _await(self, job: Assignment, value: Any, timeout: float | None) -> None:
        try:
            if timeout is None:
                result = await value
            else:
                async with asyncio.timeout(timeout):
                    result = await value
        except asyncio.CancelledError:
            self.running.pop(job.id, None)
            raise
        except TimeoutError:
            self._finish(job, exc=_timeout(timeout))
        except Exception as exc:
            self._finish(job, exc=exc)
        else:
            self._finish(job, result=result)

    def _cancel(self, ids: list[int]) -> None:
        for job_id in ids:
            entry = self.running.pop(job_id, None)
            if entry is not None and entry.task is not None:
                entry.task.cancel()
                log.info("worker %s: stopped job %d at the broker's request", self.id, job_id)

    def _finish(
        self, job: Assignment, result: Any = None, exc: BaseException | None = None
    ) -> None:
        self.running.pop(job.id, None)
        if exc is None:
            outcome = Outcome(job.id, job.fence, True, result)
        else:
            outcome = Outcome(job.id, job.fence, False, None, error_info(exc))
        self._outbox.append(outcome)
        self.done += 1
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    # -- reporting -----------------------------------------------------------------------

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._outbox or self._writer is None:
            return
        outcomes, self._outbox = self._outbox, []
        self._send_output()  # a job's lines are stored before its end
        self._seq += 1
        self.unacked[self._seq] = msg = m.Report(self._seq, outcomes)
        self._send(msg)

    def _declare_schedules(self) -> None:
        """The schedules of our tasks with a cron, on every connect: the broker adds or
        updates them by name, so every worker that has the task may send them."""
        found = [s for executor in self.executors for s in executor.schedules()]
        for start in range(0, len(found), m.MAX_SCHEDULES):
            self._send(m.TaskSchedules(found[start : start + m.MAX_SCHEDULES]))

    def _resend(self) -> None:
        for _, msg in sorted(self.unacked.items()):
            self._send(msg)
        if self._draining:
            self._send(m.Drain())
        self._flush()

    def _send(self, msg: Any) -> bool:
        if self._writer is None or self._writer.is_closing():
            return False
        self._writer.write(codec.encode(msg))
        return True


def _timeout(seconds: float | None) -> RunqError:
    return Timeout(f"the job ran past its timeout of {seconds or 0:g} s")
