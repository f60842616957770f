"""What every command shares: server addresses, error handling, running async code."""

from __future__ import annotations

import asyncio
import datetime
import functools
import math
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from runq.client.transport import format_server, parse_servers
from runq.errors import ConfigError, RunqError
from runq.model.spec import TEN_YEARS
from runq.tls import TlsConfig

T = TypeVar("T")
CLIENT_PORT = 1209
WORKER_PORT = 1205


TLS_OPTIONS = (
    ("--tls-ca", "RUNQ_TLS_CA", "Speak TLS, trusting the certificates in this PEM file"),
    ("--tls-cert", "RUNQ_TLS_CERT", "Show the broker this TLS client certificate (PEM)"),
    ("--tls-key", "RUNQ_TLS_KEY", "The PEM key of --tls-cert"),
)


def server_option(role: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--server`` and the TLS options of a command that connects to a broker; the TLS
    options go to ``tls_config()``, not to the command's arguments."""
    port = CLIENT_PORT if role == "client" else WORKER_PORT
    server = click.option(
        "--server",
        "server",
        default=None,
        metavar="HOST[:PORT][,...]",
        help=f"Broker address, or a comma list to fail over between"
        f" (default: $RUNQ_SERVER or 127.0.0.1:{port}).",
    )

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for flag, env, text in reversed(TLS_OPTIONS):
            fn = click.option(
                flag,
                envvar=env,
                metavar="FILE",
                expose_value=False,
                callback=_keep_tls,
                help=f"{text} (default: ${env}).",
            )(fn)
        return server(fn)

    return decorate


def _keep_tls(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.meta[f"runq.{param.name}"] = value


def tls_config() -> TlsConfig | None:
    """The TLS of this command's --tls-ca, --tls-cert and --tls-key (or $RUNQ_TLS_CA,
    $RUNQ_TLS_CERT and $RUNQ_TLS_KEY); None: plain TCP."""
    meta = click.get_current_context().meta
    ca, cert, key = (meta.get(f"runq.tls_{name}") for name in ("ca", "cert", "key"))
    if ca is None and cert is None and key is None:
        return None
    if (cert is None) != (key is None):
        raise ConfigError("--tls-cert and --tls-key go together ($RUNQ_TLS_CERT, $RUNQ_TLS_KEY)")
    return TlsConfig(ca, cert, key)


def tls_args(tls: TlsConfig | None) -> list[str]:
    """The TLS options of a `runq worker` command line that dials with ``tls``."""
    if tls is None:
        return []
    pairs = (("--tls-ca", tls.ca), ("--tls-cert", tls.cert), ("--tls-key", tls.key))
    return [part for flag, path in pairs if path is not None for part in (flag, path)]


def addresses(server: str | None, role: str) -> list[tuple[str, int]]:
    """The broker addresses for ``role`` from ``--server``, then ``$RUNQ_SERVER``
    (``a:1209,b:1209``: brokers to fail over between, in order)."""
    text = server or os.environ.get("RUNQ_SERVER") or "127.0.0.1"
    return parse_servers(text, CLIENT_PORT if role == "client" else WORKER_PORT)


def address(server: str | None, role: str) -> tuple[str, int]:
    """The first broker address for ``role``."""
    return addresses(server, role)[0]


def addresses_text(found: list[tuple[str, int]]) -> str:
    return ",".join(format_server(h, p) for h, p in found)


def token() -> str | None:
    return os.environ.get("RUNQ_TOKEN") or None


def store_url(store: str | None) -> str:
    return store or os.environ.get("RUNQ_STORE") or "sqlite:///runq.db"


def fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Print a runq error as one line and exit 1; never show a traceback to a user."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            fail(exc.message, 2)
        except RunqError as exc:
            fail(exc.message)
        except KeyboardInterrupt:
            sys.exit(130)
        raise AssertionError("unreachable")

    return wrapper


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop when available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return asyncio.run(coro)
    return uvloop.run(coro)


def parse_csv(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(v.strip() for v in value.split(",") if v.strip())


def parse_env(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` into its two parts."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{text!r} is not KEY=VALUE")
    return key, value


DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def seconds_of(value: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``7d`` (a bare number is seconds) into seconds."""
    text = value.strip().lower()
    unit = DURATION_UNITS.get(text[-1:])
    number = text[:-1] if unit is not None else text
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a duration like 90s, 15m, 2h or 7d") from None
    if not math.isfinite(seconds):
        raise click.BadParameter(f"{value!r} is not a duration like 90s, 15m, 2h or 7d")
    return seconds


SIZE_UNITS = {"": 1, "b": 1, "k": 2**10, "kib": 2**10, "m": 2**20, "mib": 2**20}
SIZE_UNITS |= {"g": 2**30, "gib": 2**30, "t": 2**40, "tib": 2**40}


def byte_size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """``1GiB``, ``500M``, ``2048`` (bytes) into bytes; ``none`` into None."""
    if value is None or value.strip().lower() == "none":
        return None
    text = value.strip().lower()
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = SIZE_UNITS.get(text[len(number) :].strip())
    try:
        size = float(number) * unit if unit is not None else -1.0
    except ValueError:
        size = -1.0
    if not 0 < size <= 2**50:
        raise click.BadParameter(f"{value!r} is not a size like 500MiB, 2GiB or 1048576")
    return int(size)


def duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A positive duration (``90s``, ``15m``, ``2h``, ``7d``); ``forever`` into None."""
    if value is None or value.strip().lower() in ("forever", "none"):
        return None
    seconds = seconds_of(value)
    if not seconds > 0:
        raise click.BadParameter("must be greater than 0")
    return seconds


def delay(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A delay from now: ``0``, ``90s``, ``15m``, ``2h``; never negative."""
    if value is None:
        return None
    seconds = seconds_of(value)
    if seconds < 0:
        raise click.BadParameter("must not be negative")
    return seconds


def unique_window(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """``--unique-for``: a duration (``90s``, ``10m``, ``2h``, ``7d``) above 0."""
    if value is None:
        return None
    seconds = seconds_of(value)
    if not 0 < seconds <= TEN_YEARS:
        raise click.BadParameter("must be greater than 0 and at most 10 years")
    return seconds


def moment(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """An ISO 8601 time (``2026-12-01T09:00:00+01:00``; without an offset, local time)
    into seconds since the epoch."""
    if value is None:
        return None
    try:
        return datetime.datetime.fromisoformat(value.strip()).timestamp()
    except (ValueError, OverflowError, OSError):
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time like 2026-12-01T09:00:00+01:00"
        ) from None


def positive(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is not None and value <= 0:
        raise click.BadParameter("must be greater than 0")
    return value


def non_negative(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is not None and value < 0:
        raise click.BadParameter("must not be negative")
    return value
