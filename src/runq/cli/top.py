"""``runq top``: a live, full-screen view of the broker's overview (rich)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import click
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from runq.cli.common import handle_errors, positive, server_option
from runq.cli.jobs import connect
from runq.client import Client
from runq.model import JobState
from runq.protocol.messages import QueueInfo, WorkerInfo

BARS = " ▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class Snapshot:
    stats: dict[str, Any]
    queues: list[QueueInfo]
    workers: list[WorkerInfo]
    at: float


def snapshot(client: Client) -> Snapshot:
    return Snapshot(client.stats(), client.queues(), client.workers(), time.time())


def sparkline(values: list[int]) -> str:
    top = max(values, default=0)
    if top == 0:
        return BARS[0] * len(values)
    return "".join(BARS[round(v / top * (len(BARS) - 1))] for v in values)


def frame(snap: Snapshot) -> RenderableType:
    s = snap.stats
    rate = s.get("success_rate")
    done = [p["succeeded"] + p["failed"] for p in s.get("activity", [])]
    failed = [p["failed"] for p in s.get("activity", [])]
    header = Text.assemble(
        ("runq top", "bold"),
        f"   processed {s['processed']}",
        f" (success {rate * 100:.1f} %)" if rate is not None else "",
        f"   throughput {s['throughput']} jobs/s",
        f"   workers {s['workers']} ({s['busy_slots']}/{s['worker_slots']} slots busy)",
        f"   up {s['uptime']:.0f} s",
    )
    chart = Text.assemble(
        ("finished per minute, last hour  ", "dim"),
        (sparkline(done), "green"),
        f"  (now {done[-1] if done else 0}/min)\n",
        ("failed per minute, last hour    ", "dim"),
        (sparkline(failed), "red"),
        f"  (now {failed[-1] if failed else 0}/min)",
    )
    return Group(header, chart, queue_table(snap.queues), worker_table(snap.workers, snap.at))


def queue_table(queues: list[QueueInfo]) -> Table:
    table = Table(title="queues", title_justify="left", expand=True)
    table.add_column("queue")
    states = [s.value for s in JobState]
    for state in states:
        table.add_column(state, justify="right")
    for q in queues:
        name = f"{q.name} (paused)" if q.paused else q.name
        table.add_row(name, *(str(q.counts.get(st, 0)) for st in states))
    return table


def worker_table(workers: list[WorkerInfo], now: float) -> Table:
    table = Table(title="workers", title_justify="left", expand=True)
    for column in ("worker", "queues", "running", "done", "memory", "host", "up"):
        table.add_column(column, justify="right" if column in ("running", "done") else "left")
    for w in workers:
        state = " (draining)" if w.draining else ""
        table.add_row(
            w.id + state,
            ",".join(w.queues),
            f"{w.running}/{w.concurrency}",
            str(w.done),
            f"{w.rss_mb:.0f} MiB",
            str(w.info.get("host", "?")),
            f"{now - w.connected_at:.0f} s",
        )
    return table


@click.command()
@server_option("client")
@click.option("--once", is_flag=True, help="Print one frame and exit.")
@click.option(
    "--interval", default=1.0, show_default=True, type=float, callback=positive, help="Seconds."
)
@handle_errors
def top(server: str | None, once: bool, interval: float) -> None:
    """A live view of queues, workers and throughput; Ctrl-C leaves."""
    with connect(server) as client:
        if once:
            Console(width=120).print(frame(snapshot(client)))
            return
        try:
            with Live(frame(snapshot(client)), screen=True, auto_refresh=False) as live:
                while True:
                    time.sleep(interval)
                    live.update(frame(snapshot(client)), refresh=True)
        except KeyboardInterrupt:
            return
