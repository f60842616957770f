"""Broker settings, frozen and read once."""

from __future__ import annotations

from dataclasses import dataclass

from runq.model import files as F
from runq.protocol import limits as L
from runq.tls import ServerTls

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
    handshake_timeout: float = 10.0  # seconds from accept to hello
    # Bounds on a peer's connections, time and unread replies (docs/limits.md); they
    # apply to the native ports and, but for the last two, to HTTP.
    max_connections_per_address: int = 512  # open at once from one IP address
    frame_timeout: float = 30.0  # seconds a frame (an HTTP request) may take to arrive
    idle_timeout: float | None = 300.0  # seconds greeted and silent with nothing in flight
    write_timeout: float = 30.0  # seconds a peer may leave replies unread (writes paused)
    max_pending_output: int = 8 * L.MAX_FRAME  # bytes of replies waiting for a slow reader
    grace: float = 30.0  # seconds `quit` waits for the reports of running jobs
    retention: float | None = 7 * 86400.0  # seconds finished jobs are kept (None: always)
    purge_every: float = 10.0  # seconds between purges of finished jobs
    max_claim_wait: float = 30.0  # most seconds an HTTP worker's claim waits for a job
    tls: ServerTls | None = None  # serve every port with TLS (docs/tls.md)
    insecure: bool = False  # may listen beyond loopback with no token in the store
    auth_failures: int = 10  # failed token checks one address may make per window...
    auth_window: float = 60.0  # ...of this many seconds; then it is refused unheard
    # Files (job inputs and artifacts, docs/files.md): refused at the upload's open,
    # before anything is stored, when over a limit.
    max_file_size: int = F.DEFAULT_MAX_FILE  # bytes of one file (1 GiB)
    # bytes of one job's inputs together, and of one attempt's artifacts (1 GiB)
    max_job_files: int = F.DEFAULT_MAX_JOB_FILES
    max_stored_bytes: int | None = None  # bytes of every blob kept together (None: no quota)
    file_grace: float = 3600.0  # seconds an unfinished upload or unused input is kept
