"""Acceptance 3 (`volna erase --debtor D`) and 4 (pseudonymization and deletion by age)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import redis.asyncio as aioredis

from engine.archive.retention import apply_retention
from engine.calendar.clock import ScaledClock
from engine.domain.outcomes import Channel, Outcome
from engine.gates.stoplist import StopList
from tests.archive_support import archive_settings, drain, noon_msk, pg_rows, run_wave
from tests.fakes import RecordingConnector
from tests.harness import ROOT, context, task

DAY = date(2026, 12, 1)
PHONE = "+79031234567"
NAME = "Сидорова Анна Петровна"
ADDRESS = "пр. Мира, 77, кв. 12"
SECRETS = [PHONE, "79031234567", "89031234567", "9031234567", NAME, "Сидорова", ADDRESS, "пр. Мира"]


def _debtor_task(n: int, wave: str, debtor: str, phone: str, channel: str = "viber") -> dict[str, Any]:
    row = task(n, wave=wave, channel=channel, debtor=debtor, phone=phone)
    row["vars"] = {**row["vars"], "name": NAME if debtor == "D" else "Иванов Пётр",
                   "address": ADDRESS if debtor == "D" else "ул. Садовая, 3"}
    return row


async def _redis_text(redis: aioredis.Redis) -> str:
    """Every key and every value in Redis, as one text."""
    out = []
    async for key in redis.scan_iter(count=1000):
        kind = await redis.type(key)
        out.append(key)
        if kind == "string":
            out.append(str(await redis.get(key)))
        elif kind == "hash":
            out.append(str(await redis.hgetall(key)))
        elif kind == "set":
            out.append(str(await redis.smembers(key)))
        elif kind == "zset":
            out.append(str(await redis.zrange(key, 0, -1)))
        elif kind == "stream":
            out.append(str(await redis.xrange(key)))
        elif kind == "list":
            out.append(str(await redis.lrange(key, 0, -1)))
    return "\n".join(out)


async def _pg_text(dsn: str) -> str:
    out = []
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        for (table,) in await cur.fetchall():
            rows = await conn.execute(f'SELECT t::text FROM "{table}" t')
            out += [r[0] for r in await rows.fetchall()]
    return "\n".join(out)


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)
    return subprocess.run([sys.executable, "-m", "engine.cli.main", "--config", str(config), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)


def _config(tmp_path: Path, redis_url: str, pg_dsn: str, key: Path) -> Path:
    path = tmp_path / "volna.toml"
    path.write_text(f'scenarios_dir = "{ROOT / "scenarios"}"\n[redis]\nurl = "{redis_url}"\n'
                    f'[archive]\ndsn = "{pg_dsn}"\n[retention]\nphone_hash_key_file = "{key}"\n'
                    '[log]\njson = false\n', encoding="utf-8")
    return path


async def test_erase_removes_the_debtors_personal_data_keeps_the_log_and_the_refusals(
        redis: aioredis.Redis, redis_url: str, pg_dsn: str, phone_key_file: Path, tmp_path: Path) -> None:
    settings = archive_settings(redis_url, pg_dsn, phone_key_file)
    ctx = context(settings, ScaledClock(noon_msk(DAY)), redis)
    # D: two Viber messages today (the day's message cap is 2) and a call; E: two messages.
    rows = [_debtor_task(1, "w1", "D", PHONE), _debtor_task(2, "w1", "D", PHONE),
            _debtor_task(3, "w1", "E", "+79035550000"), _debtor_task(4, "w1", "E", "+79035550000"),
            _debtor_task(5, "w1", "F", "+79035550001")]
    await run_wave(ctx, "w1", DAY, rows, [RecordingConnector(channel=Channel.VIBER)])
    await ctx.stoplist.add("phone", PHONE, "wrong_number", now_ms=ctx.clock.now_ms(), by="test")
    await drain(settings, ctx, purge_waves=False)
    assert PHONE in await _redis_text(redis) and NAME in await _pg_text(pg_dsn)
    texts = await pg_rows(pg_dsn, "SELECT text FROM contacts WHERE debtor_id = 'D'")
    assert len(texts) == 2 and all(ADDRESS in t[0] for t in texts)

    config = _config(tmp_path, redis_url, pg_dsn, phone_key_file)
    for debtor in ("D", "E"):
        done = _cli(config, "erase", "--debtor", debtor, "--by", "dpo")
        assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "kept: the interaction log: 2 contact(s)" in out and "230-FZ" in out

    redis_text, pg_text = await _redis_text(redis), await _pg_text(pg_dsn)
    for secret in SECRETS:
        assert secret not in redis_text, f"{secret!r} still in Redis"
        assert secret not in pg_text, f"{secret!r} still in PostgreSQL"
    # The log is kept, redacted; E's and F's data untouched where not erased.
    texts = await pg_rows(pg_dsn, "SELECT text FROM contacts WHERE debtor_id = 'D'")
    assert len(texts) == 2 and all("[erased]" in t[0] and "Мосэнергосбыт" in t[0] for t in texts)
    assert "+79035550001" in pg_text
    audit = await pg_rows(pg_dsn, "SELECT who, what, target FROM audit WHERE source = 'erase'")
    assert sorted(audit) == [("dpo", "erase.debtor", "D"), ("dpo", "erase.debtor", "E")]

    # Afterwards the stop-list (by the number's keyed hash) and the caps still refuse them.
    ctx2 = context(settings, ScaledClock(noon_msk(DAY) + 3_600_000), redis)
    assert await StopList(redis, phone_key=settings.retention.phone_key()).check(["D"], [PHONE]) == [
        Outcome.SKIPPED_STOPLIST]
    again = [_debtor_task(10, "w2", "D", PHONE), _debtor_task(11, "w2", "E", "+79035550000")]
    await run_wave(ctx2, "w2", DAY, again, [RecordingConnector(channel=Channel.VIBER)])
    finals = {r["task_id"]: r["outcome"] for r in await _finals(redis, "w2")}
    assert finals == {"t10": "skipped_stoplist", "t11": "skipped_cap"}


async def _finals(redis: aioredis.Redis, wave_id: str) -> list[dict[str, Any]]:
    from tests.harness import results

    return [r for r in await results(redis, wave_id) if r["kind"] == "result" and r["final"]]


async def test_personal_data_is_pseudonymized_and_texts_deleted_by_age(
        redis: aioredis.Redis, redis_url: str, pg_dsn: str, phone_key_file: Path) -> None:
    settings = archive_settings(redis_url, pg_dsn, phone_key_file,
                                retention={"personal_data_days": 30, "interaction_log_days": 1096})
    old_day, new_day = DAY - timedelta(days=400), DAY
    for wave_id, day in (("old", old_day), ("new", new_day)):
        ctx = context(settings, ScaledClock(noon_msk(day)), redis)
        await run_wave(ctx, wave_id, day, [task(n, wave=wave_id, channel="sms") for n in range(5)])
        await drain(settings, ctx, purge_waves=False)
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        # 10 days after the new wave: the old wave's personal data is due, the new one's not yet.
        first = await apply_retention(conn, settings.retention, noon_msk(new_day + timedelta(days=10)))
        second = await apply_retention(conn, settings.retention, noon_msk(new_day + timedelta(days=10)))
        query = "SELECT wave_id, count(phone), count(vars), count(phone_hash) FROM task_personal GROUP BY wave_id"
        personal = {w: (p, v, h) for w, p, v, h in await (await conn.execute(query)).fetchall()}
        assert first.pseudonymized == 5 and second.pseudonymized == 0  # idempotent
        assert personal["old"] == (0, 0, 5) and personal["new"] == (5, 5, 5)
        # 31 days after: the new one's too; the debtor ids and the keyed hashes stay.
        third = await apply_retention(conn, settings.retention, noon_msk(new_day + timedelta(days=31)))
        personal = {w: (p, v, h) for w, p, v, h in await (await conn.execute(query)).fetchall()}
        debtors = await (await conn.execute("SELECT count(debtor_id) FROM task_personal")).fetchone()
        texts = {w: n for w, n in await (await conn.execute(
            "SELECT wave_id, count(text) FROM contacts GROUP BY wave_id")).fetchall()}
    assert third.pseudonymized == 5 and personal["new"] == (0, 0, 5) and debtors == (10,)
    # The interaction log is kept 3 years: the 400-day-old texts are still there.
    assert first.texts_deleted == 0 and texts == {"old": 5, "new": 5}
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        # 1096 days after the old wave's day: its texts go, the new one's stay.
        late = await apply_retention(conn, settings.retention, noon_msk(old_day + timedelta(days=1097)))
        texts = {w: n for w, n in await (await conn.execute(
            "SELECT wave_id, count(text) FROM contacts GROUP BY wave_id")).fetchall()}
        kept = await (await conn.execute("SELECT count(*) FROM contacts")).fetchone()
    assert late.texts_deleted == 5 and texts == {"old": 0, "new": 5}
    assert kept is not None and kept[0] == 10  # the contacts themselves stay (counts, caps, who and when)
