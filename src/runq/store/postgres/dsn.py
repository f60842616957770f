"""PostgreSQL store URLs: ``postgresql://user@host:port/db?schema=NAME&pool_size=N``.

``schema`` (default ``runq``) and ``pool_size`` (default 10) are runq's own parameters and
are taken out of the URL; every other parameter goes to asyncpg as it is (``sslmode``,
``application_name``, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from runq.errors import ConfigError

SCHEMES: Final = ("postgresql", "postgres")
DEFAULT_SCHEMA: Final = "runq"
DEFAULT_POOL_SIZE: Final = 10
MAX_POOL_SIZE: Final = 500
SCHEMA_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True)
class PgUrl:
    dsn: str  # what asyncpg gets: the URL without runq's parameters
    schema: str  # a plain identifier, safe to put in double quotes
    pool_size: int
    where: str  # host:port/database without the password, for messages

    @property
    def quoted_schema(self) -> str:
        return f'"{self.schema}"'


def parse_url(url: str) -> PgUrl:
    """Check a store URL without connecting; raises ConfigError with one line."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ConfigError(f"not a PostgreSQL URL: {hide_password(url)!r}")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"bad port in store URL {hide_password(url)!r}") from None
    params = parse_qsl(parts.query, keep_blank_values=True)
    own = {k: v for k, v in params if k in ("schema", "pool_size")}
    rest = [(k, v) for k, v in params if k not in own]
    schema = own.get("schema", DEFAULT_SCHEMA)
    if not SCHEMA_NAME.fullmatch(schema):
        raise ConfigError(
            f"bad schema name {schema!r} in store URL: use letters, digits and _ (at most 63)"
        )
    dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment))
    database = parts.path.lstrip("/") or "(default database)"
    where = f"{parts.hostname or 'localhost'}:{port or 5432}/{database}"
    return PgUrl(dsn, schema, _pool_size(own.get("pool_size")), where)


def _pool_size(text: str | None) -> int:
    if text is None:
        return DEFAULT_POOL_SIZE
    if not text.isdigit() or not 1 <= int(text) <= MAX_POOL_SIZE:
        raise ConfigError(f"pool_size must be a whole number from 1 to {MAX_POOL_SIZE}: {text!r}")
    return int(text)


def hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
