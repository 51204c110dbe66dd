"""`python -m gateway keys …` manages keys on the configured store, as the admin API does, and a
running gateway on that store picks the change up within a second."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from gateway.settings import hash_key
from tests.support.background import BackgroundLoop
from tests.support.stack import Stack, write_config

CONFIG_KEY = {"name": "ops", "sha256": hash_key("sk-ops")}


def keys(config: Path, *args: str) -> tuple[Any, str]:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "keys", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout), done.stderr


def test_create_list_rotate_and_revoke(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", "http://127.0.0.1:9/v1", "")
    created, log = keys(config, "create", "--name", "alice", "--requests-per-second", "5")
    assert created["value"].startswith("sk-gw-") and created["limits"] == {"requests_per_second": 5}
    assert created["value"] not in log and '"api_key.create"' in log
    listed, _ = keys(config, "list")
    assert [k["name"] for k in listed] == ["alice"] and "value" not in listed[0]
    rotated, _ = keys(config, "rotate", created["id"], "--grace-seconds", "60")
    assert rotated["id"] == created["id"] and rotated["value"] != created["value"]
    revoked, _ = keys(config, "revoke", created["id"])
    assert revoked["deleted"] is True
    assert keys(config, "list")[0] == []


def test_a_key_made_by_the_cli_works_on_a_running_gateway(
    background: BackgroundLoop, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.yaml", "http://127.0.0.1:9/v1", "")
    overrides = {"stores": {"data_dir": str(tmp_path / "data")}, "auth": {"keys": [CONFIG_KEY]}}
    stack = Stack(background, "", overrides)
    try:
        created, _ = keys(config, "create", "--name", "alice")
        headers = {"Authorization": f"Bearer {created['value']}"}
        body = {"model": "text-embedding-3-small", "input": "hi"}
        deadline = time.monotonic() + 1.0
        while (
            httpx.post(f"{stack.base_url}/embeddings", json=body, headers=headers).status_code
            != 200
        ):
            assert time.monotonic() < deadline, "the gateway never accepted the new key"
            time.sleep(0.05)
    finally:
        stack.close()
