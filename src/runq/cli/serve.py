"""Long-running commands: ``runq server``, ``runq worker`` and ``runq up``."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pwd
import signal
import sys
from typing import Any

import click
from click.core import ParameterSource

from runq import log as runq_log
from runq.broker import Broker
from runq.cli.brokering import BrokerOptions, RunningBroker, with_broker_options
from runq.cli.common import (
    addresses,
    addresses_text,
    handle_errors,
    non_negative,
    parse_csv,
    parse_env,
    positive,
    run,
    server_option,
    store_url,
    tls_args,
    tls_config,
    token,
)
from runq.cli.console import Console
from runq.cli.pools import Pool, Supervisor, load_config, pool_children
from runq.errors import ConfigError
from runq.store.version import require_newest
from runq.worker import Agent, WorkerConfig
from runq.worker.executors.base import Executor
from runq.worker.executors.command import DEFAULT_OUTPUT_LIMIT, CommandExecutor, CommandPolicy
from runq.worker.executors.python import PoolConfig, PythonExecutor


def user_ids(name: str) -> tuple[int, int]:
    """The uid and primary gid of a user (a name or a number)."""
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except KeyError:
        raise ConfigError(f"no user {name!r} on this machine") from None
    return entry.pw_uid, entry.pw_gid


def _supervise_pools(path: str, only: str | None, server: str, log_level: str) -> None:
    pools = [p for p in load_config(path).pool if only is None or p.name == only]
    if not pools:
        raise ConfigError(f"{path} has no pool" + (f" named {only!r}" if only else "s"))
    children = pool_children(pools, server, log_level, tls_args(tls_config()))
    supervisor = Supervisor(children, max(p.grace for p in pools))
    click.echo(f"runq worker: supervising {len(children)} worker process(es)", err=True)

    async def main() -> None:
        await supervisor.run(_stop_event(False, None))

    run(main())


def _stop_event(console: bool, broker: Broker | None) -> asyncio.Event:
    """An event set by SIGINT, SIGTERM or (on a terminal) the console's `quit`."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if console and broker is not None and sys.stdin.isatty():
        Console(broker, stop).attach()
    return stop


@click.command()
@with_broker_options
@click.option("--no-migrate", is_flag=True, help="Refuse a store not at the newest schema version.")
@handle_errors
def server(no_migrate: bool, **kwargs: Any) -> None:
    """Run a broker: clients connect on --port, workers on --worker-port, browsers and
    HTTP clients on --http-port.

    On a terminal, type `stats` for statistics and `quit` to stop.
    """
    opts = BrokerOptions.take(kwargs)
    runq_log.setup(opts.log_level)

    async def main() -> None:
        if no_migrate:
            await require_newest(store_url(opts.store))
        running = RunningBroker(opts)
        await running.start()
        try:
            await _stop_event(True, running.broker).wait()
        finally:
            await running.stop()

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
@click.option("--config", "config_path", default=None, help="Run the pools of this runq.toml.")
@click.option("--pool", "pool_name", default=None, help="The pool's name (with --config: only it).")
@click.option("--allow-cmd", "allow_cmd", multiple=True, help="A command jobs may run (repeat).")
@click.option("--allow-any-cmd", is_flag=True, help="Command jobs may run any executable.")
@click.option("--allow-shell", is_flag=True, help="Command jobs may ask for /bin/sh -c.")
@click.option("--run-as", "run_as", default=None, metavar="USER", help="Run commands as this user.")
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
@click.option(
    "--workroot",
    default=None,
    metavar="DIR",
    help="Where jobs' working directories go (default: a temporary directory).",
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
    config_path: str | None,
    pool_name: str | None,
    allow_cmd: tuple[str, ...],
    allow_any_cmd: bool,
    allow_shell: bool,
    run_as: str | None,
    env: tuple[str, ...],
    limit_memory: int | None,
    limit_cpu: int | None,
    limit_nproc: int | None,
    limit_fsize: int | None,
    limit_output: int,
    workroot: str | None,
    log_level: str,
) -> None:
    """Run a worker: connect to a broker and run the jobs it assigns.

    MODULES are Python modules whose @runq.task functions this worker runs, each job in
    a task process of its own pool. Command jobs run only with --allow-cmd NAME or
    --allow-any-cmd."""
    runq_log.setup(log_level)
    found = addresses(server, "worker")
    if config_path is not None:
        _supervise_pools(config_path, pool_name, addresses_text(found), log_level)
        return
    (host, port), servers = found[0], tuple(found)
    options: dict[str, Any] = {"host": host, "port": port, "pool": pool_name, "servers": servers}
    options["queues"] = parse_csv(queues) or ("default",)
    options |= {"concurrency": concurrency, "worker_id": worker_id}
    options |= {"token": token(), "tls": tls_config(), "workroot": workroot}
    config = WorkerConfig(**{k: v for k, v in options.items() if v})
    tasks = bool(modules or apps)
    prefetch = (4 * config.concurrency if tasks else 0) if prefetch is None else prefetch
    config = dataclasses.replace(config, prefetch=prefetch)
    executors: list[Executor] = []
    if tasks:
        pool = PoolConfig(
            modules=(*modules, *apps),
            size=config.concurrency,
            max_jobs=max_jobs_per_child,
            max_memory_mb=max_memory_per_child,
            reload=reload,
            # the worker's own token stays with the worker: task code never sees it
            env=tuple((k, v) for k, v in os.environ.items() if k != "RUNQ_TOKEN"),
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
        user=None if run_as is None else user_ids(run_as),
    )
    executors.append(CommandExecutor(policy))
    agent = Agent(config, executors)

    run(_serve_agent(agent, grace))


