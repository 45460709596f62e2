"""Shared fixtures: a real redis-server (or ``REDIS_URL``), a clean database per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def redis_base_url() -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.cleanup()


@pytest.fixture
async def redis_url(redis_base_url: str) -> AsyncIterator[str]:
    """A URL whose database was emptied before the test."""
    client = aioredis.from_url(redis_base_url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    yield redis_base_url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    from engine.redis_conn import make_redis
    from engine.settings import RedisSettings

    client = make_redis(RedisSettings(url=redis_url))
    try:
        yield client
    finally:
        await client.aclose()
