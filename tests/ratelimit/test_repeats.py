"""A refusal the client did not wait for is held; the first of each wait is answered at once."""

from __future__ import annotations

import asyncio

from gateway.ratelimit.repeats import HeldAnswers, RepeatRefusals

BUCKETS = ("ip:203.0.113.9:requests", "key:k1:requests")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_first_refusal_of_a_wait_is_answered_at_once() -> None:
    assert RepeatRefusals(1.0, clock=Clock(), spread=lambda: 1.0).hold_for(BUCKETS, 5.0) == 0.0


def refused_again_after(seconds: float) -> float:
    """The hold of a second refusal `seconds` after a first that had to wait 5 s."""
    clock = Clock()
    repeats = RepeatRefusals(1.0, clock=clock, spread=lambda: 1.0)
    repeats.hold_for(BUCKETS, 5.0)
    clock.now += seconds
    return repeats.hold_for(BUCKETS, 5.0)


def test_a_refusal_before_the_wait_has_passed_is_held() -> None:
    assert refused_again_after(4.9) == 1.0


def test_a_client_that_waited_as_told_is_answered_at_once() -> None:
    assert refused_again_after(5.0) == 0.0


def test_each_set_of_buckets_has_its_own_wait() -> None:
    repeats = RepeatRefusals(1.0, clock=Clock(), spread=lambda: 1.0)
    repeats.hold_for(BUCKETS, 5.0)
    assert repeats.hold_for(("ip:198.51.100.1:requests",), 5.0) == 0.0


def test_a_hold_of_zero_answers_every_repeat_at_once() -> None:
    repeats = RepeatRefusals(0.0, clock=Clock(), spread=lambda: 1.0)
    repeats.hold_for(BUCKETS, 5.0)
    assert repeats.hold_for(BUCKETS, 5.0) == 0.0


def test_the_oldest_wait_is_forgotten_first_beyond_the_bound() -> None:
    repeats = RepeatRefusals(1.0, clock=Clock(), spread=lambda: 1.0, max_entries=2)
    for name in ("a", "b", "c"):
        repeats.hold_for((name,), 5.0)
    assert repeats.hold_for(("a",), 5.0) == 0.0  # forgotten: a first refusal again
    assert repeats.hold_for(("c",), 5.0) == 1.0


def test_holds_are_spread_so_parallel_repeats_come_back_apart() -> None:
    clock, spreads = Clock(), iter([0.5, 1.5])
    repeats = RepeatRefusals(1.0, clock=clock, spread=lambda: next(spreads))
    repeats.hold_for(BUCKETS, 5.0)
    assert [repeats.hold_for(BUCKETS, 5.0) for _ in range(2)] == [0.5, 1.5]


async def test_answers_beyond_the_limit_are_not_held() -> None:
    held = HeldAnswers(limit=1)
    first = asyncio.create_task(held.hold(60.0))
    await asyncio.sleep(0)  # the first is now held
    await asyncio.wait_for(held.hold(60.0), timeout=1.0)  # returns at once
    assert held.held == 1
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    assert held.held == 0
