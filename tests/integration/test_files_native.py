"""Job input files over the native client port, against a real broker and a real store:
uploads of every size read back whole, a dropped connection resumed, limits and bad
names refused before anything is stored, and submits naming files that are not there
refused with nothing stored."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

import runq
from runq.broker import BrokerConfig
from runq.client import AsyncClient
from runq.client import files as client_files
from runq.client.transport import Transport
from runq.errors import (
    Conflict,
    FileError,
    FileMismatch,
    FileTooLarge,
    ScheduleError,
    UnknownFile,
)
from runq.model import JobSpec
from runq.model.files import CHUNK, EMPTY_SHA256, FileRef, new_blob_id
from runq.protocol import codec
from runq.protocol import limits as L
from runq.protocol import messages as m
from runq.testing import RunningBroker, run_broker

SIZES = {"empty": 0, "small": 1000, "multi-chunk": 2 * CHUNK + 12345}


@pytest.fixture
async def hb() -> AsyncIterator[RunningBroker]:
    async with run_broker(http=True) as running:
        yield running


def make_file(tmp_path: Path, name: str, size: int) -> tuple[Path, str]:
    data = os.urandom(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


async def nothing_stored(rb: RunningBroker) -> bool:
    store = rb.broker.store
    return await store.stored_bytes() == 0 and not await store.list_jobs(None, None, 10, None)


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_an_uploaded_input_is_submitted_and_reads_back_whole(
    hb: RunningBroker, tmp_path: Path, size: int
) -> None:
    # Given a local file
    path, sha = make_file(tmp_path, "photo.jpg", size)
    async with hb.client() as client:
        # When the client submits a job with it
        job_id = await client.submit("thumbnail", "200x200", runq.File(path))
        job = await client.get(job_id)
        # Then the job names the file, and its argument is the file's marker
        (ref,) = job.files
        assert (ref.name, ref.size, ref.sha256) == ("photo.jpg", size, sha)
        assert job.args == ["200x200", {"runq.file": "photo.jpg"}]
        # And the file reads back whole over the native port...
        copy = await client.download_file(ref, tmp_path / "copy.jpg", job_id)
        assert copy.read_bytes() == path.read_bytes()
    # ...and over HTTP, with its size, name and checksum
    async with httpx.AsyncClient(base_url=hb.http_url, timeout=10) as http:
        r = await http.get(f"/api/v1/jobs/{job_id}/files/photo.jpg")
    assert r.status_code == 200, r.text
    assert r.content == path.read_bytes()
    assert r.headers["x-checksum-sha256"] == sha
    assert r.headers["content-length"] == str(size)
    assert r.headers["content-disposition"] == 'attachment; filename="photo.jpg"'


async def test_an_empty_file_has_the_empty_checksum(hb: RunningBroker, tmp_path: Path) -> None:
    path, _ = make_file(tmp_path, "empty.txt", 0)
    async with hb.client() as client:
        ref = await client.upload(path)
    assert ref.size == 0 and ref.sha256 == EMPTY_SHA256


async def test_the_same_file_named_twice_is_sent_once(hb: RunningBroker, tmp_path: Path) -> None:
    path, _ = make_file(tmp_path, "a.bin", 10)
    async with hb.client() as client:
        job_id = await client.submit("t", runq.File(path), x=[runq.File(path)])
        job = await client.get(job_id)
    assert [f.name for f in job.files] == ["a.bin"]
    assert job.kwargs == {"x": [{"runq.file": "a.bin"}]}


async def test_a_dropped_connection_mid_upload_is_resumed(
    hb: RunningBroker, tmp_path: Path
) -> None:
    # Given a file of many chunks, and a connection that the test closes after the
    # third chunk went out
    path, sha = make_file(tmp_path, "big.bin", 10 * CHUNK + 7)
    connects: list[Transport] = []
    resumed: list[m.UploadState] = []
    async with hb.client() as client:

        async def connect() -> Transport:
            t = await client._conn()
            if not connects or connects[-1] is not t:
                connects.append(t)
                watch(t)
            return t

        def watch(t: Transport) -> None:
            sent = 0
            original = t.request

            def request(msg: Any, req: int) -> asyncio.Future[Any]:
                nonlocal sent
                fut = original(msg, req)
                if isinstance(msg, m.UploadChunk):
                    sent += 1
                    if sent == 3 and len(connects) == 1:
                        t.close()  # the connection drops with chunks in flight
                if isinstance(msg, m.ResumeUpload):
                    fut.add_done_callback(lambda f: resumed.append(f.result()))
                return fut

            t.request = request  # type: ignore[method-assign]

        # When it uploads the file
        ref = await client_files.upload(connect, path)
        # Then it reconnected once, resumed from what the broker had, and the file is whole
        assert len(connects) == 2
        assert len(resumed) == 1 and resumed[0].received % CHUNK == 0
        assert resumed[0].received <= 3 * CHUNK
        assert (ref.size, ref.sha256) == (path.stat().st_size, sha)
        copy = await client.download_file(ref, tmp_path / "copy.bin")
        assert copy.read_bytes() == path.read_bytes()


async def test_a_file_over_the_limit_is_refused_before_anything_is_stored(
    tmp_path: Path,
) -> None:
    config = BrokerConfig(max_file_size=1000)
    async with run_broker(config=config) as rb, rb.client() as client:
        path, _ = make_file(tmp_path, "big.bin", 1001)
        with pytest.raises(FileTooLarge, match="at most 1000 bytes"):
            await client.submit("t", runq.File(path))
        assert await nothing_stored(rb)


async def test_the_stored_bytes_quota_refuses_a_file_that_does_not_fit(tmp_path: Path) -> None:
    config = BrokerConfig(max_stored_bytes=1500)
    async with run_broker(config=config) as rb, rb.client() as client:
        await client.upload(make_file(tmp_path, "a.bin", 1000)[0])
        with pytest.raises(FileTooLarge, match="full"):
            await client.upload(make_file(tmp_path, "b.bin", 600)[0])
        assert await rb.broker.store.stored_bytes() == 1000


@pytest.mark.parametrize("name", ["../../etc/passwd", ".hidden", "a/b", "-rf", "a b"])
async def test_bad_names_are_refused_and_nothing_is_stored(
    rb: RunningBroker, tmp_path: Path, name: str
) -> None:
    path, sha = make_file(tmp_path, "ok.bin", 10)
    async with rb.client() as client:
        # The client refuses the name itself...
        with pytest.raises(FileError, match="not a file name"):
            await client.upload(path, name)
        with pytest.raises(FileError, match="not a file name"):
            await client.submit("t", runq.File(path, name))
    # ...and so does the broker, at decoding: the frame is invalid
    reader, writer = await asyncio.open_connection("127.0.0.1", rb.broker.client_port)
    writer.write(codec.encode(m.Hello(role="client", version=L.PROTOCOL_VERSION)))
    writer.write(codec.encode(m.OpenUpload(1, name, 10, sha)))
    replies = codec.client_side().feed(await read_until_closed(reader))
    writer.close()
    assert isinstance(replies[-1], m.Error) and replies[-1].code == "protocol_error"
    assert await nothing_stored(rb)


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(5):
        return await reader.read(-1)


async def open_partial(client: AsyncClient, data: bytes, declared: int) -> m.UploadState:
    """An upload opened for ``declared`` bytes that got only ``data``."""
    t = await client._conn()
    sha = hashlib.sha256(data).hexdigest()
    state: m.UploadState = await t.request(m.OpenUpload(1, "part.bin", declared, sha), 1)
    await t.request(m.UploadChunk(2, state.blob, 0, data), 2)
    return state


async def test_a_submit_naming_an_unfinished_upload_is_refused(
    rb: RunningBroker, client: AsyncClient
) -> None:
    state = await open_partial(client, b"x" * 10, 20)
    ref = FileRef("part.bin", state.blob, 20, hashlib.sha256(b"x" * 20).hexdigest())
    spec = JobSpec("t", args=[{"runq.file": "part.bin"}], files=[ref])
    with pytest.raises(FileError, match="not finished"):
        await client.submit_many([spec, JobSpec("echo")])
    assert not await rb.broker.store.list_jobs(None, None, 10, None)


async def test_a_submit_naming_an_unknown_blob_is_refused(
    rb: RunningBroker, client: AsyncClient
) -> None:
    ref = FileRef("x.bin", new_blob_id(), 3, hashlib.sha256(b"abc").hexdigest())
    with pytest.raises(UnknownFile):
        await client.submit_many([JobSpec("echo"), JobSpec("t", files=[ref])])
    assert not await rb.broker.store.list_jobs(None, None, 10, None)


async def test_a_submit_with_another_checksum_than_the_upload_is_refused(
    rb: RunningBroker, client: AsyncClient, tmp_path: Path
) -> None:
    ref = await client.upload(make_file(tmp_path, "a.bin", 100)[0])
    wrong = msgspec.structs.replace(ref, sha256="0" * 64)
    with pytest.raises(FileMismatch):
        await client.submit_many([JobSpec("t", files=[wrong])])
    assert not await rb.broker.store.list_jobs(None, None, 10, None)


async def test_a_marker_naming_no_file_of_the_job_is_refused(
    rb: RunningBroker, client: AsyncClient, tmp_path: Path
) -> None:
    ref = await client.upload(make_file(tmp_path, "a.bin", 5)[0])
    spec = JobSpec("t", args=[{"runq.file": "b.bin"}], files=[ref])
    with pytest.raises(FileError, match=r"b\.bin"):
        await client.submit_many([spec])
    assert not await rb.broker.store.list_jobs(None, None, 10, None)


async def test_chunks_out_of_order_are_refused(rb: RunningBroker, client: AsyncClient) -> None:
    state = await open_partial(client, b"x" * 10, 30)
    t = await client._conn()
    with pytest.raises(Conflict):
        await t.request(m.UploadChunk(3, state.blob, 20, b"y" * 10), 3)
    resumed: m.UploadState = await t.request(m.ResumeUpload(4, state.blob), 4)
    assert resumed.received == 10


async def test_a_chunk_for_an_upload_not_open_here_is_refused(
    rb: RunningBroker, client: AsyncClient
) -> None:
    state = await open_partial(client, b"x" * 10, 30)
    async with rb.client() as other:
        t = await other._conn()
        with pytest.raises(UnknownFile, match="open or resume"):
            await t.request(m.UploadChunk(1, state.blob, 10, b"y" * 10), 1)


async def test_a_schedule_cannot_carry_files(client: AsyncClient, tmp_path: Path) -> None:
    ref = await client.upload(make_file(tmp_path, "a.bin", 5)[0])
    t = await client._conn()
    spec = runq.client.aio.schedule_spec("s", "* * * * *", "t")
    bad = m.AddSchedule(1, msgspec.structs.replace(spec, job=JobSpec("t", files=[ref])))
    with pytest.raises(ScheduleError, match="cannot carry input files"):
        await t.request(bad, 1)


async def test_an_http_submit_naming_an_unfinished_upload_is_refused(
    hb: RunningBroker,
) -> None:
    async with hb.client() as client:
        state = await open_partial(client, b"x" * 10, 20)
    ref = {"name": "p.bin", "blob": state.blob, "size": 20, "sha256": "0" * 64}
    body = {"task": "t", "args": [{"runq.file": "p.bin"}], "files": [ref]}
    async with httpx.AsyncClient(base_url=hb.http_url, timeout=10) as http:
        r = await http.post("/api/v1/jobs", json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "file_error", r.text
    assert not await hb.broker.store.list_jobs(None, None, 10, None)


async def test_concurrent_uploads_on_one_connection_all_arrive(
    rb: RunningBroker, client: AsyncClient, tmp_path: Path
) -> None:
    # Given five files of many chunks, uploaded at once over one connection
    files = [make_file(tmp_path, f"f{i}.bin", 3 * CHUNK + i) for i in range(5)]
    refs = await asyncio.gather(*(client.upload(path) for path, _ in files))
    # Then each arrived whole (the connection's chunks in flight stay within the
    # broker's bound)
    assert [r.sha256 for r in refs] == [sha for _, sha in files]
