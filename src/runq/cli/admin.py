"""Operator commands: workers, stats."""

from __future__ import annotations

import time
from typing import Any

import click
import msgspec

from runq.cli.common import handle_errors, server_option
from runq.cli.jobs import connect, json_option
from runq.cli.render import to_json
from runq.model import JobState


@click.command()
@server_option("client")
@json_option
@handle_errors
def workers(server: str | None, as_json: bool) -> None:
    """List connected workers."""
    with connect(server) as client:
        found = client.workers()
    if as_json:
        click.echo(to_json(msgspec.to_builtins(found)))
        return
    if not found:
        click.echo("no workers connected")
        return
    now = time.time()
    for w in found:
        state = "  draining" if w.draining else ""
        pool = f"  pool={w.info['pool']}" if "pool" in w.info else ""
        click.echo(
            f"{w.id}{pool}  queues={','.join(w.queues)}  running={w.running}/{w.concurrency}"
            f"  done={w.done}  pid={w.info.get('pid', '?')}  host={w.info.get('host', '?')}"
            f"  mem={w.rss_mb:.0f} MiB  up {now - w.connected_at:.0f} s{state}"
        )
        for p in w.procs:
            click.echo(
                f"    task process {p.pid}  {p.state}  jobs={p.jobs}  mem={p.rss_mb:.0f} MiB"
            )


@click.command()
@server_option("client")
@json_option
@click.option("--watch", is_flag=True, help="Refresh every second until Ctrl-C.")
@handle_errors
def stats(server: str | None, as_json: bool, watch: bool) -> None:
    """Processed jobs, success rate, workers, queue depths, throughput."""
    with connect(server) as client:
        if not watch:
            data = client.stats()
            click.echo(to_json(data) if as_json else render_stats(data))
            return
        from rich.live import Live
        from rich.text import Text

        with Live(Text(render_stats(client.stats())), refresh_per_second=4) as live:
            while True:
                time.sleep(1)
                live.update(Text(render_stats(client.stats())))


def render_stats(data: dict[str, Any]) -> str:
    rate = data.get("success_rate")
    lines = [
        f"processed    {data['processed']}"
        + (f" (success rate {rate * 100:.1f} %)" if rate is not None else ""),
        f"throughput   {data['throughput']} jobs/s (last 10 s)",
        f"workers      {data['workers']} ({data['worker_slots']} slots, {data['busy_slots']} busy)",
        "",
    ]
    states = [s.value for s in JobState]
    lines.append("queue".ljust(16) + "".join(s.rjust(11) for s in states))
    for queue, counts in sorted(data["queues"].items()):
        lines.append(
            queue[:15].ljust(16) + "".join(str(counts.get(s, 0)).rjust(11) for s in states)
        )
    totals = data["jobs"]
    lines.append("(all)".ljust(16) + "".join(str(totals.get(s, 0)).rjust(11) for s in states))
    lines += [f"warning: {text}" for text in data.get("warnings", [])]
    return "\n".join(lines)
