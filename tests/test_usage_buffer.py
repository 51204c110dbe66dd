from __future__ import annotations

from gateway.store import StoreUnavailable
from gateway.usage import Counts, Row, Table, UsageRecord
from gateway.usage.buffer import UsageBuffer
from gateway.usage.memory import MemoryUsage

ROW = Row("k", "t", "m")
ONE = UsageRecord(ROW, Counts(1, 1, 1, 1, 1))


class FlakyStore(MemoryUsage):
    def __init__(self) -> None:
        super().__init__()
        self.fail = True

    async def add(self, delta: Table) -> None:
        if self.fail:
            raise StoreUnavailable("down")
        await super().add(delta)


async def test_records_are_summed_in_memory_until_a_flush() -> None:
    store = MemoryUsage()
    buffer = UsageBuffer(store)
    buffer.add(ONE)
    buffer.add(ONE)
    assert await store.table() == {}
    await buffer.flush()
    assert (await store.table())[ROW].requests == 2


async def test_reading_the_table_flushes_first() -> None:
    buffer = UsageBuffer(MemoryUsage())
    buffer.add(ONE)
    assert (await buffer.table())[ROW].tokens == 1


async def test_a_failed_write_is_kept_for_the_next_one() -> None:
    store = FlakyStore()
    buffer = UsageBuffer(store)
    buffer.add(ONE)
    await buffer.flush()
    store.fail = False
    buffer.add(ONE)
    await buffer.flush()
    assert (await store.table())[ROW].requests == 2


async def test_the_table_counts_what_could_not_be_written_yet() -> None:
    buffer = UsageBuffer(FlakyStore())
    buffer.add(ONE)
    assert (await buffer.table())[ROW].requests == 1
