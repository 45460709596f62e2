"""The Redis client of a process, from settings (a single server or a Redis Cluster)."""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster

from engine.settings import RedisSettings

#: Connections per process. Bursts of concurrent commands wait for a free connection
#: (a blocking pool) instead of failing: the micro-batchers keep the need small anyway.
MAX_CONNECTIONS = 64


def make_redis(settings: RedisSettings, **kwargs: Any) -> Redis:
    """A decode-responses client; every call has a socket timeout (STYLE: every await has one)."""
    opts: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": 10.0,
        "socket_connect_timeout": 5.0,
        **kwargs,
    }
    if settings.cluster:
        # redis-py's cluster client has no blocking pool: a generous per-node limit instead.
        return RedisCluster.from_url(settings.url, max_connections=1024, **opts)
    pool = BlockingConnectionPool.from_url(
        settings.url, max_connections=MAX_CONNECTIONS, timeout=20, health_check_interval=30, **opts
    )
    # from_pool: the client owns the pool, so aclose() disconnects every connection.
    return Redis.from_pool(pool)
