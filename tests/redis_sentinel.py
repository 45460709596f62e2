"""A master, its replica and three sentinels, real processes on free ports (docs/failover.md).

The server is the machine's redis-server, or — for ``WAITAOF`` (Redis ≥ 7.2), when the machine's is
older — Valkey 8 that ``ops/valkey-install.sh`` unpacks into a cache folder (:func:`newer_server`).
Sentinels are the same binary with ``--sentinel``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from functools import cache
from pathlib import Path
from typing import Any

import redis

from engine.store.durable import WAITAOF_SINCE, version_tuple
from engine.store.localredis import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
MASTER = "volna"


def server_version(binary: str) -> tuple[int, ...]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    for word in out.split():
        if word.startswith("v="):
            return version_tuple(word[2:])
    return (0,)


@cache
def newer_server() -> str | None:
    """A server with WAITAOF: the machine's redis-server if new enough, else the cached Valkey."""
    system = shutil.which("redis-server")
    if system and server_version(system) >= WAITAOF_SINCE:
        return system
    try:
        out = subprocess.run(["bash", str(ROOT / "ops" / "valkey-install.sh")], capture_output=True, text=True,
                             timeout=300, check=True).stdout.strip().splitlines()
    except (subprocess.SubprocessError, OSError):
        return None
    binary = Path(out[-1]) / "valkey-server" if out else None
    return str(binary) if binary and binary.exists() else None


def client(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=1.0, socket_connect_timeout=1.0, decode_responses=True)


def ping(port: int) -> bool:
    try:
        with client(port) as r:
            return bool(r.ping())
    except redis.RedisError:
        return False


def info(port: int, section: str) -> dict[str, Any]:
    with client(port) as r:
        return dict(r.info(section))


class SentinelSet:
    """``start()`` → master (AOF on), one replica, three sentinels (quorum 2, down after 1 s)."""

    def __init__(self, *, binary: str | None = None, appendfsync: str = "everysec",
                 down_after_ms: int = 1000, directory: Path | None = None) -> None:
        self.binary = binary or shutil.which("redis-server") or "redis-server"
        self._own_dir = directory is None
        self.dir = directory or Path(tempfile.mkdtemp(prefix="volna-sentinel-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.down_after_ms = down_after_ms
        self.common = ["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
                       "--repl-ping-replica-period", "1"]
        self.nodes = [RedisServer(appendonly=True, appendfsync=appendfsync, binary=self.binary,
                                  directory=self.dir / f"node{i}", extra=list(self.common)) for i in range(2)]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes] | None] = [None, None, None]

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.sentinel_ports]

    def settings(self) -> dict[str, object]:
        """The ``redis`` settings section pointing at this set."""
        return {"url": "redis://127.0.0.1/0", "sentinels": self.addresses, "sentinel_master": MASTER}

    def start(self) -> SentinelSet:
        master, replica = self.nodes
        master.start()
        replica.extra += ["--replicaof", "127.0.0.1", str(master.port)]
        replica.start()
        self.wait_replicated(replica.port)
        for i in range(3):
            self.start_sentinel(i)
        self.wait(lambda: self.master_port() == master.port and self.sentinels_know_replica(), 15)
        return self

    def start_sentinel(self, i: int) -> None:
        d = self.dir / f"sentinel{i}"
        d.mkdir(exist_ok=True)
        conf = d / "sentinel.conf"
        master_port = self.nodes[0].port
        conf.write_text("\n".join([
            f"port {self.sentinel_ports[i]}", "bind 127.0.0.1", f"dir {d}", f"logfile {d / 'sentinel.log'}",
            f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 2",
            f"sentinel down-after-milliseconds {MASTER} {self.down_after_ms}",
            f"sentinel failover-timeout {MASTER} 10000",
            f"sentinel parallel-syncs {MASTER} 1", "",
        ]))
        self.sentinels[i] = subprocess.Popen([self.binary, str(conf), "--sentinel"],
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait(lambda: ping(self.sentinel_ports[i]), 10)

    @staticmethod
    def wait(predicate: object, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise TimeoutError(f"not within {timeout_s} s: {predicate}")

    def wait_replicated(self, port: int, timeout_s: float = 15) -> None:
        self.wait(lambda: info(port, "replication").get("master_link_status") == "up", timeout_s)

    def wait_synced(self, timeout_s: float = 15) -> None:
        """Everything written to the master so far is on a replica: a write, then ``WAIT 1`` on the
        same connection (replication is in order; a link that is merely "up" may still lag, as it
        did on a loaded machine, and a failover then forgot the API's token)."""
        master = self.current_master()
        with client(master.port) as r:
            r.set("volna:test:synced", str(time.time()))
            acked = int(r.execute_command("WAIT", 1, int(timeout_s * 1000)))
        assert acked >= 1, "no replica acknowledged the master's writes"

    def master_port(self) -> int | None:
        """The master's port as the first sentinel that answers says."""
        for port in self.sentinel_ports:
            try:
                with client(port) as r:
                    addr = r.sentinel_get_master_addr_by_name(MASTER)
            except redis.RedisError:
                continue
            if addr:
                return int(addr[1])
        return None

    def sentinels_know_replica(self) -> bool:
        replica = self.nodes[1].port
        try:
            for port in self.sentinel_ports:
                with client(port) as r:
                    if not any(int(s["port"]) == replica for s in r.sentinel_slaves(MASTER)):
                        return False
        except redis.RedisError:
            return False
        return True

    def node(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def current_master(self) -> RedisServer:
        port = self.master_port()
        assert port is not None, "no sentinel names a master"
        return self.node(port)

    def kill_master(self, how: str = "kill") -> RedisServer:
        """``kill -9`` (or SIGTERM) of the master; returns it (its replica is promoted by the sentinels)."""
        master = self.current_master()
        assert master.proc is not None
        master.proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGTERM)
        master.proc.wait(10)
        master.proc = None
        return master

    def wait_failover(self, old: RedisServer, timeout_s: float = 30) -> RedisServer:
        self.wait(lambda: self.master_port() not in (None, old.port), timeout_s)
        new = self.current_master()
        self.wait(lambda: info(new.port, "replication").get("role") == "master", timeout_s)
        return new

    def restart_as_replica(self, node: RedisServer, timeout_s: float = 30) -> None:
        """Bring a dead node back as the current master's replica (the sentinels would make it one
        within ~10 s of seeing it; starting it so keeps the tests' timing short and certain)."""
        node.extra = [*self.common, "--replicaof", "127.0.0.1", str(self.current_master().port)]
        node.start()
        self.wait_replicated(node.port, timeout_s)

    def stop(self) -> None:
        for proc in self.sentinels:
            if proc is not None and proc.poll() is None:
                if os.environ.get("VOLNA_KEEP_SENTINELS"):
                    continue
                proc.terminate()
                proc.wait(10)
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGCONT)
            node.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
