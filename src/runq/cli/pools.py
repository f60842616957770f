"""Worker pools from a ``runq.toml`` file, and the supervisor that keeps their worker
processes running (used by ``runq up`` and ``runq worker --config``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from runq.errors import ConfigError

log = logging.getLogger("runq.supervisor")
Positive = Annotated[int, Meta(gt=0)]


class Limits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    memory: Positive | None = None  # MiB per command
    cpu: Positive | None = None  # CPU seconds per command
    nproc: Positive | None = None
    fsize: Positive | None = None  # MiB per file a command writes
    output: Positive | None = None  # bytes kept of each output stream


class Pool(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One kind of worker: what it runs and how."""

    name: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    modules: list[str] = []
    queues: list[str] = msgspec.field(default_factory=lambda: ["default"])
    concurrency: Positive | None = None
    prefetch: Annotated[int, Meta(ge=0)] | None = None
    processes: Positive = 1  # worker processes of this pool
    env: dict[str, str] = {}
    allow_cmd: list[str] = []
    allow_any_cmd: bool = False
    allow_shell: bool = False
    run_as: str | None = None
    limits: Limits = Limits()
    max_jobs_per_child: Positive | None = None
    max_memory_per_child: Annotated[float, Meta(gt=0)] | None = None
    reload: bool = False
    grace: Annotated[float, Meta(ge=0)] = 30.0

    def argv(self, server: str, log_level: str) -> list[str]:
        """The `runq worker` command line of one process of this pool."""
        cmd = [sys.executable, "-m", "runq", "worker", *self.modules, "--server", server]
        cmd += ["--pool", self.name, "--queues", ",".join(self.queues)]
        cmd += ["--grace", str(self.grace), "--log-level", log_level]
        for flag, value in (
            ("--concurrency", self.concurrency),
            ("--prefetch", self.prefetch),
            ("--max-jobs-per-child", self.max_jobs_per_child),
            ("--max-memory-per-child", self.max_memory_per_child),
            ("--limit-memory", self.limits.memory),
            ("--limit-cpu", self.limits.cpu),
            ("--limit-nproc", self.limits.nproc),
            ("--limit-fsize", self.limits.fsize),
            ("--limit-output", self.limits.output),
        ):
            if value is not None:
                cmd += [flag, str(value)]
        for name in self.allow_cmd:
            cmd += ["--allow-cmd", name]
        if self.run_as is not None:
            cmd += ["--run-as", self.run_as]
        for key, text in self.env.items():
            cmd += ["--env", f"{key}={text}"]
        cmd += [f for f, on in (("--allow-any-cmd", self.allow_any_cmd),) if on]
        cmd += [
            f for f, on in (("--allow-shell", self.allow_shell), ("--reload", self.reload)) if on
        ]
        return cmd


class BrokerSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    store: str | None = None
    host: str | None = None
    port: Annotated[int, Meta(ge=0, le=65535)] | None = None
    worker_port: Annotated[int, Meta(ge=0, le=65535)] | None = None
    http_port: Annotated[int, Meta(ge=0, le=65535)] | None = None
    durability: str | None = None
    lease_timeout: Annotated[float, Meta(gt=0)] | None = None
    grace: Annotated[float, Meta(ge=0)] | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None


class ConfigFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    broker: BrokerSection = BrokerSection()
    pool: list[Pool] = []


def load_config(path: str) -> ConfigFile:
    try:
        raw = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    try:
        config = msgspec.convert(raw, ConfigFile)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    names = [p.name for p in config.pool]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: two pools have the same name")
    return config


@dataclass(eq=False)
class Child:
    """One supervised worker process."""

    label: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    next_start: float = 0.0
    history: list[float] = field(default_factory=list)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, start_new_session=True, env=self.env
        )
        self.started = time.monotonic()
        log.info("started %s (pid %d)", self.label, self.proc.pid)


class Supervisor:
    """Starts worker processes, restarts one that exits with back-off, stops them all
    gracefully (SIGTERM, then SIGKILL after their grace)."""

    def __init__(self, children: list[Child], grace: float) -> None:
        self.children = children
        self.grace = grace
        self.stopping = False

    async def run(self, stop: asyncio.Event) -> None:
        for child in self.children:
            child.start()
        while not stop.is_set():
            self._check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
        await self.stop()

    def _check(self) -> None:
        now = time.monotonic()
        for child in self.children:
            proc = child.proc
            if proc is not None and proc.poll() is None:
                if now - child.started > 60:
                    child.failures = 0  # it has been up a while: forget old crashes
                continue
            if proc is not None:  # it exited: restart after a back-off
                child.failures += 1
                delay = min(0.5 * 2 ** (child.failures - 1), 30.0)
                log.warning(
                    "%s exited with code %s; restarting in %.1f s",
                    child.label,
                    proc.returncode,
                    delay,
                )
                child.proc = None
                child.next_start = now + delay
            if now >= child.next_start:
                child.start()

    async def stop(self) -> None:
        self.stopping = True
        running = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace + 10
        for proc in running:
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def pool_children(
    pools: list[Pool], server: str, log_level: str, extra: Sequence[str] = ()
) -> list[Child]:
    """The worker processes of ``pools``; ``extra`` goes on every command line."""
    children = []
    for pool in pools:
        env = {**os.environ, **pool.env}
        for n in range(pool.processes):
            label = f"pool {pool.name}" + (f" #{n + 1}" if pool.processes > 1 else "")
            children.append(Child(label, [*pool.argv(server, log_level), *extra], env))
    return children
