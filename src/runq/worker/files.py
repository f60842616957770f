"""The file stage around each job: inputs in, artifacts out (docs/files.md).

Before a job that carries files, or whose executor wants a working directory, starts:

1. make ``<workroot>/job-<id>-<fence>/`` (the job's working directory);
2. download every input of ``job.files`` into it, checked against its SHA-256;
3. replace each ``{"runq.file": NAME}`` marker of the arguments with the path of the
   downloaded file, and hand the executor the job with ``workdir`` set.

After a successful run, every ``runq.Artifact`` in the result is uploaded as an artifact
of the attempt and replaced by its reference (``model.files.artifact_ref``). Only
Artifact objects count: executors make them (a Python task's ``runq.Artifact``, a
command's ``outputs``, the file built-ins), so a job's arguments cannot name a file of
the worker to upload. The directory is removed once the job has its outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import shutil
import tempfile
from collections.abc import Awaitable
from typing import Any, Protocol

import msgspec

from runq.errors import FileError, FileTooLarge, InvalidArguments
from runq.files import Artifact
from runq.model import Assignment
from runq.model.files import (
    ARTIFACT_MARKER,
    FILE_MARKER,
    MAX_FILES,
    artifact_ref,
    is_file_marker,
    walk,
)
from runq.worker.requests import Requests
from runq.worker.transfer import download, for_good, upload

log = logging.getLogger("runq.worker")


class Runs(Protocol):
    def start(self, job: Assignment) -> Any | Awaitable[Any]: ...


def wants_workdir(executor: Any, task: str) -> bool:
    """Whether the executor's jobs of ``task`` get a working directory even without
    input files (an executor says so with a ``wants_workdir(task)`` method)."""
    wants = getattr(executor, "wants_workdir", None)
    return wants is not None and bool(wants(task))


def has_artifacts(value: Any) -> bool:
    """Whether ``value`` holds a ``runq.Artifact`` (in lists and dicts, at any depth)."""
    if isinstance(value, Artifact):
        return True
    if isinstance(value, list | tuple):
        return any(has_artifacts(v) for v in value)
    if isinstance(value, dict):
        return any(has_artifacts(v) for v in value.values())
    return False


class FileStage:
    """Working directories under one root, and the transfers of the jobs run in them."""

    def __init__(self, requests: Requests, root: str | None = None) -> None:
        self.requests = requests
        self._given = root
        self.root = ""
        self._removing: set[asyncio.Future[Any]] = set()

    def open(self) -> None:
        """Make the root: the configured one, or a temporary directory of our own."""
        if self._given is None:
            self.root = tempfile.mkdtemp(prefix="runq-work-")
            os.chmod(self.root, 0o711)  # commands run as another user reach their own dir
        else:
            os.makedirs(self._given, exist_ok=True)
            self.root = self._given

    async def close(self) -> None:
        """Wait for directories being removed; remove the root if we made it."""
        if self._removing:
            await asyncio.gather(*self._removing, return_exceptions=True)
        if self._given is None and self.root:
            await asyncio.to_thread(shutil.rmtree, self.root, True)

    # -- around a job --------------------------------------------------------------

    def start(self, job: Assignment, executor: Runs) -> Any:
        """Start ``job`` on ``executor`` inside the file stage: the executor's own value
        when the job needs no files and made no artifact (the fast path of built-ins),
        else an awaitable of the result."""
        if job.files or wants_workdir(executor, job.task):
            return self._staged(job, executor)
        if job.workdir is not None:  # never trusted from the wire
            job = msgspec.structs.replace(job, workdir=None)
        value = executor.start(job)
        if inspect.isawaitable(value):
            return self._after(job, value)
        return self._publish(job, value) if has_artifacts(value) else value

    async def _after(self, job: Assignment, value: Awaitable[Any]) -> Any:
        result = await value
        return await self._publish(job, result) if has_artifacts(result) else result

    async def _staged(self, job: Assignment, executor: Runs) -> Any:
        if job.files:
            workdir = await asyncio.to_thread(self._make, job)
        else:  # one mkdir, here: jobs reach the executor in the order they came
            workdir = self._make(job)
        try:
            paths = await self._fetch(job, workdir)
            ready = msgspec.structs.replace(
                job,
                args=_swap(job.args, paths),
                kwargs=_swap(job.kwargs, paths),
                workdir=workdir,
            )
            value = executor.start(ready)
            result = await value if inspect.isawaitable(value) else value
            return await self._publish(job, result) if has_artifacts(result) else result
        finally:
            await self._remove(workdir)

    def _make(self, job: Assignment) -> str:
        path = os.path.join(self.root, f"job-{job.id}-{job.fence}")
        shutil.rmtree(path, ignore_errors=True)  # left by a worker that died
        os.mkdir(path, 0o700)
        return path

    async def _remove(self, workdir: str) -> None:
        """Remove the job's directory before its outcome is reported (``close`` waits
        for a removal that a cancel stopped us waiting for). An empty one, the common
        case, goes at once: one rmdir costs less than a trip to a thread."""
        with contextlib.suppress(OSError):
            os.rmdir(workdir)
            return
        fut = asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, workdir, True)
        self._removing.add(fut)
        fut.add_done_callback(self._removing.discard)
        await fut

    async def _fetch(self, job: Assignment, workdir: str) -> dict[str, str]:
        """Download every input; the local path of each, by name."""
        paths: dict[str, str] = {}
        for ref in job.files:
            path = os.path.join(workdir, ref.name)
            await download(self.requests, ref, path)
            paths[ref.name] = path
        return paths

    async def _publish(self, job: Assignment, result: Any) -> Any:
        """Upload the result's artifacts; the result with their references."""
        found: dict[Artifact, None] = {}  # in the order they appear
        _collect(result, found)
        if len(found) > MAX_FILES:
            raise for_good(FileError(f"a job keeps at most {MAX_FILES} artifacts"))
        refs: dict[Artifact, dict[str, Any]] = {}
        for artifact in found:
            try:
                name = artifact.file_name
            except FileError as exc:
                raise for_good(exc) from None
            path = os.fspath(artifact.path)
            try:
                ref = await upload(self.requests, job.id, job.fence, path, name)
            except FileTooLarge as exc:
                raise for_good(FileTooLarge(f"artifact {name}: {exc.message}")) from None
            refs[artifact] = artifact_ref(ref)
        return _with_refs(result, refs)


