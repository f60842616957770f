"""Run a real broker (and workers) in your own tests: port 0, a temporary store."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runq.broker import Broker, BrokerConfig
from runq.client import AsyncClient
from runq.clock import Clock, system_clock
from runq.http import HttpServer, build_app
from runq.http.guard import HttpLimits
from runq.store.open import StoreConfig, open_store
from runq.tls import ServerTls, TlsConfig
from runq.worker import Agent, WorkerConfig
from runq.worker.executors.base import Executor


@dataclass
class RunningBroker:
    broker: Broker
    store_url: str
    http: HttpServer | None = None
    client_tls: TlsConfig | None = None  # how its client() and workers speak TLS
    agents: list[Agent] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def client_address(self) -> str:
        return f"127.0.0.1:{self.broker.client_port}"

    @property
    def worker_address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.broker.worker_port)

    @property
    def http_url(self) -> str:
        """The base URL of the HTTP API (with ``run_broker(http=True)``)."""
        if self.http is None:
            raise RuntimeError("this broker serves no HTTP: run_broker(http=True)")
        return f"{self.http.scheme}://127.0.0.1:{self.http.port}"

    def client(self) -> AsyncClient:
        return AsyncClient(self.client_address, tls=self.client_tls)

    async def add_worker(
        self,
        concurrency: int = 4,
        queues: Sequence[str] = ("default",),
        executors: Sequence[Executor] = (),
        worker_id: str | None = None,
    ) -> Agent:
        """Start a worker agent in this event loop and wait until it is connected."""
        host, port = self.worker_address
        config = WorkerConfig(
            host=host, port=port, queues=tuple(queues), concurrency=concurrency, tls=self.client_tls
        )
        if worker_id is not None:
            config = dataclasses.replace(config, worker_id=worker_id)
        agent = Agent(config, executors)
        self.agents.append(agent)
        self._tasks.append(asyncio.ensure_future(agent.run()))
        await asyncio.wait_for(agent.connected.wait(), 5)
        return agent

    async def stop_workers(self) -> None:
        for agent in self.agents:
            agent.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.agents.clear()
        self._tasks.clear()


@contextlib.asynccontextmanager
async def run_broker(
    port: int = 0,
    worker_port: int = 0,
    store_url: str | None = None,
    lease: float = 30.0,
    clock: Clock = system_clock,
    http: bool = False,
    config: BrokerConfig | None = None,
    tls: ServerTls | None = None,
    client_tls: TlsConfig | None = None,
) -> AsyncIterator[RunningBroker]:
    """A broker on 127.0.0.1 with a temporary SQLite store unless ``store_url`` is given;
    with ``http``, also its HTTP API on a port of its own (``RunningBroker.http_url``).
    ``config`` gives other broker settings (its ports and lease are these arguments').
    With ``tls``, every port serves TLS; ``client()`` and ``add_worker()`` then dial with
    ``client_tls`` (default: trust the broker's own certificate, which must name
    127.0.0.1)."""
    with tempfile.TemporaryDirectory(prefix="runq-test-") as tmp:
        url = store_url or f"sqlite:///{Path(tmp) / 'runq.db'}"
        store = open_store(StoreConfig(url=url))
        base = config or BrokerConfig()
        config = dataclasses.replace(base, port=port, worker_port=worker_port, lease=lease)
        if tls is not None:
            config = dataclasses.replace(config, tls=tls)
        if config.tls is not None:
            client_tls = client_tls or config.tls.trusting()
        broker = Broker(store, config, clock=clock)
        try:
            await broker.start()
        except BaseException:  # a bad TLS file, a port in use: close the store too
            await broker.stop()
            raise
        running = RunningBroker(broker, url, client_tls=client_tls)
        try:
            if http:
                limits = HttpLimits.of(config)
                running.http = HttpServer(build_app(broker), "127.0.0.1", 0, config.tls, limits)
                await running.http.start()
            yield running
        finally:
            await running.stop_workers()
            if running.http is not None:
                await running.http.stop()
            await broker.stop()
