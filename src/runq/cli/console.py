"""The broker's console: on a terminal, stdin takes `stats`, `workers`, `help`, `quit`."""

from __future__ import annotations

import asyncio
import sys

from runq.broker import Broker
from runq.cli.admin import render_stats


class Console:
    def __init__(self, broker: Broker, stop: asyncio.Event) -> None:
        self.broker = broker
        self.stop = stop

    def attach(self) -> None:
        asyncio.get_running_loop().add_reader(sys.stdin.fileno(), self._on_input)
        print("console: type 'stats', 'workers', 'help' or 'quit'", file=sys.stderr)

    def _on_input(self) -> None:
        line = sys.stdin.readline()
        if not line:  # end of input: keep serving, stop listening to stdin
            asyncio.get_running_loop().remove_reader(sys.stdin.fileno())
            return
        command = line.strip().lower()
        if command in ("quit", "exit"):
            print("shutting down", file=sys.stderr)
            self.stop.set()
        elif command == "stats":
            self.broker.spawn(self._stats())
        elif command == "workers":
            for s in self.broker.dispatcher.sessions.values():
                running = f"{len(s.inflight)}/{s.concurrency}"
                print(f"{s.id}  queues={','.join(s.queues)}  running={running}  done={s.done}")
        elif command in ("help", "?"):
            print("commands: stats, workers, quit")
        elif command:
            print(f"unknown command {command!r}; try 'help'")

    async def _stats(self) -> None:
        print(render_stats(await self.broker.stats()))
