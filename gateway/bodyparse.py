"""Very large request bodies are parsed in a separate process.

Parsing holds the interpreter lock for as long as it runs, even on a thread: a 20 MB array of
token ids takes over half a second, in which no other tenant's request moves. A pool process
parses instead and hands back only what validation reads: the known fields, with token lists as
compact integer arrays (one buffer each, cheap to pass back), so the serving process never
holds millions of integer objects either. Validation itself stays in `protocol`, unchanged.

The body goes to the pool process as a scratch file (in /dev/shm where there is one), written
chunk by chunk as it arrives (or, for a body already read, on a thread): handing it over as an
argument pickled it on the executor's feeder thread, which held the interpreter lock for 76 ms
per 31 MB body, and gathering it first copied it again; a file write lets go of the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import multiprocessing
import os
import tempfile
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeGuard

import numpy as np

from gateway import tokenscan
from gateway.errors import ServiceUnavailable
from gateway.protocol import MAX_INPUTS, TokenRows, TooManyValues, parse_json, too_many_values
from gateway.tokens import MAX_TOKEN_ID

log = logging.getLogger("gateway")

OUT_OF_PROCESS_BYTES = 1024 * 1024
FIELDS = ("model", "input", "encoding_format", "dimensions", "user")
# Stands for a token list that can only fail validation (bools, non-integers, nesting): the
# serving process rejects it with the same message without receiving the list itself.
INVALID_ITEM: list[Any] = [None]
# Stands for a valid token list in front of an invalid one: validation passes it, then fails on
# the invalid list with the message it would give for the whole body.
VALID_ITEM = np.zeros(1, "<u4")
EMPTY = np.zeros(0, "<u4")
SHARED_MEMORY = "/dev/shm"
# Room /dev/shm must have to be chosen: containers often give it 64 MB, which two bodies fill.
SHARED_MEMORY_AT_LEAST = 1 << 30


def scratch_folder() -> str:
    """/dev/shm where it is big enough, else the temporary folder (its page cache: a file
    unlinked within a second is rarely written to disk)."""
    try:
        room = os.statvfs(SHARED_MEMORY)
    except OSError:
        return tempfile.gettempdir()
    big = room.f_blocks * room.f_frsize >= SHARED_MEMORY_AT_LEAST
    return SHARED_MEMORY if big else tempfile.gettempdir()


SCRATCH = scratch_folder()
Light = dict[str, Any] | list[Any] | TooManyValues | None  # what `lighten` hands back
Write = Callable[[bytes], object]
# Hands a body to `write` chunk by chunk as it arrives (BodyReader.read_into).
Upload = Callable[[Write], Awaitable[int]]


def lighten(body: bytes) -> Light:
    """In the pool process: the body's known fields, valid token lists as `TokenRows`; None if
    the body is not JSON, `TooManyValues` if it was refused unparsed, an empty list if it is
    JSON but not an object (validation refuses all three). Invalid token lists come back as
    just enough to fail validation with the message the whole body would get: stand-ins for
    the valid lists before the first invalid one, and that one (an out-of-range list as its
    lowest and highest id)."""
    refused = too_many_values(body)
    if refused is not None:
        return refused
    scanned = tokenscan.scan(body)
    if scanned is not None:
        return _known(scanned.fields) | {"input": _scanned_lists(scanned)}
    return parsed_light(body)


def parsed_light(body: bytes) -> Light:
    """`lighten` by the JSON parser: for a body `tokenscan` declined."""
    data = parse_json(body)
    if data is None:
        return None
    if not isinstance(data, dict):
        return []
    light = _known(data)
    raw = light.get("input")
    if isinstance(raw, list) and raw and type(raw[0]) is int:
        light["input"] = _one_list(raw)
    elif isinstance(raw, list) and raw and isinstance(raw[0], list):
        light["input"] = _lists(raw)
    return light


@dataclass(frozen=True, slots=True)
class RowsInFile:
    """`TokenRows` whose flat buffer the pool process wrote back to the scratch file."""

    lengths: np.ndarray
    single: bool


def lighten_file(path: str) -> Light:
    """In the pool process: `lighten` of the body the serving process wrote to `path`. Valid
    token lists go back through the same file (a 24 MB answer through the executor's pipe held
    the serving process's interpreter lock, chunk by chunk, on the executor's thread)."""
    with open(path, "r+b") as scratch:
        body = scratch.read()
        # Freeing a 31 MB file's pages takes milliseconds of kernel time: here, not in the
        # serving process's unlink, on the event loop every tenant shares.
        scratch.truncate(0)
    light = lighten(body)
    if isinstance(light, dict) and isinstance(light.get("input"), TokenRows):
        rows: TokenRows = light["input"]
        rows.flat.tofile(path)
        light["input"] = RowsInFile(rows.lengths, rows.single)
    return light


def _mapped(path: str) -> np.ndarray:
    with open(path, "rb") as scratch:
        return np.frombuffer(mmap.mmap(scratch.fileno(), 0, access=mmap.ACCESS_READ), "<u4")


def _rows_from(path: str, light: Light) -> Light:
    """In the serving process: the answer of `lighten_file`, its token lists mapped from the
    file (shared memory in /dev/shm: nothing is copied, and the mapping outlives the file's
    name until the request lets go of the lists)."""
    if isinstance(light, dict) and isinstance(light.get("input"), RowsInFile):
        stored: RowsInFile = light["input"]
        flat = _mapped(path) if stored.lengths.sum() else EMPTY
        light["input"] = TokenRows(flat, stored.lengths, stored.single)
    return light


def scratch_writer(scratch: BinaryIO) -> Write:
    """Writes all of each chunk (an unbuffered file may write less than it was given); a full
    scratch folder is a 503 to retry, logged."""

    def write(chunk: bytes) -> None:
        view = memoryview(chunk)
        try:
            while view:
                view = view[scratch.write(view) or 0 :]
        except OSError as exc:
            log.warning("the scratch folder %s refused a body: %s", SCRATCH, exc.strerror)
            raise ServiceUnavailable(
                "The request could not be parsed just now; please retry.",
                headers={"retry-after": "1"},
            ) from None

    return write


def _known(data: dict[str, Any]) -> dict[str, Any]:
    return {name: data[name] for name in FIELDS if name in data}


def _scanned_lists(scanned: tokenscan.ScannedTokens) -> TokenRows | np.ndarray | list[Any]:
    """What `_one_list` or `_lists` make of the same lists, from `tokenscan`'s arrays (their
    ids are never negative)."""
    ids, lengths = scanned.ids, scanned.lengths
    if scanned.single:
        return _single(ids if int(ids.max()) > MAX_TOKEN_ID else ids.astype("<u4"))
    if len(lengths) > MAX_INPUTS:
        return [VALID_ITEM] * len(lengths)
    too_high = np.flatnonzero(ids > MAX_TOKEN_ID)
    if not too_high.size:
        return TokenRows(ids.astype("<u4"), lengths)
    ends = np.cumsum(lengths)
    row = int(np.searchsorted(ends, too_high[0], side="right"))
    return [VALID_ITEM] * row + [_evidence(ids[ends[row] - lengths[row] : ends[row]])]


def _one_list(raw: list[Any]) -> TokenRows | np.ndarray | list[Any]:
    return _single(_ids(raw))


def _single(ids: np.ndarray | list[Any]) -> TokenRows | np.ndarray | list[Any]:
    if _valid(ids):
        return TokenRows(ids, np.array([len(ids)]), single=True)
    return _evidence(ids)


def _lists(raw: list[Any]) -> TokenRows | list[Any]:
    if len(raw) > MAX_INPUTS:  # validation counts the lists before it looks at any
        return [VALID_ITEM] * len(raw)
    arrays = []
    for index, item in enumerate(raw):
        ids = _ids(item) if isinstance(item, list) and item else INVALID_ITEM
        if not _valid(ids):
            return [VALID_ITEM] * index + [_evidence(ids)]
        arrays.append(ids)
    lengths = np.fromiter(map(len, arrays), dtype=np.int64, count=len(arrays))
    return TokenRows(np.concatenate(arrays), lengths)


def _valid(ids: np.ndarray | list[Any]) -> TypeGuard[np.ndarray]:
    return isinstance(ids, np.ndarray) and ids.dtype.str == "<u4"


def _evidence(ids: np.ndarray | list[Any]) -> np.ndarray | list[Any]:
    """What validation needs of an invalid list: an out-of-range one's lowest and highest id."""
    if isinstance(ids, np.ndarray):
        return np.array([ids.min(), ids.max()], dtype=ids.dtype)
    return ids


