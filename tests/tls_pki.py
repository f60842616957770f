"""Certificates for the TLS tests, made by trustme: one set per test, in its tmp_path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme

from runq.tls import ServerTls, TlsConfig


@dataclass(frozen=True)
class Pki:
    """A CA and the broker's certificate from it (for 127.0.0.1 and localhost), a
    client certificate from a second CA (the one a broker may require with
    ``client_ca``), and a third CA that signed nothing here."""

    ca: Path
    server: ServerTls
    client_ca: Path
    client: TlsConfig  # trusts ``ca``, shows a certificate signed by ``client_ca``
    other_ca: Path

    @property
    def cert(self) -> str:
        return self.server.cert

    @property
    def key(self) -> str:
        return self.server.key


def write_pki(tmp: Path) -> Pki:
    ca, client_ca, other = trustme.CA(), trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    person = client_ca.issue_cert("worker-1@example.com")
    files = {
        "ca.pem": ca.cert_pem,
        "server.pem": server.cert_chain_pems[0],
        "server.key": server.private_key_pem,
        "client-ca.pem": client_ca.cert_pem,
        "client.pem": person.cert_chain_pems[0],
        "client.key": person.private_key_pem,
        "other-ca.pem": other.cert_pem,
    }
    for name, blob in files.items():
        blob.write_to_path(str(tmp / name))
    return Pki(
        ca=tmp / "ca.pem",
        server=ServerTls(str(tmp / "server.pem"), str(tmp / "server.key")),
        client_ca=tmp / "client-ca.pem",
        client=TlsConfig(str(tmp / "ca.pem"), str(tmp / "client.pem"), str(tmp / "client.key")),
        other_ca=tmp / "other-ca.pem",
    )
