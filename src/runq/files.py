"""Files in your code: ``runq.File`` sends a local file with a job, ``runq.Artifact``
returns a file from a task. See docs/files.md.

    client.submit("thumbnail", "200x200", runq.File("photo.jpg"))

    @runq.task
    def compress(path: str) -> runq.Artifact:
        subprocess.run(["gzip", "-k", path], check=True)
        return runq.Artifact(path + ".gz")
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from runq.model.files import check_name


@dataclass(frozen=True, slots=True)
class File:
    """A local file to upload with a job. In the job's arguments it becomes the path of
    the worker's copy; ``name`` (default: the file's own name) is that copy's name."""

    path: str | os.PathLike[str]
    name: str | None = None

    @property
    def file_name(self) -> str:
        return check_name(self.name or Path(self.path).name)


@dataclass(frozen=True, slots=True)
class Artifact:
    """A file a task made, to keep with the job's result: the worker uploads it before
    it reports, and ``runq result N --out DIR`` (or ``client.download``) fetches it.
    ``name`` defaults to the file's own name."""

    path: str | os.PathLike[str]
    name: str | None = None

    @property
    def file_name(self) -> str:
        return check_name(self.name or Path(self.path).name)
