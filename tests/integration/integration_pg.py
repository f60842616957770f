"""PostgreSQL for the integration tests: 127.0.0.1:5432, database ``test``, user
``postgres``, trust auth. Without it the tests that need it skip, except under
``CI=true``, where they fail."""

from __future__ import annotations

import os
from typing import Any

import asyncpg
import pytest

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


async def postgres_or_skip() -> Any:
    """A connection to the test database; skip without one (fail under CI=true)."""
    try:
        return await asyncpg.connect(PG_DSN, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL is not reachable at {PG_DSN}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
