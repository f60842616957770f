"""The connection limits set on the command line of a real `runq server`."""

from __future__ import annotations

import socket

import pytest

from runq.errors import RunqError
from runq.protocol import codec
from runq.protocol import messages as m

from .harness import Procs, wait_until

pytestmark = pytest.mark.system


def test_connections_per_address_and_bad_limit_flags(procs: Procs) -> None:
    # Bad values: exit 2 and a clear message, nothing started.
    store = f"sqlite:///{procs.tmp_path / 'bad.db'}"
    for flag, value, message in [
        ("--idle-timeout", "0", "must be greater than 0"),
        ("--max-connections-per-address", "0", "0 is not in the range"),
        ("--max-file-size", "lots", "is not a size"),
    ]:
        proc = procs.spawn("bad", ["server", "--store", store, flag, value])
        assert proc.wait_exit() == 2
        assert message in proc.text(), proc.text()
    # A broker that lets one address hold 2 connections refuses the third.
    server = procs.server(extra=["--max-connections-per-address", "2", "--idle-timeout", "forever"])
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
    try:
        third = socket.create_connection(("127.0.0.1", server.port))
        third.settimeout(5)
        decoder = codec.client_side()
        answers: list[object] = []
        while not answers and (data := third.recv(65536)):
            answers += decoder.feed(data)
        third.close()
        assert isinstance(answers[0], m.Error) and answers[0].code == "too_many_connections"
    finally:
        for sock in held:
            sock.close()

    def served() -> bool:  # once they are gone (the broker sees them close), one gets in
        try:
            with server.client() as client:
                return client.stats()["jobs"]["queued"] == 0
        except RunqError:
            return False

    wait_until(served, 10, what="a client to be served again")
