"""Python tasks and command jobs on a real `runq worker` (see docs/tasks.md).

Each test writes its task module into ``tmp_path`` and starts `runq worker jobs` there
(the worker runs with ``cwd=tmp_path``, so its task processes import ``jobs`` from it).
Every failure must end in its documented state and error code while the other jobs on
the same worker keep succeeding.
"""

from __future__ import annotations

import functools
import importlib
import os
import pwd
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from runq.client import Client
from runq.model import Job

from .harness import Cli, Proc, Procs, Server, job_id, wait_for_workers, wait_until

pytestmark = pytest.mark.system

TASKS = '''
"""Task module for tests/system/test_execution.py."""

import asyncio
import ctypes
import os
import subprocess
import time
from pathlib import Path

import runq

_hoard = []


def _write(path, text):
    tmp = path + ".tmp"
    Path(tmp).write_text(text)
    os.replace(tmp, path)  # the test never reads half a file


@runq.task
def add(a: int, b: int = 0) -> int:
    return a + b


@runq.task
def pid() -> int:
    return os.getpid()


@runq.task
async def double(x: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * x


@runq.task
def segfault() -> None:
    ctypes.string_at(0)


@runq.task
def exit3() -> None:
    os._exit(3)


@runq.task
def leak() -> int:
    _hoard.append(b"x" * (50 * 2**20))  # written, so resident
    return os.getpid()


@runq.task
def spin(path: str) -> None:
    _write(path, str(os.getpid()))
    while True:
        pass


@runq.task(timeout=1)
def spin_default(path: str) -> None:
    _write(path, str(os.getpid()))
    while True:
        pass


@runq.task
def forker(path: str) -> None:
    kids = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    _write(path, " ".join(str(k.pid) for k in kids))
    time.sleep(60)


@runq.task
def sleeper(path: str) -> None:
    _write(path, str(os.getpid()))
    time.sleep(60)


@runq.task
def permanent() -> None:
    raise runq.Permanent("this cannot work")


@runq.task
def unencodable() -> object:
    return object()


@runq.task(queue="special", retries=4, timeout=30)
def defaults() -> str:
    return "ok"
'''

WAIT = 30  # seconds a job may take to finish on a loaded 2-core machine


# -- helpers ------------------------------------------------------------------------------


def write_tasks(tmp_path: Path) -> None:
    (tmp_path / "jobs.py").write_text(TASKS)


def start_worker(
    procs: Procs,
    server: Server,
    worker_id: str,
    *extra: str | int,
    modules: tuple[str, ...] = ("jobs",),
    concurrency: int = 2,
) -> Proc:
    """`runq worker MODULES...` in tmp_path, connected before this returns."""
    args: list[str | int] = ["worker", *modules, "--server", server.worker_address]
    args += ["--id", worker_id, "--concurrency", concurrency, "--log-level", "info", *extra]
    proc = procs.spawn(f"worker-{worker_id}", args)
    wait_for_workers(server, {worker_id}, proc)
    return proc


