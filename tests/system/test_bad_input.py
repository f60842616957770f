"""Bad input gets one clear error line (or an error frame) and changes nothing."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from runq.client.aio import spec
from runq.protocol import codec
from runq.protocol import limits as L
from runq.protocol import messages as m

from .harness import Cli, Procs, Server, counts

pytestmark = pytest.mark.system


def one_error_line(text: str) -> str:
    assert text.startswith("error: "), text
    assert text.endswith("\n") and text.count("\n") == 1, text
    return text[len("error: ") : -1]


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A port nobody listens on: bound here (without listen) so nobody else can take it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_cli_errors(server: Server, cli: Cli, tmp_path: Path) -> None:
    at = server.address
    cli("submit", "echo", "hi", server=at)
    before = counts(server)

    for args in (("status", 999), ("result", 999), ("result", 999, "--wait"), ("cancel", 999)):
        ran = cli(*args, server=at, ok=False)
        assert ran.code == 1, ran
        assert ran.out == ""
        assert one_error_line(ran.err) == "no job with id 999"
    ran = cli("retry", 999, server=at, ok=False)
    assert one_error_line(ran.err) == "no job with id 999"

    usage = [
        ("submit",),
        ("submit", "--priority", "x", "echo", "hi"),
        ("submit", "echo", "hi", "--delay", "-1"),
        ("submit", "echo", "hi", "--delay", "-5m"),
        ("submit", "echo", "hi", "--delay", "soon"),
        ("submit", "echo", "hi", "--delay", "inf"),
        ("submit", "echo", "hi", "--at", "tomorrow"),
        ("submit", "echo", "hi", "--at", "2026-13-01T09:00:00"),
        ("submit", "echo", "hi", "--at", "2026-12-01T09:00:00+01:00", "--delay", "5"),
        ("status", 0),
        ("status", "abc"),
        ("jobs", "--state", "bogus"),
        ("frobnicate",),
    ]
    for args in usage:
        ran = cli(*args, server=at, ok=False)
        assert ran.code == 2, ran
        assert ran.out == ""

    bad_task = cli("submit", "bad!task", server=at, ok=False)
    assert bad_task.code == 1
    assert "invalid job" in one_error_line(bad_task.err)

    assert counts(server) == before


BAD_BATCHES = {
    "bad json": ("echo ok\n{not json\n", "line 2: JSON is malformed"),
    "unclosed quote": ("echo ok\necho 'unclosed\n", "line 2: No closing quotation"),
    "unknown field": ('echo ok\n{"task": "echo", "bogus": 1}\n', "line 2: invalid job"),
    "json array": ('echo ok\n["echo", "x"]\n', "line 2: "),
    "retries text": ('echo ok\n{"task": "echo", "retries": "two"}\n', "line 2: "),
    "retries null": ('echo ok\n{"task": "echo", "retries": null}\n', "line 2: "),
    "retries list": ('echo ok\n{"task": "echo", "retries": [1]}\n', "line 2: "),
    "no jobs": ("\n# only a comment\n", "the batch has no jobs"),
}


@pytest.mark.parametrize("case", list(BAD_BATCHES))
def test_malformed_batch_stores_nothing(
    server: Server, cli: Cli, tmp_path: Path, case: str
) -> None:
    lines, why = BAD_BATCHES[case]
    at = server.address
    before = counts(server)
    batch = tmp_path / "batch.txt"
    batch.write_text(lines)
    for source, stdin in ((str(batch), None), ("-", lines)):
        ran = cli("submit", "--batch", source, input=stdin, server=at, ok=False)
        assert ran.code == 1, ran
        assert ran.out == ""
        assert one_error_line(ran.err).startswith(why), ran
    assert counts(server) == before


def test_no_broker(cli: Cli, dead_port: int) -> None:
    at = f"127.0.0.1:{dead_port}"
    for args in (("stats",), ("status", 1), ("submit", "echo", "hi"), ("jobs",), ("workers",)):
        ran = cli(*args, server=at, ok=False)
        assert ran.code == 1, ran
        assert ran.out == ""
        assert "cannot reach" in one_error_line(ran.err)
    ran = cli("stats", env={"RUNQ_SERVER": at}, ok=False)
    assert ran.code == 1
    assert f"cannot reach a broker at {at}" in one_error_line(ran.err)
    ran = cli("stats", server="127.0.0.1:notaport", ok=False)
    assert ran.code == 2
    assert "bad port" in one_error_line(ran.err)


def test_job_ids_out_of_range(server: Server, cli: Cli) -> None:
    """Ids past the protocol's bound are refused with one line, not a traceback."""
    cli("submit", "echo", "hi", server=server.address)
    before = counts(server)
    for bad in (2**62 + 1, 2**64, 10**30):
        for command in ("status", "result", "cancel", "retry", "jobs --before"):
            args = (*command.split(), bad)
            ran = cli(*args, server=server.address, ok=False)
            assert ran.code in (1, 2), ran
            assert ran.out == "", ran
            assert "Future exception" not in ran.err, ran
    assert counts(server) == before


