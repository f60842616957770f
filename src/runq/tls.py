"""TLS settings and the ``ssl`` contexts built from them, once, at start.

The broker serves its ports with a ``ServerTls``; clients and workers dial with a
``TlsConfig``. Both are plain frozen values: nothing here reads the environment.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from runq.errors import ConfigError

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
HANDSHAKE_TIMEOUT = 10.0  # seconds a TLS handshake may take


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """How a client or worker speaks TLS to a broker.

    ``ca``: a PEM file of the certificates to trust (None: the system's CAs); any
    certificate in it is a trust anchor, the broker's own certificate too. ``cert`` and
    ``key``: a certificate of this peer's own, for brokers that ask for one.
    """

    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ConfigError("a TLS certificate needs its key, and a key its certificate")

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # checks the certificate and name
        ctx.minimum_version = MINIMUM_VERSION
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        if self.ca is None:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        else:
            _load(f"the CA file {self.ca}", ctx.load_verify_locations, self.ca)
        if self.cert is not None:
            _load(f"the certificate {self.cert}", ctx.load_cert_chain, self.cert, self.key)
        return ctx


@dataclass(frozen=True, slots=True)
class ServerTls:
    """How the broker serves TLS: its certificate chain and key (PEM files) and, when
    ``client_ca`` is given, the CA that must have signed every peer's certificate."""

    cert: str
    key: str
    client_ca: str | None = None

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = MINIMUM_VERSION
        _load(f"the certificate {self.cert}", ctx.load_cert_chain, self.cert, self.key)
        if self.client_ca is not None:
            _load(f"the client CA file {self.client_ca}", ctx.load_verify_locations, self.client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def trusting(self) -> TlsConfig:
        """A client config that trusts this server's own certificate (local workers)."""
        return TlsConfig(ca=self.cert)


def _load(what: str, load: Any, *paths: str | None) -> None:
    try:
        load(*paths)
    except ssl.SSLError as exc:
        raise ConfigError(f"cannot load {what}: {reason(exc)}") from None
    except OSError as exc:
        raise ConfigError(f"cannot load {what}: {exc.strerror or exc}") from None


def reason(exc: ssl.SSLError) -> str:
    """A short text for an ssl error (``certificate verify failed: self-signed ...``)."""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    if exc.reason == "WRONG_VERSION_NUMBER":  # the peer answered in plain bytes
        return "the answer is not TLS: does that port serve TLS?"
    text = exc.reason or exc.strerror or str(exc)
    return str(text).lower().replace("_", " ")


def connect_args(
    context: ssl.SSLContext | None, host: str, timeout: float = HANDSHAKE_TIMEOUT
) -> dict[str, Any]:
    """The TLS keywords of ``create_connection`` / ``open_connection`` (none without)."""
    if context is None:
        return {}
    return {"ssl": context, "server_hostname": host, "ssl_handshake_timeout": timeout}
