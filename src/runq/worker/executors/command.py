"""Command jobs: an argv run on a worker that allows it, in a fresh directory, with a
scrubbed environment, resource limits and bounded output."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from runq.errors import CommandNotAllowed, InvalidArguments, TaskError
from runq.model import Assignment
from runq.model.spec import COMMAND_TASK
from runq.worker.executors.base import InlineExecutor

DEFAULT_OUTPUT_LIMIT: Final = 1024 * 1024
CHUNK: Final = 64 * 1024
DRAIN_AFTER_EXIT: Final = 0.5  # seconds to read what is left once the command exited


class CommandFailed(TaskError):
    """The command ran and exited non-zero (or was killed by a signal)."""

    code = "command_failed"

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class CommandPolicy:
    allow: frozenset[str] = frozenset()  # executable names or absolute paths
    allow_any: bool = False
    allow_shell: bool = False
    path: str = os.defpath  # where executables are looked up
    env: tuple[tuple[str, str], ...] = ()  # given to every command (--env)
    limit_memory_mb: int | None = None
    limit_cpu_s: int | None = None
    limit_nproc: int | None = None
    limit_fsize_mb: int | None = None
    limit_output: int = DEFAULT_OUTPUT_LIMIT  # bytes kept of each of stdout and stderr

    def preexec(self) -> Callable[[], None] | None:
        limits = [
            (resource.RLIMIT_AS, self.limit_memory_mb and self.limit_memory_mb * 2**20),
            (resource.RLIMIT_CPU, self.limit_cpu_s),
            (resource.RLIMIT_NPROC, self.limit_nproc),
            (resource.RLIMIT_FSIZE, self.limit_fsize_mb and self.limit_fsize_mb * 2**20),
        ]
        chosen = [(kind, value) for kind, value in limits if value]
        if not chosen:
            return None

        def apply() -> None:  # runs in the child between fork and exec
            for kind, value in chosen:
                resource.setrlimit(kind, (value, value))

        return apply


@dataclass(frozen=True, slots=True)
class Command:
    argv: list[str]
    shell: bool
    env: dict[str, str]
    retry_on_failure: bool

    @classmethod
    def of(cls, job: Assignment) -> Command:
        argv, kw = job.args, job.kwargs
        if not argv or not all(isinstance(a, str) for a in argv):
            raise InvalidArguments("a command job takes its argv as a non-empty list of strings")
        env = kw.get("env", {})
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise InvalidArguments("a command job's env maps strings to strings")
        unknown = set(kw) - {"env", "shell", "retry_on_failure"}
        if unknown:
            raise InvalidArguments(f"unknown command options: {', '.join(sorted(unknown))}")
        return cls(argv, bool(kw.get("shell", False)), env, bool(kw.get("retry_on_failure", True)))


class CommandExecutor(InlineExecutor):
    def __init__(self, policy: CommandPolicy) -> None:
        self.policy = policy

    def knows(self, task: str) -> bool:
        return task == COMMAND_TASK

    def start(self, job: Assignment) -> Any:
        command = Command.of(job)
        return self._run(job, self._argv(command), command)

    def _argv(self, command: Command) -> list[str]:
        p = self.policy
        if command.shell:
            if not p.allow_shell:
                raise CommandNotAllowed("shell commands are not allowed on this worker")
            return ["/bin/sh", "-c", " ".join(command.argv)]
        exe = command.argv[0]
        if not (p.allow_any or exe in p.allow or os.path.basename(exe) in p.allow):
            raise CommandNotAllowed(f"{exe!r} is not on this worker's list of allowed commands")
        found = shutil.which(exe, path=p.path)
        if found is None:
            raise CommandNotAllowed(f"{exe!r} was not found on this worker")
        return [found, *command.argv[1:]]

    async def _run(self, job: Assignment, argv: list[str], command: Command) -> dict[str, Any]:
        p = self.policy
        env = {**dict(p.env), **command.env}
        env |= {"RUNQ_JOB_ID": str(job.id), "RUNQ_ATTEMPT": str(job.attempt)}
        workdir = tempfile.mkdtemp(prefix=f"runq-job-{job.id}-")
        started = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=workdir,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                preexec_fn=p.preexec(),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            raise CommandFailed(f"cannot start {argv[0]}: {exc}", retryable=False) from None
        assert proc.stdout is not None and proc.stderr is not None
        readers = asyncio.gather(
            capture(proc.stdout, p.limit_output), capture(proc.stderr, p.limit_output)
        )
        try:
            code = await proc.wait()
            try:  # what it left running may hold the pipes open: do not wait for it
                await asyncio.wait_for(asyncio.shield(readers), DRAIN_AFTER_EXIT)
            except TimeoutError:
                _kill_group(proc.pid)
            (out, n_out), (err, n_err) = await readers
        finally:
            readers.cancel()
            _kill_group(proc.pid)  # whatever it left behind goes too
            if proc.returncode is None:
                await proc.wait()
            shutil.rmtree(workdir, ignore_errors=True)
        result = {
            "exit_code": code,
            "duration": round(time.monotonic() - started, 6),
            "stdout": out,
            "stderr": err,
            "stdout_bytes": n_out,
            "stderr_bytes": n_err,
        }
        if code != 0:
            raise CommandFailed(_failure(code, err), command.retry_on_failure)
        return result


def _failure(code: int, stderr: str) -> str:
    if code < 0:
        try:
            why = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            why = f"killed by signal {-code}"
    else:
        why = f"exit code {code}"
    tail = stderr.strip()[-2000:]
    return f"{why}: {tail}" if tail else why


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def capture(stream: asyncio.StreamReader, limit: int) -> tuple[str, int]:
    """Read a stream to its end, keeping its first ``limit`` bytes: memory stays flat
    whatever the command prints. Returns the text kept (with a marker when cut) and
    the number of bytes the command wrote."""
    kept = bytearray()
    total = 0
    while chunk := await stream.read(CHUNK):
        total += len(chunk)
        if len(kept) < limit:
            kept += chunk[: limit - len(kept)]
    text = kept.decode("utf-8", errors="replace")
    if total > len(kept):
        text += f"\n[runq: output cut, {total - len(kept)} more bytes not kept]"
    return text, total
