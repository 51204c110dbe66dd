"""A real 3-node Redis Cluster on loopback, built from the redis-server binary."""

from __future__ import annotations

import shutil
import subprocess
import time

import redis

from tests.support.redis_server import RedisServer


def cluster_supported() -> str | None:
    """None when a cluster can be started here, else the reason it cannot."""
    if shutil.which("redis-cli") is None:
        return "redis-cli is not installed (it comes with redis-server's redis-tools)"
    return None


class RedisCluster:
    def __init__(self, nodes: int = 3) -> None:
        self.nodes = [
            RedisServer(extra_args=("--cluster-enabled", "yes", "--cluster-node-timeout", "2000"))
            for _ in range(nodes)
        ]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        self._wait_until_ok()

    def _wait_until_ok(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = subprocess.run(
                ["redis-cli", "-p", str(self.nodes[0].port), "cluster", "info"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            ).stdout
            if "cluster_state:ok" in info:
                return
            time.sleep(0.1)
        raise RuntimeError("the Redis cluster did not become ready")

    def flush(self) -> None:
        for node in self.nodes:
            with redis.Redis(port=node.port) as client:
                client.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
