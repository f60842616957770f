"""Broker settings, frozen and read once."""

from __future__ import annotations

from dataclasses import dataclass

from runq.protocol import limits as L

DEFAULT_CLIENT_PORT = 1209
DEFAULT_WORKER_PORT = 1205


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_CLIENT_PORT
    worker_port: int = DEFAULT_WORKER_PORT
    lease: float = 30.0  # seconds a worker holds a job without a heartbeat
    max_frame: int = L.MAX_FRAME
    claim_batch: int = 500  # most jobs claimed for one worker in one query
    promote_every: float = 0.25  # seconds between promotions of scheduled jobs
    sweep_every: float = 0.25  # seconds between lease-expiry sweeps
    handshake_timeout: float = 10.0
    grace: float = 30.0  # seconds `quit` waits for the reports of running jobs
    retention: float | None = 7 * 86400.0  # seconds finished jobs are kept (None: always)
    purge_every: float = 10.0  # seconds between purges of finished jobs
    max_claim_wait: float = 30.0  # most seconds an HTTP worker's claim waits for a job
