"""Files on the command line: ``runq submit --file PATH`` (inputs, named in the words as
``@NAME``), ``--output NAME`` (a command job's artifacts), ``runq result N --out DIR``
and the files ``runq status N`` lists. Everything is checked before anything is sent."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
import msgspec

from runq.cli.render import size_text
from runq.client import Client
from runq.errors import FileError
from runq.files import File
from runq.model import Job, JobSpec
from runq.model.files import artifacts_of, check_name, file_marker

file_option = click.option(
    "--file",
    "file_paths",
    multiple=True,
    metavar="PATH",
    help="Send this file with the job; a word @NAME (its file name) becomes its path on"
    " the worker. Repeatable.",
)
output_option = click.option(
    "--output",
    "outputs",
    multiple=True,
    metavar="NAME",
    help="With --cmd: a file the command writes in its directory, kept with the result"
    " (runq result N --out DIR fetches it). Repeatable.",
)


def inputs(paths: tuple[str, ...]) -> dict[str, File]:
    """The ``--file`` paths by file name: each a readable file with a name runq takes,
    no two with one name (click.BadParameter, exit 2, otherwise)."""
    found: dict[str, File] = {}
    for path in paths:
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            raise click.BadParameter(
                f"{path!r} is not a file this user can read", param_hint="--file"
            )
        try:
            name = check_name(Path(path).name)
        except FileError as exc:
            raise click.BadParameter(exc.message, param_hint="--file") from None
        if name in found:
            raise click.BadParameter(f"two files are named {name!r}", param_hint="--file")
        found[name] = File(path, name)
    return found


def output_names(names: tuple[str, ...]) -> list[str]:
    """``--output`` names, checked like any file name (exit 2 otherwise)."""
    try:
        checked = [check_name(n) for n in names]
    except FileError as exc:
        raise click.BadParameter(exc.message, param_hint="--output") from None
    if len(set(checked)) != len(checked):
        raise click.BadParameter("an output is named twice", param_hint="--output")
    return checked


def marked(words: list[str], files: dict[str, File]) -> list[Any]:
    """The words with each ``@NAME`` of a ``--file`` as that file's marker."""
    return [file_marker(w[1:]) if w.startswith("@") and w[1:] in files else w for w in words]


def with_inputs(client: Client, job: JobSpec, files: dict[str, File]) -> JobSpec:
    """``job`` naming ``files``, uploaded one after the other."""
    if not files:
        return job
    refs = [client.upload(f.path, name) for name, f in files.items()]
    return msgspec.structs.replace(job, files=refs)


def file_lines(job: Job) -> list[str]:
    """One line per input file and artifact of the job."""
    lines = [f"  input     {f.name} ({size_text(f.size)})" for f in job.files]
    lines += [f"  artifact  {f.name} ({size_text(f.size)})" for f in artifacts_of(job.result)]
    return lines


def save_artifacts(client: Client, job: Job, directory: str) -> list[Path]:
    """Fetch the job's artifacts into ``directory`` (made if need be); their paths."""
    if not artifacts_of(job.result):
        return []
    return client.download(job.id, directory)
