"""Where the machine's CPU went during a measurement, in cores (1.0 = one core busy throughout).

`server` is the process tree under load, `wrk` the load generator, `aux` every other process
this benchmark started (redis-server, the fake upstream, idle servers), `other` whatever else
ran on the machine meanwhile: a high `other` means the figure was measured on a busy machine.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.stack import cpu_seconds, process_tree

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

Pids = Callable[[], Sequence[int]]


def _no_pids() -> Sequence[int]:
    return ()


_NO_PIDS: Pids = _no_pids


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    server: float
    aux: float
    wrk: float  # reaped children: wrk is the only child that ends during a measurement
    own: float  # this process
    machine: float  # busy time of every core


@dataclass(frozen=True, slots=True)
class Usage:
    server: float
    wrk: float
    aux: float
    other: float


def machine_busy_seconds() -> float:
    """Time every core spent running processes (or stolen by the hypervisor). Interrupt time
    is left out: loopback traffic's softirq work belongs to no process, and would read as
    someone else's load."""
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text(encoding="ascii").split()[1:9]
    )
    return (user + nice + system + steal) / _CLOCK_TICKS


def sample(server_pids: Pids) -> Sample:
    server = set(server_pids())
    own = os.getpid()
    started = set(process_tree(own)) - {own}
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Sample(
        at=time.monotonic(),
        server=sum(cpu_seconds(pid) for pid in server),
        aux=sum(cpu_seconds(pid) for pid in started - server),
        wrk=children.ru_utime + children.ru_stime,
        own=cpu_seconds(own),
        machine=machine_busy_seconds(),
    )


def usage(before: Sample, after: Sample) -> Usage:
    wall = max(after.at - before.at, 1e-9)
    server, aux = after.server - before.server, after.aux - before.aux
    wrk, own = after.wrk - before.wrk, after.own - before.own
    other = after.machine - before.machine - server - aux - wrk - own
    return Usage(server / wall, wrk / wall, aux / wall, max(0.0, other) / wall)


class QuietGate:
    """Waits, within a budget for the whole run, while processes this run did not start keep
    the machine busy, so that a figure is not taken while someone else runs a test suite."""

    def __init__(self, budget_s: float, threshold: float = 0.25, window_s: float = 0.5) -> None:
        self.budget_s = budget_s
        self.threshold = threshold  # cores used by others
        self.window_s = window_s
        self.waited_s = 0.0

    def disturbed(self, other: float) -> bool:
        """Whether a measurement with this much foreign CPU should be taken again."""
        return other >= 2 * self.threshold and self.waited_s < self.budget_s

    def wait(self) -> float:
        """Blocks until the machine is quiet or the budget is spent; the last `other` seen."""
        while True:
            before = sample(_NO_PIDS)
            time.sleep(self.window_s)
            other = usage(before, sample(_NO_PIDS)).other
            if other < self.threshold or self.waited_s >= self.budget_s:
                return other
            self.waited_s += self.window_s


def set_affinity(pid: int, cpus: set[int]) -> None:
    """Every thread of `pid` (threads started later inherit it from theirs)."""
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):  # a thread that just ended
            os.sched_setaffinity(int(task.name), cpus)


def place(server_pids: Pids, *, isolate: bool) -> None:
    """`isolate`: the server under test gets CPU 0 to itself, and everything else this run
    started (wrk, redis-server, the upstream, idle servers, this process) shares the others.
    Otherwise every process may run anywhere."""
    every = set(range(os.cpu_count() or 1))
    isolate = isolate and len(every) > 1
    server = set(server_pids())
    own = os.getpid()
    rest = every - {0} if isolate else every
    for pid in process_tree(own):  # this process first: wrk, started later, inherits it
        set_affinity(pid, {0} if isolate and pid in server else rest)
