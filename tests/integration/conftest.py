"""Fixtures shared by the integration tests: a real broker on port 0, a client, and a
fresh PostgreSQL schema."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from integration_pg import PG_DSN, postgres_or_skip

from runq.client import AsyncClient
from runq.testing import RunningBroker, run_broker


@pytest.fixture
async def rb() -> AsyncIterator[RunningBroker]:
    async with run_broker() as running:
        yield running


@pytest.fixture
async def client(rb: RunningBroker) -> AsyncIterator[AsyncClient]:
    async with rb.client() as c:
        yield c


@pytest.fixture
async def store_url() -> AsyncIterator[str]:
    """The URL of a schema of its own in the test database, dropped afterwards."""
    conn = await postgres_or_skip()
    schema = f"runq_test_{uuid.uuid4().hex[:16]}"
    try:
        yield f"{PG_DSN}?schema={schema}"
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
