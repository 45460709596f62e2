"""The Redis client of a process, from settings: a single server, a Redis Cluster, or the master
a set of Redis Sentinels names (followed through a failover: docs/failover.md)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.backoff import Backoff
from engine.config.settings import RedisSettings, sentinel_address
from engine.errors import StoreUnavailable

log = logging.getLogger(__name__)

#: What "Redis is not there" looks like from redis-py (a refused or dropped connection, a
#: timeout, a cluster whose nodes cannot be reached).
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, RedisClusterException)

#: Connections per process. Bursts of concurrent commands wait for a free connection
#: (a blocking pool) instead of failing: the micro-batchers keep the need small anyway.
MAX_CONNECTIONS = 64


class SentinelRedis(Redis):
    """The master's client; closing it closes the clients of the sentinels it asks too."""

    sentinel: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel is not None:
            await self.sentinel.aclose()


def make_redis(settings: RedisSettings, **kwargs: Any) -> Redis:
    """A decode-responses client; every call has a socket timeout (STYLE: every await has one)."""
    opts: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": 10.0,
        "socket_connect_timeout": 5.0,
        **kwargs,
    }
    password = settings.password()
    if password is not None:
        opts["password"] = password
    if settings.cluster:
        # redis-py's cluster client has no blocking pool: a generous per-node limit instead.
        return RedisCluster.from_url(settings.url, max_connections=1024, **opts)
    if settings.sentinels:
        return _sentinel_master(settings, opts)
    pool = BlockingConnectionPool.from_url(
        settings.url, max_connections=MAX_CONNECTIONS, timeout=20, health_check_interval=30, **opts
    )
    # from_pool: the client owns the pool, so aclose() disconnects every connection.
    return Redis.from_pool(pool)


def _sentinel_master(settings: RedisSettings, opts: dict[str, Any]) -> Redis:
    """A client of the master the sentinels name: each new connection asks them where it is, and a
    connection to a master that was demoted (READONLY) is dropped, so the next command reaches the
    new one. Lua scripts are loaded again on the new master by redis-py (EVALSHA, NOSCRIPT, LOAD)."""
    parts = urlsplit(settings.url)
    db = int(parts.path.strip("/") or 0) if parts.path.strip("/").isdigit() else 0
    sentinel_opts: dict[str, Any] = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0,
                                     "decode_responses": True}
    sentinel_password = settings.sentinel_password()
    if sentinel_password is not None:
        sentinel_opts["password"] = sentinel_password
    if parts.scheme == "rediss":
        opts["ssl"] = True
        sentinel_opts["ssl"] = True
    sentinel = Sentinel([sentinel_address(a) for a in settings.sentinels], sentinel_kwargs=sentinel_opts,
                        db=db, health_check_interval=30, **opts)
    client = sentinel.master_for(settings.sentinel_master, redis_class=SentinelRedis,
                                 max_connections=1024)
    client.sentinel = sentinel
    return client


def describe(settings: RedisSettings) -> str:
    """Where the settings point, without secrets: for messages and logs."""
    if settings.sentinels:
        return f"master {settings.sentinel_master!r} of sentinels {','.join(settings.sentinels)}"
    return describe_url(settings.url)


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
            where = describe(settings)
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
