"""Split a batch into hits and unique misses, chunk misses for upstream, merge back (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Plan:
    """Positions of each unique missing key; the first position is the one sent upstream."""

    groups: tuple[tuple[int, ...], ...]
    hits: int

    @property
    def unique_misses(self) -> int:
        return len(self.groups)

    @property
    def duplicates(self) -> int:
        return sum(len(group) for group in self.groups) - len(self.groups)

    @property
    def fetch_positions(self) -> list[int]:
        return [group[0] for group in self.groups]


def plan(keys: Sequence[bytes], found: Sequence[object | None]) -> Plan:
    slots: dict[bytes, int] = {}
    groups: list[list[int]] = []
    for position, (key, entry) in enumerate(zip(keys, found, strict=True)):
        if entry is not None:
            continue
        slot = slots.setdefault(key, len(groups))
        if slot == len(groups):
            groups.append([position])
        else:
            groups[slot].append(position)
    hits = len(keys) - sum(len(group) for group in groups)
    return Plan(tuple(tuple(group) for group in groups), hits)


def merge(found: Sequence[T | None], batch_plan: Plan, fetched: Sequence[T]) -> list[T]:
    """Every position gets its cached entry or the fetched entry of its key, in input order."""
    merged = list(found)
    for group, entry in zip(batch_plan.groups, fetched, strict=True):
        for position in group:
            merged[position] = entry
    if any(entry is None for entry in merged):
        raise AssertionError("merge left a position without an entry")
    return merged  # type: ignore[return-value]


def chunk(costs: Sequence[int], max_items: int, max_tokens: int) -> list[range]:
    """Consecutive index ranges with at most max_items items and max_tokens summed cost each."""
    chunks: list[range] = []
    start, total = 0, 0
    for index, cost in enumerate(costs):
        if index > start and (index - start >= max_items or total + cost > max_tokens):
            chunks.append(range(start, index))
            start, total = index, 0
        total += cost
    if start < len(costs):
        chunks.append(range(start, len(costs)))
    return chunks


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """Split an integer total in proportion to weights; the parts sum to the total exactly."""
    weight_sum = sum(weights)
    if not weights:
        return []
    if weight_sum <= 0:
        weights, weight_sum = [1] * len(weights), len(weights)
    shares = [total * w // weight_sum for w in weights]
    remainders = sorted(
        range(len(weights)), key=lambda i: (total * weights[i]) % weight_sum, reverse=True
    )
    for i in remainders[: total - sum(shares)]:
        shares[i] += 1
    return shares
