"""Per-request cache controls and who may use them (pure).

``Cache-Control: no-cache`` serves nothing from the cache and overwrites every entry with what
it fetches (it spends upstream money); ``no-store`` writes nothing; ``x-gateway-cache-ttl``
sets the lifetime of what the request writes, up to the configured one. A key may use only the
controls its ``cache_controls`` list; any other is refused with 403, never ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from gateway.errors import InvalidRequest, PermissionDenied

NO_CACHE: Final = "no-cache"
NO_STORE: Final = "no-store"
TTL: Final = "ttl"
Control = Literal["no-cache", "no-store", "ttl"]
CONTROLS: tuple[Control, ...] = (NO_CACHE, NO_STORE, TTL)
DEFAULT_ALLOWED = frozenset({NO_STORE})
TTL_HEADER = "x-gateway-cache-ttl"


@dataclass(frozen=True, slots=True)
class CacheControls:
    refresh: bool = False  # no-cache: fetch every input and overwrite its entry
    store: bool = True  # no-store: write nothing
    ttl_seconds: int | None = None  # None: the configured lifetime

    @property
    def used(self) -> frozenset[str]:
        chosen = {NO_CACHE: self.refresh, NO_STORE: not self.store, TTL: self.ttl_seconds}
        return frozenset(name for name, on in chosen.items() if on)


NONE = CacheControls()


def parse(cache_control: str | None, ttl: str | None, max_ttl: int) -> CacheControls:
    """Directives other than no-cache and no-store (max-age, ...) do not concern the gateway."""
    if cache_control is None and ttl is None:
        return NONE
    directives = {part.strip().lower() for part in (cache_control or "").split(",")}
    return CacheControls(
        refresh=NO_CACHE in directives,
        store=NO_STORE not in directives,
        ttl_seconds=None if ttl is None else _ttl(ttl, max_ttl),
    )


def _ttl(raw: str, max_ttl: int) -> int:
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= max_ttl:
        raise InvalidRequest(
            f"The {TTL_HEADER} header must be a whole number of seconds from 1 to {max_ttl}.",
            param=TTL_HEADER,
        )
    return int(text)


def check_allowed(controls: CacheControls, allowed: frozenset[str], internal: bool) -> None:
    refused = sorted(controls.used - allowed) if not internal else []
    if refused:
        names = ", ".join(
            TTL_HEADER if name == TTL else f"Cache-Control: {name}" for name in refused
        )
        raise PermissionDenied(
            f"This API key may not use {names}; its cache controls are: "
            f"{', '.join(sorted(allowed)) or 'none'}. Ask your gateway administrator."
        )
