"""What the browser tests share: a dashboard tab that notes what goes wrong in it, and
the tasks the tests' workers run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import Page, Response

from runq.model import Assignment
from runq.protocol.messages import ProcInfo
from runq.worker.executors.base import InlineExecutor

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@dataclass
class Dashboard:
    """A browser tab on the broker's dashboard that notes what goes wrong in it: script
    errors, console errors, and any request that leaves the broker (the pages must work
    offline)."""

    page: Page
    base: str
    shots: Path
    errors: list[str] = field(default_factory=list)

    async def open(self, path: str) -> Response:
        reply = await self.page.goto(self.base + path)
        assert reply is not None
        return reply

    async def screenshot(self, name: str) -> Path:
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 1000, f"{path} is empty"
        return path

    async def polled(self) -> None:
        """Wait until the page's script has read the API once more, successfully."""
        before = await self.page.get_attribute("#live", "data-updated")
        await self.page.wait_for_function(
            """before => {
                const live = document.getElementById("live");
                return live.dataset.state === "ok" && (live.dataset.updated || before) !== before;
            }""",
            arg=before,
            timeout=10_000,
        )

    def expect_error(self, text: str) -> None:
        """Take back an error the test caused on purpose."""
        matching = [e for e in self.errors if text in e]
        assert matching, f"no error with {text!r} in {self.errors}"
        self.errors.remove(matching[0])


# -- tasks the tests run ---------------------------------------------------------------


class Gate(InlineExecutor):
    """Task "gate": finishes (returning "opened") only when the test opens the gate."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()

    def knows(self, task: str) -> bool:
        return task == "gate"

    def start(self, job: Assignment) -> Awaitable[str]:
        async def run() -> str:
            await self.opened.wait()
            return "opened"

        return run()


class FailsOnce(InlineExecutor):
    """Task "once": the first run of each job raises (with a traceback), later runs return
    the job's first argument. It also reports two task processes, as a pool would."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def knows(self, task: str) -> bool:
        return task == "once"

    def describe(self) -> list[ProcInfo]:
        return [ProcInfo(4242, "busy", 7, 12.5), ProcInfo(4243, "idle", 3, 11.0)]

    def start(self, job: Assignment) -> Any:
        if job.id not in self.seen:
            self.seen.add(job.id)
            raise RuntimeError(f"first run of {job.args[0]!s}")
        return job.args[0]
