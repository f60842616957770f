"""Helpers for test_faults.py: a task module, workers that run it, and their task processes.

``harness.Procs`` starts workers without task modules and with a clean environment; the
fault tests need workers that import a Python task module (from their cwd, tmp_path) and
that get a few environment variables of their own (the ledger's path, how long to
linger). Task processes are children of the worker in a session of their own, and their
command line is ``python -m runq.worker.executors.child``: ``Procs.teardown`` does not kill
them, so ``Strays`` does (by psutil handle, which is safe against reused pids).
"""

from __future__ import annotations

import contextlib
import subprocess
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from runq.client import Client

from .harness import RUNQ, Proc, Procs, Server, clean_env, wait_for_workers, wait_until

MODULE = "fault_tasks"

TASKS = textwrap.dedent(
    '''
    """Tasks for the fault tests (written into the test's tmp_path)."""

    import os
    import time

    import runq


    @runq.task
    def ledger(n: int) -> int:
        """Append "job_id attempt pid time" to $LEDGER (one write, O_APPEND)."""
        line = "%s %s %d %.6f\\n" % (
            os.environ["RUNQ_JOB_ID"],
            os.environ["RUNQ_ATTEMPT"],
            os.getpid(),
            time.time(),
        )
        fd = os.open(os.environ["LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        return n


    def _mark(mark, what, text):
        """Write ``mark.<attempt>.<what>`` (atomically) for the test to see."""
        if mark:
            path = "%s.%s.%s" % (mark, os.environ["RUNQ_ATTEMPT"], what)
            with open(path + ".tmp", "w") as out:
                out.write(text)
            os.replace(path + ".tmp", path)


    @runq.task
    def nap(seconds: float, mark: str = "") -> int:
        """Sleep. With ``mark``: write this process's pid to mark.<attempt>.pid first and
        touch mark.<attempt>.done after. Returns the worker's pid."""
        _mark(mark, "pid", str(os.getpid()))
        time.sleep(seconds)
        _mark(mark, "done", "")
        return os.getppid()


    @runq.task
    def linger(mark: str = "") -> int:
        """``nap`` for $LINGER_SECONDS (set per worker)."""
        return nap(float(os.environ["LINGER_SECONDS"]), mark)


    @runq.task
    def broken() -> None:
        raise RuntimeError("broken on purpose")
    '''
)


def write_tasks(directory: Path) -> str:
    """Write the task module into ``directory`` (the workers' cwd); its module name."""
    (directory / f"{MODULE}.py").write_text(TASKS)
    return MODULE


def task_processes(directory: Path) -> list[psutil.Process]:
    """Task processes (of any worker, alive or dead) started in ``directory``."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if "runq.worker.executors.child" in proc.cmdline() and proc.cwd() == str(directory):
                found.append(proc)
    return found


@dataclass
class Strays:
    """Task processes of our workers, killed in teardown (after which Procs kills the rest)."""

    directory: Path
    workers: list[Proc] = field(default_factory=list)
    known: list[psutil.Process] = field(default_factory=list)

    def watch(self, worker: Proc) -> None:
        self.workers.append(worker)

    def remember_children(self, worker: Proc) -> list[psutil.Process]:
        """Note the worker's task processes now (before the worker is killed)."""
        with contextlib.suppress(psutil.Error):
            found = psutil.Process(worker.pid).children(recursive=True)
            self.known += found
            return found
        return []

    def remember_pid(self, pid: int) -> None:
        with contextlib.suppress(psutil.Error):
            self.known.append(psutil.Process(pid))

    def kill_all(self) -> None:
        for worker in self.workers:
            if worker.alive:
                self.remember_children(worker)
        self.known += task_processes(self.directory)
        for proc in self.known:
            with contextlib.suppress(psutil.Error):
                proc.kill()  # psutil checks the creation time: never a reused pid


def start_worker(
    procs: Procs,
    strays: Strays,
    server: Server,
    worker_id: str,
    *,
    modules: Sequence[str] = (MODULE,),
    concurrency: int = 1,
    prefetch: int | None = None,
    grace: float | None = None,
    env: dict[str, str] | None = None,
    wait: bool = True,
) -> Proc:
    """``runq worker MODULE... --id ID`` in tmp_path, owned by ``procs``. ``prefetch``
    None keeps the worker's default (4 x concurrency with modules)."""
    args = [*RUNQ, "worker", *modules, "--server", server.worker_address]
    args += ["--concurrency", str(concurrency), "--id", worker_id, "--log-level", "info"]
    if prefetch is not None:
        args += ["--prefetch", str(prefetch)]
    if grace is not None:
        args += ["--grace", str(grace)]
    log = procs.tmp_path / f"worker-{worker_id}-{len(procs.started)}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            args,
            cwd=procs.tmp_path,
            env=clean_env() | (env or {}),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    proc = Proc(popen, log, f"worker-{worker_id}")
    procs.started.append(proc)
    strays.watch(proc)
    if wait:
        wait_for_workers(server, {worker_id}, proc)
    return proc


def running_on(client: Client, job: int, timeout: float = 20.0) -> Any:
    """The job once it runs (and says on which worker)."""

    def check() -> Any:
        got = client.get(job)
        return got if got.state == "running" and got.worker else None

    return wait_until(check, timeout, interval=0.01, what=f"job {job} to run")


def attempt_started(client: Client, job: int, n: int, timeout: float = 20.0) -> Any:
    """The job once its attempt ``n`` (1-based) has started."""

    def check() -> Any:
        got = client.get(job)
        return got if len(got.history) >= n else None

    return wait_until(check, timeout, interval=0.01, what=f"attempt {n} of job {job}")


def marked(mark: Path, attempt: int, what: str, timeout: float = 20.0) -> str:
    """The text of ``mark.<attempt>.<what>`` once the task has written it (atomically)."""
    path = mark.with_name(f"{mark.name}.{attempt}.{what}")
    wait_until(path.exists, timeout, interval=0.01, what=f"{path.name} to be written")
    return path.read_text()


def gone(pid: int) -> bool:
    """The process no longer exists (a zombie still does)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_DEAD
    except psutil.NoSuchProcess:
        return True
