"""Harness for system tests: real `runq` processes on 127.0.0.1, SQLite files in tmp_path.

Every process a test starts is registered with the ``procs`` fixture, which kills it
(by pid) and any of its descendants in teardown. Process output goes to a log file in
``tmp_path`` so no pipe can fill up; the logs are checked for tracebacks at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil

from runq.client import Client

RUNQ = [sys.executable, "-m", "runq"]
PORTS = re.compile(r"clients on [^:]+:(\d+), workers on [^:]+:(\d+)")
HTTP_PORT = re.compile(r"HTTP on [^:]+:(\d+)")
START_TIMEOUT = 20.0  # seconds a process may take to come up on a loaded 2-core machine
CLI_TIMEOUT = 60.0

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")
        time.sleep(interval)


def job_id(out: str) -> int:
    """The id in `runq submit`'s answer."""
    found = re.fullmatch(r"Job ID: (\d+)\n", out)
    assert found, f"not a submit answer: {out!r}"
    return int(found.group(1))


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNQ_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


# -- the CLI ------------------------------------------------------------------------------


@dataclass
class Ran:
    args: list[str]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def __str__(self) -> str:
        return f"runq {' '.join(self.args)} -> {self.code}\nstdout: {self.out}\nstderr: {self.err}"


class Cli:
    """Runs one `runq` command to completion; refuses any output with a traceback."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def __call__(
        self,
        *args: str | int,
        server: str | None = None,
        input: str | None = None,
        ok: bool | None = True,
        timeout: float = CLI_TIMEOUT,
        env: dict[str, str] | None = None,
    ) -> Ran:
        """``ok``: True asserts exit 0, False asserts a non-zero exit, None checks nothing."""
        argv = [str(a) for a in args]
        if server is not None:
            argv += ["--server", server]
        proc = subprocess.run(
            [*RUNQ, *argv],
            cwd=self.cwd,
            env=clean_env() | (env or {}),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        ran = Ran(argv, proc.returncode, proc.stdout, proc.stderr)
        assert "Traceback" not in ran.out + ran.err, str(ran)
        if ok is True:
            assert ran.code == 0, str(ran)
        elif ok is False:
            assert ran.code != 0, str(ran)
        return ran


# -- long-running processes ---------------------------------------------------------------


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    log: Path
    name: str

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL this process (not its children) and reap it."""
        if self.alive:
            self.popen.kill()
        self.popen.wait(10)

    def wait_exit(self, timeout: float = 20.0) -> int:
        return self.popen.wait(timeout)


@dataclass
class Server(Proc):
    port: int = 0
    worker_port: int = 0
    store: Path = Path()
    token: str | None = None  # RUNQ_TOKEN of the processes the test started

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def worker_address(self) -> str:
        return f"127.0.0.1:{self.worker_port}"

    def client(self) -> Client:
        return Client(self.address, token=self.token)

    @property
    def http_url(self) -> str:
        found = HTTP_PORT.search(self.text())
        assert found, f"{self.name} serves no HTTP:\n{self.text()}"
        return f"http://127.0.0.1:{found.group(1)}"


