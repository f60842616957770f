"""TLS on the native ports and HTTPS, with certificates made by trustme for 127.0.0.1."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import trustme

from runq.broker import BrokerConfig
from runq.client import AsyncClient
from runq.errors import ConfigError, ConnectionLost
from runq.testing import RunningBroker, run_broker
from runq.tls import ServerTls, TlsConfig
from tls_pki import Pki


@pytest.fixture
async def tls_rb(pki: Pki) -> AsyncIterator[RunningBroker]:
    async with run_broker(tls=pki.server, client_tls=TlsConfig(str(pki.ca)), http=True) as rb:
        yield rb


async def round_trip(client: AsyncClient) -> None:
    job_id = await client.submit("echo", "over tls")
    assert await client.result(job_id, timeout=10) == "over tls"


async def test_submit_result_and_a_worker_over_tls(tls_rb: RunningBroker) -> None:
    agent = await tls_rb.add_worker(concurrency=2)
    async with tls_rb.client() as client:
        await round_trip(client)
        ids = [await client.submit("wordcount", "a b c") for _ in range(20)]
        for job_id in ids:
            assert await client.result(job_id, timeout=10) == "word count: 3"
        assert [w.id for w in await client.workers()] == [agent.id]


async def test_https_api_verifies_with_the_ca(tls_rb: RunningBroker, pki: Pki) -> None:
    assert tls_rb.http_url.startswith("https://127.0.0.1:")
    verify = ssl.create_default_context(cafile=str(pki.ca))
    async with httpx.AsyncClient(base_url=tls_rb.http_url, verify=verify) as http:
        reply = await http.post("/api/v1/jobs", json={"task": "echo", "args": ["hi"]})
        assert reply.status_code == 201, reply.text
        job = (await http.get(f"/api/v1/jobs/{reply.json()['id']}")).json()
        assert job["task"] == "echo"
    async with httpx.AsyncClient(base_url=tls_rb.http_url) as http:  # the system's CAs
        with pytest.raises(httpx.ConnectError):
            await http.get("/health")


async def test_plaintext_client_gets_a_clear_error_and_the_broker_lives_on(
    tls_rb: RunningBroker,
) -> None:
    with pytest.raises(ConnectionLost, match=r"closed the connection before its welcome.*TLS"):
        await AsyncClient(tls_rb.client_address, connect_timeout=5).connect()
    await tls_rb.add_worker(concurrency=1)
    async with tls_rb.client() as client:
        await round_trip(client)
        assert await client.stats()


async def test_tls_client_against_a_plaintext_port_gets_a_clear_error(
    rb: RunningBroker, pki: Pki
) -> None:
    client = AsyncClient(rb.client_address, tls=TlsConfig(str(pki.ca)), connect_timeout=5)
    with pytest.raises(
        ConnectionLost, match=r"^TLS with the broker at 127\.0\.0\.1:\d+ failed.*not TLS"
    ):
        await client.connect()
    async with rb.client() as plain:  # and it still serves plain clients
        assert await plain.stats()


async def test_a_certificate_from_another_ca_is_refused(tls_rb: RunningBroker, pki: Pki) -> None:
    client = AsyncClient(tls_rb.client_address, tls=TlsConfig(str(pki.other_ca)))
    with pytest.raises(ConnectionLost, match="certificate verify failed"):
        await client.connect()


async def test_the_name_must_match(pki: Pki, tmp_path: Path) -> None:
    ca = trustme.CA()
    elsewhere = ca.issue_cert("broker.example.com")
    elsewhere.cert_chain_pems[0].write_to_path(str(tmp_path / "elsewhere.pem"))
    elsewhere.private_key_pem.write_to_path(str(tmp_path / "elsewhere.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "elsewhere-ca.pem"))
    tls = ServerTls(str(tmp_path / "elsewhere.pem"), str(tmp_path / "elsewhere.key"))
    async with run_broker(tls=tls) as rb:
        client = AsyncClient(rb.client_address, tls=TlsConfig(str(tmp_path / "elsewhere-ca.pem")))
        with pytest.raises(ConnectionLost, match=r"certificate verify failed.*(IP|mismatch)"):
            await client.connect()


async def test_client_certificates_when_the_broker_requires_them(pki: Pki) -> None:
    required = ServerTls(pki.server.cert, pki.server.key, str(pki.client_ca))
    async with run_broker(tls=required, client_tls=pki.client, http=True) as rb:
        await rb.add_worker(concurrency=1)  # the worker shows its certificate too
        async with rb.client() as client:
            await round_trip(client)
        anonymous = AsyncClient(rb.client_address, tls=TlsConfig(str(pki.ca)))
        with pytest.raises(ConnectionLost, match=r"before its welcome.*client certificate"):
            await anonymous.connect()  # TLS 1.3: refused after the TLS handshake, in hello
        await anonymous.close()
        assert rb.http is not None
        verify = ssl.create_default_context(cafile=str(pki.ca))
        async with httpx.AsyncClient(base_url=rb.http_url, verify=verify) as http:
            with pytest.raises((httpx.ReadError, httpx.ConnectError, httpx.RemoteProtocolError)):
                await http.get("/health")
        verify.load_cert_chain(str(pki.client.cert), str(pki.client.key))
        async with httpx.AsyncClient(base_url=rb.http_url, verify=verify) as http:
            assert (await http.get("/health")).status_code == 200


async def test_a_worker_without_a_client_certificate_is_not_served(pki: Pki) -> None:
    required = ServerTls(pki.server.cert, pki.server.key, str(pki.client_ca))
    async with run_broker(tls=required, client_tls=TlsConfig(str(pki.ca))) as rb:
        with pytest.raises(TimeoutError):
            await rb.add_worker(concurrency=1)
        await rb.stop_workers()


@pytest.mark.parametrize(
    "make",
    [
        lambda p: ServerTls(str(p / "missing.pem"), str(p / "server.key")),
        lambda p: ServerTls(str(p / "server.pem"), str(p / "client.key")),
        lambda p: ServerTls(str(p / "server.key"), str(p / "server.key")),
        lambda p: ServerTls(str(p / "server.pem"), str(p / "server.key"), str(p / "nope.pem")),
    ],
    ids=["missing-cert", "wrong-key", "not-a-cert", "missing-client-ca"],
)
async def test_bad_files_are_a_config_error(
    pki: Pki, tmp_path: Path, make: Callable[[Path], ServerTls]
) -> None:
    tls = make(tmp_path)
    with pytest.raises(ConfigError, match="cannot load"):
        async with run_broker(config=BrokerConfig(tls=tls)):
            pass


def test_client_settings_are_checked_at_once(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs its key"):
        TlsConfig(str(pki.ca), cert=str(pki.client.cert))
    with pytest.raises(ConfigError, match=r"cannot load the CA file .*missing"):
        AsyncClient("127.0.0.1:1", tls=TlsConfig(str(tmp_path / "missing.pem")))


async def test_handshake_that_never_starts_does_not_hold_the_broker(
    tls_rb: RunningBroker,
) -> None:
    """A peer that connects and says nothing: the broker serves others meanwhile."""
    _, writer = await asyncio.open_connection("127.0.0.1", tls_rb.broker.client_port)
    try:
        await tls_rb.add_worker(concurrency=1)
        async with tls_rb.client() as client:
            await round_trip(client)
    finally:
        writer.close()
