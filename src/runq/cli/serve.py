"""Long-running commands: ``runq server``, ``runq worker`` and ``runq up``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
from typing import Any

import click

from runq import log as runq_log
from runq.broker import Broker, BrokerConfig
from runq.cli.common import (
    address,
    handle_errors,
    non_negative,
    parse_csv,
    parse_env,
    positive,
    run,
    server_option,
    store_url,
    token,
)
from runq.cli.console import Console
from runq.store.open import StoreConfig, open_store
from runq.worker import Agent, WorkerConfig
from runq.worker.executors.base import Executor
from runq.worker.executors.command import DEFAULT_OUTPUT_LIMIT, CommandExecutor, CommandPolicy
from runq.worker.executors.python import PoolConfig, PythonExecutor

broker_options = [
    click.option(
        "--store", default=None, help="sqlite:///PATH (default: $RUNQ_STORE or ./runq.db)."
    ),
    click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on."),
    click.option(
        "--port",
        default=1209,
        show_default=True,
        type=click.IntRange(0, 65535),
        help="Client port.",
    ),
    click.option(
        "--worker-port",
        default=1205,
        show_default=True,
        type=click.IntRange(0, 65535),
        help="Worker port.",
    ),
    click.option(
        "--durability",
        type=click.Choice(["normal", "full"]),
        default="normal",
        show_default=True,
        help="normal survives process crashes; full also survives power loss.",
    ),
    click.option(
        "--lease-timeout",
        "lease",
        default=30.0,
        show_default=True,
        type=float,
        callback=positive,
        help="Seconds a worker holds a job without heartbeating.",
    ),
    click.option(
        "--grace",
        default=30.0,
        show_default=True,
        type=float,
        callback=non_negative,
        help="On quit, seconds to wait for running jobs to report.",
    ),
    click.option(
        "--log-level", default="info", show_default=True, help="debug, info, warning or error."
    ),
]


def with_broker_options(fn: Any) -> Any:
    for option in reversed(broker_options):
        fn = option(fn)
    return fn


def _broker(
    store: str | None,
    host: str,
    port: int,
    worker_port: int,
    durability: str,
    lease: float,
    grace: float,
) -> Broker:
    config = BrokerConfig(host=host, port=port, worker_port=worker_port, lease=lease, grace=grace)
    return Broker(open_store(StoreConfig(url=store_url(store), durability=durability)), config)


def _announce(broker: Broker, store: str | None) -> None:
    cfg = broker.config
    click.echo(
        f"runq broker listening: clients on {cfg.host}:{broker.client_port},"
        f" workers on {cfg.host}:{broker.worker_port}, store {store_url(store)}",
        err=True,
    )


async def _until_signal(console: bool, broker: Broker) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if console and sys.stdin.isatty():
        Console(broker, stop).attach()
    await stop.wait()


@click.command()
@with_broker_options
@handle_errors
def server(
    store: str | None,
    host: str,
    port: int,
    worker_port: int,
    durability: str,
    lease: float,
    grace: float,
    log_level: str,
) -> None:
    """Run a broker: clients connect on --port, workers on --worker-port.

    On a terminal, type `stats` for statistics and `quit` to stop.
    """
    runq_log.setup(log_level)

    async def main() -> None:
        broker = _broker(store, host, port, worker_port, durability, lease, grace)
        await broker.start()
        _announce(broker, store)
        try:
            await _until_signal(True, broker)
        finally:
            await broker.stop(grace)

    run(main())


@click.command()
@click.argument("modules", nargs=-1)
@server_option("worker")
@click.option("--app", "apps", multiple=True, help="A module:registry to load tasks from.")
@click.option(
    "--max-jobs-per-child", type=int, default=None, callback=positive, help="Recycle after N jobs."
)
@click.option(
    "--max-memory-per-child",
    type=float,
    default=None,
    callback=positive,
    help="Recycle a task process whose memory passes this many MiB after a job.",
)
@click.option(
    "--queues", "-q", default="default", show_default=True, help="Queues to serve, comma-separated."
)
@click.option(
    "--concurrency",
    "-c",
    type=int,
    default=None,
    callback=positive,
    help="Jobs at once (default: CPU count).",
)
@click.option("--id", "worker_id", default=None, help="Worker id (default: a random w-xxxxxx).")
@click.option(
    "--prefetch",
    type=click.IntRange(0, 10_000),
    default=None,
    help="Jobs held beyond --concurrency so task processes never wait"
    " (default: 4 x concurrency with MODULES, else 0).",
)
@click.option(
    "--grace",
    default=30.0,
    show_default=True,
    type=float,
    callback=non_negative,
    help="On SIGTERM, seconds running jobs may take before they are handed back.",
)
@click.option("--reload", is_flag=True, help="Restart task processes when task code changes.")
@click.option("--allow-cmd", "allow_cmd", multiple=True, help="A command jobs may run (repeat).")
@click.option("--allow-any-cmd", is_flag=True, help="Command jobs may run any executable.")
@click.option("--allow-shell", is_flag=True, help="Command jobs may ask for /bin/sh -c.")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="Environment of commands.")
@click.option("--limit-memory", type=int, default=None, callback=positive, help="MiB per command.")
@click.option("--limit-cpu", type=int, default=None, callback=positive, help="CPU seconds.")
@click.option("--limit-nproc", type=int, default=None, callback=positive, help="Processes.")
@click.option("--limit-fsize", type=int, default=None, callback=positive, help="MiB per file.")
@click.option(
    "--limit-output",
    type=int,
    default=DEFAULT_OUTPUT_LIMIT,
    show_default=True,
    callback=positive,
    help="Bytes kept of each of a command's stdout and stderr.",
)
@click.option("--log-level", default="info", show_default=True)
@handle_errors
def worker(
    modules: tuple[str, ...],
    server: str | None,
    apps: tuple[str, ...],
    max_jobs_per_child: int | None,
    max_memory_per_child: float | None,
    queues: str,
    concurrency: int | None,
    worker_id: str | None,
    prefetch: int | None,
    grace: float,
    reload: bool,
    allow_cmd: tuple[str, ...],
    allow_any_cmd: bool,
    allow_shell: bool,
    env: tuple[str, ...],
    limit_memory: int | None,
    limit_cpu: int | None,
    limit_nproc: int | None,
    limit_fsize: int | None,
    limit_output: int,
    log_level: str,
) -> None:
    """Run a worker: connect to a broker and run the jobs it assigns.

    MODULES are Python modules whose @runq.task functions this worker runs, each job in
    a task process of its own pool. Command jobs run only with --allow-cmd NAME or
    --allow-any-cmd."""
    runq_log.setup(log_level)
    host, port = address(server, "worker")
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "queues": parse_csv(queues) or ("default",),
    }
    if concurrency:
        options["concurrency"] = concurrency
    if worker_id:
        options["worker_id"] = worker_id
    config = WorkerConfig(token=token(), **options)
    if prefetch is None:
        prefetch = 4 * config.concurrency if (modules or apps) else 0
    config = dataclasses.replace(config, prefetch=prefetch)
    executors: list[Executor] = []
    if modules or apps:
        pool = PoolConfig(
            modules=(*modules, *apps),
            size=config.concurrency,
            max_jobs=max_jobs_per_child,
            max_memory_mb=max_memory_per_child,
            reload=reload,
        )
        executors.append(PythonExecutor(pool))
    policy = CommandPolicy(
        allow=frozenset(allow_cmd),
        allow_any=allow_any_cmd,
        allow_shell=allow_shell,
        path=os.environ.get("PATH", os.defpath),
        env=tuple(parse_env(e) for e in env),
        limit_memory_mb=limit_memory,
        limit_cpu_s=limit_cpu,
        limit_nproc=limit_nproc,
        limit_fsize_mb=limit_fsize,
        limit_output=limit_output,
    )
    executors.append(CommandExecutor(policy))
    agent = Agent(config, executors)
    click.echo(
        f"runq worker {agent.id}: serving {','.join(agent.config.queues)} on {host}:{port}",
        err=True,
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopping: list[asyncio.Task[None]] = []

        def on_signal() -> None:
            if stopping:  # a second signal: hand back what runs and stop now
                agent.stop_now()
            else:
                stopping.append(asyncio.ensure_future(agent.shutdown(grace)))

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        await agent.run()

    run(main())


@click.command()
@with_broker_options
@click.option(
    "--workers", "-w", "n_workers", default=2, show_default=True, type=click.IntRange(0, 256)
)
@click.option(
    "--concurrency",
    "-c",
    type=int,
    default=None,
    callback=positive,
    help="Jobs at once per worker.",
)
@handle_errors
def up(
    store: str | None,
    host: str,
    port: int,
    worker_port: int,
    durability: str,
    lease: float,
    grace: float,
    log_level: str,
    n_workers: int,
    concurrency: int | None,
) -> None:
    """Run a broker and local workers in one command. Ctrl-C stops all of it."""
    runq_log.setup(log_level)

    async def main() -> None:
        broker = _broker(store, host, port, worker_port, durability, lease, grace)
        await broker.start()
        _announce(broker, store)
        procs = [_spawn_worker(broker, concurrency, grace, log_level) for _ in range(n_workers)]
        click.echo(f"runq up: {n_workers} worker(s) started; Ctrl-C stops everything", err=True)
        try:
            await _until_signal(True, broker)
        finally:
            await _stop_workers(procs, grace + 10)
            await broker.stop(grace)

    run(main())


def _spawn_worker(
    broker: Broker, concurrency: int | None, grace: float, log_level: str
) -> subprocess.Popen[bytes]:
    host = broker.config.host if broker.config.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    cmd = [sys.executable, "-m", "runq", "worker", "--server", f"{host}:{broker.worker_port}"]
    cmd += ["--log-level", log_level, "--grace", str(grace)]
    if concurrency:
        cmd += ["--concurrency", str(concurrency)]
    # Own process group: a Ctrl-C on the terminal reaches `runq up`, which stops them.
    return subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, start_new_session=True, env=os.environ.copy()
    )


async def _stop_workers(procs: list[subprocess.Popen[bytes]], grace: float = 10.0) -> None:
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    for proc in procs:
        while proc.poll() is None and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
