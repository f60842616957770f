"""The browser tier: Playwright drives Debian's chromium (never a downloaded browser)
against a real broker with its HTTP server and dashboard, in the test's event loop.

Without /usr/bin/chromium these tests skip on a developer's machine and fail under CI
(`make test` installs it first)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from browser_support import DESKTOP, Dashboard
from playwright.async_api import Browser, ConsoleMessage, Route, async_playwright, expect

from runq.client import AsyncClient
from runq.testing import RunningBroker, run_broker

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# The pages poll every 2 s: give a change a few polls to show.
expect.set_options(timeout=10_000)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        why = f"{CHROMIUM} is missing: `make browser` installs Debian's chromium"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    async with async_playwright() as pw:
        found = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield found
        finally:
            await found.close()


@pytest.fixture
async def rb() -> AsyncIterator[RunningBroker]:
    async with run_broker(http=True) as running:
        yield running


@pytest.fixture
async def client(rb: RunningBroker) -> AsyncIterator[AsyncClient]:
    async with rb.client() as c:
        yield c


@pytest.fixture
async def dash(browser: Browser, rb: RunningBroker, tmp_path: Path) -> AsyncIterator[Dashboard]:
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    tab = Dashboard(page, rb.http_url, tmp_path / "screenshots")
    local = urlsplit(rb.http_url).netloc

    async def only_local(route: Route) -> None:
        if urlsplit(route.request.url).netloc == local:
            await route.continue_()
        else:
            tab.errors.append(f"request left the broker: {route.request.url}")
            await route.abort()

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            tab.errors.append(f"console: {message.text} at {message.location.get('url')}")

    await page.route("**/*", only_local)
    page.on("console", console)
    page.on("pageerror", lambda exc: tab.errors.append(f"script error: {exc}"))
    try:
        yield tab
    finally:
        await context.close()
    assert tab.errors == [], "\n".join(tab.errors)