def test_client_command_on_the_worker_port(server: Server, cli: Cli) -> None:
    ran = cli("submit", "echo", "hi", server=server.worker_address, ok=False)
    assert ran.code == 1
    assert one_error_line(ran.err) == "this port serves workers, not clients"
    assert sum(counts(server).values()) == 0


def exchange(port: int, payload: bytes, timeout: float = 15.0) -> list[Any]:
    """Send ``payload`` on a fresh connection; every message back until the broker closes."""
    decoder = codec.client_side()
    got: list[Any] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        while True:
            data = sock.recv(65536)  # a timeout here means the broker kept the socket open
            if not data:
                return got
            got += decoder.feed(data)


def hello(role: str) -> bytes:
    return codec.encode(m.Hello(role=role, version=L.PROTOCOL_VERSION))


SUBMIT = codec.encode(m.Submit(1, [spec("echo", "sneaky")]))


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(L.HEADER_SIZE, "big") + body


DEEP = b"\x93\xa6submit\x01" + b"\x91" * 100_000 + b"\xc0"  # ["submit", 1, [[[...]]]]
UNKNOWN = msgspec.msgpack.encode(["bogus", 1])
BAD_UTF8 = b"\x93\xa5hello\xa2\xff\xfe\x01"  # ["hello", <not UTF-8>, 1]

BAD_FRAMES = {
    "garbage body": ("client", b"\x00\x00\x00\x08\xc1garbage", "protocol_error", "malformed"),
    "http request": ("client", b"GET / HTTP/1.1\r\n\r\n", "frame_too_large", "exceeds"),
    "oversized length": ("client", b"\xff\xff\xff\xff\x00", "frame_too_large", "exceeds"),
    "submit before hello": ("client", SUBMIT, "protocol_error", "first message must be hello"),
    "wrong field type": (
        "client",
        hello("client") + frame(msgspec.msgpack.encode(["submit", 1, "x"])),
        "protocol_error",
        "invalid message",
    ),
    "unknown message": ("client", frame(UNKNOWN), "protocol_error", ""),
    "bad utf-8": ("client", frame(BAD_UTF8), "protocol_error", ""),
    "deep nesting": ("client", hello("client") + frame(DEEP), "protocol_error", ""),
    "old protocol version": (
        "client",
        codec.encode(m.Hello(role="client", version=L.PROTOCOL_VERSION + 99)),
        "protocol_error",
        "not supported",
    ),
    "client submit on worker port": ("worker", SUBMIT, "protocol_error", "not accepted here"),
    "client hello on worker port": ("worker", hello("client"), "auth_error", "serves workers"),
    "worker hello on client port": ("client", hello("worker"), "auth_error", "serves clients"),
    "submit after worker hello": (
        "worker",
        codec.encode(m.Hello(role="worker", version=L.PROTOCOL_VERSION, worker_id="w-raw"))
        + SUBMIT,
        "protocol_error",
        "not accepted here",
    ),
}


@pytest.fixture(scope="module")
def frames_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One broker for every bad-frame case: each must leave it serving and unchanged."""
    owner = Procs(tmp_path_factory.mktemp("frames"))
    try:
        server = owner.server()
        with server.client() as client:
            client.submit("echo", "before")
        yield server
    finally:
        owner.teardown()
    assert not owner.tracebacks(), server.text()


@pytest.mark.parametrize("case", list(BAD_FRAMES))
def test_bad_frames_get_an_error_frame_and_change_nothing(
    frames_server: Server, cli: Cli, case: str
) -> None:
    server = frames_server
    port_role, payload, code, text = BAD_FRAMES[case]
    before = counts(server)

    port = server.port if port_role == "client" else server.worker_port
    got = [msg for msg in exchange(port, payload) if not isinstance(msg, m.Welcome)]
    assert len(got) == 1, got
    error = got[0]
    assert isinstance(error, m.Error), error
    assert error.code == code, error
    assert text in error.message, error

    # The broker is still serving, and nothing changed.
    assert server.alive
    stats = cli("stats", "--json", server=server.address).json()
    assert stats["jobs"] == before
    assert stats["workers"] == 0
    assert cli("status", 1, server=server.address).out.startswith("Job 1: queued")