async def _serve_agent(agent: Agent, grace: float) -> None:
    """Run the agent; the first signal drains it, a second one stops it at once."""
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def on_signal() -> None:
        if stopping:
            agent.stop_now()
        else:
            stopping.append(asyncio.ensure_future(agent.shutdown(grace)))

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    await agent.run()


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
@click.option("--config", "config_path", default=None, help="A runq.toml with [broker] and pools.")
@click.pass_context
@handle_errors
def up(
    ctx: click.Context,
    n_workers: int,
    concurrency: int | None,
    config_path: str | None,
    **kwargs: Any,
) -> None:
    """Run a broker, local workers and the dashboard in one command. Ctrl-C stops all
    of it.

    With --config, the broker takes its settings from the file's [broker] table (options
    given here win) and runs one set of worker processes per [[pool]]."""
    opts = BrokerOptions.take(kwargs)
    runq_log.setup(opts.log_level)
    pools = [Pool(name="default", processes=n_workers, concurrency=concurrency, grace=opts.grace)]
    if config_path is not None:
        file = load_config(config_path)
        b = file.broker

        def pick(name: str, from_file: Any) -> Any:
            given = ctx.get_parameter_source(name) is not ParameterSource.DEFAULT
            value = getattr(opts, "lease" if name == "lease" else name)
            return value if given or from_file is None else from_file

        opts = opts.replace(
            store=pick("store", b.store),
            host=pick("host", b.host),
            port=pick("port", b.port),
            worker_port=pick("worker_port", b.worker_port),
            http_port=pick("http_port", b.http_port),
            durability=pick("durability", b.durability),
            lease=pick("lease", b.lease_timeout),
            grace=pick("grace", b.grace),
            tls_cert=pick("tls_cert", b.tls_cert),
            tls_key=pick("tls_key", b.tls_key),
            tls_client_ca=pick("tls_client_ca", b.tls_client_ca),
        )
        pools = file.pool

    async def main() -> None:
        running = RunningBroker(opts)
        if n_workers_wanted(pools) and not token() and await running.broker.gate.required():
            await running.broker.store.close()
            raise ConfigError(
                "this store has access tokens: set RUNQ_TOKEN to a token with a work scope"
                " (or admin) for the local workers"
            )
        await running.start()
        broker = running.broker
        local = (
            broker.config.host if broker.config.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        )
        # local workers trust the broker's own certificate (a client certificate for
        # --tls-client-ca comes from $RUNQ_TLS_CERT and $RUNQ_TLS_KEY)
        tls = tls_args(None if broker.config.tls is None else broker.config.tls.trusting())
        children = pool_children(pools, f"{local}:{broker.worker_port}", opts.log_level, tls)
        supervisor = Supervisor(children, max([p.grace for p in pools], default=opts.grace))
        if running.http is not None:
            url = f"{running.http.scheme}://{local}:{running.http.port}/"
            click.echo(f"runq up: dashboard on {url}", err=True)
        click.echo(
            f"runq up: {len(children)} worker process(es) started; Ctrl-C stops everything",
            err=True,
        )
        try:
            await supervisor.run(_stop_event(True, broker))
        finally:
            await supervisor.stop()
            await running.stop()

    run(main())


def n_workers_wanted(pools: list[Pool]) -> int:
    return sum(p.processes for p in pools)
