"""Fixtures shared by the integration tests: a real broker on port 0 and a client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

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
