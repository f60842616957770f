"""Command jobs: an argv run on a worker that allows it, in the job's working directory
(its input files are there; the files named in ``outputs`` are kept from there), with a
scrubbed environment, resource limits and bounded output."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import resource
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

from runq.errors import CommandNotAllowed, FileError, InvalidArguments, TaskError
from runq.files import Artifact
from runq.model import Assignment
from runq.model.files import MAX_FILES, check_name
from runq.model.output import LineBuffer
from runq.model.spec import COMMAND_TASK
from runq.worker.executors.base import InlineExecutor
from runq.worker.files import inside
from runq.worker.output import Output

DEFAULT_OUTPUT_LIMIT: Final = 1024 * 1024
CHUNK: Final = 64 * 1024
DRAIN_AFTER_EXIT: Final = 0.5  # seconds to read what is left once the command exited
STREAM_NAMES: Final = ("stdout", "stderr")
Lines = list[tuple[float, str, str]]


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
    user: tuple[int, int] | None = None  # (uid, gid) commands run as, when not the worker's

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
    outputs: tuple[str, ...] = ()  # files it makes in its directory, kept as artifacts

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
        unknown = set(kw) - {"env", "shell", "retry_on_failure", "outputs"}
        if unknown:
            raise InvalidArguments(f"unknown command options: {', '.join(sorted(unknown))}")
        shell, retry = bool(kw.get("shell", False)), bool(kw.get("retry_on_failure", True))
        return cls(argv, shell, env, retry, _outputs(kw.get("outputs", [])))


def _outputs(names: Any) -> tuple[str, ...]:
    if (
        not isinstance(names, list)
        or len(names) > MAX_FILES
        or not all(isinstance(n, str) for n in names)
    ):
        raise InvalidArguments(f"a command job's outputs are a list of up to {MAX_FILES} names")
    try:
        return tuple(dict.fromkeys(check_name(n) for n in names))
    except FileError as exc:
        raise InvalidArguments(f"a command job's outputs: {exc.message}") from None


class CommandExecutor(InlineExecutor):
    def __init__(self, policy: CommandPolicy, threads: int = 64) -> None:
        self.policy = policy
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="runq-command")
        self._output: Output | None = None

    def attach_output(self, output: Output) -> None:
        """Where the commands' output lines go as they come (`runq logs`)."""
        self._output = output

    async def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    def knows(self, task: str) -> bool:
        return task == COMMAND_TASK

    def tasks(self) -> list[str] | None:
        return [COMMAND_TASK]

    def wants_workdir(self, task: str) -> bool:
        return True  # commands run in the job's working directory

    def start(self, job: Assignment) -> Any:
        command = Command.of(job)
        return self._run(job, self._argv(command), command)

    def _argv(self, command: Command) -> list[str]:
        p = self.policy
        if command.shell:
            if not p.allow_shell:
                raise CommandNotAllowed("shell commands are not allowed on this worker")
            return ["/bin/sh", "/bin/sh", "-c", " ".join(command.argv)]
        exe = command.argv[0]
        if not (p.allow_any or exe in p.allow or os.path.basename(exe) in p.allow):
            raise CommandNotAllowed(f"{exe!r} is not on this worker's list of allowed commands")
        found = shutil.which(exe, path=p.path)
        if found is None:
            raise CommandNotAllowed(f"{exe!r} was not found on this worker")
        return [found, *command.argv]  # the program, then the argv as the job gave it

    async def _run(self, job: Assignment, argv: list[str], command: Command) -> dict[str, Any]:
        p = self.policy
        env = {**dict(p.env), **command.env}
        env |= {"RUNQ_JOB_ID": str(job.id), "RUNQ_ATTEMPT": str(job.attempt)}
        if command.outputs and job.workdir is None:
            raise InvalidArguments("a command job's outputs need the worker's file stage")
        spawned: list[int] = []  # the pid, once the thread has started the command
        loop = asyncio.get_running_loop()
        lines = self._lines_to(loop, job)
        try:
            result = await loop.run_in_executor(
                self._threads, run_command, argv, env, p, spawned, lines, job.workdir
            )
        except asyncio.CancelledError:  # timeout or cancel: the thread sees EOF and ends
            if spawned:
                _kill_group(spawned[0])
            raise
        if result["exit_code"] != 0:
            message = _failure(result["exit_code"], result["stderr"])
            raise CommandFailed(message, command.retry_on_failure)
        if command.outputs:
            assert job.workdir is not None
            result["outputs"] = [_made(job.workdir, name) for name in command.outputs]
        return result

    def _lines_to(
        self, loop: asyncio.AbstractEventLoop, job: Assignment
    ) -> Callable[[Lines], None] | None:
        """A function the command's thread hands its output lines to (None: no output)."""
        output = self._output
        if output is None:
            return None

        def hand_over(lines: Lines) -> None:
            loop.call_soon_threadsafe(output.add, job.id, job.fence, lines)

        return hand_over


