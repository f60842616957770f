"""Files through the real commands: round trips with checksums (empty, small, large and
sparse; 2 GiB behind the soak marker), and workers killed with SIGKILL while they
download an input or upload an artifact (the job runs again, no half file is served)."""

from __future__ import annotations

import gzip
import hashlib
import sqlite3
from pathlib import Path

import pytest

from runq.errors import UnknownFile
from runq.model.files import FileRef

from .harness import Cli, Procs, Server, job_id, wait_for_workers, wait_until

pytestmark = pytest.mark.system
MiB = 2**20

BIG_TASK = """
import os
import tempfile

import runq


@runq.task(name="make_big")
def make_big(size: int) -> runq.Artifact:
    path = os.path.join(tempfile.mkdtemp(prefix="runq-big-"), "big.bin")
    with open(path, "wb") as f:
        f.truncate(size)  # sparse: zeros that cost no disk
    return runq.Artifact(path)
"""


def sparse(path: Path, size: int, head: bytes = b"") -> Path:
    with path.open("wb") as f:
        f.write(head)
        f.truncate(size)
    return path


def sha256_of(path: Path, unzip: bool = False) -> str:
    h = hashlib.sha256()
    with gzip.open(path, "rb") if unzip else path.open("rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def round_trip(cli: Cli, server: Server, path: Path, out: Path) -> None:
    """gzip the file on a worker, fetch the artifact, check it unzips to the same bytes."""
    at = server.address
    ran = cli("submit", "--file", path, "gzip", f"@{path.name}", server=at, timeout=600)
    job = job_id(ran.out)
    cli("result", job, "--wait", "--timeout", 600, server=at, timeout=620)
    saved = cli("result", job, "--out", out, server=at, timeout=600).out.splitlines()
    assert saved[0].startswith(f"artifact {path.name}.gz (")  # the result, then the paths
    assert saved[1:] == [str(out / f"{path.name}.gz")]
    assert sha256_of(out / f"{path.name}.gz", unzip=True) == sha256_of(path)
    status = cli("status", job, server=at).out
    assert f"input     {path.name}" in status and f"artifact  {path.name}.gz" in status


@pytest.mark.parametrize("size", [0, 10, 48 * MiB + 17], ids=["empty", "small", "48MiB"])
def test_files_round_trip_with_their_checksums(
    procs: Procs, server: Server, cli: Cli, tmp_path: Path, size: int
) -> None:
    procs.worker(server, "w-files")
    path = sparse(tmp_path / "data.bin", size, b"head of the file" if size else b"")
    round_trip(cli, server, path, tmp_path / "out")


@pytest.mark.soak
def test_a_2gib_sparse_file_round_trips(procs: Procs, cli: Cli, tmp_path: Path) -> None:
    server = procs.server(extra=["--max-file-size", "3GiB", "--max-job-files", "3GiB"])
    procs.worker(server, "w-big")
    path = sparse(tmp_path / "big.bin", 2 * 2**30 + 5, b"a 2 GiB file")
    round_trip(cli, server, path, tmp_path / "out")


def test_a_worker_killed_while_downloading_an_input(
    procs: Procs, server: Server, cli: Cli, tmp_path: Path
) -> None:
    # Given: a job whose 600 MiB input a worker is downloading.
    at = server.address
    path = sparse(tmp_path / "input.bin", 600 * MiB, b"input")
    root = tmp_path / "root-a"
    args = ["worker", "--server", server.worker_address, "--id", "w-a", "--workroot", root]
    a = procs.spawn("worker-a", args)
    wait_for_workers(server, {"w-a"}, a)
    job = job_id(cli("submit", "--file", path, "sha256", "@input.bin", server=at).out)

    def partly_downloaded() -> bool:
        found = [p for p in root.glob("job-*/*") if p.is_file()]
        return bool(found) and 0 < found[0].stat().st_size < 600 * MiB

    wait_until(partly_downloaded, 60, interval=0.01, what="the download to begin")
    # When: it is killed mid-download, and another worker comes.
    a.kill()
    procs.worker(server, "w-b")
    # Then: the job runs again and gets the whole, right file.
    done = cli("result", job, "--wait", "--timeout", 120, server=at, timeout=140).out.strip()
    assert done == sha256_of(path)
    status = cli("status", job, "--json", server=at).json()
    assert status["attempts"] == 2 and status["worker"] == "w-b"


def test_a_worker_killed_while_uploading_an_artifact(
    procs: Procs, server: Server, cli: Cli, tmp_path: Path
) -> None:
    # Given: a task that makes a 600 MiB artifact, on a worker we will kill.
    at = server.address
    (tmp_path / "bigtask.py").write_text(BIG_TASK)
    args = ["worker", "bigtask", "--server", server.worker_address, "-c", "1"]
    a = procs.spawn("worker-a", [*args, "--id", "w-a"])
    wait_for_workers(server, {"w-a"}, a)
    size = 600 * MiB
    job = job_id(cli("submit", "make_big", str(size), server=at).out)
    blobs = Path(f"{server.store}.files")

    def partly_uploaded() -> bool:
        parts = list(blobs.glob("*.part"))
        return bool(parts) and parts[0].stat().st_size > 0

    wait_until(partly_uploaded, 60, interval=0.01, what="the upload to begin")
    # When: the worker is killed mid-upload, and another one comes.
    a.kill()
    b = procs.spawn("worker-b", [*args, "--id", "w-b"])
    wait_for_workers(server, {"w-b"}, b)
    cli("result", job, "--wait", "--timeout", 120, server=at, timeout=140)
    # Then: the second attempt's artifact is whole; the first one's half is never served.
    out = tmp_path / "out"
    saved = cli("result", job, "--out", out, server=at, timeout=120).out.splitlines()
    assert saved == ["artifact big.bin (600.0 MiB)", str(out / "big.bin")]
    assert (out / "big.bin").stat().st_size == size
    assert sha256_of(out / "big.bin") == hashlib.sha256(bytes(size)).hexdigest()
    with sqlite3.connect(f"file:{server.store}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT id, complete, fence FROM blobs WHERE kind = 'artifact' ORDER BY fence"
        ).fetchall()
    assert [(bool(done), fence) for _, done, fence in rows] == [(False, 1), (True, 2)]
    half = FileRef("big.bin", rows[0][0], size, hashlib.sha256(bytes(size)).hexdigest())
    with server.client() as client, pytest.raises(UnknownFile):
        client.download_file(half, tmp_path / "half.bin", job_id=job)
    assert not (tmp_path / "half.bin").exists()
    assert cli("status", job, "--json", server=at).json()["attempts"] == 2
