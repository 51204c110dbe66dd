"""Run aiohttp apps on a real loopback port, in this loop or in a background thread's loop.

Sync tests (the official ``openai`` sync client blocks its thread) need the servers they call to
run on another thread's event loop: ``BackgroundLoop`` is that thread.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import traceback
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from gateway.server import GatewayRunner

T = TypeVar("T")

DEFAULT_SHUTDOWN_TIMEOUT = 1.0


async def start_app_here(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
) -> tuple[web.AppRunner, int]:
    """Serve ``app`` in the running loop; returns its runner (to ``cleanup()``) and bound port."""
    runner = GatewayRunner(app, handle_signals=False, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port: int = runner.addresses[0][1]
    return runner, bound_port


class BackgroundLoop:
    """A daemon thread running its own event loop, with aiohttp apps served on it."""

    def __init__(
        self, new_loop: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    ) -> None:
        self.loop = new_loop()
        self._runners: dict[int, web.AppRunner] = {}
        self._thread = threading.Thread(
            target=self._run_forever, name="background-loop", daemon=True
        )
        self._closed = False
        self._thread.start()

    def __enter__(self) -> BackgroundLoop:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run ``coro`` on the background loop and wait (at most ``timeout`` s) for its result."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            self._report_stuck()
            future.cancel()
            raise

    def _report_stuck(self) -> None:
        """Print where the loop's thread and each of its tasks are, to name what hangs."""
        frame = sys._current_frames().get(self._thread.ident or 0)
        print("background loop thread:", file=sys.stderr)
        traceback.print_stack(frame, file=sys.stderr)
        try:
            tasks = list(asyncio.all_tasks(self.loop))
        except RuntimeError:  # the loop changed its task set while we read it
            tasks = []
        for task in tasks:
            task.print_stack(file=sys.stderr)

    def start_app(self, app: web.Application, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve ``app`` on the background loop; returns the bound port."""
        runner, bound_port = self.run(start_app_here(app, host, port))
        self._runners[bound_port] = runner
        return bound_port

    def stop_app(self, port: int) -> None:
        runner = self._runners.pop(port)
        self.run(runner.cleanup())

    def close(self) -> None:
        """Stop every app, cancel leftover tasks, stop the loop and join the thread."""
        if self._closed:
            return
        self._closed = True
        for port in list(self._runners):
            self.stop_app(port)
        self.run(_cancel_other_tasks())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def _run_forever(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()


async def _cancel_other_tasks() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
