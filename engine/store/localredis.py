"""A private redis-server on a free port in a temporary folder (the demo, tests, benchmarks).

Not for production: there Redis is deployed with ``ops/redis.conf``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """Start with :meth:`start`, stop with :meth:`stop`; ``url`` points at database 0."""

    def __init__(self, *, appendonly: bool = False, appendfsync: str = "everysec",
                 port: int | None = None, extra: list[str] | None = None, directory: Path | None = None,
                 binary: str | None = None, env: dict[str, str] | None = None) -> None:
        binary = binary or shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH: install it (apt-get install redis-server)"
                               " or set REDIS_URL")
        self.binary = binary
        self.port = port or free_port()
        self.dir = directory or Path(tempfile.mkdtemp(prefix="volna-redis-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.extra = extra or []
        #: Extra environment of the server process (tests: an LD_PRELOAD shim).
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
            "--save", "", "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync, "--maxmemory-policy", "noeviction",
            "--databases", "64", "--logfile", str(self.dir / "redis.log"), *self.extra,
        ]
        env = {**os.environ, **self.env} if self.env else None
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
