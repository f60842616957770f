"""The file built-ins: runq's own tasks on the files a job carries.

    gzip PATH                    -> Artifact PATH.gz
    gunzip PATH                  -> Artifact PATH without .gz
    sha256 PATH                  -> the file's SHA-256 (hex)
    thumbnail WIDTHxHEIGHT PATH  -> Artifact: the image shrunk to fit, same format
    convert FORMAT PATH          -> Artifact: the image as png, jpeg, webp, gif, bmp or tiff
    pdf PATH                     -> Artifact: the document as PDF (LibreOffice)

PATH is an input of the job (the file stage put it in the job's working directory): a
job cannot make a built-in read another file of the worker. Outputs go to ``.out/`` in
the working directory (a name no input can have). The work runs in a thread (or, for
pdf, a LibreOffice process), never in the worker's event loop, and streams: memory
stays flat whatever the size of the file (images are decoded whole, within Pillow's
pixel limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip as gz
import hashlib
import os
import re
import shutil
import signal
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

from runq.errors import FileError, InvalidArguments, Permanent, TaskError
from runq.files import Artifact
from runq.model import Assignment
from runq.model.files import DEFAULT_MAX_FILE, check_name

COPY_CHUNK: Final = 1024 * 1024
MAX_SIDE: Final = 10_000  # pixels, each side of a thumbnail
PDF_TIMEOUT: Final = 300.0  # seconds LibreOffice may take for one document
FORMATS: Final = {  # convert's FORMAT -> (Pillow's format, file extension)
    "png": ("PNG", ".png"),
    "jpeg": ("JPEG", ".jpg"),
    "jpg": ("JPEG", ".jpg"),
    "webp": ("WEBP", ".webp"),
    "gif": ("GIF", ".gif"),
    "bmp": ("BMP", ".bmp"),
    "tiff": ("TIFF", ".tiff"),
    "tif": ("TIFF", ".tiff"),
}
OFFICE_PATH: Final = "/usr/local/bin:/usr/bin:/bin"
FileTask = Callable[[Assignment], Awaitable[Artifact | str]]

if TYPE_CHECKING:
    from PIL.Image import Image


class NeedsProgram(Permanent):
    """The built-in needs a program this worker does not have (not retried)."""


class ConversionFailed(Permanent):
    """The file could not be converted (a damaged or unsupported file: not retried)."""


# -- arguments ----------------------------------------------------------------------


def _args(job: Assignment, count: int, usage: str) -> list[str]:
    if job.kwargs:
        raise InvalidArguments(f"{job.task} takes no keyword arguments: {usage}")
    if len(job.args) != count or not all(isinstance(a, str) for a in job.args):
        raise InvalidArguments(f"usage: {usage}")
    return list(job.args)


def _input(job: Assignment, path: str) -> Path:
    """``path`` if it is a file the job carries (in its working directory)."""
    if job.workdir is None:
        raise TaskError(f"{job.task} runs only on files sent with the job")
    root = os.path.realpath(job.workdir)
    real = os.path.realpath(path)
    if os.path.dirname(real) != root or not os.path.isfile(real):
        raise InvalidArguments(
            f"{job.task} works on a file sent with the job (runq.File, or @NAME on the"
            f" command line), not on {path!r}"
        )
    return Path(real)


def _output(job: Assignment, name: str) -> Path:
    """Where the output ``name`` goes: ``.out/`` in the working directory."""
    try:
        check_name(name)
    except FileError as exc:
        raise InvalidArguments(f"{job.task}: cannot name the output: {exc.message}") from None
    assert job.workdir is not None
    out = Path(job.workdir, ".out")
    out.mkdir(exist_ok=True)
    return out / name


# -- compression and digests ----------------------------------------------------------


async def gzip(job: Assignment) -> Artifact:
    (path,) = _args(job, 1, "gzip PATH")
    source = _input(job, path)
    target = _output(job, source.name + ".gz")
    await asyncio.to_thread(_gzip, source, target)
    return Artifact(target, target.name)


def _gzip(source: Path, target: Path) -> None:
    with open(source, "rb") as src, gz.GzipFile(target, "wb", mtime=0) as dst:
        shutil.copyfileobj(src, dst, COPY_CHUNK)


async def gunzip(job: Assignment) -> Artifact:
    (path,) = _args(job, 1, "gunzip PATH")
    source = _input(job, path)
    if not source.name.endswith(".gz") or len(source.name) == 3:
        raise InvalidArguments(f"gunzip takes a file named NAME.gz, not {source.name!r}")
    target = _output(job, source.name[:-3])
    await asyncio.to_thread(_gunzip, source, target)
    return Artifact(target, target.name)


def _gunzip(source: Path, target: Path, limit: int = DEFAULT_MAX_FILE) -> None:
    """Decompress within ``limit`` bytes (a small bomb must not fill the disk)."""
    written = 0
    try:
        with gz.open(source, "rb") as src, open(target, "wb") as dst:
            while chunk := src.read(COPY_CHUNK):
                written += len(chunk)
                if written > limit:
                    raise ConversionFailed(f"gunzip: {source.name} unpacks to over {limit} bytes")
                dst.write(chunk)
    except (gz.BadGzipFile, EOFError, zlib.error) as exc:
        raise ConversionFailed(f"gunzip: {source.name} is not a whole gzip file: {exc}") from None


async def sha256(job: Assignment) -> str:
    (path,) = _args(job, 1, "sha256 PATH")
    return await asyncio.to_thread(_sha256, _input(job, path))


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# -- images ---------------------------------------------------------------------------


async def thumbnail(job: Assignment) -> Artifact:
    size, path = _args(job, 2, "thumbnail WIDTHxHEIGHT PATH")
    found = re.fullmatch(r"([0-9]{1,5})x([0-9]{1,5})", size)
    box = (int(found[1]), int(found[2])) if found else (0, 0)
    if not all(1 <= side <= MAX_SIDE for side in box):
        raise InvalidArguments(
            f"thumbnail takes a size WIDTHxHEIGHT (1 to {MAX_SIDE} each), not {size!r}"
        )
    source = _input(job, path)
    target = _output(job, f"{source.stem}-{box[0]}x{box[1]}{source.suffix}")
    await asyncio.to_thread(_thumbnail, source, target, box)
    return Artifact(target, target.name)


def _thumbnail(source: Path, target: Path, box: tuple[int, int]) -> None:
    with _image(source) as img:
        fmt = img.format
        img.thumbnail(box)  # keeps the aspect ratio; never enlarges
        _save(img, target, fmt or "PNG")


async def convert(job: Assignment) -> Artifact:
    kind, path = _args(job, 2, "convert FORMAT PATH")
    if kind.lower() not in FORMATS:
        raise InvalidArguments(
            f"convert makes one of {', '.join(sorted(set(FORMATS) - {'jpg', 'tif'}))}, not {kind!r}"
        )
    fmt, ext = FORMATS[kind.lower()]
    source = _input(job, path)
    target = _output(job, source.stem + ext)
    await asyncio.to_thread(_convert, source, target, fmt)
    return Artifact(target, target.name)


def _convert(source: Path, target: Path, fmt: str) -> None:
    with _image(source) as img:
        _save(img, target, fmt)


def _image(path: Path) -> Image:
    from PIL import Image, UnidentifiedImageError  # only workers that make images load it

    try:
        return Image.open(path)
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ConversionFailed(f"{path.name} is not an image runq can read: {exc}") from None


def _save(img: Image, target: Path, fmt: str) -> None:
    """Save in ``fmt``, changing the colour mode when the format cannot hold it."""
    if fmt == "JPEG" and img.mode not in ("RGB", "L", "CMYK"):
        img = img.convert("RGB")
    try:
        img.save(target, format=fmt)
    except OSError:  # e.g. "cannot write mode RGBA as BMP"
        img.convert("RGBA" if "A" in img.mode else "RGB").save(target, format=fmt)


# -- documents ------------------------------------------------------------------------


def office() -> str | None:
    """LibreOffice's command on this worker, if it has one."""
    return shutil.which("soffice") or shutil.which("libreoffice")


