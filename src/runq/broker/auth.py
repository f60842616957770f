"""Who is asking: tokens checked against the store, with a short cache, failed attempts
limited per address, and connections whose token stopped working closed.

Once the store holds any token, every native connection (its hello) and every HTTP
request must present a valid one. Until then everything is allowed, and the broker
looks again at most once a second, so the first token made directly on the store takes
effect on running brokers within a second.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import time
from typing import TYPE_CHECKING

from runq.errors import ConfigError, TooManyAttempts, Unauthorized
from runq.model.token import Grant, TokenInfo, matches, split_token

if TYPE_CHECKING:
    from runq.broker.server import Broker

log = logging.getLogger("runq.broker")
CACHE_FOR = 2.0  # seconds a checked token is trusted before the store is read again
LOOK_EVERY = 1.0  # seconds between looks for a first token while there is none
MAX_ADDRESSES = 10_000  # addresses whose failures are remembered


class Gate:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._required = False
        self._looked_at = float("-inf")
        self._cache: dict[str, tuple[TokenInfo, str, float]] = {}
        self._failures: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )

    async def required(self) -> bool:
        """Whether tokens are in force (once they are, they stay so)."""
        if not self._required and time.monotonic() - self._looked_at >= LOOK_EVERY:
            self._looked_at = time.monotonic()
            self._required = await self.broker.store.has_tokens()
        return self._required

    async def check_bind(self) -> None:
        """Refuse to listen beyond loopback while anyone could do anything."""
        cfg = self.broker.config
        if cfg.insecure or is_loopback(cfg.host) or await self.required():
            return
        raise ConfigError(
            f"refusing to listen on {cfg.host} with no access token: anyone who can reach"
            " it could run jobs. Make an admin token first (runq token create --scope admin"
            " --store URL), or pass --insecure to listen anyway"
        )

    async def admit(self, text: str | None, address: str) -> Grant:
        """The grant of a token presented from ``address``: Unauthorized when it is
        missing or not valid, TooManyAttempts when that address failed too often."""
        if not await self.required():
            return Grant.everything()
        if self._blocked(address):
            raise TooManyAttempts(
                f"too many failed attempts from {address}: wait and try again with a valid token"
            )
        try:
            return await self._grant(text)
        except Unauthorized:
            if text:  # a wrong guess counts; asking with none (a login page) does not
                self._failed(address)
            raise

    async def _grant(self, text: str | None) -> Grant:
        if not text:
            raise Unauthorized("this broker needs an access token (set RUNQ_TOKEN)")
        parts = split_token(text)
        if parts is None:
            raise Unauthorized("the access token is malformed")
        token_id, secret = parts
        found = await self._lookup(token_id)
        if found is None or not matches(secret, found[1]):
            raise Unauthorized("the access token is not valid")
        refusal = found[0].refusal(self.broker.clock())
        if refusal is not None:
            raise Unauthorized(refusal)
        return Grant(found[0].scopes, token_id)

    async def _lookup(self, token_id: str) -> tuple[TokenInfo, str] | None:
        cached = self._cache.get(token_id)
        if cached is not None and time.monotonic() - cached[2] < CACHE_FOR:
            return cached[0], cached[1]
        found = await self.broker.store.token(token_id)
        if found is None:
            self._cache.pop(token_id, None)
            return None
        self._cache[token_id] = (*found, time.monotonic())
        return found

    def forget(self, token_id: str) -> None:
        """Drop a token from the cache (it was just revoked here)."""
        self._cache.pop(token_id, None)

    async def still_valid(self, grant: Grant) -> bool:
        """Whether a grant given earlier holds now (its token unrevoked and unexpired;
        no token needed, when it was given without one)."""
        if grant.token_id is None:
            return not await self.required()
        found = await self._lookup(grant.token_id)
        return found is not None and found[0].refusal(self.broker.clock()) is None

    # -- failed attempts ----------------------------------------------------------------

    def _window(self, address: str) -> collections.deque[float]:
        cfg = self.broker.config
        times = self._failures.get(address)
        if times is None:
            return collections.deque()
        while times and times[0] <= time.monotonic() - cfg.auth_window:
            times.popleft()
        return times

    def _blocked(self, address: str) -> bool:
        return len(self._window(address)) >= self.broker.config.auth_failures

    def _failed(self, address: str) -> None:
        times = self._window(address)
        times.append(time.monotonic())
        self._failures[address] = times
        self._failures.move_to_end(address)
        while len(self._failures) > MAX_ADDRESSES:
            self._failures.popitem(last=False)
        log.warning("refused an access token from %s", address)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
