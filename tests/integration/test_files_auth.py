"""Access tokens and files: uploading needs a submit scope (or admin); a file reads only
for a token that may see its job; refusals store nothing. Native port and HTTP."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from auth_support import World, exchange, make_world

import runq
from runq.client import AsyncClient
from runq.errors import Forbidden, UnknownFile
from runq.model.files import FileRef
from runq.protocol import messages as m

SHA = hashlib.sha256(b"hello").hexdigest()


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async for w in make_world():
        yield w


async def input_of(world: World, token: str, queue: str, tmp_path: Path) -> tuple[int, FileRef]:
    """A job of ``queue`` with one input, submitted with ``token``."""
    path = tmp_path / f"{queue}.txt"
    path.write_bytes(b"hello")
    async with AsyncClient(world.rb.client_address, token=token) as client:
        job_id = await client.submit("t", runq.File(path), queue=queue)
        return job_id, (await client.get(job_id)).files[0]


async def test_a_read_token_may_not_upload(world: World) -> None:
    token = world.tokens.read
    answers = await exchange(world.rb.broker.client_port, token, m.OpenUpload(1, "a.txt", 5, SHA))
    assert isinstance(answers[0], m.Error) and answers[0].code == "forbidden"
    assert answers[0].req == 1
    assert await world.rb.broker.store.stored_bytes() == 0


async def test_a_submit_token_uploads_and_reads_back_its_own_jobs_inputs(
    world: World, tmp_path: Path
) -> None:
    job_id, ref = await input_of(world, world.tokens.submit, "q1", tmp_path)
    async with AsyncClient(world.rb.client_address, token=world.tokens.submit) as client:
        # as a file of its job: allowed
        copy = await client.download_file(ref, tmp_path / "copy.txt", job_id)
        assert copy.read_bytes() == b"hello"
    async with AsyncClient(world.rb.client_address, token=world.tokens.submit) as client:
        # with no job named: a token without read scope may not
        with pytest.raises(Forbidden, match="name the job"):
            await client.download_file(ref, tmp_path / "copy2.txt")
    assert not (tmp_path / "copy2.txt").exists()


async def test_a_submit_token_may_not_read_the_files_of_another_queue(
    world: World, tmp_path: Path
) -> None:
    job_id, ref = await input_of(world, world.tokens.admin, "q2", tmp_path)
    async with AsyncClient(world.rb.client_address, token=world.tokens.submit) as client:
        with pytest.raises(Forbidden):
            await client.download_file(ref, tmp_path / "copy.txt", job_id)
        other, _ = await input_of(world, world.tokens.submit, "q1", tmp_path)
        with pytest.raises(UnknownFile, match="not a file of job"):
            await client.download_file(ref, tmp_path / "copy.txt", other)
    # a read token may read any job's files
    async with AsyncClient(world.rb.client_address, token=world.tokens.read) as client:
        copy = await client.download_file(ref, tmp_path / "copy.txt")
        assert copy.read_bytes() == b"hello"


async def test_http_downloads_follow_the_jobs_access(world: World, tmp_path: Path) -> None:
    job_id, _ = await input_of(world, world.tokens.admin, "q2", tmp_path)
    url = f"{world.rb.http_url}/api/v1/jobs/{job_id}/files/q2.txt"
    t = world.tokens
    async with httpx.AsyncClient(timeout=10) as http:
        answers = {
            who: (await http.get(url, headers=headers)).status_code
            for who, headers in {
                "none": {},
                "submit:q1": {"Authorization": f"Bearer {t.submit}"},
                "work:q1": {"Authorization": f"Bearer {t.work}"},
                "read": {"Authorization": f"Bearer {t.read}"},
            }.items()
        }
    assert answers == {"none": 401, "submit:q1": 403, "work:q1": 403, "read": 200}