def _collect(value: Any, found: dict[Artifact, None]) -> None:
    if isinstance(value, Artifact):
        found[value] = None
    elif isinstance(value, list | tuple):
        for v in value:
            _collect(v, found)
    elif isinstance(value, dict):
        for v in value.values():
            _collect(v, found)


def _with_refs(value: Any, refs: dict[Artifact, dict[str, Any]]) -> Any:
    if isinstance(value, Artifact):
        return refs[value]
    if isinstance(value, list | tuple):
        return [_with_refs(v, refs) for v in value]
    if isinstance(value, dict):
        return {k: _with_refs(v, refs) for k, v in value.items()}
    return value


def artifacts_made(result: Any, made: list[str]) -> Any:
    """A task process's result with the markers of the artifacts it made (``made``:
    their paths) back as Artifact objects; any other look-alike dict stays data."""
    if not made:
        return result
    paths = set(made)

    def artifact(v: Any) -> Artifact | None:
        if (
            isinstance(v, dict)
            and v.keys() == {ARTIFACT_MARKER, "name"}
            and v[ARTIFACT_MARKER] in paths
            and isinstance(v["name"], str)
        ):
            return Artifact(v[ARTIFACT_MARKER], v["name"])
        return None

    return walk(result, artifact)


def _swap(value: Any, paths: dict[str, str]) -> Any:
    """``value`` with every file marker replaced by the downloaded file's path."""

    def path_of(v: Any) -> str | None:
        if not is_file_marker(v):
            return None
        name = v[FILE_MARKER]
        if name not in paths:
            raise InvalidArguments(f"the arguments name a file the job does not carry: {name!r}")
        return paths[name]

    return walk(value, path_of)


def inside(workdir: str, name: str) -> str | None:
    """The real path of ``name`` in ``workdir`` when it is a regular file there (links
    that lead out of the directory do not count), else None."""
    root = os.path.realpath(workdir)
    with contextlib.suppress(OSError, ValueError):
        path = os.path.realpath(os.path.join(root, name))
        if os.path.commonpath([root, path]) == root and path != root and os.path.isfile(path):
            return path
    return None
