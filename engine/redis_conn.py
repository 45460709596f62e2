"""The Redis client of a process, from settings (a single server or a Redis Cluster)."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from engine.settings import RedisSettings


def make_redis(settings: RedisSettings, **kwargs: Any) -> Redis:
    """A decode-responses client; every call has a socket timeout (STYLE: every await has one)."""
    opts: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": 10.0,
        "socket_connect_timeout": 5.0,
        "health_check_interval": 30,
        **kwargs,
    }
    if settings.cluster:
        opts.pop("health_check_interval", None)
        return RedisCluster.from_url(settings.url, **opts)  # type: ignore[return-value]
    return Redis.from_url(settings.url, **opts)
