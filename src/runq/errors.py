"""One exception tree for runq. Every error has a stable ``code`` used in error frames."""

from __future__ import annotations

from typing import ClassVar


class RunqError(Exception):
    """Base of every error runq raises on purpose."""

    code: ClassVar[str] = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProtocolError(RunqError):
    code = "protocol_error"


class FrameTooLarge(ProtocolError):
    code = "frame_too_large"


class TooSlow(ProtocolError):
    """A frame that did not arrive whole in time, or replies the peer left unread."""

    code = "too_slow"


class TooManyConnections(RunqError):
    """The peer's address already holds as many connections as the broker allows one."""

    code = "too_many_connections"


class IdleTimeout(RunqError):
    """The connection sent nothing for the broker's idle timeout; peers reconnect."""

    code = "idle_timeout"


class AuthError(RunqError):
    code = "auth_error"


class Unauthorized(AuthError):
    """No token, or one that is not valid (unknown, wrong secret, expired, revoked)."""

    code = "unauthorized"


class Forbidden(AuthError):
    """A valid token whose scopes do not allow the request."""

    code = "forbidden"


class TooManyAttempts(AuthError):
    """Too many failed attempts from one address: refused without looking."""

    code = "too_many_attempts"


class UnknownToken(AuthError):
    code = "unknown_token"


class StoreError(RunqError):
    code = "store_error"


class Unavailable(RunqError):
    """The broker is shutting down and takes no new work."""

    code = "unavailable"


class Conflict(RunqError):
    """The request clashes with what is there (an id taken by someone else)."""

    code = "conflict"


class AlreadyQueued(Conflict):
    """A unique job submitted with ``unique_mode="refuse"`` met its unfinished twin;
    ``job_id`` names the twin (None when the twin is in the same batch)."""

    code = "already_queued"

    def __init__(self, message: str, job_id: int | None = None) -> None:
        super().__init__(message)
        if job_id is None and message.startswith("job "):  # rebuilt from an error frame
            word = message[4:].split(" ", 1)[0]
            job_id = int(word) if word.isdigit() else None
        self.job_id = job_id


class FileError(RunqError):
    """A file could not be stored or read: over a limit, unknown, not complete."""

    code = "file_error"


class FileMismatch(FileError):
    """An upload's bytes do not match its declared size or SHA-256."""

    code = "file_mismatch"


class FileTooLarge(FileError):
    code = "file_too_large"


class UnknownFile(FileError):
    code = "unknown_file"


class ConnectionLost(RunqError):
    code = "connection_lost"


class ScheduleError(RunqError):
    """A periodic schedule was refused: a bad cron expression or time zone."""

    code = "invalid_schedule"


class UnknownSchedule(ScheduleError):
    code = "unknown_schedule"

    @classmethod
    def for_name(cls, name: str) -> UnknownSchedule:
        return cls(f"no schedule named {name!r}")


class UnknownLimit(RunqError):
    """No rate limit of that scope and name."""

    code = "unknown_limit"


class JobError(RunqError):
    code = "job_error"


class UnknownJob(JobError):
    code = "unknown_job"

    @classmethod
    def for_id(cls, job_id: int) -> UnknownJob:
        return cls(f"no job with id {job_id}")


class IllegalTransition(JobError):
    code = "illegal_transition"


class StaleFence(JobError):
    code = "stale_fence"


class TaskError(RunqError):
    code = "task_error"


class UnknownTask(TaskError):
    code = "unknown_task"


class InvalidArguments(TaskError):
    code = "invalid_arguments"


class Permanent(TaskError):
    """Raise it from a task to fail the job at once, without retries."""

    code = "permanent"


class CommandNotAllowed(TaskError):
    code = "command_not_allowed"


class ConfigError(RunqError):
    code = "config_error"


class Timeout(RunqError):
    code = "timeout"


_BY_CODE: dict[str, type[RunqError]] = {}


def _index(cls: type[RunqError]) -> None:
    _BY_CODE.setdefault(cls.code, cls)
    for sub in cls.__subclasses__():
        _index(sub)


_index(RunqError)


def from_code(code: str, message: str) -> RunqError:
    """Rebuild the error a peer sent in an error frame."""
    return _BY_CODE.get(code, RunqError)(message)