def gone(pid: int) -> bool:
    """The process has exited. A zombie counts: it has exited and only waits for its
    parent, and PID 1 of some containers never reaps the orphans it inherits."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_for_pool(server: Server, worker_id: str, size: int, dead: list[int]) -> list[int]:
    """Wait until the worker reports ``size`` idle task processes, none of them one of
    ``dead``: the pool is whole again. Workers report every 2 s."""

    def pool() -> list[int]:
        with server.client() as client:
            [info] = [w for w in client.workers() if w.id == worker_id]
        pids = [p.pid for p in info.procs if p.state == "idle"]
        fresh = len(pids) == len(info.procs) == size and not set(pids) & set(dead)
        return pids if fresh else []

    return wait_until(pool, 10, interval=0.2, what=f"{size} fresh task processes")


def read_pids(path: Path) -> list[int]:
    def written() -> str:
        return path.read_text() if path.exists() else ""

    found = wait_until(written, 20, what=f"{path.name}")
    return [int(p) for p in found.split()]


def wait_job(client: Client, jid: int) -> Job:
    client.wait(jid, timeout=WAIT)
    return client.get(jid)  # a single-job read: with its history of attempts


def assert_failed(job: Job, code: str, attempts: int, text: str = "") -> None:
    assert job.state == "failed", job
    assert job.error is not None and job.error.code == code, job
    assert job.attempts == attempts, job
    assert text in job.error.message, job


def assert_all_succeed(client: Client, ids: list[int], results: list[Any]) -> None:
    """Each job succeeded on its first attempt: none was lost with a crashed neighbour."""
    for jid, expected in zip(ids, results, strict=True):
        job = wait_job(client, jid)
        assert job.state == "succeeded", job
        assert job.result == expected, job
        assert job.attempts == 1, job


# -- task processes that die, leak or hang ------------------------------------------------


def test_segfault_is_worker_lost_and_retried_and_the_worker_keeps_serving(
    procs: Procs, server: Server, tmp_path: Path
) -> None:
    write_tasks(tmp_path)
    worker = start_worker(procs, server, "w-segv")
    with server.client() as client:
        crash = client.submit("jobs.segfault", retries=1, backoff=0.05)
        others = [client.submit("jobs.add", n, 1) for n in range(6)]
        job = wait_job(client, crash)
        assert_failed(job, "worker_lost", 2, "the task process died of SIGSEGV")
        assert [a.error.code for a in job.history if a.error] == ["worker_lost"] * 2
        assert_all_succeed(client, others, [n + 1 for n in range(6)])
        assert client.result(client.submit("jobs.add", 2, 3), timeout=WAIT) == 5
    assert worker.alive
    wait_for_pool(server, "w-segv", 2, dead=[])


def test_os_exit_is_worker_lost_with_its_exit_code(
    procs: Procs, server: Server, tmp_path: Path
) -> None:
    write_tasks(tmp_path)
    worker = start_worker(procs, server, "w-exit")
    with server.client() as client:
        crash = client.submit("jobs.exit3", retries=0)
        others = [client.submit("jobs.add", n, 10) for n in range(4)]
        assert_failed(wait_job(client, crash), "worker_lost", 1, "exited with code 3")
        assert_all_succeed(client, others, [n + 10 for n in range(4)])
    assert worker.alive
    wait_for_pool(server, "w-exit", 2, dead=[])


def test_max_memory_per_child_replaces_a_leaking_process(
    procs: Procs, server: Server, tmp_path: Path
) -> None:
    write_tasks(tmp_path)
    start_worker(procs, server, "w-leak", "--max-memory-per-child", 100, concurrency=1)
    pids = []
    with server.client() as client:
        for _ in range(6):  # one at a time: each job sees what the last one left
            pids.append(client.result(client.submit("jobs.leak"), timeout=WAIT))
        last = client.result(client.submit("jobs.pid"), timeout=WAIT)
    # 50 MB more per job in a 100 MiB budget: no process runs more than two of them.
    assert len(set(pids)) >= 3, pids
    assert all(pids.count(p) <= 2 for p in pids), pids
    for old in set(pids) - {last}:
        wait_until(functools.partial(gone, old), 10, what=f"leaky process {old} to exit")


def test_max_jobs_per_child_recycles_every_n_jobs(
    procs: Procs, server: Server, tmp_path: Path
) -> None:
    write_tasks(tmp_path)
    start_worker(procs, server, "w-recycle", "--max-jobs-per-child", 3, concurrency=1)
    with server.client() as client:
        ids = client.submit_many([{"task": "jobs.pid"} for _ in range(10)])
        pids = [client.result(jid, timeout=WAIT) for jid in ids]
    assert pids[0:3] == [pids[0]] * 3, pids
    assert pids[3:6] == [pids[3]] * 3, pids
    assert pids[6:9] == [pids[6]] * 3, pids
    assert len({pids[0], pids[3], pids[6], pids[9]}) == 4, pids


def test_timeout_kills_the_task_process(procs: Procs, server: Server, tmp_path: Path) -> None:
    write_tasks(tmp_path)
    start_worker(procs, server, "w-timeout", concurrency=3)
    explicit, default = tmp_path / "spin.pid", tmp_path / "spin-default.pid"
    with server.client() as client:
        spin = client.submit("jobs.spin", str(explicit), timeout=1, retries=0)
        # Submitted by name without a timeout: the worker applies the task's own (1 s).
        spin_default = client.submit("jobs.spin_default", str(default), retries=0)
        others = [client.submit("jobs.add", n, 100) for n in range(4)]
        pids = read_pids(explicit) + read_pids(default)
        for jid in (spin, spin_default):
            job = wait_job(client, jid)
            assert_failed(job, "timeout", 1, "timeout of 1 s")
            assert job.timeout == (1 if jid == spin else None), job
        assert_all_succeed(client, others, [n + 100 for n in range(4)])
    for pid in pids:
        wait_until(functools.partial(gone, pid), 2, what=f"timed-out task process {pid} to die")
    wait_for_pool(server, "w-timeout", 3, dead=pids)


def test_timeout_kills_what_the_task_forked(procs: Procs, server: Server, tmp_path: Path) -> None:
    write_tasks(tmp_path)
    start_worker(procs, server, "w-forker")
    path = tmp_path / "kids.pid"
    with server.client() as client:
        jid = client.submit("jobs.forker", str(path), timeout=2, retries=0)
        kids = read_pids(path)
        assert len(kids) == 2
        for kid in kids:
            assert psutil.Process(kid).cmdline() == ["sleep", "60"]
        assert_failed(wait_job(client, jid), "timeout", 1)
        assert client.result(client.submit("jobs.add", 1, 1), timeout=WAIT) == 2
    for kid in kids:
        wait_until(functools.partial(gone, kid), 2, what=f"forked sleep {kid} to die")
    wait_for_pool(server, "w-forker", 2, dead=[])


def test_task_process_killed_by_a_signal(procs: Procs, server: Server, tmp_path: Path) -> None:
    write_tasks(tmp_path)
    worker = start_worker(procs, server, "w-kill9", concurrency=1)
    path = tmp_path / "sleeper.pid"
    with server.client() as client:
        jid = client.submit("jobs.sleeper", str(path), retries=0)
        behind = client.submit("jobs.add", 20, 22)  # waits for the only process
        [victim] = read_pids(path)
        os.kill(victim, signal.SIGKILL)
        assert_failed(wait_job(client, jid), "worker_lost", 1, "died of SIGKILL")
        assert_all_succeed(client, [behind], [42])  # moved on without losing an attempt
        fresh = client.result(client.submit("jobs.pid"), timeout=WAIT)
    assert fresh != victim
    assert psutil.Process(fresh).ppid() == worker.pid


def test_task_process_exits_quietly_when_the_worker_dies(
    procs: Procs, server: Server, tmp_path: Path
) -> None:
    write_tasks(tmp_path)
    (tmp_path / "slow.py").write_text(
        "import time\nimport runq\n\n\n@runq.task\ndef nap() -> str:\n"
        "    time.sleep(1)\n    return 'done'\n"
    )
    worker = start_worker(procs, server, "w-dies", modules=("slow",), concurrency=1)
    [child] = psutil.Process(worker.pid).children()
    with server.client() as client:
        jid = client.submit("slow.nap")
        wait_until(lambda: client.get(jid).state == "running", 10, what="the nap to start")
    worker.kill()  # mid-job: the task process finds its worker gone when it reports
    wait_until(lambda: gone(child.pid), 10, what="the orphaned task process to exit")
    log = worker.text()
    assert "Traceback" not in log, f"the task process died noisily:\n{log}"


# -- Python task semantics through the CLI ------------------------------------------------


def failure_line(cli: Cli, at: str, jid: int) -> str:
    ran = cli("result", jid, "--wait", "--timeout", WAIT, server=at, ok=False)
    return ran.err.strip()


def test_python_tasks_from_the_command_line(
    procs: Procs, server: Server, cli: Cli, tmp_path: Path
) -> None:
    write_tasks(tmp_path)
    start_worker(procs, server, "w-cli")
    at = server.address
    add = job_id(cli("submit", "jobs.add", "2", "40", server=at).out)
    kw = job_id(cli("submit", "jobs.add", "2", "--kw", "b=5", server=at).out)
    aio = job_id(cli("submit", "jobs.double", "21", server=at).out)
    too_many = job_id(cli("submit", "jobs.add", "1", "2", "3", server=at).out)
    not_int = job_id(cli("submit", "jobs.add", "two", server=at).out)
    permanent = job_id(cli("submit", "jobs.permanent", server=at).out)
    bad = job_id(cli("submit", "jobs.unencodable", server=at).out)

    assert cli("result", add, "--wait", "--timeout", WAIT, server=at).out == "42\n"
    assert cli("result", kw, "--wait", "--timeout", WAIT, server=at).out == "7\n"
    assert cli("result", aio, "--wait", "--timeout", WAIT, server=at).out == "42\n"
    for jid, code in [(too_many, "invalid_arguments"), (not_int, "invalid_arguments")]:
        line = failure_line(cli, at, jid)
        assert line.startswith(f"Job {jid} failed after 1 attempt(s): {code}: jobs.add"), line
    line = failure_line(cli, at, permanent)
    assert line == f"Job {permanent} failed after 1 attempt(s): permanent: this cannot work"
    line = failure_line(cli, at, bad)
    assert line.startswith(f"Job {bad} failed after 1 attempt(s): bad_result: "), line
    with server.client() as client:  # none of them was retried
        for jid in (too_many, not_int, permanent, bad):
            job = client.get(jid)
            assert job.max_attempts == 3 and job.attempts == 1, job
            assert job.error is not None and job.error.retryable is False, job


def test_submit_by_function_uses_the_decorator_defaults(
    procs: Procs, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tasks(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "jobs", raising=False)
    jobs = importlib.import_module("jobs")
    monkeypatch.delitem(sys.modules, "jobs")  # no other test sees this copy
    start_worker(procs, server, "w-defaults", "--queues", "special,default")
    with server.client() as client:
        by_function = client.submit(jobs.defaults)
        overridden = client.submit(jobs.defaults, queue="default", retries=0, timeout=5)
        by_name = client.submit("jobs.defaults")
        added = client.submit(jobs.add, 2, b=40)
        for jid in (by_function, overridden, by_name):
            assert client.result(jid, timeout=WAIT) == "ok"
        assert client.result(added, timeout=WAIT) == 42
        job = client.get(by_function)
        assert (job.task, job.queue, job.max_attempts, job.timeout) == (
            "jobs.defaults",
            "special",
            5,
            30,
        )
        job = client.get(overridden)
        assert (job.queue, job.max_attempts, job.timeout) == ("default", 1, 5)
        job = client.get(by_name)  # by name: only the options it was given
        assert (job.queue, job.max_attempts, job.timeout) == ("default", 3, None)


def test_worker_with_a_missing_module_exits_with_one_error_line(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "broken.py").write_text("raise ValueError('broken at import')\n")
    (tmp_path / "plain.py").write_text("def f():\n    return 1\n")
    for module, message in [
        ("no_such_module", "error: cannot import task module 'no_such_module'"),
        ("broken", "error: importing the tasks failed: ValueError: broken at import"),
        ("plain", "error: module 'plain' has no @runq.task functions"),
    ]:
        # No broker is listening on port 1: the worker must fail before it connects.
        ran = cli("worker", module, "--server", "127.0.0.1:1", ok=False, timeout=20)
        assert ran.code == 2, str(ran)
        errors = [line for line in ran.err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith(message), str(ran)
        assert ran.out == "", str(ran)


# -- command jobs -------------------------------------------------------------------------


COMMAND_HEAD = re.compile(
    r"exit code 0 · \d+\.\d\d s · stdout \((\d+) bytes\) · stderr \((\d+) bytes\)"
)


def submit_cmd(cli: Cli, at: str, *argv: str, options: tuple[str, ...] = ()) -> int:
    """`runq submit --cmd [OPTIONS] -- ARGV...` (--server goes before the --)."""
    return job_id(cli("submit", "--server", at, "--cmd", *options, "--", *argv).out)


def test_command_refused_without_allow_cmd(procs: Procs, server: Server, cli: Cli) -> None:
    procs.worker(server, "w-nocmd")
    at = server.address
    refused = submit_cmd(cli, at, "echo", "hi")
    builtin = job_id(cli("submit", "echo", "still", "here", server=at).out)
    line = failure_line(cli, at, refused)
    assert line.startswith(f"Job {refused} failed after 1 attempt(s): command_not_allowed: "), line
    assert cli("result", builtin, "--wait", "--timeout", WAIT, server=at).out == "still here\n"


def test_allowed_command_and_its_result(
    procs: Procs, server: Server, cli: Cli, tmp_path: Path
) -> None:
    start_worker(procs, server, "w-echo", "--allow-cmd", "echo", modules=())
    at = server.address
    jid = submit_cmd(cli, at, "echo", "hi")
    out = cli("result", jid, "--wait", "--timeout", WAIT, server=at).out
    head, _, rest = out.partition("\n")
    found = COMMAND_HEAD.fullmatch(head)
    assert found and found.groups() == ("3", "0"), out
    assert rest == "--- stdout ---\nhi\n", out
    with server.client() as client:
        result = client.get(jid).result
    assert result["exit_code"] == 0 and result["stdout"] == "hi\n", result
    assert result["stdout_bytes"] == 3 and result["stderr_bytes"] == 0, result
    # A name that is not allowed fails at once, even when it exists on the worker.
    other = submit_cmd(cli, at, "ls")
    line = failure_line(cli, at, other)
    assert f"{other} failed after 1 attempt(s): command_not_allowed: 'ls' is not" in line, line


def test_shell_lines_only_with_allow_shell(procs: Procs, server: Server, cli: Cli) -> None:
    start_worker(procs, server, "w-noshell", "--allow-cmd", "echo", "-q", "plain", modules=())
    start_worker(procs, server, "w-shell", "--allow-shell", "-q", "shell", modules=())
    at = server.address
    line = "echo hi | wc -c"
    refused = submit_cmd(cli, at, line, options=("-q", "plain", "--shell"))
    ran = submit_cmd(cli, at, line, options=("-q", "shell", "--shell"))
    text = failure_line(cli, at, refused)
    assert f"{refused} failed after 1 attempt(s): command_not_allowed: shell" in text, text
    with server.client() as client:
        result = client.result(ran, timeout=WAIT)
    assert result["stdout"].strip() == "3", result


def test_command_environment_is_scrubbed_and_its_directory_is_fresh(
    procs: Procs, server: Server, cli: Cli, tmp_path: Path
) -> None:
    assert "HOME" in os.environ  # the worker has one: it must not reach the command
    start_worker(
        procs,
        server,
        "w-env",
        *("--allow-cmd", "env", "--allow-cmd", "pwd"),
        *("--env", "FROM_WORKER=w1", "--env", "LANG=C"),
        modules=(),
    )
    at = server.address
    env_job = submit_cmd(cli, at, "env", options=("--env", "FROM_JOB=j1"))
    pwd_jobs = [submit_cmd(cli, at, "pwd") for _ in range(2)]
    with server.client() as client:
        env_out = client.result(env_job, timeout=WAIT)["stdout"]
        pwds = [Path(client.result(j, timeout=WAIT)["stdout"].strip()) for j in pwd_jobs]
    seen = dict(line.split("=", 1) for line in env_out.splitlines())
    assert seen == {
        "FROM_WORKER": "w1",
        "LANG": "C",
        "FROM_JOB": "j1",
        "RUNQ_JOB_ID": str(env_job),
        "RUNQ_ATTEMPT": "1",
    }
    assert pwds[0] != pwds[1], pwds  # one fresh directory per job
    for workdir in pwds:
        # the job's own directory, in the worker's work root (a temporary directory)
        assert workdir.name.startswith("job-"), workdir
        assert workdir.parent.name.startswith("runq-work-"), workdir
        assert not workdir.exists()  # removed once the command finished


def test_failing_command_is_retried_unless_told_not_to(
    procs: Procs, server: Server, tmp_path: Path
) -> None:
    start_worker(procs, server, "w-fail", "--allow-cmd", "ls", "--allow-cmd", "sh", modules=())
    missing = str(tmp_path / "missing")
    with server.client() as client:
        retried = client.submit_command(["ls", missing], retries=1, backoff=0.05)
        once = client.submit_command(["ls", missing], retries=3, retry_on_failure=False)
        killed = client.submit_command(["sh", "-c", "kill -KILL $$"], retries=0)
        job = wait_job(client, retried)
        assert_failed(job, "command_failed", 2, "exit code 2: ")
        assert "ls: cannot access" in job.error.message  # type: ignore[union-attr]
        assert "No such file or directory" in job.error.message  # type: ignore[union-attr]
        job = wait_job(client, once)
        assert_failed(job, "command_failed", 1, "No such file or directory")
        assert job.max_attempts == 4 and job.error.retryable is False  # type: ignore[union-attr]
        assert_failed(wait_job(client, killed), "command_failed", 1, "killed by SIGKILL")


def test_huge_output_is_cut_and_the_worker_stays_small(
    procs: Procs, server: Server, tmp_path: Path
) -> None:
    worker = start_worker(
        procs, server, "w-huge", "--allow-cmd", "head", "--limit-output", 1000, modules=()
    )
    rss: list[int] = []
    done = threading.Event()

    def sample() -> None:
        me = psutil.Process(worker.pid)
        while not done.is_set():
            rss.append(me.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with server.client() as client:
            jid = client.submit_command(["head", "-c", str(2**30), "/dev/zero"], retries=0)
            result = client.result(jid, timeout=60)
    finally:
        done.set()
        sampler.join(5)
    assert result["stdout_bytes"] == 2**30
    cut = 2**30 - 1000
    assert result["stdout"] == "\0" * 1000 + f"\n[runq: output cut, {cut} more bytes not kept]"
    assert result["stderr"] == "" and result["stderr_bytes"] == 0
    assert rss, "no RSS sample was taken"
    assert max(rss) < 150 * 2**20, f"worker RSS peaked at {max(rss) / 2**20:.0f} MiB"


def test_what_a_command_leaves_running_is_killed(procs: Procs, server: Server) -> None:
    start_worker(procs, server, "w-bg", "--allow-shell", modules=())
    with server.client() as client:
        # The background sleep keeps stdout open: the job must end anyway.
        jid = client.submit_command(["sleep 60 & echo $!"], shell=True, retries=0)
        result = client.result(jid, timeout=WAIT)
    assert result["exit_code"] == 0
    pid = int(result["stdout"].strip())
    wait_until(lambda: gone(pid), 2, what=f"the background sleep {pid} to die")


def test_memory_and_file_size_limits(procs: Procs, server: Server) -> None:
    python = sys.executable
    start_worker(
        procs,
        server,
        "w-limits",
        *("--allow-cmd", python, "--allow-cmd", "dd"),
        *("--limit-memory", 100, "--limit-fsize", 1),
        modules=(),
    )

    def grab(mib: int) -> list[str]:
        return [python, "-c", f"x = bytearray({mib} * 2**20)"]

    def write(blocks: int) -> list[str]:  # of 512 KiB
        return ["dd", "if=/dev/zero", "of=out", "bs=512K", f"count={blocks}"]

    with server.client() as client:
        small = [client.submit_command(grab(10)), client.submit_command(write(1))]
        too_much = client.submit_command(grab(500), retry_on_failure=False)
        too_big = client.submit_command(write(10), retry_on_failure=False)
        for jid in small:
            assert client.result(jid, timeout=WAIT)["exit_code"] == 0
        assert_failed(wait_job(client, too_much), "command_failed", 1, "MemoryError")
        assert_failed(wait_job(client, too_big), "command_failed", 1, "killed by SIGXFSZ")


def test_process_limit_stops_a_fork_bomb(procs: Procs, server: Server) -> None:
    # RLIMIT_NPROC is not enforced for root: as root, commands run as nobody (--run-as).
    as_root = os.geteuid() == 0
    uid = pwd.getpwnam("nobody").pw_uid if as_root else os.getuid()
    # It counts every process (and thread) of the user: allow 20 more than run now.
    mine = 0
    for proc in psutil.process_iter(["uids", "num_threads"]):
        uids = proc.info["uids"]
        if uids is not None and uids.real == uid:
            mine += proc.info["num_threads"] or 1
    extra = ["--run-as", "nobody"] if as_root else []
    start_worker(
        procs,
        server,
        "w-nproc",
        "--allow-cmd",
        "sh",
        "--limit-nproc",
        mine + 20,
        *extra,
        modules=(),
    )
    # Bounded, so that it cannot take the machine down if the limit did not hold.
    bomb = "i=0; while [ $i -lt 300 ]; do sleep 30 & i=$((i+1)); done; echo all $i forked"
    with server.client() as client:
        jid = client.submit_command(["sh", "-c", bomb], retry_on_failure=False)
        job = wait_job(client, jid)
    assert_failed(job, "command_failed", 1, "Cannot fork")
    # Whatever it did fork is gone with its process group.
    wait_until(
        lambda: (
            not any(
                p.info["uids"] and p.info["uids"].real == uid and "sleep" in (p.info["name"] or "")
                for p in psutil.process_iter(["uids", "name"])
            )
        ),
        5,
        what="the forked sleeps to be killed",
    )
