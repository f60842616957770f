"""The options every broker-running command shares, and starting a broker with its
HTTP server (REST API, dashboard, /metrics) in one event loop."""

from __future__ import annotations

import dataclasses
import gc
from dataclasses import dataclass
from typing import Any

import click

from runq.broker import Broker, BrokerConfig
from runq.cli.common import byte_size, duration, non_negative, positive, store_url
from runq.errors import ConfigError
from runq.http import DEFAULT_HTTP_PORT, HttpServer, build_app
from runq.http.guard import HttpLimits
from runq.model.files import DEFAULT_MAX_FILE, DEFAULT_MAX_JOB_FILES
from runq.store.open import StoreConfig, open_store
from runq.store.postgres.dsn import hide_password
from runq.tls import ServerTls

_port = click.IntRange(0, 65535)
broker_options = [
    click.option(
        "--store", default=None, help="sqlite:///PATH (default: $RUNQ_STORE or ./runq.db)."
    ),
    click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on."),
    click.option("--port", default=1209, show_default=True, type=_port, help="Client port."),
    click.option("--worker-port", default=1205, show_default=True, type=_port, help="Worker port."),
    click.option(
        "--http-port",
        default=DEFAULT_HTTP_PORT,
        show_default=True,
        type=_port,
        help="Port of the REST API, dashboard and /metrics.",
    ),
    click.option("--no-http", is_flag=True, help="Serve no HTTP (API, dashboard, metrics)."),
    click.option(
        "--durability",
        type=click.Choice(["normal", "full"]),
        default="normal",
        show_default=True,
        help="normal survives process crashes; full also survives power loss.",
    ),
    click.option(
        "--lease-timeout",
        "lease",
        default=30.0,
        show_default=True,
        type=float,
        callback=positive,
        help="Seconds a worker holds a job without heartbeating.",
    ),
    click.option(
        "--grace",
        default=30.0,
        show_default=True,
        type=float,
        callback=non_negative,
        help="On quit, seconds to wait for running jobs to report.",
    ),
    click.option(
        "--retention",
        default="7d",
        show_default=True,
        callback=duration,
        help="How long finished jobs are kept (90s, 15m, 2h, 7d, or forever).",
    ),
    click.option(
        "--tls-cert",
        metavar="FILE",
        default=None,
        help="Serve TLS on every port with this PEM certificate chain (needs --tls-key).",
    ),
    click.option("--tls-key", metavar="FILE", default=None, help="The PEM key of --tls-cert."),
    click.option(
        "--tls-client-ca",
        metavar="FILE",
        default=None,
        help="With --tls-cert: require client certificates signed by this CA on every port.",
    ),
    click.option(
        "--max-file-size",
        default="1GiB",
        show_default=True,
        callback=byte_size,
        help="Largest file a job may carry or make (500MiB, 2GiB, ...).",
    ),
    click.option(
        "--max-job-files",
        default="1GiB",
        show_default=True,
        callback=byte_size,
        help="Most bytes of one job's input files, and of one attempt's artifacts.",
    ),
    click.option(
        "--file-quota",
        default="none",
        show_default=True,
        callback=byte_size,
        help="Most bytes of files kept in the store in all (none: no quota).",
    ),
    click.option(
        "--max-connections-per-address",
        "max_connections",
        default=512,
        show_default=True,
        type=click.IntRange(1, 1_000_000),
        help="Connections one IP address may hold open on the native ports (and on HTTP).",
    ),
    click.option(
        "--idle-timeout",
        default="5m",
        show_default=True,
        callback=duration,
        help="Close native connections silent this long with nothing in flight (forever: never).",
    ),
    click.option(
        "--insecure",
        is_flag=True,
        help="Listen beyond loopback (--host) even though the store has no access token.",
    ),
    click.option(
        "--log-level", default="info", show_default=True, help="debug, info, warning or error."
    ),
]


def with_broker_options(fn: Any) -> Any:
    for option in reversed(broker_options):
        fn = option(fn)
    return fn


