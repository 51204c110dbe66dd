"""Work that must not hold up a response (cache writes, usage counters), tracked so shutdown
and tests can wait for it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


STOP_RECHECK_SECONDS = 0.1


async def stop_task(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has ended. A cancellation can be lost when it lands as
    an awaited call completes (a library's own cleanup awaiting in `finally`, Python 3.11's
    timeout races), leaving a periodic loop running forever: cancel again until it ends."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=STOP_RECHECK_SECONDS)
