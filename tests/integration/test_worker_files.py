"""The worker's file stage against a real broker (runq.testing.run_broker): inputs
downloaded into the job's working directory and handed to the task as paths, artifacts
uploaded before the report and kept with the result, the file built-ins, command jobs'
outputs, and the failures (damaged or missing input, an artifact over the broker's
limit, a connection dropped mid-transfer).

These tests need the broker's handlers for the file messages and the store's blobs
(broker/files.py, the stores' FileStore); they were written while those were being
written."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import importlib
import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest
from PIL import Image

import runq
from runq.broker import BrokerConfig
from runq.client import AsyncClient
from runq.model import Job, JobSpec
from runq.model.files import ARTIFACT_MARKER, file_marker, ref_of_artifact
from runq.protocol import messages as m
from runq.testing import RunningBroker, run_broker
from runq.worker import Agent
from runq.worker.executors.base import Executor
from runq.worker.executors.command import CommandExecutor, CommandPolicy
from runq.worker.executors.python import PoolConfig, PythonExecutor

MODULE = "runq_it_file_tasks"
TASKS = '''
import os
import tempfile

import runq


@runq.task
def shout(path: str) -> dict:
    """Reads its input, writes two artifacts: one by a relative path, one by name."""
    with open(path) as f:
        text = f.read()
    with open(os.path.join(os.environ["RUNQ_WORKDIR"], "loud.txt"), "w") as f:
        f.write(text.upper())
    return {"in": path, "outs": [runq.Artifact("loud.txt"), runq.Artifact(path, "same.txt")]}


@runq.task
def echo(value):
    return value


@runq.task
def big(n: int) -> runq.Artifact:
    # no input, so no working directory: a file of the task's own, by absolute path
    path = os.path.join(tempfile.mkdtemp(prefix="runq-it-"), "big.bin")
    with open(path, "wb") as f:
        f.write(b"x" * n)
    return runq.Artifact(path)
'''
WAIT = 20.0


@dataclass
class Setup:
    rb: RunningBroker
    agent: Agent
    client: AsyncClient


@pytest.fixture
def tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    (tmp_path / f"{MODULE}.py").write_text(TASKS)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    module = importlib.import_module(MODULE)
    monkeypatch.delitem(sys.modules, MODULE)
    return module


async def started(rb: RunningBroker) -> Setup:
    policy = CommandPolicy(allow=frozenset({"gzip", "true"}), path=os.defpath + ":/usr/bin")
    pool = PythonExecutor(PoolConfig(modules=(MODULE,), size=1))
    executors: list[Executor] = [pool, CommandExecutor(policy)]
    agent = await rb.add_worker(concurrency=2, executors=executors)
    return Setup(rb, agent, rb.client())


@pytest.fixture
async def setup(tasks: ModuleType) -> AsyncIterator[Setup]:
    async with run_broker() as rb:
        s = await started(rb)
        async with s.client:
            yield s


async def finished(client: AsyncClient, job_id: int) -> Job:
    await client.wait(job_id, WAIT)
    return await client.get(job_id)


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {check}"
        await asyncio.sleep(0.02)


def no_workdirs(agent: Agent) -> bool:
    return not os.listdir(agent.files.root)


def sample(path: Path, size: int) -> Path:
    path.write_bytes(secrets.token_bytes(size // 2) + b"runq " * (size // 10))
    return path


# -- the built-ins ----------------------------------------------------------------------


async def test_gzip_gunzip_and_sha256_on_uploaded_files(setup: Setup, tmp_path: Path) -> None:
    client = setup.client
    original = sample(tmp_path / "data.bin", 1_500_000)  # several chunks each way
    data = original.read_bytes()
    packed = await client.submit("gzip", runq.File(original))
    ref = ref_of_artifact(await client.result(packed, WAIT))
    assert ref is not None and ref.name == "data.bin.gz"
    (got,) = await client.download(packed, tmp_path / "out")
    assert got.name == "data.bin.gz" and gzip.decompress(got.read_bytes()) == data

    unpacked = await client.submit("gunzip", runq.File(got))
    await client.result(unpacked, WAIT)
    (back,) = await client.download(unpacked, tmp_path / "back")
    assert back.name == "data.bin" and back.read_bytes() == data

    digest = await client.submit("sha256", runq.File(original))
    assert await client.result(digest, WAIT) == hashlib.sha256(data).hexdigest()
    await eventually(lambda: no_workdirs(setup.agent))  # each removed after its report


async def test_thumbnail_of_an_uploaded_image(setup: Setup, tmp_path: Path) -> None:
    Image.new("RGB", (640, 480), (20, 120, 220)).save(tmp_path / "photo.jpg", format="JPEG")
    job_id = await setup.client.submit("thumbnail", "160x160", runq.File(tmp_path / "photo.jpg"))
    await setup.client.result(job_id, WAIT)
    (thumb,) = await setup.client.download(job_id, tmp_path / "out")
    assert thumb.name == "photo-160x160.jpg"
    with Image.open(thumb) as img:
        assert (img.format, img.size) == ("JPEG", (160, 120))


# -- Python tasks -----------------------------------------------------------------------


async def test_a_python_task_gets_paths_and_returns_artifacts(setup: Setup, tmp_path: Path) -> None:
    (tmp_path / "words.txt").write_text("quiet words")
    job_id = await setup.client.submit(f"{MODULE}.shout", runq.File(tmp_path / "words.txt"))
    result = await setup.client.result(job_id, WAIT)
    # The task got the path of its copy, in the job's directory under the work root.
    assert os.path.basename(result["in"]) == "words.txt"
    assert os.path.dirname(os.path.dirname(result["in"])) == setup.agent.files.root
    loud, same = (ref_of_artifact(r) for r in result["outs"])
    assert loud is not None and same is not None
    assert (loud.name, loud.size, same.name) == ("loud.txt", 11, "same.txt")
    paths = await setup.client.download(job_id, tmp_path / "out")
    assert {p.name: p.read_text() for p in paths} == {
        "loud.txt": "QUIET WORDS",
        "same.txt": "quiet words",
    }


async def test_a_marker_from_the_arguments_is_not_uploaded(setup: Setup) -> None:
    """A job cannot make the worker upload one of its files by echoing a marker: only
    the Artifacts a task returns count."""
    forged = {ARTIFACT_MARKER: "/etc/passwd", "name": "passwd"}
    job_id = await setup.client.submit(f"{MODULE}.echo", forged)
    assert await setup.client.result(job_id, WAIT) == forged


# -- command jobs -----------------------------------------------------------------------


async def test_a_command_runs_among_its_inputs_and_keeps_its_outputs(
    setup: Setup, tmp_path: Path
) -> None:
    (tmp_path / "big.log").write_text("line\n" * 10_000)
    job_id = await setup.client.submit(
        "runq.command",
        *("gzip", "-k"),
        runq.File(tmp_path / "big.log"),
        kwargs={"outputs": ["big.log.gz"]},
    )
    result = await setup.client.result(job_id, WAIT)
    assert result["exit_code"] == 0
    (ref,) = (ref_of_artifact(r) for r in result["outputs"])
    assert ref is not None and ref.name == "big.log.gz"
    (got,) = await setup.client.download(job_id, tmp_path / "out")
    assert gzip.decompress(got.read_bytes()) == (tmp_path / "big.log").read_bytes()


async def test_a_missing_output_fails_for_good(setup: Setup) -> None:
    job_id = await setup.client.submit(
        "runq.command", "true", kwargs={"outputs": ["out.gz"]}, retries=3
    )
    job = await finished(setup.client, job_id)
    assert job.state == "failed" and job.attempts == 1, job
    assert job.error is not None and job.error.message == "output out.gz was not made"
    assert job.error.retryable is False


# -- failures ---------------------------------------------------------------------------


def tamper(agent: Agent, change: Callable[[Any], Any]) -> None:
    """Pass every message the broker sends through ``change`` before the worker reads
    it (a fault injected on the real connection)."""
    answer = agent.requests.answer
    agent.requests.answer = lambda msg: answer(change(msg))  # type: ignore[method-assign]


async def test_a_damaged_input_fails_the_attempt_retryably(setup: Setup, tmp_path: Path) -> None:
    def flip(msg: Any) -> Any:
        if isinstance(msg, m.FileData) and msg.data:
            return msgspec.structs.replace(msg, data=bytes([msg.data[0] ^ 1]) + msg.data[1:])
        return msg

    tamper(setup.agent, flip)
    job_id = await setup.client.submit("sha256", runq.File(sample(tmp_path / "a.bin", 1000)))
    job = await finished(setup.client, job_id)
    assert job.state == "failed" and job.error is not None, job
    assert job.error.code == "file_mismatch" and job.error.retryable is True
    assert job.error.message == "input a.bin arrived damaged: its SHA-256 does not match"


async def test_a_lost_input_fails_the_attempt_retryably(setup: Setup, tmp_path: Path) -> None:
    ref = await setup.client.upload(sample(tmp_path / "b.bin", 100))
    store_dir = Path(setup.rb.store_url.removeprefix("sqlite:///")).parent
    (stored,) = store_dir.rglob(ref.blob)
    stored.unlink()  # the broker's disk lost the bytes
    spec = JobSpec("sha256", args=[file_marker("b.bin")], files=[ref], max_attempts=1)
    (job_id,) = await setup.client.submit_many([spec])
    job = await finished(setup.client, job_id)
    assert job.state == "failed" and job.error is not None, job
    assert job.error.retryable is True
    assert job.error.message.startswith("input b.bin could not be fetched: "), job.error


async def test_an_artifact_over_the_brokers_limit_fails_for_good(tasks: ModuleType) -> None:
    async with run_broker(config=BrokerConfig(max_file_size=4000)) as rb:
        s = await started(rb)
        async with s.client:
            job_id = await s.client.submit(f"{MODULE}.big", 5000, retries=3)
            job = await finished(s.client, job_id)
            assert job.state == "failed" and job.attempts == 1, job
            assert job.error is not None and job.error.code == "file_too_large"
            assert job.error.retryable is False
            assert "at most 4000 bytes" in job.error.message, job.error
            ok = await s.client.submit(f"{MODULE}.big", 3000)
            assert ref_of_artifact(await s.client.result(ok, WAIT)) is not None


async def test_a_connection_dropped_mid_download_is_survived(setup: Setup, tmp_path: Path) -> None:
    agent = setup.agent
    request = agent.requests.request
    sent = 0

    def drop_after_two(make: Any) -> Any:
        nonlocal sent
        fut = request(make)
        sent += 1
        if sent == 2 and agent._writer is not None:  # once
            agent._writer.close()  # the connection drops with reads in flight
        return fut

    agent.requests.request = drop_after_two  # type: ignore[method-assign]
    original = sample(tmp_path / "c.bin", 3_000_000)
    job_id = await setup.client.submit("sha256", runq.File(original))
    digest = hashlib.sha256(original.read_bytes()).hexdigest()
    assert await setup.client.result(job_id, WAIT) == digest
    assert sent > 2


async def test_a_connection_dropped_mid_upload_is_survived(setup: Setup, tmp_path: Path) -> None:
    agent = setup.agent
    request = agent.requests.request
    sent: list[str] = []

    def drop_after_two_chunks(make: Any) -> Any:
        fut = request(make)
        sent.append(type(make(0)).__name__)
        if sent == ["OpenArtifact", "UploadChunk", "UploadChunk"] and agent._writer is not None:
            agent._writer.close()  # the connection drops with chunks in flight
        return fut

    agent.requests.request = drop_after_two_chunks  # type: ignore[method-assign]
    job_id = await setup.client.submit(f"{MODULE}.big", 3_000_000)
    ref = ref_of_artifact(await setup.client.result(job_id, WAIT))
    assert ref is not None and ref.size == 3_000_000
    (got,) = await setup.client.download(job_id, tmp_path / "out")
    assert got.read_bytes() == b"x" * 3_000_000
    # It went on where the broker had stopped, or, when the broker gave the job back
    # before the worker was back, the next attempt uploaded it whole.
    assert sent[3] in ("ResumeUpload", "OpenArtifact"), sent
