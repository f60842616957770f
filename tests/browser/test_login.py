"""The dashboard's login in a real browser: once the store has tokens, pages ask for one;
a read token gets a read-only view (no buttons that act), an admin token gets buttons
that work; logging out asks again."""

from __future__ import annotations

from browser_support import Dashboard
from playwright.async_api import expect

from runq.client import AsyncClient
from runq.model.token import make_token
from runq.testing import RunningBroker


async def tokens(rb: RunningBroker) -> tuple[str, str]:
    now = rb.broker.clock()
    admin = make_token("admin", ["admin"], now, None)
    read = make_token("viewer", ["read"], now, None)
    for made in (admin, read):
        await rb.broker.store.add_token(made.info, made.digest)
    rb.broker.gate._looked_at = float("-inf")  # see them now, not within a second
    return admin.text, read.text


async def log_in(dash: Dashboard, token: str) -> None:
    await dash.page.get_by_label("Access token").fill(token)
    await dash.page.get_by_role("button", name="Log in").click()


async def test_login_gives_read_only_and_admin_views(
    rb: RunningBroker, client: AsyncClient, dash: Dashboard
) -> None:
    await client.submit("echo", "x", queue="mail")
    admin, read = await tokens(rb)

    # Given tokens in the store, a page sends the browser to the login form.
    await dash.open("/queues")
    await expect(dash.page).to_have_url(f"{rb.http_url}/login?next=%2Fqueues")

    # A wrong token: the form again, saying why.
    await log_in(dash, "runq_0123456789ab_wrong")
    await expect(dash.page.locator("[data-error]")).to_contain_text("not valid")
    dash.errors[:] = [e for e in dash.errors if "401" not in e]  # the form's own status

    # A read token: the page it asked for, read-only, without buttons that act.
    await log_in(dash, read)
    await expect(dash.page).to_have_url(f"{rb.http_url}/queues")
    await expect(dash.page.get_by_text("read-only")).to_be_visible()
    await expect(dash.page.locator('tr[data-queue="mail"]')).to_be_visible()
    await expect(dash.page.get_by_role("button", name="Pause")).to_be_hidden()

    # Log out, then in as admin: the buttons are there and work.
    await dash.page.get_by_role("button", name="Log out").click()
    await expect(dash.page).to_have_url(f"{rb.http_url}/login")
    await log_in(dash, admin)
    await dash.open("/queues")
    await expect(dash.page.get_by_text("read-only")).to_have_count(0)
    row = dash.page.locator('tr[data-queue="mail"]')
    await row.get_by_role("button", name="Pause").click()
    await expect(dash.page.locator("#flash")).to_have_text("Queue mail paused.")
    assert "mail" in await rb.broker.store.paused_queues()
