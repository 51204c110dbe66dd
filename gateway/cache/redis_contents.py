"""What a Redis cache holds per model, without walking a large keyspace.

A small Redis (up to ``EXACT_UP_TO`` keys) is counted exactly with SCAN. A larger one is
sampled: ``SAMPLES`` RANDOMKEYs in one pipeline, each entry of a model's current generation
weighed by ``MEMORY USAGE``, scaled by DBSIZE; the answer is marked as estimated. Entry ages are
not kept on Redis.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from gateway.cache import Contents, ModelEntries
from gateway.keys import KEY_VERSION, key_model

SAMPLES = 256
EXACT_UP_TO = 2000


async def sample_contents(client: Any, prefix: str) -> Contents:
    size = int(await client.dbsize())
    head = f"{prefix}:e:{KEY_VERSION}:".encode()
    if size <= EXACT_UP_TO:
        keys = [key async for key in client.scan_iter(match=head + b"*", count=1000)]
        scale, estimated = 1.0, False
    else:
        pipe = client.pipeline(transaction=False)
        for _ in range(SAMPLES):
            pipe.randomkey()
        keys = [key for key in await pipe.execute() if key and key.startswith(head)]
        scale, estimated = size / SAMPLES, True
    current = await _current_keys(client, prefix, keys)
    return Contents(await _weigh(client, current, scale), estimated)


async def _current_keys(client: Any, prefix: str, keys: list[bytes]) -> list[tuple[str, bytes]]:
    """(tag, key) for each key of its model's current generation."""
    models = [(key, *key_model(key)) for key in keys]
    tags = sorted({tag for _, tag, _ in models})
    if not tags:
        return []
    mget = getattr(client, "mget_nonatomic", client.mget)  # a Cluster: keys in many slots
    raw = await mget([f"{prefix}:g:{tag}" for tag in tags])
    generations = {
        tag: int(g) if g and g.isdigit() else 0 for tag, g in zip(tags, raw, strict=True)
    }
    return [(tag, key) for key, tag, generation in models if generations[tag] == generation]


async def _weigh(
    client: Any, keys: list[tuple[str, bytes]], scale: float
) -> dict[str, ModelEntries]:
    pipe = client.pipeline(transaction=False)
    for _, key in keys:
        pipe.memory_usage(key, samples=0)
    sizes = await pipe.execute()
    entries: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for (tag, _), used in zip(keys, sizes, strict=True):
        if used is not None:  # expired between the two calls
            entries[tag] += 1
            total[tag] += int(used)
    return {
        tag: ModelEntries(round(entries[tag] * scale), round(total[tag] * scale)) for tag in entries
    }
