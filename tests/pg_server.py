"""Tests use the engine's private-PostgreSQL helper (the demo and the benchmark use it too)."""

from engine.archive.localpg import PostgresServer, pg_binary

__all__ = ["PostgresServer", "pg_binary"]
