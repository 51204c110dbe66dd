"""Runtime keys in this process's memory: for tests and single-process trials (gone at restart)."""

from __future__ import annotations

from gateway.apikeys import ApiKey


class MemoryKeys:
    name = "memory"

    def __init__(self) -> None:
        self._keys: dict[str, ApiKey] = {}
        self._used: dict[str, int] = {}
        self._version = 0

    async def version(self) -> int:
        return self._version

    async def load(self) -> list[ApiKey]:
        return list(self._keys.values())

    async def put(self, key: ApiKey) -> None:
        self._keys[key.id] = key
        self._version += 1

    async def delete(self, key_id: str) -> bool:
        self._version += 1
        return self._keys.pop(key_id, None) is not None

    async def touch(self, used: dict[str, int]) -> None:
        for key_id, at in used.items():
            self._used[key_id] = max(at, self._used.get(key_id, 0))

    async def last_used(self) -> dict[str, int]:
        return dict(self._used)

    async def close(self) -> None:
        return None
