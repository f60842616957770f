"""In a task process: what the running job writes (``print``, ``sys.stderr``, ``logging``
records) and the progress it reports with ``runq.progress``, gathered and sent to the
worker about every FLUSH_EVERY seconds and when the job ends.

A task process runs one job at a time, so "the running job" is one slot of the process,
set for the length of the job (here for the flusher, in runq.current for
``runq.progress``).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TextIO

from runq.current import set_current
from runq.model.output import LineBuffer

FLUSH_EVERY = 0.25  # seconds between sends while a job writes
Send = Callable[[list[Any]], None]  # sends one frame to the worker (thread-safe)


class JobOutput:
    """The lines and progress of the one job running, waiting to be sent."""

    def __init__(self, job_id: int, send: Send) -> None:
        self.job_id = job_id
        self._send = send
        self._lock = threading.Lock()
        self._lines = LineBuffer()
        self._progress: tuple[float, str] | None = None  # not sent yet
        self._closed = False

    def write(self, stream: str, text: str) -> None:
        with self._lock:
            self._lines.write(stream, text, time.time())

    def line(self, stream: str, text: str) -> None:
        with self._lock:
            self._lines.line(stream, text, time.time())

    def progress(self, fraction: float, message: str) -> None:
        with self._lock:
            self._progress = (fraction, message)

    def flush(self, end: bool = False) -> None:
        """Send what is waiting (at the end: the open lines and the note of the cut)."""
        with self._lock:
            if self._closed:  # sent its last already (a late periodic flush)
                return
            if end:
                self._closed = True
                self._lines.close(time.time())
            lines = self._lines.take()
            progress, self._progress = self._progress, None
            if not lines and progress is None:
                return
            # under the lock: frames of one job go out in the order they were made
            frame = [
                "out",
                self.job_id,
                lines,
                None if progress is None else progress[0],
                None if progress is None else progress[1],
            ]
            self._send(frame)


_current: JobOutput | None = None  # the job running now (its output, for the flusher)


class _Tee:
    """A text stream that gives what is written to the job's output as well."""

    def __init__(self, inner: TextIO, output: JobOutput, stream: str) -> None:
        self._inner = inner
        self._output = output
        self._stream = stream

    def write(self, text: str) -> int:
        self._output.write(self._stream, text)
        try:
            return self._inner.write(text)
        except (OSError, ValueError):  # the worker's own stream is gone: keep capturing
            return len(text)

    def flush(self) -> None:
        with suppress(OSError, ValueError):
            self._inner.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, isatty, ...
        return getattr(self._inner, name)


class _Handler(logging.Handler):
    """Logging records of the running job as lines of its ``log`` stream."""

    def __init__(self, output: JobOutput) -> None:
        super().__init__()
        self.output = output
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:
            self.handleError(record)
            return
        for line in text.split("\n"):
            self.output.line("log", line)


def prepare_logging() -> None:
    """At start: if the task modules left logging unconfigured, let INFO records through
    (to the jobs' output; outside jobs Python's last-resort handler still shows only
    warnings)."""
    root = logging.getLogger()
    if not root.handlers and root.level == logging.WARNING:
        root.setLevel(logging.INFO)


def start_flushing() -> None:
    """Once a process: a thread that sends the running job's output every FLUSH_EVERY
    seconds (the rest is sent as the job ends)."""
    threading.Thread(target=_flush_forever, name="runq-output", daemon=True).start()


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_EVERY)
        current = _current
        if current is not None:
            try:
                current.flush()
            except OSError:  # the worker went away; the job's end finds out too
                return


@contextmanager
def capturing(job_id: int, send: Send) -> Iterator[JobOutput]:
    """For the length of one job: its writes and records go to its output."""
    global _current
    output = JobOutput(job_id, send)
    handler = _Handler(output)
    root = logging.getLogger()
    saved = sys.stdout, sys.stderr
    sys.stdout = _Tee(saved[0], output, "stdout")
    sys.stderr = _Tee(saved[1], output, "stderr")
    root.addHandler(handler)
    _current = output
    set_current(output)
    try:
        yield output
    finally:
        set_current(None)
        _current = None
        root.removeHandler(handler)
        sys.stdout, sys.stderr = saved
        output.flush(end=True)
