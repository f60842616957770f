"""Files on the command line, against a real broker (in a thread of its own, since the
CLI's client runs its own event loop): `runq submit --file`, `@NAME` words, `--output`
with `--cmd`, `runq status` and `runq result --out`; bad files and names exit 2 with
nothing uploaded or submitted."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from test_files_artifacts import RawWorker

from runq.cli.main import cli
from runq.client import Client
from runq.model import Outcome
from runq.model.files import artifact_ref
from runq.protocol import codec
from runq.protocol import messages as m
from runq.testing import RunningBroker, run_broker


class BrokerThread:
    def __init__(self) -> None:
        self.ready = threading.Event()
        self.rb: RunningBroker | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self.serve()), daemon=True)

    async def serve(self) -> None:
        async with run_broker() as rb:
            self.rb, self.loop, self.stop = rb, asyncio.get_running_loop(), asyncio.Event()
            self.ready.set()
            await self.stop.wait()

    def call(self, coro: Any) -> Any:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    @property
    def address(self) -> str:
        assert self.rb is not None
        return self.rb.client_address


@pytest.fixture
def broker() -> Iterator[BrokerThread]:
    bt = BrokerThread()
    bt.thread.start()
    assert bt.ready.wait(10)
    try:
        yield bt
    finally:
        assert bt.loop is not None and bt.stop is not None
        bt.loop.call_soon_threadsafe(bt.stop.set)
        bt.thread.join(10)


def runq(broker: BrokerThread, *args: str) -> Result:
    env = {"RUNQ_SERVER": broker.address, "RUNQ_TOKEN": ""}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def nothing_stored(broker: BrokerThread) -> bool:
    assert broker.rb is not None
    store = broker.rb.broker.store
    jobs = broker.call(store.list_jobs(None, None, 10, None))
    return broker.call(store.stored_bytes()) == 0 and not jobs


def test_submit_with_a_file_names_it_in_the_words(broker: BrokerThread, tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"jpeg bytes")
    done = runq(broker, "submit", "--file", str(photo), "thumbnail", "200x200", "@photo.jpg", "@x")
    assert done.exit_code == 0, done.output
    job_id = int(done.output.split(":")[1])
    with Client(broker.address) as client:
        job = client.get(job_id)
    assert job.args == ["200x200", {"runq.file": "photo.jpg"}, "@x"]
    (ref,) = job.files
    assert ref.sha256 == hashlib.sha256(b"jpeg bytes").hexdigest()
    shown = runq(broker, "status", str(job_id))
    assert "input     photo.jpg (10 bytes)" in shown.output


def test_a_command_job_lists_its_outputs(broker: BrokerThread, tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"x")
    argv = ["--cmd", "--output", "photo.jpg.gz", "--", "gzip", "-k", "@photo.jpg"]
    done = runq(broker, "submit", "--file", str(photo), *argv)
    assert done.exit_code == 0, done.output
    with Client(broker.address) as client:
        job = client.get(int(done.output.split(":")[1]))
    assert job.args == ["gzip", "-k", {"runq.file": "photo.jpg"}]
    assert job.kwargs == {"outputs": ["photo.jpg.gz"]}


@pytest.mark.parametrize(
    "args",
    [
        ["--file", "missing.txt", "t", "@missing.txt"],
        ["--file", ".hidden", "t"],
        ["--file", "ok.txt", "--file", "sub/ok.txt", "t"],
        ["--file", "ok.txt", "--cmd", "--output", "../out", "--", "ls"],
        ["--file", "ok.txt", "--output", "out", "t"],
    ],
    ids=["missing", "hidden", "same-name", "bad-output", "output-without-cmd"],
)
def test_bad_files_exit_2_and_nothing_is_sent(
    broker: BrokerThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("ok.txt", ".hidden", "sub/ok.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
    done = runq(broker, "submit", *args)
    assert done.exit_code == 2, done.output
    assert nothing_stored(broker)


def test_result_out_saves_the_artifacts(broker: BrokerThread, tmp_path: Path) -> None:
    # Given a job whose result holds an artifact (uploaded as a worker would, through
    # the broker's own upload code path, and reported)
    assert broker.rb is not None
    rb = broker.rb

    async def run_job() -> int:
        async with rb.client() as client:
            job_id = await client.submit("t")
            worker = await RawWorker.connect(rb)
            try:
                (job,) = (await worker.next(m.Assign)).jobs
                ref = await worker.upload(job.id, job.fence, "out.txt", b"made")
                outcome = Outcome(job.id, job.fence, True, [artifact_ref(ref)])
                worker.writer.write(codec.encode(m.Report(1, [outcome])))
                await worker.next(m.Reported)
            finally:
                worker.close()
            return job_id

    job_id = broker.call(run_job())
    # When `runq result N --out DIR` runs
    done = runq(broker, "result", str(job_id), "--out", str(tmp_path / "dir"))
    # Then it saved the artifact and printed its path
    assert done.exit_code == 0, done.output
    assert str(tmp_path / "dir" / "out.txt") in done.output
    assert (tmp_path / "dir" / "out.txt").read_bytes() == b"made"
