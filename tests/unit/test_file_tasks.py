"""The worker's file built-ins (gzip, gunzip, sha256, thumbnail, convert, pdf) on real
files the tests make, and the pure pieces of the file stage around every job."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest
from PIL import Image

from runq.errors import FileError, InvalidArguments, Permanent, TaskError
from runq.files import Artifact
from runq.model import Assignment
from runq.model.files import ARTIFACT_MARKER, file_marker
from runq.worker.executors import child
from runq.worker.executors.base import error_info
from runq.worker.executors.builtin import BuiltinExecutor
from runq.worker.executors.command import Command, CommandExecutor, CommandPolicy
from runq.worker.executors.filetasks import FILE_TASKS, office
from runq.worker.files import FileStage, _swap, artifacts_made, has_artifacts, inside
from runq.worker.requests import Requests


def job(workdir: Path | None, task: str, *args: Any, **kwargs: Any) -> Assignment:
    return Assignment(
        7, 1, task, list(args), kwargs, 1, 3, workdir=None if workdir is None else str(workdir)
    )


async def run(workdir: Path | None, task: str, *args: Any, **kwargs: Any) -> Any:
    return await FILE_TASKS[task](job(workdir, task, *args, **kwargs))


def image(path: Path, size: tuple[int, int], fmt: str, mode: str = "RGB") -> Path:
    color: Any = (200, 30, 60, 128) if mode == "RGBA" else (200, 30, 60)
    img = Image.new(mode, size, color)
    img.paste((10, 200, 10) if mode == "RGB" else (10, 200, 10, 255), (0, 0, 10, 10))
    img.save(path, format=fmt)
    return path


@pytest.fixture
def work(tmp_path: Path) -> Path:
    workdir = tmp_path / "job-7-1"
    workdir.mkdir()
    return workdir


# -- gzip, gunzip, sha256 -------------------------------------------------------------


async def test_gzip_and_gunzip_round_trip(work: Path) -> None:
    data = os.urandom(300_000) + b"runq " * 200_000  # over one copy chunk
    (work / "big.log").write_bytes(data)
    packed = await run(work, "gzip", str(work / "big.log"))
    assert isinstance(packed, Artifact)
    assert packed.file_name == "big.log.gz"
    assert Path(packed.path).parent == work / ".out"
    assert gzip.decompress(Path(packed.path).read_bytes()) == data
    shutil.copy(packed.path, work / "big.log.gz")  # as the next job would get it
    unpacked = await run(work, "gunzip", str(work / "big.log.gz"))
    assert unpacked.file_name == "big.log"
    assert Path(unpacked.path).read_bytes() == data


async def test_gunzip_refuses_what_is_not_gzip(work: Path) -> None:
    (work / "notes.txt").write_text("plain")
    with pytest.raises(InvalidArguments, match=r"NAME\.gz"):
        await run(work, "gunzip", str(work / "notes.txt"))
    (work / "fake.gz").write_bytes(b"not gzip at all")
    with pytest.raises(Permanent, match="not a whole gzip file"):
        await run(work, "gunzip", str(work / "fake.gz"))


async def test_sha256_matches_hashlib(work: Path) -> None:
    data = os.urandom(1_500_000)
    (work / "blob.bin").write_bytes(data)
    assert await run(work, "sha256", str(work / "blob.bin")) == hashlib.sha256(data).hexdigest()
    (work / "empty").write_bytes(b"")
    assert await run(work, "sha256", str(work / "empty")) == hashlib.sha256(b"").hexdigest()


# -- images -------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "name"), [("JPEG", "photo.jpg"), ("PNG", "photo.png")])
async def test_thumbnail_keeps_aspect_ratio_and_format(work: Path, fmt: str, name: str) -> None:
    image(work / name, (800, 400), fmt)
    thumb = await run(work, "thumbnail", "200x200", str(work / name))
    assert thumb.file_name == f"photo-200x200{Path(name).suffix}"
    with Image.open(thumb.path) as img:
        assert img.format == fmt
        assert img.size == (200, 100)


@pytest.mark.parametrize(
    ("kind", "fmt", "ext"),
    [
        ("png", "PNG", ".png"),
        ("jpeg", "JPEG", ".jpg"),
        ("webp", "WEBP", ".webp"),
        ("gif", "GIF", ".gif"),
        ("bmp", "BMP", ".bmp"),
        ("TIFF", "TIFF", ".tiff"),
    ],
)
async def test_convert_makes_each_format(work: Path, kind: str, fmt: str, ext: str) -> None:
    image(work / "logo.png", (64, 48), "PNG", mode="RGBA")  # alpha: JPEG must drop it
    made = await run(work, "convert", kind, str(work / "logo.png"))
    assert made.file_name == "logo" + ext
    with Image.open(made.path) as img:
        assert img.format == fmt
        assert img.size == (64, 48)


@pytest.mark.parametrize(
    ("task", "args", "match"),
    [
        ("thumbnail", ["200", "{path}"], "WIDTHxHEIGHT"),
        ("thumbnail", ["0x10", "{path}"], "WIDTHxHEIGHT"),
        ("thumbnail", ["20000x10", "{path}"], "WIDTHxHEIGHT"),
        ("thumbnail", ["{path}"], "usage: thumbnail WIDTHxHEIGHT PATH"),
        ("convert", ["svg", "{path}"], "convert makes one of bmp, gif, jpeg, png, tiff, webp"),
        ("convert", ["png", "{path}", "extra"], "usage: convert FORMAT PATH"),
        ("gzip", [], "usage: gzip PATH"),
        ("gzip", [3], "usage: gzip PATH"),
        ("sha256", ["/etc/passwd"], "a file sent with the job"),
        ("gzip", ["{work}/../elsewhere.png"], "a file sent with the job"),
        ("gzip", ["{work}/.out"], "a file sent with the job"),
    ],
)
async def test_bad_arguments_are_refused_clearly(
    work: Path, task: str, args: list[Any], match: str
) -> None:
    path = image(work / "pic.png", (10, 10), "PNG")
    image(work.parent / "elsewhere.png", (10, 10), "PNG")
    (work / ".out").mkdir()
    filled = [a.format(path=path, work=work) if isinstance(a, str) else a for a in args]
    with pytest.raises(InvalidArguments, match=match) as caught:
        await run(work, task, *filled)
    assert not error_info(caught.value).retryable


async def test_keyword_arguments_and_a_missing_workdir_are_refused(work: Path) -> None:
    with pytest.raises(InvalidArguments, match="no keyword arguments"):
        await run(work, "sha256", "x", fast=True)
    with pytest.raises(TaskError, match="only on files sent with the job"):
        await run(None, "sha256", "/etc/hostname")


async def test_a_file_that_is_not_an_image_fails_for_good(work: Path) -> None:
    (work / "photo.jpg").write_text("not an image")
    with pytest.raises(Permanent, match="not an image"):
        await run(work, "thumbnail", "10x10", str(work / "photo.jpg"))


# -- pdf ----------------------------------------------------------------------------


async def test_pdf_without_libreoffice_says_so(
    work: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))
    (work / "letter.txt").write_text("Dear reader,\n")
    with pytest.raises(Permanent) as caught:
        await run(work, "pdf", str(work / "letter.txt"))
    assert caught.value.message == "pdf needs LibreOffice on the worker (soffice not found)"
    assert not error_info(caught.value).retryable


@pytest.mark.skipif(office() is None, reason="LibreOffice (soffice) is not installed here")
async def test_pdf_with_libreoffice(work: Path) -> None:
    (work / "letter.txt").write_text("Dear reader,\nthis is a PDF now.\n")
    made = await run(work, "pdf", str(work / "letter.txt"))
    assert made.file_name == "letter.pdf"
    assert Path(made.path).read_bytes().startswith(b"%PDF")


# -- the built-in executor and the file stage's pieces ---------------------------------


def test_the_builtin_executor_knows_the_file_tasks() -> None:
    builtins = BuiltinExecutor()
    for name in ("gzip", "gunzip", "sha256", "thumbnail", "convert", "pdf"):
        assert builtins.knows(name) and builtins.wants_workdir(name)
    assert builtins.knows("echo") and not builtins.wants_workdir("echo")
    assert {"pdf", "echo"} <= set(builtins.tasks() or [])


def test_file_markers_become_paths() -> None:
    paths = {"a.txt": "/w/a.txt", "b.png": "/w/b.png"}
    args = [file_marker("a.txt"), {"x": [file_marker("b.png")]}, {"runq.file": "a.txt", "k": 1}]
    assert _swap(args, paths) == ["/w/a.txt", {"x": ["/w/b.png"]}, args[2]]
    with pytest.raises(InvalidArguments, match=r"'c\.txt'"):
        _swap([file_marker("c.txt")], paths)


def test_only_artifacts_the_task_made_are_uploaded(tmp_path: Path) -> None:
    """A task process marks the Artifacts it returned and lists their paths; a dict that
    only looks like one (say, echoed from the arguments) stays data."""
    made = str(tmp_path / "out.gz")
    result = {
        "real": {ARTIFACT_MARKER: made, "name": "out.gz"},
        "forged": {ARTIFACT_MARKER: "/etc/shadow", "name": "shadow"},
        "list": [{ARTIFACT_MARKER: made, "name": "out.gz"}],
    }
    back = artifacts_made(result, [made])
    assert back["real"] == Artifact(made, "out.gz") == back["list"][0]
    assert back["forged"] == result["forged"]
    assert has_artifacts(back) and not has_artifacts(artifacts_made(result, []))


def test_a_task_process_encodes_artifacts_as_markers(tmp_path: Path) -> None:
    reply = [5, True, {"file": Artifact("thumb.jpg"), "all": [Artifact("/data/x.bin", "y.bin")]}]
    body = msgspec.msgpack.decode(child.encode_reply(reply, str(tmp_path)))
    thumb = str(tmp_path / "thumb.jpg")
    assert body == [
        5,
        True,
        {
            "file": {ARTIFACT_MARKER: thumb, "name": "thumb.jpg"},
            "all": [{ARTIFACT_MARKER: "/data/x.bin", "name": "y.bin"}],
        },
        [thumb, "/data/x.bin"],
    ]
    with pytest.raises(FileError):  # a name runq refuses: a bad_result failure
        child.encode_reply([5, True, Artifact("/data/.hidden")], None)


def test_inside_keeps_to_the_directory(tmp_path: Path) -> None:
    (tmp_path / "out.gz").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    os.symlink("/etc/hostname", tmp_path / "link")
    assert inside(str(tmp_path), "out.gz") == os.path.realpath(tmp_path / "out.gz")
    for name in ("missing", "sub", "link", "../x", "/etc/hostname"):
        assert inside(str(tmp_path), name) is None


def test_command_outputs_are_checked_names() -> None:
    def command(**kw: Any) -> Command:
        return Command.of(job(None, "runq.command", "gzip", "-k", "a.log", **kw))

    assert command(outputs=["a.log.gz", "a.log.gz"]).outputs == ("a.log.gz",)
    for bad in (["../x"], [".hidden"], "a.gz", [3]):
        with pytest.raises(InvalidArguments, match="outputs"):
            command(outputs=bad)


async def test_a_command_runs_in_the_workdir_and_keeps_its_outputs(work: Path) -> None:
    (work / "in.txt").write_text("hello")
    executor = CommandExecutor(CommandPolicy(allow_any=True, path="/usr/bin:/bin"))
    try:
        argv = ["cp", str(work / "in.txt"), "copy.txt"]
        result = await executor.start(job(work, "runq.command", *argv, outputs=["copy.txt"]))
        assert result["exit_code"] == 0
        assert result["outputs"] == [Artifact(str(work / "copy.txt"), "copy.txt")]
        assert (work / "copy.txt").read_text() == "hello"  # the directory is the stage's
        with pytest.raises(TaskError, match=r"output nothing\.txt was not made") as caught:
            await executor.start(job(work, "runq.command", "true", outputs=["nothing.txt"]))
        assert not error_info(caught.value).retryable
        with pytest.raises(InvalidArguments, match="file stage"):
            await executor.start(job(None, "runq.command", "true", outputs=["x"]))
    finally:
        await executor.close()


class Recorder:
    """An executor that notes the job it was handed."""

    def __init__(self, workdir: bool) -> None:
        self.seen: list[Assignment] = []
        self._workdir = workdir

    def wants_workdir(self, task: str) -> bool:
        return self._workdir

    def start(self, job: Assignment) -> Any:
        self.seen.append(job)
        return os.path.isdir(job.workdir) if job.workdir else "no workdir"


async def test_the_stage_sets_the_workdir_itself(tmp_path: Path) -> None:
    stage = FileStage(Requests(lambda msg: False, asyncio.Event()), str(tmp_path / "root"))
    stage.open()
    try:
        plain, wants = Recorder(workdir=False), Recorder(workdir=True)
        from_wire = job(Path("/etc"), "echo", "hi")  # a workdir from the wire is ignored
        assert stage.start(from_wire, plain) == "no workdir"
        assert plain.seen[0].workdir is None
        assert await stage.start(from_wire, wants) is True
        assert wants.seen[0].workdir == str(tmp_path / "root" / "job-7-1")
    finally:
        await stage.close()
    assert os.listdir(tmp_path / "root") == []  # removed after the job; a given root stays
