"""Access tokens, pure: scopes, what a set of scopes allows, and the token's text.

A token reads ``runq_<id>_<secret>``. The id names the token in lists, logs and
revocations; the secret is shown once, when the token is made, and only its SHA-256
is stored. Secrets carry 256 random bits, so a plain hash (no salt, no key stretching)
is what protects them at rest: nobody can guess a preimage.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Final, NamedTuple

import msgspec

from runq.model.spec import MAX_NAME

PREFIX: Final = "runq_"
ID_BYTES: Final = 6  # 12 hex digits
SECRET_BYTES: Final = 32
MAX_SCOPES: Final = 50
MAX_TOKEN_TEXT: Final = 200  # longer than any token runq makes
ANY_QUEUE: Final = "*"
KINDS: Final = ("admin", "read", "submit", "work")
_QUEUE = re.compile(r"^(\*|[A-Za-z0-9_.:@/-]{1,200})$")
_ID = re.compile(r"^[0-9a-f]{12}$")


class ScopeError(ValueError):
    """A scope that is not one of admin, read, submit:QUEUE or work:QUEUE."""


def parse_scope(text: str) -> str:
    """``text`` as a scope, or ScopeError saying what is wrong with it."""
    kind, _, queue = text.strip().partition(":")
    if kind in ("admin", "read"):
        if queue:
            raise ScopeError(f"scope {kind!r} takes no queue (got {text!r})")
        return kind
    if kind in ("submit", "work"):
        if not _QUEUE.match(queue):
            raise ScopeError(
                f"scope {text!r} needs a queue name or * after '{kind}:' (letters, digits"
                " and _ . : @ / -)"
            )
        return f"{kind}:{queue}"
    raise ScopeError(f"unknown scope {text!r}: use admin, read, submit:QUEUE or work:QUEUE")


class TokenInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    """What is known of a token, never its secret."""

    id: str
    name: str
    scopes: list[str]
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None

    def refusal(self, now: float) -> str | None:
        """Why this token no longer works at ``now``, or None if it does."""
        if self.revoked_at is not None:
            return f"token {self.id} was revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return f"token {self.id} has expired"
        return None


class NewToken(NamedTuple):
    info: TokenInfo
    text: str  # the whole token, shown once
    digest: str  # what the store keeps


def make_token(name: str | None, scopes: list[str], now: float, ttl: float | None) -> NewToken:
    """A fresh token. ``scopes`` are parsed (ScopeError); the name defaults to the id."""
    parsed = list(dict.fromkeys(parse_scope(s) for s in scopes))
    if not parsed:
        raise ScopeError("a token needs at least one scope")
    if len(parsed) > MAX_SCOPES:
        raise ScopeError(f"a token has at most {MAX_SCOPES} scopes")
    if name is not None and not 1 <= len(name) <= MAX_NAME:
        raise ScopeError(f"a token's name has 1 to {MAX_NAME} characters")
    ident = secrets.token_hex(ID_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    expires = None if ttl is None else now + ttl
    info = TokenInfo(ident, name or ident, parsed, now, expires)
    return NewToken(info, f"{PREFIX}{ident}_{secret}", digest(secret))


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(text: str) -> tuple[str, str] | None:
    """(id, secret) of a token's text, or None when it cannot be a runq token."""
    if len(text) > MAX_TOKEN_TEXT or not text.startswith(PREFIX):
        return None
    ident, _, secret = text[len(PREFIX) :].partition("_")
    if not _ID.match(ident) or not secret:
        return None
    return ident, secret


def matches(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)


class Grant:
    """What a connection or request may do: the scopes of its token (or everything,
    when the store has no token at all)."""

    __slots__ = ("admin", "read", "submit", "token_id", "work")

    def __init__(self, scopes: list[str], token_id: str | None = None) -> None:
        self.token_id = token_id
        self.admin = "admin" in scopes
        self.read = self.admin or "read" in scopes
        self.submit = {s[7:] for s in scopes if s.startswith("submit:")}
        self.work = {s[5:] for s in scopes if s.startswith("work:")}

    @classmethod
    def everything(cls) -> Grant:
        return cls(["admin"])

    def may_submit(self, queue: str) -> bool:
        return self.admin or queue in self.submit or ANY_QUEUE in self.submit

    def may_work(self, queue: str) -> bool:
        return self.admin or queue in self.work or ANY_QUEUE in self.work

    def may_see(self, queue: str) -> bool:
        """Reading one job: read scope, or the submit scope of its queue."""
        return self.read or self.may_submit(queue)

    @property
    def client(self) -> bool:
        """May use the client port at all (a worker-only token may not)."""
        return self.read or bool(self.submit)

    @property
    def worker(self) -> bool:
        return self.admin or bool(self.work)
