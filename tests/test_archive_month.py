"""Acceptance 2: thirty compressed days, each with its own waves, loaded, run, archived and
purged. Redis memory is flat (day 30 within 10 % of day 2), PostgreSQL holds every record of
the thirty days exactly once, and a wave not yet archived is never purged.

Redis measures TTLs in real time, which a compressed clock cannot move: at each day's end the
test expires the cap counters whose TTL (engine/store/schema.py ``CAP_TTL_S``) has run out in
engine time since they were first seen — what Redis does by itself in production. Everything
else leaves Redis through the archive's purge.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from engine.archive import purge
from engine.archive.archiver import Archiver
from engine.calendar.clock import ScaledClock
from engine.cli.wave import render_status
from engine.domain.models import Result
from engine.domain.outcomes import Channel, Outcome
from engine.store.keys import WaveKeys
from engine.store.schema import CAP_TTL_S, RECORD_FIELD
from engine.waves.status import archive_lag, status_view
from tests.archive_support import archive_settings, archived_ids, noon_msk, run_wave
from tests.fakes import RecordingConnector
from tests.harness import context, task

FIRST = date(2026, 11, 2)
DAYS = 30
DEBTORS = 60


def _ms(day: date, hour: int) -> int:
    return int(datetime(day.year, day.month, day.day, hour - 3, 0, tzinfo=UTC).timestamp() * 1000)


def _rows(day_no: int) -> list[dict[str, object]]:
    """A day's plan: SMS to every debtor of the portfolio, robocalls to a third of them."""
    rows = [task(day_no * 1000 + d, wave=f"sms-{day_no:02d}", channel="sms", debtor=f"D{d:03d}",
                 phone=f"+7916{d:07d}") for d in range(DEBTORS)]
    rows += [task(day_no * 1000 + 500 + d, wave=f"ivr-{day_no:02d}", channel="ivr", debtor=f"D{d:03d}",
                  phone=f"+7916{d:07d}") for d in range(0, DEBTORS, 3)]
    return rows


async def _expire_caps(redis: aioredis.Redis, first_seen: dict[str, int], now_ms: int) -> None:
    ttl_s = {"d": CAP_TTL_S["day"], "w": CAP_TTL_S["week"], "m": CAP_TTL_S["month"]}
    async for key in redis.scan_iter(match="volna:{d:*}:cap:*", count=1000):
        first_seen.setdefault(key, now_ms)
        period = key.rsplit(":", 1)[1][0]
        if now_ms - first_seen[key] >= ttl_s[period] * 1000:
            await redis.delete(key)
            del first_seen[key]


@pytest.mark.timeout(600)
async def test_thirty_days_keep_redis_flat_and_archive_everything_once(
        redis: aioredis.Redis, redis_url: str, pg_dsn: str, phone_key_file: Path) -> None:
    settings = archive_settings(redis_url, pg_dsn, phone_key_file, retention={"redis_hours": 24})
    captured: dict[str, set[str]] = {}
    cap_seen: dict[str, int] = {}
    memory: dict[int, int] = {}
    held_back_checked = 0
    for day_no in range(1, DAYS + 1):
        day = FIRST + timedelta(days=day_no - 1)
        ctx = context(settings, ScaledClock(noon_msk(day)), redis)
        rows = _rows(day_no)
        sms = [r for r in rows if r["channel"] == "sms"]
        ivr = [r for r in rows if r["channel"] == "ivr"]
        # SMS are accepted and delivered by a late receipt (correlation keys); calls end at once.
        await run_wave(ctx, f"sms-{day_no:02d}", day, sms,
                       [RecordingConnector(channel=Channel.SMS, late_after_s=0.01)])
        await run_wave(ctx, f"ivr-{day_no:02d}", day, ivr,
                       [RecordingConnector(channel=Channel.IVR, outcome=Outcome.ANSWERED)])
        evening = context(settings, ScaledClock(_ms(day, 21)), redis)
        for wave_id in await evening.waves.list():
            entries = await redis.xrange(WaveKeys(wave_id).results)
            captured.setdefault(wave_id, set()).update(i for i, _ in entries)
        async with Archiver(redis, settings, evening.clock, evening.scenarios, consumer="a") as archiver:
            await archiver.drain(purge_waves=False)
            if day_no in (5, 6):
                # A late receipt for yesterday's wave lands after the archiver's pass: the purge
                # that follows must keep that wave, and its status must say why.
                late_wave = f"sms-{day_no - 1:02d}"
                record = Result(kind="late", task_id=f"t{(day_no - 1) * 1000}", attempt=1, wave_id=late_wave,
                                campaign_id="c1", debtor_id="D000", channel=Channel.SMS, outcome=Outcome.READ,
                                finished_at=evening.clock.now_ms())
                stream_id = await redis.xadd(WaveKeys(late_wave).results,
                                             {RECORD_FIELD: record.model_dump_json(exclude_none=True)})
                captured[late_wave].add(stream_id)
                assert late_wave not in await archiver.purge()
                assert late_wave in await evening.waves.list()
                view = await status_view(evening.waves, late_wave)
                assert view["state"] == "completed" and await archive_lag(evening.waves, late_wave, "archive") == 1
                assert "archive: 1 records not yet archived (kept in Redis until they are)" in render_status(
                    {**view, "archive_lag": 1})
                assert await purge.archive_lag(redis, late_wave, "archive") == 1
                held_back_checked += 1
            await archiver.drain()
        await _expire_caps(redis, cap_seen, evening.clock.now_ms())
        waves_left = await evening.waves.list()
        # Yesterday's waves (finished over 24 h ago) are gone, today's stay.
        assert sorted(waves_left) == [f"ivr-{day_no:02d}", f"sms-{day_no:02d}"], waves_left
        info = await redis.info("memory")
        memory[day_no] = int(info["used_memory"])
    assert held_back_checked == 2
    # Every record of every wave, in PostgreSQL exactly once.
    held = await archived_ids(pg_dsn)
    expected = {(w, int(i.split("-")[0]), int(i.split("-")[1])) for w, ids in captured.items() for i in ids}
    assert set(held) == expected
    assert max(held.values()) == 1
    assert len(captured) == 2 * DAYS
    growth = (memory[DAYS] - memory[2]) / memory[2]
    print("used_memory by day:", json.dumps(memory))
    assert abs(growth) <= 0.10, f"Redis used_memory day 2 {memory[2]}, day 30 {memory[DAYS]} ({growth:+.1%})"
