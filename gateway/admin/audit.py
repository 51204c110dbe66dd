"""One JSON line per admin action on the `gateway.audit` logger: who, what, which key, how it
ended. Never a secret: callers pass ids and names only."""

from __future__ import annotations

import logging

import orjson

audit_log = logging.getLogger("gateway.audit")


def audit(action: str, actor: dict[str, str], key_id: str | None, status: int) -> None:
    line = {"audit": action, "actor": actor, "key_id": key_id, "status": status}
    audit_log.info(orjson.dumps(line).decode())
