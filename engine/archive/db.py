"""PostgreSQL connections and the archive's versioned migrations.

Driver: psycopg 3 (its async connection, COPY in binary from Python rows, server-side
parameters). Migrations are the plain SQL files in ``migrations/`` named ``NNNN_name.sql``,
applied in order, each in its own transaction, recorded in ``schema_version``; an advisory
lock makes two processes starting at once apply each file once.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import conninfo

from engine.config.settings import ArchiveSettings
from engine.errors import ArchiveUnavailable, ConfigError

#: pg_advisory_xact_lock key of the migrations ("volna" in ASCII).
_MIGRATION_LOCK = 0x766F6C6E61
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def describe(dsn: str) -> str:
    """Where a DSN points, for messages: host, port and database, never the password."""
    try:
        parts = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(an unreadable archive.dsn)"
    host = str(parts.get("host") or "localhost")
    return f"postgresql://{host}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"


def reason(exc: BaseException) -> str:
    """A driver error's first line, without the DSN it may repeat."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


async def connect(settings: ArchiveSettings, *, autocommit: bool = False) -> psycopg.AsyncConnection:
    """A connection with the statement timeout set, or :class:`ArchiveUnavailable`."""
    if not settings.dsn:
        raise ConfigError("archive.dsn is not set (VOLNA_ARCHIVE__DSN): where is the PostgreSQL archive?")
    extra: dict[str, str] = {"options": f"-c statement_timeout={int(settings.statement_timeout_s * 1000)}",
                             "application_name": "volna",
                             "connect_timeout": str(max(1, int(settings.connect_timeout_s)))}
    password = settings.password()
    if password:
        extra["password"] = password
    try:
        dsn = conninfo.make_conninfo(settings.dsn, **extra)
        return await asyncio.wait_for(psycopg.AsyncConnection.connect(dsn, autocommit=autocommit),
                                      settings.connect_timeout_s + 1)
    except (psycopg.Error, TimeoutError, OSError) as exc:
        raise ArchiveUnavailable(f"PostgreSQL at {describe(settings.dsn)} is unavailable: {reason(exc)}") from None


@contextlib.asynccontextmanager
async def connection(settings: ArchiveSettings, *, autocommit: bool = False
                     ) -> AsyncIterator[psycopg.AsyncConnection]:
    """:func:`connect` as a context manager that also translates every driver error raised inside."""
    conn = await connect(settings, autocommit=autocommit)
    try:
        async with conn:
            yield conn
    except psycopg.Error as exc:
        raise ArchiveUnavailable(f"PostgreSQL at {describe(settings.dsn)} failed: {reason(exc)}") from None


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The shipped migrations, in order."""
    out = []
    for entry in (resources.files("engine.archive") / "migrations").iterdir():
        m = _MIGRATION_NAME.match(entry.name)
        if m:
            out.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    return sorted(out, key=lambda m: m.version)


async def migrate(conn: psycopg.AsyncConnection) -> list[int]:
    """Applies the migrations this database lacks; returns their versions."""
    applied: list[int] = []
    for migration in migrations():
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, "
                               "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
            cur = await conn.execute("SELECT 1 FROM schema_version WHERE version = %s", (migration.version,))
            if await cur.fetchone():
                continue
            await conn.execute(migration.sql.encode())
            await conn.execute("INSERT INTO schema_version (version, name) VALUES (%s, %s)",
                               (migration.version, migration.name))
            applied.append(migration.version)
    return applied


async def schema_version(conn: psycopg.AsyncConnection) -> int:
    cur = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
    row = await cur.fetchone()
    return int(row[0]) if row else 0
