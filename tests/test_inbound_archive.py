"""Callbacks and replies with the archive (issue 14): a number Redis forgot is found in
PostgreSQL; a callback after its wave left Redis is archived from the inbound stream; an unknown
number's call is kept (masked); the replies' texts follow the interaction log's retention."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import psycopg
import redis.asyncio as aioredis

from engine.archive.directory import ArchiveDirectory
from engine.archive.retention import apply_retention
from engine.calendar.clock import ScaledClock
from engine.dispatch.inbound import Inbound
from engine.domain.outcomes import Channel
from engine.port import InboundEvent
from engine.store import keys
from engine.store.keys import WaveKeys
from tests.archive_support import archive_settings, drain, noon_msk, pg_rows, run_wave
from tests.harness import ROOT, context, task

DAY = date(2026, 12, 1)
PHONE = "+79031112233"


async def test_a_forgotten_number_is_found_in_the_archive_and_its_callback_archived(
        redis: aioredis.Redis, redis_url: str, pg_dsn: str, phone_key_file: Path) -> None:
    settings = archive_settings(redis_url, pg_dsn, phone_key_file)
    ctx = context(settings, ScaledClock(noon_msk(DAY)), redis)
    await run_wave(ctx, "w1", DAY, [task(1, wave="w1", debtor="D9", phone=PHONE, channel="sms")])
    await drain(settings, ctx)
    # Redis forgets the number (its TTL ran out) and the wave (purged once archived).
    await redis.delete(keys.directory(PHONE), WaveKeys("w1").meta)
    assert await ctx.directory.lookup(PHONE) is None
    archive = ArchiveDirectory(settings)
    found = await archive.lookup(PHONE)
    assert found is not None and (found.debtor_id, found.wave_id, found.campaign_id) == ("D9", "w1", "c1")
    assert found.last_channel == "sms" and found.last_at_ms is not None and found.source == "archive"
    assert await archive.lookup("+79030000000") is None
    ctx.directory.fallback = archive
    inbound = Inbound(ctx)
    call = InboundEvent(Channel.IVR, PHONE, {"call_id": "ast:1.1", "did": "84950000000", "duration_s": 42.0},
                        kind="call_end", source_id="ast:1.1")
    assert await inbound.record(call) == "debtor"
    reply = InboundEvent(Channel.SMS, PHONE, {}, kind="message", source_id="sms:r1", text="Оплачу завтра, Иванов")
    assert await inbound.record(reply) == "debtor"
    stranger = InboundEvent(Channel.IVR, "+79035550000", {"call_id": "ast:1.2"}, kind="call_end",
                            source_id="ast:1.2")
    assert await inbound.record(stranger) == "unknown"
    assert await redis.xlen(keys.INBOUND) == 3
    await drain(settings, ctx)
    rows = await pg_rows(pg_dsn, "SELECT wave_id, debtor_id, channel, data->>'duration_s', data->>'text', "
                                 "data->>'directory' FROM inbound ORDER BY stream_ms, stream_seq")
    assert [r[:4] for r in rows] == [("w1", "D9", "ivr", "42.0"), ("w1", "D9", "sms", None)]
    assert rows[1][4] == "Оплачу завтра, Иванов" and rows[0][5] == "archive"
    others = await pg_rows(pg_dsn, "SELECT kind, record::text FROM other_records WHERE wave_id = ''")
    assert len(others) == 1 and others[0][0] == "inbound_unknown"
    assert "+7903***0000" in others[0][1] and "79035550000" not in others[0][1]
    assert await redis.xlen(keys.INBOUND) == 0  # trimmed once archived
    # `volna phones show`: the directory answers from the archive, with the recent contacts.
    env = {**os.environ, "REDIS_URL": redis_url, "VOLNA_ARCHIVE__DSN": pg_dsn, "VOLNA_LOG__JSON": "false",
           "VOLNA_RETENTION__PHONE_HASH_KEY_FILE": str(phone_key_file), "VOLNA_SCENARIOS_DIR": str(ROOT / "scenarios")}
    out = subprocess.run([sys.executable, "-m", "engine.cli.main", "phones", "show", PHONE], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    shown = json.loads(out.stdout)
    assert shown["debtor_id"] == "D9" and shown["phone"] == "+7903***2233"
    assert shown["last_contact"]["source"] == "archive" and shown["last_contact"]["channel"] == "sms"
    assert [c["channel"] for c in shown["recent"]["contacts"]] == ["sms"]
    assert sorted(i["channel"] for i in shown["recent"]["inbound"]) == ["ivr", "sms"]
    # The reply's text is part of the interaction log: deleted when its time is up, the row stays.
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        later = noon_msk(DAY + timedelta(days=settings.retention.interaction_log_days + 2))
        await apply_retention(conn, settings.retention, later)
    rows = await pg_rows(pg_dsn, "SELECT data->>'text', data->>'text_deleted' FROM inbound WHERE channel = 'sms'")
    assert rows == [(None, "true")]
