"""Clients: ``AsyncClient`` for asyncio code and ``Client``, its thin blocking facade."""

from runq.client.aio import AsyncClient, JobFailed
from runq.client.sync import Client

__all__ = ["AsyncClient", "Client", "JobFailed"]
