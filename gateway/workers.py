"""`serve --workers N`: N processes share one port (SO_REUSEPORT), so every core serves.

The supervisor starts the workers, restarts one that dies, and on SIGTERM/SIGINT passes
SIGTERM on, so each worker stops accepting, lets in-flight requests finish (bounded by
server.shutdown_timeout) and closes its sessions and pools. Metrics are summed across workers
through prometheus_client's multiprocess directory.
"""

from __future__ import annotations

import logging
import multiprocessing
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType

from gateway.metrics import configure_multiprocess, mark_worker_dead

log = logging.getLogger("gateway.workers")

Target = Callable[[], None]


class Supervisor:
    def __init__(self, count: int, target: Target, shutdown_timeout: float) -> None:
        self._count = count
        self._target = target
        self._shutdown_timeout = shutdown_timeout
        self._context = multiprocessing.get_context("spawn")
        self._stopping = False
        self._workers: list[BaseProcess] = []

    def run(self) -> int:
        directory = tempfile.mkdtemp(prefix="gateway-metrics-")
        configure_multiprocess(directory)  # before any worker creates a metric
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        try:
            self._workers = [self._start() for _ in range(self._count)]
            while not self._stopping:
                self._replace_dead()
                time.sleep(0.2)
            self._shut_down()
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return 0

    def _start(self) -> BaseProcess:
        worker = self._context.Process(target=self._target, daemon=False)
        worker.start()
        log.info("worker %d started", worker.pid)
        return worker

    def _replace_dead(self) -> None:
        for index, worker in enumerate(self._workers):
            if not worker.is_alive() and not self._stopping:
                log.warning(
                    "worker %s exited with %s; starting another", worker.pid, worker.exitcode
                )
                mark_worker_dead(worker.pid or 0)
                self._workers[index] = self._start()

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _shut_down(self) -> None:
        for worker in self._workers:
            if worker.is_alive():
                worker.terminate()  # SIGTERM: the worker shuts down gracefully
        deadline = time.monotonic() + self._shutdown_timeout + 5
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                worker.kill()
                worker.join()
            mark_worker_dead(worker.pid or 0)
