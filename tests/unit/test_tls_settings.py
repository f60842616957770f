"""TLS settings: checked when made, turned into options and contexts without a network."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from runq.cli.brokering import BrokerOptions
from runq.cli.common import tls_args
from runq.errors import ConfigError
from runq.tls import ServerTls, TlsConfig, connect_args
from tls_pki import Pki


def test_a_certificate_needs_its_key_and_a_key_its_certificate() -> None:
    with pytest.raises(ConfigError, match="needs its key"):
        TlsConfig(cert="a.pem")
    with pytest.raises(ConfigError, match="needs its key"):
        TlsConfig(key="a.key")


def test_worker_command_lines_carry_the_files_given() -> None:
    assert tls_args(None) == []
    assert tls_args(TlsConfig("ca.pem")) == ["--tls-ca", "ca.pem"]
    both = TlsConfig(None, "c.pem", "c.key")
    assert tls_args(both) == ["--tls-cert", "c.pem", "--tls-key", "c.key"]


def test_plain_tcp_has_no_tls_keywords() -> None:
    assert connect_args(None, "h") == {}


def test_contexts_from_the_files(pki: Pki) -> None:
    server = ServerTls(pki.cert, pki.key, str(pki.client_ca)).context()
    assert server.verify_mode == ssl.CERT_REQUIRED
    assert server.minimum_version == ssl.TLSVersion.TLSv1_2
    client = pki.client.context()
    assert client.check_hostname and client.verify_mode == ssl.CERT_REQUIRED
    assert connect_args(client, "broker.example.com")["server_hostname"] == "broker.example.com"


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot load the certificate .*missing\.pem: No such"):
        ServerTls(str(tmp_path / "missing.pem"), str(tmp_path / "missing.key")).context()


@pytest.mark.parametrize(
    ("cert", "key", "client_ca", "says"),
    [
        ("c.pem", None, None, "go together"),
        (None, "c.key", None, "go together"),
        (None, None, "ca.pem", "needs --tls-cert"),
    ],
)
def test_broker_options_go_together(
    cert: str | None, key: str | None, client_ca: str | None, says: str
) -> None:
    base = BrokerOptions(
        store=None,
        host="127.0.0.1",
        port=0,
        worker_port=0,
        http_port=0,
        no_http=True,
        durability="normal",
        lease=30,
        grace=30,
        retention=None,
        log_level="info",
    )
    assert base.server_tls() is None
    with pytest.raises(ConfigError, match=says):
        base.replace(tls_cert=cert, tls_key=key, tls_client_ca=client_ca).server_tls()
