"""Files that travel with jobs, pure: names, references, markers, limits.

A job's **inputs** are files a client uploaded before submitting it; the job names them
in ``JobSpec.files`` (one ``FileRef`` each) and points at them from its arguments with a
marker, ``{"runq.file": "photo.jpg"}``. A worker downloads each input into the job's
working directory and replaces every marker with the file's local path, so the task
receives a path.

A job's **artifacts** are files its task produced: a Python task returns
``runq.Artifact(path)`` (anywhere in its result), a command job lists ``outputs``. The
worker uploads each before it reports, and the result then holds, in place of each,
``{"runq.artifact": "out.gz", "blob": ..., "size": ..., "sha256": ...}``.

Files are stored as **blobs**: a random id, a size and a SHA-256 declared when the
upload opens and checked when it finishes. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from runq.errors import FileError

FILE_MARKER: Final = "runq.file"
ARTIFACT_MARKER: Final = "runq.artifact"
GiB: Final = 2**30
DEFAULT_MAX_FILE: Final = 1 * GiB  # one file
DEFAULT_MAX_JOB_FILES: Final = 1 * GiB  # all the inputs of one job, or all its artifacts
MAX_FILES: Final = 100  # inputs of one job; artifacts of one attempt
MAX_FILE_SIZE: Final = 2**50  # what any size field may say (the limits above bind first)
CHUNK: Final = 512 * 1024  # bytes a client or worker sends or asks for at once
MAX_CHUNK: Final = 1024 * 1024 - 4096  # a chunk and its header fit in a 1 MiB frame

# A file name is one path component of safe characters: no "/", no leading "." (so no
# "..", no hidden files), nothing a shell or a path could misread.
FileName = Annotated[
    str, Meta(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.+=,@-]*$")
]
BlobId = Annotated[str, Meta(min_length=32, max_length=32, pattern=r"^[0-9a-f]{32}$")]
Sha256 = Annotated[str, Meta(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")]
Size = Annotated[int, Meta(ge=0, le=MAX_FILE_SIZE)]
Offset = Annotated[int, Meta(ge=0, le=MAX_FILE_SIZE)]
BlobKind = Literal["input", "artifact"]
EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()


class FileRef(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A stored file as a job names it."""

    name: FileName
    blob: BlobId
    size: Size
    sha256: Sha256


class BlobInfo(msgspec.Struct, frozen=True):
    """A blob as the store keeps it. ``job_id``: the job an artifact belongs to (None
    for inputs, which jobs name through ``JobSpec.files``). ``fence``: the attempt that
    made an artifact."""

    id: str
    name: str
    size: int  # declared when the upload opened
    sha256: str  # declared when the upload opened
    kind: BlobKind
    created_at: float
    received: int = 0  # bytes stored so far, in order
    complete: bool = False  # size and SHA-256 checked: the blob may be read
    job_id: int | None = None
    fence: int | None = None


def new_blob_id() -> str:
    return secrets.token_hex(16)


def check_name(name: str) -> str:
    """``name`` if it is a safe file name, else FileError saying why."""
    try:
        return msgspec.convert(name, FileName)
    except msgspec.ValidationError:
        raise FileError(
            f"{name[:100]!r} is not a file name runq accepts: 1-255 characters of letters,"
            " digits and _ . + = , @ -, not starting with '.' or '-', and no '/'"
        ) from None


def file_marker(name: str) -> dict[str, str]:
    return {FILE_MARKER: name}


def is_file_marker(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and FILE_MARKER in value


def is_artifact(value: Any) -> bool:
    return isinstance(value, dict) and ARTIFACT_MARKER in value


def artifact_ref(ref: FileRef) -> dict[str, Any]:
    """What stands in a result for an uploaded artifact."""
    return {ARTIFACT_MARKER: ref.name, "blob": ref.blob, "size": ref.size, "sha256": ref.sha256}


def ref_of_artifact(value: dict[str, Any]) -> FileRef | None:
    """The FileRef of an uploaded artifact in a result (None: not uploaded yet)."""
    try:
        return msgspec.convert(
            {
                "name": value.get(ARTIFACT_MARKER),
                "blob": value.get("blob"),
                "size": value.get("size"),
                "sha256": value.get("sha256"),
            },
            FileRef,
        )
    except msgspec.ValidationError:
        return None


def walk(value: Any, change: Callable[[Any], Any | None]) -> Any:
    """``value`` with every part that ``change`` maps to something other than None
    replaced by that (lists and dicts are walked into; others are kept)."""
    found = change(value)
    if found is not None:
        return found
    if isinstance(value, list):
        return [walk(v, change) for v in value]
    if isinstance(value, dict):
        return {k: walk(v, change) for k, v in value.items()}
    return value


def marked_names(value: Any) -> set[str]:
    """The names of every file marker in ``value`` (args, kwargs)."""
    names: set[str] = set()

    def note(v: Any) -> None:
        if is_file_marker(v):
            names.add(str(v[FILE_MARKER]))

    walk(value, lambda v: note(v))
    return names


def check_inputs(files: list[FileRef], args: list[Any], kwargs: dict[str, Any]) -> None:
    """A job's inputs: unique names, within the limits, and every marker names one."""
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise FileError("two input files of one job have the same name")
    if len(files) > MAX_FILES:
        raise FileError(f"a job has at most {MAX_FILES} input files")
    missing = (marked_names(args) | marked_names(kwargs)) - set(names)
    if missing:
        raise FileError(f"the arguments name a file the job does not carry: {sorted(missing)[0]!r}")


def artifacts_of(result: Any) -> list[FileRef]:
    """The uploaded artifacts in a job's result, in order."""
    found: list[FileRef] = []

    def note(v: Any) -> Any:
        if is_artifact(v):
            ref = ref_of_artifact(v)
            if ref is not None:
                found.append(ref)
            return v  # not looked into
        return None

    walk(result, note)
    return found
