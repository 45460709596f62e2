"""Shared helpers of the benchmark scripts: a private Redis, RSS, percentiles, round-trip counting."""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@contextmanager
def redis_url() -> Iterator[str]:
    """``REDIS_URL`` when set, else a private redis-server for the run."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    from tests.redis_server import RedisServer

    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.cleanup()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class RoundTrips:
    """Counts client→Redis round trips (a pipeline or a single command is one)."""

    def __init__(self) -> None:
        self.count = 0

    def install(self) -> None:
        from redis.asyncio.connection import AbstractConnection

        original = AbstractConnection.send_packed_command
        counter = self

        async def counted(self, command, check_health=True):  # type: ignore[no-untyped-def]
            counter.count += 1
            return await original(self, command, check_health)

        AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
