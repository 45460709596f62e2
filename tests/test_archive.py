"""The archiver: every record once, contacts derived from the scenario, unknown kinds kept raw,
migrations versioned, bad settings refused clearly."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from engine.archive.db import connection, migrate, migrations, schema_version
from engine.calendar.clock import ScaledClock
from engine.store.keys import WaveKeys
from engine.store.schema import RECORD_FIELD
from tests.archive_support import (
    archive_settings,
    archived_ids,
    drain,
    ids_of,
    noon_msk,
    pg_rows,
    run_wave,
    stream_records,
)
from tests.harness import context, task

DAY = date(2026, 12, 1)


async def test_a_wave_is_archived_once_with_its_contacts_and_tasks_apart_from_personal_data(
        redis: aioredis.Redis, redis_url: str, pg_dsn: str, phone_key_file: Path) -> None:
    settings = archive_settings(redis_url, pg_dsn, phone_key_file)
    ctx = context(settings, ScaledClock(noon_msk(DAY)), redis)
    rows = [task(n, channel="sms") for n in range(30)] + [task(100 + n, channel="ivr") for n in range(20)]
    await run_wave(ctx, "w1", DAY, rows)
    records = await stream_records(redis, "w1")
    n = await drain(settings, ctx, purge_waves=False)
    assert n == len(records)
    held = await archived_ids(pg_dsn)
    assert set(held) == ids_of("w1", records) and max(held.values()) == 1
    # Again, and with the group rewound (a crash after the commit, before the acknowledgement):
    # the same records are delivered again and nothing is written twice.
    await redis.xgroup_setid(WaveKeys("w1").results, "archive", "0")
    assert await drain(settings, ctx, purge_waves=False) == len(records)
    held = await archived_ids(pg_dsn)
    assert set(held) == ids_of("w1", records) and max(held.values()) == 1
    contacts = await pg_rows(pg_dsn, "SELECT channel, cap_class, outcome, local_week, local_month, text, debtor_id "
                                     "FROM contacts ORDER BY task_id")
    assert len(contacts) == 50
    sms = [c for c in contacts if c[0] == "sms"]
    assert all(c[1] == "message" and c[2] == "delivered" and c[3] == "2026-49" and c[4] == "2026-12" for c in sms)
    assert all("Мосэнергосбыт" in c[5] for c in sms)
    assert all(c[5] is None for c in contacts if c[0] == "ivr")
    personal = await pg_rows(pg_dsn, "SELECT phone, phone_hash, vars FROM task_personal")
    assert len(personal) == 50 and all(p[0].startswith("+7916") and len(p[1]) == 32 for p in personal)
    # The tasks table holds no personal data.
    for row in await pg_rows(pg_dsn, "SELECT * FROM tasks"):
        assert not any(isinstance(v, str) and v.startswith("+7") for v in row)
    views = await pg_rows(pg_dsn, "SELECT count(*) FROM last_outcome WHERE final")
    assert views[0][0] == 50
    per_day = await pg_rows(pg_dsn, "SELECT sum(contacts) FROM contacts_per_day WHERE local_day = %s", DAY)
    assert per_day[0][0] == 50


async def test_records_of_unknown_kinds_are_kept_whole(redis: aioredis.Redis, redis_url: str, pg_dsn: str,
                                                       phone_key_file: Path) -> None:
    settings = archive_settings(redis_url, pg_dsn, phone_key_file)
    ctx = context(settings, ScaledClock(noon_msk(DAY)), redis)
    await run_wave(ctx, "w1", DAY, [task(1)])
    stream = WaveKeys("w1").results
    await redis.xadd(stream, {RECORD_FIELD: json.dumps({"kind": "phone_strike", "phone_hash": "ab", "x": 1})})
    await redis.xadd(stream, {RECORD_FIELD: "not json at all"})
    await redis.xadd(stream, {RECORD_FIELD: json.dumps({"kind": "inbound_message", "debtor_id": "d1",
                                                        "channel": "viber", "data": {"text": "ok"}})})
    await drain(settings, ctx, purge_waves=False)
    other = await pg_rows(pg_dsn, "SELECT kind, record FROM other_records ORDER BY stream_ms, stream_seq")
    assert other[0][0] == "phone_strike" and other[0][1]["x"] == 1
    assert other[1][1] == {"unparsed": "not json at all"}
    inbound = await pg_rows(pg_dsn, "SELECT kind, debtor_id, channel FROM inbound")
    assert inbound == [("inbound_message", "d1", "viber")]


async def test_migrations_are_versioned_and_applied_once(pg_dsn: str) -> None:
    from engine.config.settings import ArchiveSettings

    settings = ArchiveSettings(dsn=pg_dsn)
    async with connection(settings) as conn:
        first = await migrate(conn)
        again = await migrate(conn)
        version = await schema_version(conn)
    assert first == [m.version for m in migrations()] and again == []
    assert version == migrations()[-1].version


def test_archive_without_a_dsn_or_a_key_says_so(redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.cli.main import main

    monkeypatch.setenv("REDIS_URL", redis_url)
    assert main(["archive", "--once"]) == 2
    assert "phone_hash_key_file is not set" in capsys.readouterr().err
    key = tmp_path / "k"
    key.write_bytes(b"0123456789abcdef0123")
    monkeypatch.setenv("VOLNA_RETENTION__PHONE_HASH_KEY_FILE", str(key))
    assert main(["archive", "--once"]) == 2
    assert "archive.dsn is not set" in capsys.readouterr().err
    monkeypatch.setenv("VOLNA_ARCHIVE__DSN", "host=127.0.0.1 port=1 dbname=x user=u password=sekret")
    assert main(["archive", "--once"]) == 2
    err = capsys.readouterr().err
    assert "PostgreSQL at postgresql://127.0.0.1:1/x is unavailable" in err and "sekret" not in err
    assert "Traceback" not in err
