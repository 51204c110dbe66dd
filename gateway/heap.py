"""What a process holds once it serves is kept out of the garbage collector's full passes.

A full (oldest-generation) collection walks every object that has lived long enough, and a
started gateway holds a few hundred thousand of them (the tokenizer's ranks, the catalog, the
modules): each full pass held the event loop for 35 to 60 ms, at moments that a flood of
requests, which allocates a lot, makes likely. Freezing what exists when serving starts moves
it to a permanent generation the collector skips; what is made afterwards is collected as
before. Unfrozen at shutdown, so a process that builds many apps (the tests) can still collect
an app's cycles once it is gone.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def startup_objects_frozen() -> Iterator[None]:
    gc.freeze()  # O(1): the tracked objects move to the permanent generation as one list
    try:
        yield
    finally:
        gc.unfreeze()
