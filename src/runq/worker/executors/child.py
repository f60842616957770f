"""The task process: imports the task modules, then runs one job at a time for the
worker that started it, over a socket on file descriptor ``--fd``.

Frames are a 4-byte big-endian length and a msgpack array:
  child -> worker: ["ready", pid, [task names], {task: default timeout}, [source files],
                    [ScheduleSpec of each task with a cron]]
                   once, then
                   [id, true, result, [artifact paths]]
                   or [id, false, code, message, retryable, traceback]
                   and, while job id runs, its output (runq.worker.capture):
                   ["out", id, [[at, stream, text], ...], progress or nil, message or nil]
  worker -> child: [id, task, args, kwargs, attempt, workdir or nil]; id 0 is a ping,
                   answered "pong"

A ``runq.Artifact`` in a result goes as ``{"runq.artifact": ABSOLUTE PATH, "name": NAME}``
(a relative path is taken from the job's working directory) and its path in the reply's
list: the worker uploads only those, not a look-alike dict that came from the arguments.
"""

from __future__ import annotations

import asyncio
import ctypes
import inspect
import os
import signal
import socket
import sys
import threading
import traceback
import typing
from typing import Any, BinaryIO

import msgspec

from runq.errors import ConfigError, RunqError, TaskError
from runq.files import Artifact
from runq.model.files import ARTIFACT_MARKER
from runq.tasks import Registry, load
from runq.worker import capture

NON_RETRYABLE = frozenset({"unknown_task", "invalid_arguments", "permanent", "bad_result"})
MAX_TEXT = 8 * 1024
PR_SET_PDEATHSIG = 1
PING = 0  # a frame with job id 0 is a health check: answered at once, runs nothing
_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()


def read_exactly(stream: BinaryIO, n: int) -> bytes | None:
    data = stream.read(n)
    return data if data is not None and len(data) == n else None


_sending = threading.Lock()  # the job's output goes out from a thread of its own too


def send(sock: socket.socket, value: Any) -> None:
    body = _enc.encode(value)
    with _sending:
        sock.sendall(len(body).to_bytes(4, "big") + body)


def encode_reply(reply: list[Any], workdir: str | None) -> bytes:
    """A job's reply, with each ``runq.Artifact`` of a result as a marker."""
    if not reply[1]:
        return _enc.encode(reply)
    made: list[str] = []
    result = _markers(reply[2], workdir or os.getcwd(), made)
    return _enc.encode([reply[0], True, result, made])


def _markers(value: Any, workdir: str, made: list[str]) -> Any:
    """``value`` with each Artifact as its marker (msgspec would encode the dataclass as
    a plain dict), noting their paths in ``made``."""
    if isinstance(value, Artifact):
        path = os.path.abspath(os.path.join(workdir, os.fspath(value.path)))
        made.append(path)
        return {ARTIFACT_MARKER: path, "name": value.file_name}
    if isinstance(value, list | tuple):
        return [_markers(v, workdir, made) for v in value]
    if isinstance(value, dict):
        return {k: _markers(v, workdir, made) for k, v in value.items()}
    return value


def send_reply(sock: socket.socket, reply: list[Any], task: str, workdir: str | None) -> None:
    """A job's reply; a result msgpack cannot carry becomes a ``bad_result`` failure."""
    try:
        body = encode_reply(reply, workdir)
    except (TypeError, ValueError, OverflowError, RunqError) as exc:
        message = f"the result of {task} cannot be stored: {exc}"
        body = _enc.encode([reply[0], False, "bad_result", message[:MAX_TEXT], False, None])
    with _sending:
        sock.sendall(len(body).to_bytes(4, "big") + body)


def failure(job_id: int, exc: BaseException) -> list[Any]:
    code = exc.code if isinstance(exc, RunqError) else "error"
    message = exc.message if isinstance(exc, RunqError) else f"{type(exc).__name__}: {exc}"
    tb = None if isinstance(exc, TaskError) else "".join(traceback.format_exception(exc))
    return [
        job_id,
        False,
        code,
        message[:MAX_TEXT],
        code not in NON_RETRYABLE,
        tb and tb[-MAX_TEXT:],
    ]


