"""The real `runq server`, `runq up`, `runq worker` and client commands over TLS."""

from __future__ import annotations

import re
import ssl
from typing import Any

import httpx
import pytest

from tls_pki import Pki

from .harness import Cli, Procs, Server, job_id, wait_until

pytestmark = pytest.mark.system
HTTPS = re.compile(r"HTTPS on (https://127\.0\.0\.1:\d+/)")


def tls_server(procs: Procs, pki: Pki, *more: str) -> Server:
    return procs.server(extra=["--tls-cert", pki.cert, "--tls-key", pki.key, *more])


def workers(cli: Cli, at: str, env: dict[str, str]) -> list[Any]:
    found: list[Any] = cli("workers", "--json", server=at, env=env).json()
    return found


def test_server_worker_and_cli_over_tls(procs: Procs, cli: Cli, pki: Pki) -> None:
    # Given a broker serving TLS and a worker that trusts its CA
    server = tls_server(procs, pki)
    assert "listening with TLS" in server.text()
    procs.spawn("worker", ["worker", "--server", server.worker_address, "--tls-ca", pki.ca])
    trust = {"RUNQ_TLS_CA": str(pki.ca)}
    wait_until(lambda: workers(cli, server.address, trust), 30, 0.1, "the worker")

    # When a job is submitted with --tls-ca and its result read with $RUNQ_TLS_CA
    ran = cli("submit", "echo", "secret", "--tls-ca", pki.ca, server=server.address)
    out = cli(
        "result", job_id(ran.out), "--wait", "--timeout", 30, server=server.address, env=trust
    )

    # Then it ran over TLS, and HTTPS answers with the same certificate
    assert out.out == "secret\n"
    found = HTTPS.search(server.text())
    assert found, server.text()
    verify = ssl.create_default_context(cafile=str(pki.ca))
    assert httpx.get(f"{found.group(1)}health", verify=verify).status_code == 200

    # And a plaintext client gets one clear line, and the broker lives on
    plain = cli("stats", server=server.address, ok=False)
    assert plain.code == 1
    assert "closed the connection before its welcome (does it serve TLS?" in plain.err
    wrong = cli("stats", "--tls-ca", pki.other_ca, server=server.address, ok=False)
    assert "certificate verify failed" in wrong.err
    assert cli("stats", "--json", server=server.address, env=trust).json()["workers"] == 1


def test_up_starts_local_workers_that_trust_its_certificate(
    procs: Procs, cli: Cli, pki: Pki
) -> None:
    up = procs.up(workers=1, extra=["--tls-cert", pki.cert, "--tls-key", pki.key])
    trust = {"RUNQ_TLS_CA": str(pki.ca)}
    found = wait_until(lambda: workers(cli, up.address, trust), 30, 0.1, "the local worker")
    procs.adopt(found[0]["info"]["pid"])
    ran = cli("submit", "wordcount", "a b c", server=up.address, env=trust)
    out = cli("result", job_id(ran.out), "--wait", "--timeout", 30, server=up.address, env=trust)
    assert out.out == "word count: 3\n"
    assert "dashboard on https://127.0.0.1:" in up.text()


def test_client_certificates_required(procs: Procs, cli: Cli, pki: Pki) -> None:
    server = tls_server(procs, pki, "--tls-client-ca", str(pki.client_ca))
    assert pki.client.cert is not None and pki.client.key is not None
    mine = {"RUNQ_TLS_CA": str(pki.ca), "RUNQ_TLS_CERT": pki.client.cert}
    mine["RUNQ_TLS_KEY"] = pki.client.key
    assert cli("stats", "--json", server=server.address, env=mine).json()["workers"] == 0
    anonymous = cli("stats", "--tls-ca", pki.ca, server=server.address, ok=False)
    assert "does it want a client certificate?" in anonymous.err


SERVER = ["server", "--port", "0", "--worker-port", "0", "--no-http"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([*SERVER, "--tls-cert", "server.pem"], "--tls-cert and --tls-key go together"),
        ([*SERVER, "--tls-client-ca", "ca.pem"], "--tls-client-ca needs --tls-cert"),
        ([*SERVER, "--tls-cert", "nope.pem", "--tls-key", "server.key"], "cannot load"),
        ([*SERVER, "--tls-cert", "server.pem", "--tls-key", "client.key"], "cannot load"),
        (["stats", "--tls-ca", "ca.pem", "--tls-cert", "client.pem"], "go together"),
        (["submit", "echo", "--tls-ca", "nope.pem"], "cannot load the CA file nope.pem"),
        (["worker", "--tls-ca", "nope.pem"], "cannot load the CA file nope.pem"),
    ],
    ids=[
        "cert-alone",
        "client-ca-alone",
        "missing-cert",
        "wrong-key",
        "client-cert-alone",
        "missing-ca",
        "worker-missing-ca",
    ],
)
def test_bad_tls_options_are_one_clear_line(cli: Cli, pki: Pki, args: list[str], says: str) -> None:
    ran = cli(*args, ok=False, timeout=30)
    assert ran.code == 2, str(ran)
    assert says in ran.err
