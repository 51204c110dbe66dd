"""A real 3-node Redis Cluster on loopback, built from the redis-server binary."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import redis

from tests.support.redis_server import RedisServer, free_port


def cluster_supported() -> str | None:
    """None when a cluster can be started here, else the reason it cannot."""
    if shutil.which("redis-cli") is None:
        return "redis-cli is not installed (it comes with redis-server's redis-tools)"
    return None


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is a valid, free port too."""
    while True:
        port = free_port()
        if port + 10000 <= 65535 and _is_free(port + 10000):
            return port


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class RedisCluster:
    def __init__(self, nodes: int = 3) -> None:
        self.nodes = [
            RedisServer(
                port=cluster_port(),
                extra_args=("--cluster-enabled", "yes", "--cluster-node-timeout", "2000"),
            )
            for _ in range(nodes)
        ]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
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
