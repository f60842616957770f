"""Open a store from a URL: ``sqlite:///path``, ``sqlite:///:memory:``, a bare path, or
``postgresql://user@host:port/db?schema=NAME`` (also ``postgres://``)."""

from __future__ import annotations

from dataclasses import dataclass

from runq.errors import ConfigError
from runq.model import RetryPolicy
from runq.model.retry import DEFAULT_RETRY
from runq.store.base import Store


@dataclass(frozen=True, slots=True)
class StoreConfig:
    url: str = "sqlite:///runq.db"
    durability: str = "normal"  # "normal" survives process crashes, "full" power loss
    retry: RetryPolicy = DEFAULT_RETRY


def sqlite_path(url: str) -> str:
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
    elif url.startswith("sqlite://"):
        path = url[len("sqlite://") :]
    elif "://" not in url:
        path = url
    else:
        raise ConfigError(
            f"unsupported store URL {url!r}: use sqlite:///PATH or postgresql://HOST/DATABASE"
        )
    if not path:
        raise ConfigError(f"store URL {url!r} names no file")
    return path


def open_store(config: StoreConfig) -> Store:
    if config.durability not in ("normal", "full"):
        raise ConfigError(f"durability must be 'normal' or 'full', not {config.durability!r}")
    if config.url.startswith(("postgresql://", "postgres://")):
        # The URL is checked now; the pool is made on the first operation, in its loop.
        from runq.store.postgres.store import PostgresStore

        return PostgresStore(config.url, retry=config.retry)
    from runq.store.sqlite.store import SqliteStore

    return SqliteStore(sqlite_path(config.url), durability=config.durability, retry=config.retry)
