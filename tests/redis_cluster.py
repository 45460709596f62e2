"""A real three-master Redis Cluster on free ports, for the cluster tests and load runs."""

from __future__ import annotations

import shutil
import subprocess
import time

from tests.redis_server import RedisServer, free_port


def cluster_port() -> int:
    """A free port that leaves room for the cluster bus (port + 10000 must be a valid, free port)."""
    import socket

    for _ in range(200):
        port = free_port()
        if port > 55535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisClusterServers:
    def __init__(self, masters: int = 3) -> None:
        self.nodes = [
            RedisServer(port=cluster_port(), extra=["--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
                                                 "--cluster-config-file", "nodes.conf"])
            for _ in range(masters)
        ]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> RedisClusterServers:
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is needed to create the cluster")
        addrs = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run([cli, "--cluster", "create", *addrs, "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            out = subprocess.run([cli, "-p", str(self.nodes[0].port), "cluster", "info"], capture_output=True,
                                 text=True, timeout=5).stdout
            if "cluster_state:ok" in out:
                return self
            time.sleep(0.1)
        raise RuntimeError("the cluster did not reach cluster_state:ok")

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()
