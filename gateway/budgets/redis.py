"""Budget ledger in Redis: every instance reserves against the same counters. One EVALSHA of
`ledger.lua` reserves on all of a request's accounts or none; threshold claims are SET NX."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any

from redis.exceptions import RedisError

from gateway.budgets import Account, Reservation
from gateway.cache.redis import RedisClient
from gateway.store import StoreUnavailable

SCRIPT_NAME = "ledger.lua"


def load_script() -> str:
    return resources.files("gateway.budgets").joinpath(SCRIPT_NAME).read_text("utf-8")


def script_args(mode: str, accounts: Sequence[Account], amount: int) -> list[str | int]:
    args: list[str | int] = [mode, str(amount)]
    for account in accounts:
        args += [str(account.budget.limit), account.expires_at]
    return args


def parse_reply(reply: Sequence[Any]) -> Reservation:
    return Reservation(bool(int(reply[0])), tuple(int(used) for used in reply[1:]))


class RedisLedger:
    """Keys are `prefix + account id`; the prefix carries one {hash tag}, so the accounts of
    one request share a Redis Cluster slot."""

    name = "redis"

    def __init__(self, client: RedisClient, *, prefix: str = "gw:budget:{budget}:") -> None:
        self._client = client
        self._script = client.register_script(load_script())
        self._prefix = prefix

    async def reserve(self, accounts: Sequence[Account], cost: int) -> Reservation:
        return await self._call("reserve", accounts, cost)

    async def adjust(self, accounts: Sequence[Account], delta: int) -> tuple[int, ...]:
        return (await self._call("adjust", accounts, delta)).used

    async def claim(self, marker: str, expires_at: int) -> bool:
        try:
            created = await self._client.set(
                f"{self._prefix}claim:{marker}", b"1", nx=True, exat=expires_at
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"budget ledger: {type(exc).__name__}") from exc
        return bool(created)

    async def close(self) -> None:
        """Closes nothing it was given: the client belongs to whoever created it."""

    async def _call(self, mode: str, accounts: Sequence[Account], amount: int) -> Reservation:
        keys = [self._prefix + account.id for account in accounts]
        try:
            reply = await self._script(keys=keys, args=script_args(mode, accounts, amount))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"budget ledger: {type(exc).__name__}") from exc
        return parse_reply(reply)


class RedisBook:
    """Budgets and projects set at runtime: one hash that every instance reads."""

    name = "redis"

    def __init__(self, client: RedisClient, *, prefix: str = "gw") -> None:
        self._client = client
        self._hash = f"{prefix}:budget-book"

    async def put(self, name: str, body: bytes | None) -> None:
        try:
            if body is None:
                await self._client.hdel(self._hash, name)
            else:
                await self._client.hset(self._hash, name, body)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"budget book: {type(exc).__name__}") from exc

    async def entries(self) -> dict[str, bytes]:
        try:
            raw = await self._client.hgetall(self._hash)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"budget book: {type(exc).__name__}") from exc
        return {_text(name): _bytes(body) for name, body in raw.items()}

    async def close(self) -> None:
        """Closes nothing it was given: the client belongs to whoever created it."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value
