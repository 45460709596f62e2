"""The durable point of no return: ``WAIT`` / ``WAITAOF`` after ``begin_send``, before the wire.

Replication is asynchronous and ``appendfsync everysec`` fsyncs a second late, so a mark Redis has
acknowledged can still be lost with the master (a failover to a replica that missed it, a power
cut). A lost mark sends an attempt twice: the new master still sees it queued or claimed. Waiting,
once per batch, until the mark is on ``replicas`` replicas and/or in the master's AOF on disk makes
what is lost only marks whose sends never happened.

``WAIT`` and ``WAITAOF`` count the writes of *the connection that asks*, so the wait is queued in
the same pipeline as the script (one connection, one round trip).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.config.settings import RedisSettings
from engine.errors import ConfigError

#: WAITAOF appeared in Redis 7.2.
WAITAOF_SINCE = (7, 2)


@dataclass(frozen=True, slots=True)
class DurableWait:
    replicas: int
    aof: bool
    timeout_ms: int

    @classmethod
    def of(cls, settings: RedisSettings) -> DurableWait | None:
        if not settings.durable:
            return None
        return cls(settings.durable_replicas, settings.durable_aof, max(1, int(settings.durable_timeout_s * 1000)))

    def command(self) -> tuple[Any, ...]:
        if self.aof:
            return ("WAITAOF", 1, self.replicas, self.timeout_ms)
        return ("WAIT", self.replicas, self.timeout_ms)

    def met(self, reply: Any) -> bool:
        """The reply of :meth:`command`: did every copy asked for acknowledge in time?"""
        if self.aof:
            local, replicas = (int(x) for x in reply)
            return local >= 1 and replicas >= self.replicas
        return int(reply) >= self.replicas


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:3] if p.isdigit())


def check_support(wait: DurableWait | None, info: dict[str, Any]) -> None:
    """``info``: the master's ``INFO`` (server, persistence). A setting the server cannot honour is
    a :class:`ConfigError` at start-up, not a stalled dispatcher (every wait would fail)."""
    if wait is None or not wait.aof:
        return
    version = str(info.get("redis_version", "0"))
    if version_tuple(version) < WAITAOF_SINCE:
        raise ConfigError(f"redis.durable_aof needs WAITAOF (Redis 7.2 or newer); the master runs {version}: "
                          "upgrade it, or use redis.durable_replicas (WAIT) alone")
    if str(info.get("aof_enabled", "0")) != "1":
        raise ConfigError("redis.durable_aof needs the master's AOF (appendonly yes, see ops/redis.conf)")


def everysec_caveat(appendfsync: str | None) -> str | None:
    """The warning for ``durable_aof`` on a master that fsyncs every second: Redis 7.4 and Valkey 8.0
    answer WAITAOF there before the fsync when the last one was under a second ago
    (redis/redis#13793), so the wait is only as good as the server (docs/failover.md)."""
    if appendfsync != "everysec":
        return None
    return ("redis.durable_aof with appendfsync everysec: some Redis/Valkey versions answer WAITAOF before "
            "the fsync (redis/redis#13793); prefer appendfsync always (ops/redis.conf), see docs/failover.md")
