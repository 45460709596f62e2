"""The Redis client of a process, from settings (a single server or a Redis Cluster)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.backoff import Backoff
from engine.config.settings import RedisSettings
from engine.errors import StoreUnavailable

log = logging.getLogger(__name__)

#: What "Redis is not there" looks like from redis-py (a refused or dropped connection, a
#: timeout, a cluster whose nodes cannot be reached).
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, RedisClusterException)

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


def describe_url(url: str) -> str:
    """``redis://user:secret@host:6379/0`` → ``redis://host:6379/0``: safe for messages and logs."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "the configured Redis"
    return f"{parts.scheme}://{host}{port}{parts.path}"


async def ensure_reachable(redis: Redis, settings: RedisSettings, *, wait: asyncio.Event | None = None,
                           max_backoff_s: float = 10.0) -> bool:
    """PING Redis. Unreachable: raise :class:`StoreUnavailable`, or with ``wait`` (a stop event)
    retry with capped, jittered backoff until it answers (True) or ``wait`` is set (False).

    A dispatcher restarted while Redis restarts waits for it (what systemd's restart loop would
    do, without the log noise of a crash per second); a one-shot command says so and exits.
    """
    backoff = Backoff(0.2, max_backoff_s, jitter=0.2)
    failures = 0
    while True:
        try:
            await asyncio.wait_for(redis.ping(), 5.0)
            return True
        except (*UNREACHABLE, OSError) as exc:
            where = describe_url(settings.url)
            if wait is None:
                raise StoreUnavailable(f"Redis at {where} is unavailable: {type(exc).__name__}") from None
            delay_s = backoff.delay_s(failures)
            failures += 1
            log.warning("Redis at %s is unavailable (%s); retrying in %.1f s", where, type(exc).__name__, delay_s)
        try:
            await asyncio.wait_for(wait.wait(), delay_s)
            return False
        except TimeoutError:
            pass