def _ids(item: list[Any]) -> np.ndarray | list[Any]:
    if bool in set(map(type, item)):
        return INVALID_ITEM
    try:
        ids = np.asarray(item)
    except (ValueError, OverflowError):
        return INVALID_ITEM
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        return INVALID_ITEM
    if int(ids.min()) < 0 or int(ids.max()) > MAX_TOKEN_ID:
        return ids  # out of range: the serving process names the value in its message
    return ids.astype("<u4")


def _yield_the_cpu() -> None:
    """In each pool process: parsing is the least urgent work on the machine, so the serving
    processes (and the other tenants' requests they carry) are scheduled first."""
    os.nice(10)


def _started() -> None:
    """A no-op: the first job, which starts the pool's processes."""


class ParsePool:
    """At most `processes` parsing processes, started on first use, never by a small body."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._starting: asyncio.Lock | None = None

    @property
    def enabled(self) -> bool:
        return self.processes > 0

    async def parse(self, body: bytes) -> Light:
        """A body already read, written out on a thread."""

        async def upload(write: Write) -> int:
            await asyncio.to_thread(write, body)
            return len(body)

        return await self.parse_upload(upload)

    async def parse_upload(self, upload: Upload) -> Light:
        pool = self._pool or await self._start()
        fd, path = tempfile.mkstemp(prefix="gateway-body-", dir=SCRATCH)
        try:
            with open(fd, "wb", buffering=0) as scratch:
                await upload(scratch_writer(scratch))
            light = await self._in_pool(pool, path)
            return _rows_from(path, light)
        finally:  # even when cancelled mid-write: the open file lives on unnamed until closed
            with contextlib.suppress(OSError):
                os.unlink(path)

    async def _in_pool(self, pool: ProcessPoolExecutor, path: str) -> Light:
        """A pool whose process died (killed, out of memory) refuses every later job: it is
        replaced on the next body, and this one gets a 503 to retry."""
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, lighten_file, path)
        except OSError as exc:  # writing the token lists back: the scratch folder is full
            log.warning("the scratch folder %s refused token lists: %s", SCRATCH, exc.strerror)
            raise ServiceUnavailable(
                "The request could not be parsed just now; please retry.",
                headers={"retry-after": "1"},
            ) from None
        except BrokenProcessPool:
            log.warning("a body-parsing process died; starting a new one")
            if self._pool is pool:
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise ServiceUnavailable(
                "The request could not be parsed just now; please retry.",
                headers={"retry-after": "1"},
            ) from None

    async def _start(self) -> ProcessPoolExecutor:
        """Starting the processes waits for a new interpreter's imports (half a second): on
        a thread, never on the event loop, and once however many bodies wait for it."""
        self._starting = self._starting or asyncio.Lock()
        async with self._starting:
            if self._pool is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload([__name__])
                pool = ProcessPoolExecutor(
                    self.processes, mp_context=context, initializer=_yield_the_cpu
                )
                await asyncio.to_thread(lambda: pool.submit(_started).result())
                self._pool = pool
            return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
