"""Access tokens on the HTTP API and dashboard: every route, asked with no token, a
wrong, malformed, expired or revoked one, and with a token of the wrong scope, is refused
and changes nothing; open routes stay open; the dashboard's login form and its
read-only and admin views."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from auth_support import MALFORMED, WRONG, World, make_world, snapshot

from runq.http.access import NEEDS, SAFE_METHODS

PARAMS = {"job_id": "{job}", "name": "q1", "kind": "queue", "file_path": "x.css", "path": "redoc"}
OPEN_PREFIXES = ("/static/",)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async for w in make_world(http=True):
        yield w


def routes(w: World) -> list[tuple[str, str, str]]:
    """(method, path, need) of every route the app serves, path parameters filled."""
    assert w.rb.http is not None
    found = []
    for route in w.rb.http.app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in sorted(handler.http_methods):
                if method == "OPTIONS":
                    continue
                need = handler.opt.get("access") or ("read" if method in SAFE_METHODS else "admin")
                path = re.sub(r"\{(\w+):\w+\}", lambda x: PARAMS[x.group(1)], route.path)
                path = path.replace("{job}", str(w.job_q1))
                found.append((method, path, need))
    return found


def test_every_need_is_known() -> None:
    assert set(NEEDS) == {"read", "admin", "submit", "job", "cancel", "work"}


async def test_no_valid_token_is_refused_on_every_route(world: World) -> None:
    before = await snapshot(world.rb.broker.store)
    checked = 0
    async with httpx.AsyncClient(base_url=world.rb.http_url) as http:
        for method, path, need in routes(world):
            if need == "open":
                continue
            for token in (None, WRONG, MALFORMED, world.tokens.expired, world.tokens.revoked):
                headers = {} if token is None else {"Authorization": f"Bearer {token}"}
                reply = await http.request(method, path, headers=headers, json={})
                if path.startswith("/api") or path == "/metrics":
                    assert reply.status_code == 401, (method, path, token, reply.text)
                    if path.startswith("/api/v1"):
                        assert reply.json()["error"]["code"] == "unauthorized"
                else:  # dashboard pages send the browser to the login form
                    assert reply.status_code == 303, (method, path, reply.text)
                    assert reply.headers["location"].startswith("/login?next=")
                assert token is None or token not in reply.text
                checked += 1
    assert checked > 150
    assert await snapshot(world.rb.broker.store) == before


def wrong_token(w: World, need: str) -> str:
    """A valid token without what ``need`` asks for."""
    return {
        "read": w.tokens.work,
        "admin": w.tokens.read,
        "submit": w.tokens.read,
        "job": w.tokens.work,
        "cancel": w.tokens.read,
        "work": w.tokens.read,
    }[need]


async def test_a_token_of_the_wrong_scope_is_forbidden_on_every_route(world: World) -> None:
    before = await snapshot(world.rb.broker.store)
    async with httpx.AsyncClient(base_url=world.rb.http_url) as http:
        for method, path, need in routes(world):
            if need == "open":
                continue
            headers = {"Authorization": f"Bearer {wrong_token(world, need)}"}
            reply = await http.request(method, path, headers=headers, json={})
            assert reply.status_code == 403, (method, path, need, reply.text)
    assert await snapshot(world.rb.broker.store) == before


async def test_queue_scopes_are_checked_inside_the_routes(world: World) -> None:
    t = world.tokens
    before = await snapshot(world.rb.broker.store)
    submit = {"Authorization": f"Bearer {t.submit}"}
    work = {"Authorization": f"Bearer {t.work}"}
    async with httpx.AsyncClient(base_url=world.rb.http_url) as http:
        refused = [
            await http.post("/api/v1/jobs", json={"task": "echo", "queue": "q2"}, headers=submit),
            await http.post(
                "/api/v1/jobs/batch",
                json={"jobs": [{"task": "echo", "queue": "q1"}, {"task": "echo", "queue": "q2"}]},
                headers=submit,
            ),
            await http.get(f"/api/v1/jobs/{world.job_q2}", headers=submit),
            await http.post(f"/api/v1/jobs/{world.job_q2}/cancel", headers=submit),
            await http.post(
                "/api/v1/work/claim", json={"worker": "h", "queues": ["q2"]}, headers=work
            ),
            await http.post(
                f"/api/v1/work/{world.job_q2}/complete",
                json={"worker": "h", "fence": 1, "result": None},
                headers=work,
            ),
        ]
        for reply in refused:
            assert reply.status_code == 403, reply.text
            assert "q2" in reply.json()["error"]["message"]
        assert await snapshot(world.rb.broker.store) == before
        # and the same tokens work on their own queue
        made = await http.post("/api/v1/jobs", json={"task": "echo", "queue": "q1"}, headers=submit)
        assert made.status_code == 201
        assert (
            await http.get(f"/api/v1/jobs/{made.json()['id']}", headers=submit)
        ).status_code == 200
        claim = await http.post(
            "/api/v1/work/claim", json={"worker": "h", "queues": ["q1"], "limit": 5}, headers=work
        )
        assert claim.status_code == 200
        assert {j["id"] for j in claim.json()["jobs"]} == {world.job_q1, made.json()["id"]}


async def test_open_routes_need_no_token(world: World) -> None:
    async with httpx.AsyncClient(base_url=world.rb.http_url) as http:
        for path in (
            "/health",
            "/ready",
            "/login",
            "/static/dashboard.css",
            "/api/v1/openapi.json",
        ):
            assert (await http.get(path)).status_code == 200, path


async def test_bearer_and_metrics_with_a_read_token(world: World) -> None:
    headers = {"Authorization": f"Bearer {world.tokens.read}"}
    async with httpx.AsyncClient(base_url=world.rb.http_url, headers=headers) as http:
        assert (await http.get("/api/v1/stats")).json()["jobs"]["queued"] == 2
        assert "runq_" in (await http.get("/metrics")).text


async def login(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/login", data={"token": token, "next": "/jobs"})


async def test_dashboard_login_read_only_and_admin_views(world: World) -> None:
    async with httpx.AsyncClient(base_url=world.rb.http_url) as http:
        # a wrong token: the form again, with why, and no cookie
        reply = await login(http, WRONG)
        assert reply.status_code == 401 and "not valid" in reply.text
        assert "runq_token" not in http.cookies
        # a worker's token cannot read the dashboard
        reply = await login(http, world.tokens.work)
        assert reply.status_code == 403 and "cannot read the dashboard" in reply.text
        # a read token: in, read-only
        reply = await login(http, world.tokens.read)
        assert reply.status_code == 303 and reply.headers["location"] == "/jobs"
        cookie = reply.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = await http.get("/jobs")
        assert (
            page.status_code == 200
            and 'data-admin="false"' in page.text
            and "read-only" in page.text
        )
        retried = await http.post("/api/v1/jobs/retry-failed", json={})
        assert retried.status_code == 403
        # an admin token: the buttons act
        http.cookies.clear()
        await login(http, world.tokens.admin)
        page = await http.get(f"/jobs/{world.job_q1}")
        assert 'data-admin="true"' in page.text and 'data-action="cancel"' in page.text
        origin = {"Origin": world.rb.http_url}
        cancelled = await http.post(f"/api/v1/jobs/{world.job_q1}/cancel", headers=origin)
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        # a request from another site riding on the cookie is refused
        evil = await http.post(
            f"/api/v1/jobs/{world.job_q2}/cancel", headers={"Origin": "http://evil.example"}
        )
        assert evil.status_code == 403
        assert (await world.rb.broker.store.get(world.job_q2)).state == "queued"  # type: ignore[union-attr]
        # log out: the pages ask again
        await http.post("/logout")
        assert (await http.get("/jobs")).status_code == 303


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil"])
async def test_login_never_sends_the_browser_elsewhere(world: World, target: str) -> None:
    async with httpx.AsyncClient(base_url=world.rb.http_url) as http:
        reply = await http.post("/login", data={"token": world.tokens.read, "next": target})
        assert reply.headers["location"] == "/"
