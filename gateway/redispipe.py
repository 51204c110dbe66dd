"""Commands over one pipelined connection, parsed by hiredis: the cache read (MGET) and the
limiter's script (EVALSHA) on every request's path.

redis-py costs about 80 µs of CPU per MGET (connection-pool checkout, a send task, retry and
timeout wrappers) and packs a script call's arguments in Python; this costs about half, and a
command is written at once, in the caller's turn of the event loop. Replies come back in
request order on one connection, so concurrent commands pipeline on it. Anything unusual (a
timeout, a lost connection) drops the connection and raises; the next command reconnects. An
error reply raises ResponseError (NoScriptError for NOSCRIPT) and keeps the connection.
Writes, other scripts, TLS and Redis Cluster stay on redis-py.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError


class _Pipe(asyncio.Protocol):
    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._transport: asyncio.Transport | None = None

    @property
    def open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(RedisConnectionError("connection to Redis lost"))

    def send(self, *args: bytes | str | int | float) -> asyncio.Future[Any]:
        assert self._transport is not None
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._transport.write(hiredis.pack_command(args))  # type: ignore[arg-type]
        return waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class RedisPipe:
    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 6379
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._db = int(parts.path.strip("/") or 0)
        self._timeout = timeout
        self._pipe: _Pipe | None = None
        self._connecting: asyncio.Lock | None = None

    async def mget(self, keys: Sequence[bytes]) -> list[bytes | None]:
        reply = await self.call("MGET", *keys)
        assert isinstance(reply, list)
        return reply

    async def call(self, *args: bytes | str | int | float) -> Any:
        pipe = await self._connected()
        try:
            async with asyncio.timeout(self._timeout):
                reply = await pipe.send(*args)
        except BaseException:
            pipe.close()  # a reply may still come: the connection is out of step
            raise
        if isinstance(reply, hiredis.ReplyError):
            raise _error(str(reply))
        return reply

    async def _connected(self) -> _Pipe:
        if self._pipe is not None and self._pipe.open:
            return self._pipe
        self._connecting = self._connecting or asyncio.Lock()
        async with self._connecting:
            if self._pipe is None or not self._pipe.open:
                self._pipe = await self._connect()
        return self._pipe

    async def _connect(self) -> _Pipe:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout):
                _, pipe = await loop.create_connection(_Pipe, self._host, self._port)
                for command in self._handshake():
                    reply = await pipe.send(*command)
                    if isinstance(reply, hiredis.ReplyError):
                        raise ResponseError(str(reply))
        except OSError as exc:
            raise RedisConnectionError(f"cannot connect to Redis: {type(exc).__name__}") from None
        return pipe

    def _handshake(self) -> list[tuple[str | int, ...]]:
        commands: list[tuple[str | int, ...]] = []
        if self._password is not None:
            auth = (self._username, self._password) if self._username else (self._password,)
            commands.append(("AUTH", *auth))
        if self._db:
            commands.append(("SELECT", self._db))
        return commands

    def close(self) -> None:
        if self._pipe is not None:
            self._pipe.close()


def _error(message: str) -> ResponseError:
    return NoScriptError(message) if message.startswith("NOSCRIPT") else ResponseError(message)
