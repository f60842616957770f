"""The dashboard's login: a form that takes an access token and keeps it in an HttpOnly,
SameSite=Strict cookie, and the logout that drops it. Only asked for once the store has
a token; the same tokens as the API, with the same scopes."""

from __future__ import annotations

from typing import Annotated, Any, Final

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, QueryParameter
from litestar.response import Redirect, Template

from runq.errors import AuthError, Forbidden

from .access import COOKIE, OPEN, address
from .dashboard import page
from .deps import BrokerDep

MAX_AGE: Final = 12 * 3600  # seconds a login lasts (or until the token expires)
Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]


def local_path(text: str | None) -> str:
    """Where to go after logging in: a path on this site, never another site."""
    if not text or not text.startswith("/") or text.startswith("//") or "\\" in text:
        return "/"
    return text[:500]


@get("/login", name="dashboard:login", opt=OPEN, include_in_schema=False)
async def login_form(
    next_path: Annotated[str | None, QueryParameter(name="next", max_length=500)] = None,
) -> Template:
    return page("login", next=local_path(next_path), message=None)


@post("/login", name="dashboard:login-post", opt=OPEN, status_code=303, include_in_schema=False)
async def login(
    broker: BrokerDep, request: Request[Any, Any, Any], data: Form
) -> Template | Redirect:
    text = data.get("token", "").strip()
    goto = local_path(data.get("next"))
    try:
        grant = await broker.gate.admit(text or None, address(request))
        if not grant.read:
            raise Forbidden("this token cannot read the dashboard: it needs read or admin")
    except AuthError as exc:
        return page(
            "login", 401 if exc.code != "forbidden" else 403, next=goto, message=exc.message
        )
    reply = Redirect(goto, status_code=303)
    if await broker.gate.required():
        reply.set_cookie(
            COOKIE,
            text,
            max_age=MAX_AGE,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    return reply


@post("/logout", name="dashboard:logout", opt=OPEN, status_code=303, include_in_schema=False)
async def logout() -> Redirect:
    reply = Redirect("/login", status_code=303)
    reply.delete_cookie(COOKIE, path="/")
    return reply


ROUTES: Final[list[Any]] = [login_form, login, logout]
