"""Background tasks stop when the app stops, whatever the libraries they call do."""

from __future__ import annotations

import asyncio
import contextlib

from gateway.background import stop_task


def test_stop_task_ends_a_task_that_swallowed_its_first_cancellation() -> None:
    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        while True:
            await asyncio.sleep(3600)

    async def scenario() -> bool:
        task = asyncio.get_running_loop().create_task(stubborn())
        await asyncio.sleep(0)
        await stop_task(task)
        return task.cancelled()

    assert asyncio.run(scenario())
