"""Shared fixtures: a real redis-server (or ``REDIS_URL``), a clean database per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.redis_server import RedisServer
from tests.test_log_privacy import phone_leak_guard, unmasked_phones

__all__ = ["phone_leak_guard"]

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """``make test`` sets ``VOLNA_NO_SKIP=1``: there every peer is installed, so a test that would
    skip (a missing browser, promtool, parser) fails instead of passing by not running."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get("VOLNA_NO_SKIP") == "1" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under VOLNA_NO_SKIP=1 (make test runs everything): {report.longrepr}"


def _worker_db(url: str) -> str:
    """With pytest-xdist and a shared ``REDIS_URL``, each worker flushes its own database."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    head, _, db = url.rpartition("/")
    base = int(db) if db.isdigit() else 0
    return f"{head}/{base + int(worker[2:])}" if db.isdigit() else f"{url.rstrip('/')}/{base + int(worker[2:])}"


@pytest.fixture(scope="session")
def redis_base_url() -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield _worker_db(os.environ["REDIS_URL"])
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
    from engine.config.settings import RedisSettings
    from engine.store.connection import make_redis

    client = make_redis(RedisSettings(url=redis_url))
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A private PostgreSQL for the whole run (per xdist worker), or ``VOLNA_TEST_PG_DSN``; yields
    the DSN of its maintenance database (each test gets a database of its own: :func:`pg_dsn`)."""
    if os.environ.get("VOLNA_TEST_PG_DSN"):
        yield os.environ["VOLNA_TEST_PG_DSN"]
        return
    from tests.pg_server import PostgresServer

    try:
        server = PostgresServer().start()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    try:
        yield server.dsn_for("postgres")
    finally:
        server.cleanup()


@pytest.fixture
def pg_dsn(pg_server: str) -> Iterator[str]:
    """A fresh, empty database for this test (dropped after it)."""
    import uuid

    import psycopg
    from psycopg import conninfo, sql

    name = f"volna_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield conninfo.make_conninfo(pg_server, dbname=name)
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def phone_key_file(tmp_path: Path) -> Path:
    path = tmp_path / "phone-hash.key"
    path.write_bytes(b"test-key-0123456789abcdef-0123456789")
    path.chmod(0o600)
    return path


@pytest.fixture(autouse=True)
def _no_phone_in_logs(phone_leak_guard: object) -> Iterator[None]:
    """Every test's in-process log records, formatted as in production, show no phone number."""
    yield


@pytest.fixture(scope="session", autouse=True)
def _no_phone_in_process_logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """… and neither do the logs the suite's child processes wrote (dispatchers, ``volna api``,
    the demo's children, simulators): every ``*.log`` under this session's temporary folder,
    read once at the end of the session."""
    yield
    leaks: list[str] = []
    for path in sorted(tmp_path_factory.getbasetemp().rglob("*.log")):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            phones = unmasked_phones(line)
            if phones:
                leaks.append(f"{path.name}: {phones}: {line[:200]}")
    if leaks:
        pytest.fail(f"{len(leaks)} line(s) of child-process logs show a phone number unmasked:\n"
                    + "\n".join(leaks[:10]))
