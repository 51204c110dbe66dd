from __future__ import annotations

from gateway.usage import FIELDS, MemoryUsage, Table, UsageBuffer, UsageRecord

COUNTS = dict.fromkeys(FIELDS, 1)


class FlakyStore(MemoryUsage):
    def __init__(self) -> None:
        super().__init__()
        self.fail = True

    async def add(self, delta: Table) -> bool:
        return False if self.fail else await super().add(delta)


async def test_records_are_summed_in_memory_until_a_flush() -> None:
    store = MemoryUsage()
    buffer = UsageBuffer(store)
    buffer.add(UsageRecord("k", "t", "m", COUNTS))
    buffer.add(UsageRecord("k", "t", "m", COUNTS))
    assert await store.table() == {}
    await buffer.flush()
    assert (await store.table())[("k", "t", "m")]["requests"] == 2


async def test_reading_the_table_flushes_first() -> None:
    buffer = UsageBuffer(MemoryUsage())
    buffer.add(UsageRecord("k", "t", "m", COUNTS))
    assert (await buffer.table())[("k", "t", "m")]["tokens"] == 1


async def test_a_failed_write_is_kept_for_the_next_one() -> None:
    store = FlakyStore()
    buffer = UsageBuffer(store)
    buffer.add(UsageRecord("k", "t", "m", COUNTS))
    await buffer.flush()
    store.fail = False
    buffer.add(UsageRecord("k", "t", "m", COUNTS))
    await buffer.flush()
    assert (await store.table())[("k", "t", "m")]["requests"] == 2
