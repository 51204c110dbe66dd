"""A whole gateway on a loopback port, in front of a fake upstream, with the shipped config."""

from __future__ import annotations

import contextlib
import copy
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from gateway.app import BACKGROUND, build_app
from gateway.settings import Settings, expand_env, parse
from tests.support.background import BackgroundLoop
from tests.support.fake_upstream import FakeUpstream

CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def shipped_settings(
    upstream_url: str, redis_url: str, overrides: dict[str, Any] | None = None
) -> Settings:
    environ = {
        "OPENAI_BASE_URL": upstream_url,
        "NANOGPT_BASE_URL": upstream_url,
        "OPENAI_API_KEY": "sk-upstream-openai-secret",
        "NANOGPT_API_KEY": "sk-upstream-nanogpt-secret",
        "REDIS_URL": redis_url,
    }
    raw = expand_env(yaml.safe_load(CONFIG.read_text()), environ)
    return parse(merge(raw, overrides or {}))


EMBEDDED = ("memory", "sqlite")


class Stack:
    """``backend``: a Redis URL, "memory" or "sqlite" for that cache backend, or "" for the
    embedded default; the SQLite file goes to a fresh directory unless the overrides name one."""

    def __init__(
        self, loop: BackgroundLoop, backend: str, overrides: dict[str, Any] | None = None
    ) -> None:
        self.loop = loop
        self.data_dir = tempfile.mkdtemp(prefix="gateway-data-")  # the SQLite files, per stack
        stores: dict[str, Any] = {"data_dir": self.data_dir}
        if backend in EMBEDDED:
            stores["cache"] = backend
        overrides = merge({"stores": stores}, overrides or {})
        redis_url = "" if backend in EMBEDDED else backend
        probe = shipped_settings("http://unused", redis_url, overrides)
        self.upstream = FakeUpstream({name: m.dimensions for name, m in probe.models.items()})
        upstream_url = loop.run(self.upstream.start())
        self.settings = shipped_settings(upstream_url, redis_url, overrides)
        self.app, self.port = self._start()

    def _start(self) -> tuple[web.Application, int]:
        app = build_app(self.settings)
        return app, self.loop.start_app(app)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def drain(self) -> None:
        """Wait until background cache writes have landed."""
        self.loop.run(self.app[BACKGROUND].drain())

    def restart_gateway(self) -> None:
        self.drain()
        self.loop.stop_app(self.port)
        self.app, self.port = self._start()

    def close(self) -> None:
        self.loop.stop_app(self.port)
        self.loop.run(self.upstream.stop())
        shutil.rmtree(self.data_dir, ignore_errors=True)


def write_config(
    path: Path, upstream_url: str, redis_url: str, overrides: dict[str, Any] | None = None
) -> Path:
    """The shipped config pointed at a fake upstream, as a file for a gateway subprocess."""
    raw = yaml.safe_load(CONFIG.read_text())
    for provider in ("openai", "nanogpt"):  # keyless providers are not called
        raw["providers"][provider]["base_url"] = upstream_url
        raw["providers"][provider]["api_key"] = f"sk-upstream-{provider}-secret"
    raw["cache"]["redis_url"] = redis_url
    raw["stores"]["data_dir"] = str(path.parent / "data")
    path.write_text(yaml.safe_dump(merge(raw, overrides or {})))
    return path


@contextlib.contextmanager
def own_stack(backend: str = "", overrides: dict[str, Any] | None = None) -> Iterator[Stack]:
    """A stack on a background loop of its own, for fixtures that outlive one test."""
    with BackgroundLoop() as loop:
        stack = Stack(loop, backend, overrides)
        try:
            yield stack
        finally:
            stack.close()
