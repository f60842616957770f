"""How jobs, workers and stats look on a terminal and as JSON."""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec

from runq.cli.deps import waiting_line
from runq.model import Job, JobState
from runq.model.files import ARTIFACT_MARKER, is_artifact, walk


def to_json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def job_dict(job: Job) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(job)
    data["state"] = str(job.state)
    return data


def ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "?"
    return f"{max(0.0, now - ts):.1f} s ago"


def task_line(job: Job) -> str:
    parts = [job.task, *(str(a) for a in job.args)]
    parts += [f"{k}={v}" for k, v in job.kwargs.items()]
    return " ".join(parts)


def progress_text(fraction: float, message: str | None) -> str:
    """`40% resized 40 of 100`."""
    return f"{fraction * 100:.0f}%" + (f" {message}" if message else "")


def status_line(job: Job, now: float | None = None) -> str:
    now = time.time() if now is None else now
    attempt = f"attempt {job.attempts} of {job.max_attempts}"
    s = job.state
    if s is JobState.WAITING:
        return waiting_line(job)
    if s is JobState.RUNNING:
        doing = ""
        if job.progress is not None:
            doing = f": {progress_text(job.progress, job.progress_message)}"
        return (
            f"Job {job.id}: running on worker {job.worker}"
            f" ({attempt}, started {ago(job.started_at, now)}){doing}"
        )
    if s is JobState.QUEUED:
        since = ago(job.submitted_at, now)
        return f"Job {job.id}: queued in {job.queue} ({attempt}, submitted {since})"
    if s is JobState.SCHEDULED:
        try:
            due = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.run_at))
        except (ValueError, OverflowError, OSError):  # past the calendar
            due = f"{job.run_at:.0f} s after the epoch"
        return (
            f"Job {job.id}: scheduled for {due} (in {max(0.0, job.run_at - now):.1f} s, {attempt})"
        )
    if s is JobState.SUCCEEDED:
        took = (job.finished_at or 0) - (job.started_at or 0)
        return (
            f"Job {job.id}: succeeded on worker {job.worker}"
            f" ({attempt}, ran {took:.3f} s, finished {ago(job.finished_at, now)})"
        )
    if s is JobState.FAILED:
        return f"Job {job.id}: failed ({attempt}): {error_text(job)}"
    return f"Job {job.id}: cancelled ({attempt}, {ago(job.finished_at, now)})"


def error_text(job: Job) -> str:
    if job.error is None:
        return "no error recorded"
    return f"{job.error.code}: {job.error.message}"


def size_text(size: int) -> str:
    amount = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{size} bytes" if unit == "bytes" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def artifact_text(value: dict[str, Any]) -> str:
    size = value.get("size")
    return (
        f"artifact {value[ARTIFACT_MARKER]} ({size_text(size) if isinstance(size, int) else '?'})"
    )


def result_text(value: Any) -> str:
    """A result for people: text as it is, an artifact as its name and size (``runq
    result N --out DIR`` saves it), anything else as JSON."""
    if isinstance(value, str):
        return value
    if is_artifact(value):
        return artifact_text(value)
    shown = walk(value, lambda v: f"<{artifact_text(v)}>" if is_artifact(v) else None)
    return json.dumps(shown, ensure_ascii=False)


def command_text(result: Any) -> str:
    """`exit code 0 · 0.41 s · stdout (12 bytes) · stderr (0 bytes)`, then the output."""
    if not isinstance(result, dict):
        return result_text(result)
    head = (
        f"exit code {result.get('exit_code')} · {result.get('duration', 0):.2f} s"
        f" · stdout ({result.get('stdout_bytes', 0)} bytes)"
        f" · stderr ({result.get('stderr_bytes', 0)} bytes)"
    )
    parts = [head]
    for stream in ("stdout", "stderr"):
        text = result.get(stream)
        if text:
            parts.append(f"--- {stream} ---\n{str(text).rstrip()}")
    return "\n".join(parts)
