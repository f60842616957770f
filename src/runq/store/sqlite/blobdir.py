"""The bytes of the SQLite store's blobs: one file each in a directory next to the
database (``<db>.files/``; a temporary one for ``:memory:``), ``<id>.part`` while the
upload runs and ``<id>`` once its size and SHA-256 are checked.

Every function here does file I/O and runs on the store's file thread, never on the
event loop or the writer thread. A file is renamed to ``<id>`` only after its bytes
were checked, so a file named so is complete.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

from runq.errors import StoreError
from runq.model.files import BlobInfo
from runq.store.files import (
    READ_CHUNK,
    Upload,
    check_write,
    finished,
    hash_all,
    mismatch,
    unknown,
)

PART: Final = ".part"
BLOB_NAME: Final = re.compile(r"^([0-9a-f]{32})(\.part)?$")


class BlobDir:
    def __init__(self, db_path: str) -> None:
        self._memory = db_path == ":memory:"
        self._root = None if self._memory else Path(db_path + ".files")

    @property
    def root(self) -> Path:
        if self._root is None:  # a store in memory: a temporary directory, made once
            self._root = Path(tempfile.mkdtemp(prefix="runq-files-"))
        return self._root

    def part(self, blob_id: str) -> Path:
        return self.root / (blob_id + PART)

    def done(self, blob_id: str) -> Path:
        return self.root / blob_id

    def close(self) -> None:
        """A temporary directory goes with the store."""
        if self._memory and self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)

    # -- uploads -------------------------------------------------------------------

    def create(self, blob_id: str) -> bool:
        """An empty ``.part`` file; False if the blob has a file already."""
        self.root.mkdir(exist_ok=True)
        if self.done(blob_id).exists():
            return False
        try:
            self.part(blob_id).open("xb").close()
        except FileExistsError:
            return False
        return True

    def append(self, info: BlobInfo, offset: int, data: bytes, upload: Upload) -> int:
        """Store ``data`` at ``offset`` of an upload (Conflict unless the file holds
        exactly ``offset`` bytes, or if it would pass the size); the bytes now stored."""
        try:
            f = self.part(info.id).open("r+b")  # never made here: a deleted blob stays gone
        except FileNotFoundError:
            raise (finished if self.done(info.id).exists() else unknown)(info.id) from None
        with f:
            stored = f.seek(0, os.SEEK_END)
            check_write(info, stored, offset, len(data))
            f.write(data)
        upload.add(offset, data)
        return offset + len(data)

    def received(self, blob_id: str) -> int:
        """The bytes an unfinished upload holds (its checked file's, when a finish was
        cut short after the rename: finishing again completes it; 0 without a file)."""
        for path in (self.part(blob_id), self.done(blob_id)):
            try:
                return path.stat().st_size
            except FileNotFoundError:
                pass
        return 0

    def seal(self, info: BlobInfo, upload: Upload, durable: bool) -> Exception | None:
        """Check the stored bytes: renamed to ``<id>`` when they match, else dropped (and
        the error returned). Bytes renamed already (a finish whose commit was lost) are
        checked again."""
        part, done = self.part(info.id), self.done(info.id)
        path = part if part.exists() or not done.exists() else done
        stored = path.stat().st_size if path.exists() else 0
        digest = None
        if stored == info.size:
            digest = upload.digest(stored) if path is part else None
            if digest is None:
                stored, digest = hash_all(_pieces(path))
        error = mismatch(info, stored, digest)
        if error is not None:
            done.unlink(missing_ok=True)
            part.open("wb").close()  # received goes back to 0
            return error
        if path is part:
            if durable:
                _fsync(part)
            part.rename(done)
        return None

    # -- reads and deletes ---------------------------------------------------------

    def read(self, blob_id: str, offset: int, length: int) -> bytes | None:
        """Up to ``length`` bytes of a complete blob from ``offset``; None if it has no
        complete file."""
        try:
            f = self.done(blob_id).open("rb")
        except FileNotFoundError:
            return None
        with f:
            f.seek(offset)
            return f.read(length)

    def remove(self, ids: Iterable[str]) -> None:
        for blob_id in ids:
            self.part(blob_id).unlink(missing_ok=True)
            self.done(blob_id).unlink(missing_ok=True)

    def listed(self) -> set[str]:
        """The blob ids that have a file here."""
        if self._root is None or not self._root.is_dir():
            return set()
        found = (BLOB_NAME.match(p.name) for p in self._root.iterdir())
        return {m.group(1) for m in found if m is not None}


def _pieces(path: Path) -> Iterator[bytes]:
    if not path.exists():
        return
    with path.open("rb") as f:
        while piece := f.read(READ_CHUNK):
            yield piece


def _fsync(path: Path) -> None:
    with path.open("rb+") as f:
        os.fsync(f.fileno())


def io_error(exc: OSError) -> StoreError:
    return StoreError(f"cannot store or read the bytes of a file: {exc.strerror or exc}")