@dataclass(frozen=True, slots=True)
class BrokerOptions:
    """What the broker options said, as one value."""

    store: str | None
    host: str
    port: int
    worker_port: int
    http_port: int
    no_http: bool
    durability: str
    lease: float
    grace: float
    retention: float | None
    log_level: str
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    insecure: bool = False
    max_connections: int = 512
    idle_timeout: float | None = 300.0
    max_file_size: int | None = DEFAULT_MAX_FILE
    max_job_files: int | None = DEFAULT_MAX_JOB_FILES
    file_quota: int | None = None

    @classmethod
    def take(cls, kwargs: dict[str, Any]) -> BrokerOptions:
        """Pop this class's fields out of a command's keyword arguments."""
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{name: kwargs.pop(name) for name in names})

    def replace(self, **changes: Any) -> BrokerOptions:
        return dataclasses.replace(self, **changes)

    def server_tls(self) -> ServerTls | None:
        """The TLS of --tls-cert, --tls-key and --tls-client-ca (None: plain TCP)."""
        if self.tls_cert is None and self.tls_key is None:
            if self.tls_client_ca is not None:
                raise ConfigError("--tls-client-ca needs --tls-cert and --tls-key")
            return None
        if self.tls_cert is None or self.tls_key is None:
            raise ConfigError("--tls-cert and --tls-key go together: give both")
        return ServerTls(self.tls_cert, self.tls_key, self.tls_client_ca)


class RunningBroker:
    """A started broker and, unless --no-http, its HTTP server."""

    def __init__(self, opts: BrokerOptions) -> None:
        for port in (opts.port, opts.worker_port, opts.http_port):
            if not 0 <= port < 65536:
                raise ConfigError("ports must be between 0 and 65535")
        config = BrokerConfig(
            host=opts.host,
            port=opts.port,
            worker_port=opts.worker_port,
            lease=opts.lease,
            grace=opts.grace,
            retention=opts.retention,
            insecure=opts.insecure,
            max_connections_per_address=opts.max_connections,
            idle_timeout=opts.idle_timeout,
            max_file_size=opts.max_file_size or DEFAULT_MAX_FILE,
            max_job_files=opts.max_job_files or DEFAULT_MAX_JOB_FILES,
            max_stored_bytes=opts.file_quota,
            tls=opts.server_tls(),
        )
        store = open_store(StoreConfig(url=store_url(opts.store), durability=opts.durability))
        self.opts = opts
        self.broker = Broker(store, config)
        self.http: HttpServer | None = None

    async def start(self) -> None:
        await self.broker.start()
        if not self.opts.no_http:
            cfg = self.broker.config
            self.http = HttpServer(
                build_app(self.broker),
                self.opts.host,
                self.opts.http_port,
                cfg.tls,
                HttpLimits.of(cfg),
            )
            try:
                await self.http.start()
            except OSError as exc:
                await self.broker.stop()
                raise ConfigError(
                    f"cannot serve HTTP on {self.opts.host}:{self.opts.http_port}:"
                    f" {exc.strerror or exc}"
                ) from None
        # Everything allocated so far (modules, the app, the pools) lives as long as the
        # process: out of the collector's sight, full collections stay cheap (about 10%
        # more batch submits on PostgreSQL).
        gc.freeze()
        self._announce()

    def _announce(self) -> None:
        cfg, b = self.broker.config, self.broker
        http = f", HTTP on {cfg.host}:{self.http.port}" if self.http else ""
        if self.http is not None and cfg.tls is not None:
            http = f", HTTPS on https://{cfg.host}:{self.http.port}/"
        tls = " with TLS" if cfg.tls is not None else ""
        store = hide_password(store_url(self.opts.store))
        click.echo(
            f"runq broker listening{tls}: clients on {cfg.host}:{b.client_port},"
            f" workers on {cfg.host}:{b.worker_port}{http}, store {store}",
            err=True,
        )

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.stop()
        await self.broker.stop(self.opts.grace)
