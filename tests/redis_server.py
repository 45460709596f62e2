"""Tests use the engine's private-Redis helper (the demo uses it too)."""

from engine.store.localredis import RedisServer, free_port

__all__ = ["RedisServer", "free_port"]
