"""Artifacts and inputs on the worker port, against a real broker and a real store: a
raw worker (the protocol's own messages, no agent) takes a job with an input, reads the
input, uploads an artifact for the attempt it holds and reports it; clients then fetch
the artifact over the native port, the CLI's way and over HTTP. A worker reads only
the inputs of jobs it holds and uploads only for attempts it holds."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import runq
from runq.broker import BrokerConfig
from runq.model import Outcome
from runq.model.files import CHUNK, FileRef, artifact_ref
from runq.protocol import codec
from runq.protocol import limits as L
from runq.protocol import messages as m
from runq.testing import RunningBroker, run_broker


class RawWorker:
    """A worker connection speaking the protocol by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder: Any = codec.worker_side()
        self.inbox: list[Any] = []

    @classmethod
    async def connect(
        cls, rb: RunningBroker, worker_id: str = "raw", token: str | None = None
    ) -> RawWorker:
        reader, writer = await asyncio.open_connection(*rb.worker_address)
        hello = m.Hello(role="worker", version=L.PROTOCOL_VERSION, token=token, worker_id=worker_id)
        writer.write(codec.encode(hello))
        raw = cls(reader, writer)
        assert isinstance(await raw.next(), m.Welcome)
        return raw

    async def next(self, kind: type | tuple[type, ...] = object) -> Any:
        async with asyncio.timeout(5):
            while True:
                for i, msg in enumerate(self.inbox):
                    if isinstance(msg, kind):
                        return self.inbox.pop(i)
                data = await self.reader.read(1 << 20)
                assert data, "the broker closed the connection"
                self.inbox += self.decoder.feed(data)

    async def ask(self, msg: Any) -> Any:
        """Send a request and return the answer with its req (or the error)."""
        self.writer.write(codec.encode(msg))
        while True:
            reply = await self.next((m.UploadState, m.Uploaded, m.FileData, m.Error))
            if getattr(reply, "req", None) == msg.req:
                return reply

    async def upload(self, job: int, fence: int, name: str, data: bytes) -> FileRef:
        sha = hashlib.sha256(data).hexdigest()
        state = await self.ask(m.OpenArtifact(1, job, fence, name, len(data), sha))
        assert isinstance(state, m.UploadState), state
        for i, offset in enumerate(range(0, len(data), CHUNK)):
            chunk = data[offset : offset + CHUNK]
            got = await self.ask(m.UploadChunk(10 + i, state.blob, offset, chunk))
            assert isinstance(got, m.UploadState) and got.received == offset + len(chunk), got
        done = await self.ask(m.FinishUpload(2, state.blob))
        assert isinstance(done, m.Uploaded), done
        file: FileRef = done.file
        return file

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def hb() -> AsyncIterator[RunningBroker]:
    async with run_broker(http=True) as running:
        yield running


async def test_a_worker_reads_its_input_uploads_an_artifact_and_clients_fetch_it(
    hb: RunningBroker, tmp_path: Path
) -> None:
    # Given a job with an input file, and a raw worker that takes it
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(os.urandom(CHUNK + 99))
    async with hb.client() as client:
        job_id = await client.submit("thumbnail", runq.File(photo))
        worker = await RawWorker.connect(hb)
        try:
            (job,) = (await worker.next(m.Assign)).jobs
            assert job.id == job_id
            (ref,) = job.files  # the assignment names the input
            # When the worker reads its input...
            got = b""
            while len(got) < ref.size:
                read = await worker.ask(m.ReadFile(3, ref.blob, len(got), CHUNK))
                assert isinstance(read, m.FileData), read
                got += read.data
            assert got == photo.read_bytes()
            # ...uploads an artifact for the attempt it holds and reports it
            thumb = os.urandom(2 * CHUNK + 5)
            made = await worker.upload(job.id, job.fence, "thumb.jpg", thumb)
            outcome = Outcome(job.id, job.fence, True, {"thumb": artifact_ref(made)})
            worker.writer.write(codec.encode(m.Report(1, [outcome])))
            await worker.next(m.Reported)
        finally:
            worker.close()
        # Then the client downloads it (atomically, under its own name)...
        out = tmp_path / "out"
        (path,) = await client.download(job_id, out)
        assert path == out / "thumb.jpg" and path.read_bytes() == thumb
        assert [p.name for p in out.iterdir()] == ["thumb.jpg"]  # no part file left
    # ...and so does HTTP
    async with httpx.AsyncClient(base_url=hb.http_url, timeout=10) as http:
        r = await http.get(f"/api/v1/jobs/{job_id}/files/thumb.jpg")
        assert r.status_code == 200 and r.content == thumb
        assert r.headers["x-checksum-sha256"] == hashlib.sha256(thumb).hexdigest()
        page = await http.get(f"/jobs/{job_id}")
        assert f"/api/v1/jobs/{job_id}/files/thumb.jpg?kind=artifact" in page.text
        assert f"/api/v1/jobs/{job_id}/files/photo.jpg?kind=input" in page.text
        missing = await http.get(f"/api/v1/jobs/{job_id}/files/nope.jpg")
        assert missing.status_code == 404


async def test_a_worker_reads_only_inputs_of_jobs_it_holds(
    rb: RunningBroker, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_bytes(b"a")
    async with rb.client() as client:
        ref = await client.upload(tmp_path / "a.txt")
        worker = await RawWorker.connect(rb)
        try:
            refused = await worker.ask(m.ReadFile(5, ref.blob, 0, 10))
            assert isinstance(refused, m.Error) and refused.code == "forbidden"
        finally:
            worker.close()


async def test_a_worker_uploads_only_for_attempts_it_holds(rb: RunningBroker) -> None:
    async with rb.client() as client:
        job_id = await client.submit("t")
        worker = await RawWorker.connect(rb)
        try:
            (job,) = (await worker.next(m.Assign)).jobs
            sha = hashlib.sha256(b"").hexdigest()
            stale = await worker.ask(m.OpenArtifact(1, job_id, job.fence + 1, "x.txt", 0, sha))
            assert isinstance(stale, m.Error) and stale.code == "stale_fence"
            other = await worker.ask(m.OpenArtifact(2, job_id + 1000, 1, "x.txt", 0, sha))
            assert isinstance(other, m.Error) and other.code == "stale_fence"
        finally:
            worker.close()
    assert await rb.broker.store.stored_bytes() == 0


async def test_an_attempts_artifacts_are_bounded(tmp_path: Path) -> None:
    config = BrokerConfig(max_file_size=100, max_job_files=150)
    async with run_broker(config=config) as rb, rb.client() as client:
        await client.submit("t")
        worker = await RawWorker.connect(rb)
        try:
            (job,) = (await worker.next(m.Assign)).jobs
            sha = "0" * 64
            big = await worker.ask(m.OpenArtifact(1, job.id, job.fence, "a", 101, sha))
            assert isinstance(big, m.Error) and big.code == "file_too_large"
            first = await worker.ask(m.OpenArtifact(2, job.id, job.fence, "b", 100, sha))
            assert isinstance(first, m.UploadState)
            second = await worker.ask(m.OpenArtifact(3, job.id, job.fence, "c", 51, sha))
            assert isinstance(second, m.Error) and second.code == "file_too_large"
        finally:
            worker.close()
