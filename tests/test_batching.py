from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.batching import apportion, chunk, merge, plan


def test_plan_groups_repeated_misses_under_their_first_position() -> None:
    keys = [b"a", b"b", b"a", b"c", b"b"]
    found = [None, "hit", None, None, None]
    result = plan(keys, found)
    assert result.groups == ((0, 2), (3,), (4,))
    assert (result.hits, result.unique_misses, result.duplicates) == (1, 3, 1)


def test_merge_puts_each_fetched_entry_at_every_position_of_its_key() -> None:
    keys = [b"a", b"b", b"a"]
    found: list[str | None] = [None, "B", None]
    assert merge(found, plan(keys, found), ["A"]) == ["A", "B", "A"]


@given(
    st.lists(st.sampled_from("abcdef"), min_size=1, max_size=40),
    st.sets(st.sampled_from("abcdef")),
)
def test_merge_equals_the_cacheless_answer_position_by_position(
    inputs: list[str], cached: set[str]
) -> None:
    keys = [text.encode() for text in inputs]
    found = [f"vec:{text}" if text in cached else None for text in inputs]
    batch_plan = plan(keys, found)
    fetched = [f"vec:{inputs[p]}" for p in batch_plan.fetch_positions]
    assert merge(found, batch_plan, fetched) == [f"vec:{text}" for text in inputs]
    assert len(set(batch_plan.fetch_positions)) == len({t for t in inputs if t not in cached})


def test_chunk_respects_item_and_token_caps() -> None:
    assert chunk([1, 1, 1, 1, 1], 2, 100) == [range(0, 2), range(2, 4), range(4, 5)]
    assert chunk([60, 50, 10], 10, 100) == [range(0, 1), range(1, 3)]


def test_an_item_over_the_token_cap_travels_alone() -> None:
    assert chunk([500, 1], 10, 100) == [range(0, 1), range(1, 2)]


@given(st.integers(0, 10_000), st.lists(st.integers(0, 500), min_size=1, max_size=30))
def test_apportioned_parts_sum_to_the_total(total: int, weights: list[int]) -> None:
    parts = apportion(total, weights)
    assert sum(parts) == total
    assert all(part >= 0 for part in parts)


def test_apportion_is_proportional() -> None:
    assert apportion(8, [3, 1]) == [6, 2]
