"""What a running job writes: its log lines and its progress, with their bounds.

A task's ``print``, ``logging`` records and ``runq.progress`` calls become lines and a
progress value in the task process; the worker gathers them into ``OutputBatch``es (one
per job attempt, fenced like a report) and the store keeps them as ``LogLine``s.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec
from msgspec import Meta

from runq.model.job import JobState
from runq.model.spec import JobId

MAX_LINE: Final = 4 * 1024  # characters of one line; a longer one is split
MAX_OUTPUT: Final = 64 * 1024  # characters of lines kept per attempt; the rest is counted
MAX_MESSAGE: Final = 200  # characters of a progress message
MAX_LINES: Final = 1_000  # lines of one batch (and of one read)
STREAMS: Final = frozenset({"stdout", "stderr", "log", "runq"})

Stream = Annotated[str, Meta(pattern=r"^(stdout|stderr|log|runq)$")]
Text = Annotated[str, Meta(max_length=MAX_LINE)]
Fraction = Annotated[float, Meta(ge=0.0, le=1.0)]
Message = Annotated[str, Meta(max_length=MAX_MESSAGE)]


class LogLine(msgspec.Struct, frozen=True):
    """One stored line of a job: ``seq`` counts up from 1 over all its attempts."""

    seq: int
    attempt: int
    at: float
    stream: str  # stdout, stderr, log (a logging record), runq (a note from runq)
    text: str


class OutputBatch(msgspec.Struct, frozen=True, array_like=True):
    """New lines of one attempt (``fence``) and its latest progress, if it changed."""

    id: JobId
    fence: Annotated[int, Meta(ge=0)]
    lines: Annotated[list[tuple[float, Stream, Text]], Meta(max_length=MAX_LINES)] = []
    progress: Fraction | None = None
    message: Message | None = None


class JobLogs(msgspec.Struct, frozen=True):
    """A job's lines past a seq, with its state and progress: one answer to `runq logs`.
    ``next`` is the seq to read after the next time (the last line's, or ``after``)."""

    id: int
    state: JobState
    lines: list[LogLine]
    next: int
    progress: float | None = None
    progress_message: str | None = None


def split_line(text: str) -> list[str]:
    """A line cut into pieces of at most MAX_LINE characters (one piece if it fits)."""
    if len(text) <= MAX_LINE:
        return [text]
    return [text[i : i + MAX_LINE] for i in range(0, len(text), MAX_LINE)]


class LineBuffer:
    """Text written in pieces, as bounded lines: it keeps the first ``limit`` characters
    an attempt writes (each line cut into MAX_LINE pieces), counts the rest, and ends
    with a note of what it left out. Not thread-safe: callers hold their own lock."""

    def __init__(self, limit: int = MAX_OUTPUT) -> None:
        self.limit = limit
        self.kept = 0
        self.dropped = 0
        self._partial: dict[str, str] = {}
        self._cut: set[str] = set()  # streams whose open line was sent in whole pieces
        self._ready: list[tuple[float, str, str]] = []

    def write(self, stream: str, text: str, at: float) -> None:
        """Text from ``stream``; a line without its newline yet waits for the rest."""
        if self.kept >= self.limit:
            self.dropped += len(text) - text.count("\n")
            return
        *whole, rest = (self._partial.pop(stream, "") + text).split("\n")
        if whole and stream in self._cut:  # the newline ending a line already sent in pieces
            self._cut.discard(stream)
            if not whole[0]:
                whole.pop(0)
        for line in whole:
            self.line(stream, line, at)
        if len(rest) >= MAX_LINE:  # a long line so far: send its whole pieces now
            end = len(rest) - len(rest) % MAX_LINE
            self.line(stream, rest[:end], at)
            rest = rest[end:]
            if not rest:
                self._cut.add(stream)
        if rest:
            self._partial[stream] = rest

    def line(self, stream: str, text: str, at: float) -> None:
        """One whole line (a log record): pieces past the limit are counted, not kept."""
        for piece in split_line(text):
            room = self.limit - self.kept
            if room <= 0:
                self.dropped += len(piece)
                continue
            kept = piece[:room]
            self._ready.append((at, stream, kept))
            self.kept += max(1, len(kept))  # an empty line costs one
            self.dropped += len(piece) - len(kept)

    def close(self, at: float) -> None:
        """The attempt ended: lines still open are whole, and the note of the cut."""
        for stream, rest in sorted(self._partial.items()):
            self.line(stream, rest, at)
        self._partial.clear()
        self._cut.clear()
        if self.dropped:
            note = f"[runq: output cut at {self.limit} characters, {self.dropped} more not kept]"
            self._ready.append((at, "runq", note))
            self.dropped = 0

    def take(self) -> list[tuple[float, str, str]]:
        """The lines ready to send, once."""
        ready, self._ready = self._ready, []
        return ready