def run_command(
    argv: list[str],
    env: dict[str, str],
    p: CommandPolicy,
    spawned: list[int],
    on_lines: Callable[[Lines], None] | None = None,
    workdir: str | None = None,
) -> dict[str, Any]:
    """Run one command to its end, in a thread: spawn it (vfork when no limits are set)
    in ``workdir`` (None: a fresh directory of its own, removed afterwards), keep the
    first ``limit_output`` bytes of each stream, stop reading shortly after it exits,
    and kill whatever it left in its process group."""
    own = workdir is None
    if workdir is None:
        workdir = tempfile.mkdtemp(prefix="runq-job-")
    as_user: dict[str, Any] = {}
    if p.user is not None:
        uid, gid = p.user
        _give(workdir, uid, gid)
        as_user = {"user": uid, "group": gid, "extra_groups": []}
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv[1:],
            executable=argv[0],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=p.preexec(),
            **as_user,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
        raise CommandFailed(f"cannot start {argv[0]}: {exc}", retryable=False) from None
    spawned.append(proc.pid)
    try:
        streams = _read_streams(proc, p.limit_output, on_lines)
        code = proc.wait()
    finally:
        _kill_group(proc.pid)
        if proc.returncode is None:
            proc.wait()
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    (out, n_out), (err, n_err) = streams
    return {
        "exit_code": code,
        "duration": round(time.monotonic() - started, 6),
        "stdout": out,
        "stderr": err,
        "stdout_bytes": n_out,
        "stderr_bytes": n_err,
    }


def _read_streams(
    proc: subprocess.Popen[bytes], limit: int, on_lines: Callable[[Lines], None] | None = None
) -> list[tuple[str, int]]:
    assert proc.stdout is not None and proc.stderr is not None
    files = [proc.stdout, proc.stderr]
    kept = [bytearray(), bytearray()]
    totals = [0, 0]
    lines = _Lines(on_lines)
    with selectors.DefaultSelector() as sel:
        for n, f in enumerate(files):
            sel.register(f, selectors.EVENT_READ, n)
        drain_until: float | None = None
        while sel.get_map():
            if drain_until is None and proc.poll() is not None:
                drain_until = time.monotonic() + DRAIN_AFTER_EXIT
            if drain_until is not None and time.monotonic() >= drain_until:
                _kill_group(proc.pid)  # what it left running holds the pipes open
                drain_until = time.monotonic() + DRAIN_AFTER_EXIT
            for key, _ in sel.select(timeout=0.05):
                n = key.data
                chunk = os.read(key.fd, CHUNK)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                totals[n] += len(chunk)
                if len(kept[n]) < limit:
                    kept[n] += chunk[: limit - len(kept[n])]
                lines.write(n, chunk)
    for f in files:
        f.close()
    lines.close()
    return [_text(kept[n], totals[n]) for n in (0, 1)]


class _Lines:
    """A command's output as bounded lines (runq.model.output), handed on per chunk
    (or, without anywhere to hand them, not made at all)."""

    def __init__(self, hand_over: Callable[[Lines], None] | None) -> None:
        self._hand_over = hand_over
        self._decoders = [codecs.getincrementaldecoder("utf-8")("replace") for _ in (0, 1)]
        self._buf = LineBuffer()

    def write(self, n: int, chunk: bytes) -> None:
        if self._hand_over is None:
            return
        self._buf.write(STREAM_NAMES[n], self._decoders[n].decode(chunk), time.time())
        self._send()

    def close(self) -> None:
        if self._hand_over is None:
            return
        for n, decoder in enumerate(self._decoders):
            self._buf.write(STREAM_NAMES[n], decoder.decode(b"", final=True), time.time())
        self._buf.close(time.time())
        self._send()

    def _send(self) -> None:
        ready = self._buf.take()
        if ready and self._hand_over is not None:
            self._hand_over(ready)


def _give(workdir: str, uid: int, gid: int) -> None:
    """Make the directory and the input files in it the command's user's."""
    os.chown(workdir, uid, gid)
    for entry in os.scandir(workdir):
        if entry.is_file(follow_symlinks=False):
            os.chown(entry.path, uid, gid)


def _made(workdir: str, name: str) -> Artifact:
    """The output ``name`` the command was to make, as an artifact to keep."""
    path = inside(workdir, name)
    if path is None:
        raise CommandFailed(f"output {name} was not made", retryable=False)
    return Artifact(path, name)


def _text(kept: bytearray, total: int) -> tuple[str, int]:
    text = kept.decode("utf-8", errors="replace")
    if total > len(kept):
        text += f"\n[runq: output cut, {total - len(kept)} more bytes not kept]"
    return text, total


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
