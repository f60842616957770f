"""What the dashboard's templates show, shaped from broker and store values: queue rows,
totals, the last hour in figures, and the template filters (times, sizes, JSON)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import msgspec

from runq.broker.activity import Point
from runq.model import Job, JobState
from runq.protocol.messages import QueueInfo

NAV: Final = [
    ("/", "overview", "Overview"),
    ("/queues", "queues", "Queues"),
    ("/jobs", "jobs", "Jobs"),
    ("/failed", "failed", "Failed"),
    ("/workers", "workers", "Workers"),
]
MAX_SHOWN: Final = 64 * 1024  # characters of args, a result or a traceback a page shows
WAITING: Final = (str(JobState.SCHEDULED), str(JobState.QUEUED))


class QueueRow(msgspec.Struct, frozen=True):
    name: str
    counts: dict[str, int]  # every state, zero when absent
    paused: bool

    @property
    def waiting(self) -> int:
        return sum(self.counts[s] for s in WAITING)


def queue_rows(queues: Iterable[QueueInfo]) -> list[QueueRow]:
    return [
        QueueRow(q.name, {str(s): q.counts.get(str(s), 0) for s in JobState}, q.paused)
        for q in queues
    ]


def totals(queues: Iterable[QueueInfo]) -> dict[str, int]:
    out = {str(s): 0 for s in JobState}
    for q in queues:
        for state, n in q.counts.items():
            out[state] = out.get(state, 0) + n
    return out


def hour(series: Sequence[Point]) -> dict[str, Any]:
    """The last hour in figures: jobs submitted, started, succeeded, failed attempts."""
    out: dict[str, Any] = {
        kind: sum(getattr(p, kind) for p in series)
        for kind in ("submitted", "started", "succeeded", "failed")
    }
    ended = out["succeeded"] + out["failed"]
    out["failure_rate"] = percent(out["failed"] / ended) if ended else "—"
    return out


def signature(job: Job) -> str:
    """What changes when a job moves on; the page's script reloads the page when it does
    (the same text as its ``signature`` in dashboard.js)."""
    last = job.history[-1].outcome if job.history else None
    return f"{job.state}|{job.attempts}|{job.fence}|{len(job.history)}|{last or ''}"


# -- filters -----------------------------------------------------------------------------


def percent(x: float) -> str:
    return f"{x * 100:.1f}%"


def clock(ts: float | None) -> str:
    """A time in UTC (the page's script shows it in the reader's own time zone)."""
    if ts is None:
        return "—"
    moment = _utc(ts)
    return f"{ts:.0f} s after the epoch" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def iso(ts: float | None) -> str:
    moment = None if ts is None else _utc(ts)
    return "" if moment is None else moment.isoformat()


def _utc(ts: float) -> dt.datetime | None:
    """The time as a date, or None past the calendar (a run_at may be far ahead)."""
    try:
        return dt.datetime.fromtimestamp(ts, dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours < 48 else f"{hours // 24} d {hours % 24} h"


def ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "—"
    if ts > now:
        return "in " + duration(ts - now)
    return duration(now - ts) + " ago"


def pretty(value: Any) -> str:
    """JSON, indented, cut at MAX_SHOWN characters."""
    try:
        text = msgspec.json.format(msgspec.json.encode(value), indent=2).decode()
    except (TypeError, msgspec.EncodeError):
        text = repr(value)
    return cut(text)


def cut(text: str | None) -> str:
    if text is None:
        return ""
    if len(text) <= MAX_SHOWN:
        return text
    return text[:MAX_SHOWN] + f"\n… ({len(text) - MAX_SHOWN:,} more characters not shown)"


def number(n: int | float) -> str:
    return f"{n:,}"


def megabytes(mb: float) -> str:
    return f"{mb:,.1f} MB" if mb else "—"


FILTERS: Final[dict[str, Callable[..., str]]] = {
    "clock": clock,
    "iso": iso,
    "duration": duration,
    "ago": ago,
    "pretty": pretty,
    "cut": cut,
    "number": number,
    "mb": megabytes,
    "percent": percent,
}