class Runner:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.loop: asyncio.AbstractEventLoop | None = None
        self._signatures: dict[Any, tuple[inspect.Signature, dict[str, Any]]] = {}

    def run(self, job_id: int, task: str, args: list[Any], kwargs: dict[str, Any]) -> list[Any]:
        fn = self.registry.get(task)
        if fn is None:
            return [job_id, False, "unknown_task", f"no task named {task!r} here", False, None]
        try:
            args, kwargs = self._checked(fn, args, kwargs)
        except (TypeError, msgspec.ValidationError) as exc:
            return [job_id, False, "invalid_arguments", f"{task}: {exc}", False, None]
        try:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                result = self._await(result)
        except Exception as exc:
            return failure(job_id, exc)
        return [job_id, True, result]

    def _checked(
        self, fn: Any, args: list[Any], kwargs: dict[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """Bind the arguments to the signature and convert each annotated one to its
        type (text from the command line becomes an int where the task wants an int)."""
        sig, hints = self._signature(fn)
        bound = sig.bind(*args, **kwargs)
        for name, value in bound.arguments.items():
            param = sig.parameters[name]
            hint = hints.get(name)
            if hint is None or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            bound.arguments[name] = msgspec.convert(value, hint, strict=False)
        return list(bound.args), dict(bound.kwargs)

    def _signature(self, fn: Any) -> tuple[inspect.Signature, dict[str, Any]]:
        found = self._signatures.get(fn)
        if found is None:
            try:
                hints = typing.get_type_hints(fn)
            except Exception:  # unresolvable annotations: bind without converting
                hints = {}
            hints.pop("return", None)
            found = self._signatures[fn] = (inspect.signature(fn), hints)
        return found

    def _await(self, awaitable: Any) -> Any:
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
        return self.loop.run_until_complete(awaitable)


def source_files(registry: Registry) -> list[str]:
    """The files the tasks were loaded from (for --reload)."""
    files = set()
    for fn, _ in registry:
        module = sys.modules.get(getattr(fn, "__module__", ""), None)
        path = getattr(module, "__file__", None)
        if path:
            files.add(os.path.abspath(path))
    return sorted(files)


def serve(sock: socket.socket, registry: Registry) -> None:
    runner = Runner(registry)
    timeouts = {opts.name: opts.timeout for _, opts in registry if opts.timeout is not None}
    crons = [msgspec.to_builtins(s) for _, o in registry if (s := o.schedule()) is not None]
    send(sock, ["ready", os.getpid(), registry.names(), timeouts, source_files(registry), crons])
    stream = sock.makefile("rb")  # buffered: one read can bring several frames
    while True:
        header = read_exactly(stream, 4)
        if header is None:
            return
        body = read_exactly(stream, int.from_bytes(header, "big"))
        if body is None:
            return
        order = _dec.decode(body)
        job_id, task, args, kwargs, attempt = order[:5]
        workdir = order[5] if len(order) > 5 else None
        if job_id == PING:
            send(sock, [PING, True, "pong"])
            continue
        os.environ["RUNQ_JOB_ID"] = str(job_id)
        os.environ["RUNQ_ATTEMPT"] = str(attempt)
        if workdir is None:
            os.environ.pop("RUNQ_WORKDIR", None)
        else:
            os.environ["RUNQ_WORKDIR"] = workdir
        with capture.capturing(job_id, lambda frame: send(sock, frame)):
            reply = runner.run(job_id, task, args, kwargs)
        send_reply(sock, reply, task, workdir)


def die_with_parent() -> None:
    """Linux: be killed when the worker dies, so no job runs on without its worker."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the worker's socket closing ends us
        pass


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when we stop
    die_with_parent()
    fd = int(argv[argv.index("--fd") + 1])
    specs = [a for a in argv[: argv.index("--fd")]]
    sock = socket.socket(fileno=fd)
    registry = Registry()
    try:
        for spec in specs:
            registry.merge(load(spec))
    except ConfigError as exc:
        send(sock, ["error", exc.message])
        return 2
    except Exception as exc:
        send(sock, ["error", f"importing the tasks failed: {type(exc).__name__}: {exc}"])
        return 2
    capture.prepare_logging()
    capture.start_flushing()
    try:
        serve(sock, registry)
    except (BrokenPipeError, ConnectionResetError):  # the worker went away: so do we
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