@dataclass
class Procs:
    """Starts runq processes and owns them until teardown."""

    tmp_path: Path
    started: list[Proc] = field(default_factory=list)
    extra_pids: set[int] = field(default_factory=set)
    env: dict[str, str] = field(default_factory=dict)  # for every process started

    def spawn(self, name: str, args: Sequence[str | int]) -> Proc:
        if args and args[0] in ("server", "up") and "--http-port" not in args:
            args = [*args, "--http-port", 0]  # never the shared default port
        log = self.tmp_path / f"{name}-{len(self.started)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [*RUNQ, *(str(a) for a in args)],
                cwd=self.tmp_path,
                env=clean_env() | self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        proc = Proc(popen, log, name)
        self.started.append(proc)
        return proc

    def adopt(self, pid: int) -> None:
        """Also kill ``pid`` in teardown (a child of a process a test started)."""
        self.extra_pids.add(pid)

    def _ports(self, proc: Proc) -> tuple[int, int]:
        def announced() -> re.Match[str] | None:
            if not proc.alive:
                raise AssertionError(f"{proc.name} exited early:\n{proc.text()}")
            return PORTS.search(proc.text())

        found = wait_until(announced, START_TIMEOUT, what=f"{proc.name} to listen")
        return int(found.group(1)), int(found.group(2))

    def server(
        self,
        store: Path | None = None,
        port: int = 0,
        worker_port: int = 0,
        lease: float | None = None,
        extra: Sequence[str] = (),
        name: str = "server",
    ) -> Server:
        store = store or self.tmp_path / "runq.db"
        args: list[str | int] = ["server", "--store", f"sqlite:///{store}"]
        args += ["--port", port, "--worker-port", worker_port, "--log-level", "info"]
        if lease is not None:
            args += ["--lease-timeout", lease]
        proc = self.spawn(name, [*args, *extra])
        client_port, wport = self._ports(proc)
        server = Server(proc.popen, proc.log, proc.name, client_port, wport, store)
        server.token = self.env.get("RUNQ_TOKEN")
        self.started[-1] = server
        return server

    def up(self, workers: int, store: Path | None = None, extra: Sequence[str] = ()) -> Server:
        store = store or self.tmp_path / "runq.db"
        args: list[str | int] = ["up", "--store", f"sqlite:///{store}", "--port", 0]
        args += ["--worker-port", 0, "--workers", workers, "--log-level", "info", *extra]
        proc = self.spawn("up", args)
        client_port, wport = self._ports(proc)
        server = Server(proc.popen, proc.log, proc.name, client_port, wport, store)
        server.token = self.env.get("RUNQ_TOKEN")
        self.started[-1] = server
        return server

    def worker(
        self,
        server: Server,
        worker_id: str,
        concurrency: int = 2,
        queues: str | None = None,
        wait: bool = True,
    ) -> Proc:
        args: list[str | int] = ["worker", "--server", server.worker_address]
        args += ["--concurrency", concurrency, "--id", worker_id, "--log-level", "info"]
        if queues is not None:
            args += ["--queues", queues]
        proc = self.spawn(f"worker-{worker_id}", args)
        if wait:
            wait_for_workers(server, {worker_id}, proc)
        return proc

    def teardown(self) -> None:
        for proc in reversed(self.started):
            if proc.alive:
                with contextlib.suppress(psutil.Error):
                    for child in psutil.Process(proc.pid).children(recursive=True):
                        self.extra_pids.add(child.pid)
            proc.kill()
        for pid in self.extra_pids:
            with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
                if "runq" in psutil.Process(pid).cmdline():  # still ours, not a reused pid
                    os.kill(pid, signal.SIGKILL)

    def tracebacks(self) -> list[str]:
        return [p.name for p in self.started if p.log.exists() and "Traceback" in p.text()]


def worker_ids(server: Server) -> set[str]:
    with server.client() as client:
        return {w.id for w in client.workers()}


def wait_for_workers(server: Server, ids: set[str], proc: Proc | None = None) -> None:
    def connected() -> bool:
        if proc is not None and not proc.alive:
            raise AssertionError(f"{proc.name} exited early:\n{proc.text()}")
        return ids <= worker_ids(server)

    wait_until(connected, START_TIMEOUT, interval=0.1, what=f"workers {sorted(ids)} to connect")


def counts(server: Server) -> dict[str, int]:
    with server.client() as client:
        jobs: dict[str, int] = client.stats()["jobs"]
        return jobs


def all_jobs(client: Client) -> list[Any]:
    """Every job in the store, newest first, paging through LIST."""
    found: list[Any] = []
    before = None
    while True:
        page = client.list(limit=1000, before=before)
        found += page
        if len(page) < 1000:
            return found
        before = page[-1].id