async def pdf(job: Assignment) -> Artifact:
    (path,) = _args(job, 1, "pdf PATH")
    source = _input(job, path)
    program = office()
    if program is None:
        raise NeedsProgram("pdf needs LibreOffice on the worker (soffice not found)")
    target = _output(job, source.stem + ".pdf")
    outdir = target.parent
    assert job.workdir is not None
    profile = Path(job.workdir, ".office").as_uri()  # one profile per job: no lock fights
    argv = [program, f"-env:UserInstallation={profile}", "--headless", "--convert-to", "pdf"]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        "--outdir",
        str(outdir),
        str(source),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={"HOME": job.workdir, "PATH": OFFICE_PATH},
        cwd=job.workdir,
        start_new_session=True,
    )
    try:
        said, _ = await asyncio.wait_for(proc.communicate(), PDF_TIMEOUT)
    except TimeoutError:
        raise ConversionFailed(f"pdf: LibreOffice took over {PDF_TIMEOUT:g} s") from None
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # and whatever it left running
        if proc.returncode is None:
            await proc.wait()
    if proc.returncode != 0 or not target.is_file():
        tail = said[-2000:].decode("utf-8", "replace").strip()
        raise ConversionFailed(f"pdf: LibreOffice could not convert {source.name}: {tail}")
    return Artifact(target, target.name)


FILE_TASKS: Final[dict[str, FileTask]] = {
    "gzip": gzip,
    "gunzip": gunzip,
    "sha256": sha256,
    "thumbnail": thumbnail,
    "convert": convert,
    "pdf": pdf,
}
