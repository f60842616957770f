"""The worker's side of job output: lines and progress that executors hand in, kept
until the agent sends them as OUTPUT messages (every FLUSH_EVERY seconds while jobs
write, and just before a report, so a job's lines are stored before its end).

Each message is bounded: at most MAX_LINES lines a batch and MESSAGE_CHARS characters
of text a message, well under the frame limit however wide the characters are.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

import msgspec

from runq.model.output import MAX_LINES, OutputBatch
from runq.protocol import messages as m

log = logging.getLogger("runq.worker")
FLUSH_EVERY: Final = 0.3  # seconds between OUTPUT messages while jobs write
MESSAGE_CHARS: Final = 128 * 1024  # text in one OUTPUT message (4 bytes a char at most)

Line = tuple[float, str, str]


@dataclass
class _Pending:
    lines: list[Line] = field(default_factory=list)
    progress: float | None = None
    message: str | None = None


class Output:
    """Output of running jobs by (job id, fence), in the order it came."""

    def __init__(self) -> None:
        self._pending: dict[tuple[int, int], _Pending] = {}

    def __bool__(self) -> bool:
        return bool(self._pending)

    def add(
        self,
        job_id: int,
        fence: int,
        lines: list[Any],
        progress: float | None = None,
        message: str | None = None,
    ) -> None:
        """Lines and progress from an executor; a malformed part is dropped, logged."""
        try:
            batch = msgspec.convert([job_id, fence, lines, progress, message], OutputBatch)
        except msgspec.ValidationError as exc:
            log.warning("dropped output of job %d: %s", job_id, exc)
            return
        entry = self._pending.setdefault((job_id, fence), _Pending())
        entry.lines.extend(batch.lines)
        if batch.progress is not None:
            entry.progress, entry.message = batch.progress, batch.message

    def take(self) -> list[m.Output]:
        """Everything waiting, as bounded messages (once)."""
        pending, self._pending = self._pending, {}
        messages: list[m.Output] = []
        batches: list[OutputBatch] = []
        chars = 0
        for (job_id, fence), entry in pending.items():
            lines = entry.lines
            first = True
            while first or lines:
                room = max(1, min(MAX_LINES, _fitting(lines, MESSAGE_CHARS - chars)))
                part, lines = lines[:room], lines[room:]
                last = not lines
                batches.append(
                    OutputBatch(
                        job_id,
                        fence,
                        part,
                        entry.progress if last else None,
                        entry.message if last else None,
                    )
                )
                chars += sum(len(text) for _, _, text in part)
                first = False
                if chars >= MESSAGE_CHARS or len(batches) >= MAX_BATCHES:
                    messages.append(m.Output(batches))
                    batches, chars = [], 0
        if batches:
            messages.append(m.Output(batches))
        return messages


MAX_BATCHES: Final = 1_000  # batches in one OUTPUT message


def _fitting(lines: list[Line], room: int) -> int:
    """How many of ``lines`` fit in ``room`` characters."""
    n = 0
    for _, _, text in lines:
        room -= len(text)
        if room < 0:
            break
        n += 1
    return n


@runtime_checkable
class WritesOutput(Protocol):
    """An executor whose jobs write output: the agent hands it where output goes."""

    def attach_output(self, output: Output) -> None: ...
