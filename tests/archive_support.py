"""Building blocks of the archive tests: settings with a PostgreSQL and a hash key, a day of
waves run through the real runner, what the archive and the streams hold."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis.asyncio as aioredis

from engine.archive.archiver import Archiver
from engine.calendar.clock import ScaledClock
from engine.config.settings import Settings
from engine.context import Context
from engine.domain.outcomes import Channel, Outcome
from engine.store.keys import WaveKeys
from tests.fakes import RecordingConnector
from tests.harness import context, final_count, load_wave, make_settings, running, task, wait_until


def archive_settings(redis_url: str, pg_dsn: str, key_file: Path, **overrides: Any) -> Settings:
    archive = {"dsn": pg_dsn, "batch_size": 500, "claim_idle_s": 1.0, "poll_s": 0.1, **overrides.pop("archive", {})}
    retention = {"phone_hash_key_file": str(key_file), **overrides.pop("retention", {})}
    return make_settings(redis_url, archive=archive, retention=retention, **overrides)


def noon_msk(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC).timestamp() * 1000)


async def run_wave(ctx: Context, wave_id: str, day: date, rows: list[dict[str, Any]],
                   connectors: list[RecordingConnector] | None = None, timeout_s: float = 60) -> None:
    """Loads ``rows`` into a new wave, runs it to the end with recording connectors."""
    await load_wave(ctx, wave_id, day, rows)
    channels = sorted({r["channel"] for r in rows})
    conns = connectors or [RecordingConnector(channel=Channel(c), outcome=Outcome.DELIVERED if c != "ivr"
                                              else Outcome.ANSWERED) for c in channels]
    async with running(ctx, conns):
        await wait_until(lambda: _done(ctx, wave_id, len(rows)), timeout_s=timeout_s)


async def _done(ctx: Context, wave_id: str, n: int) -> bool:
    if await final_count(ctx, wave_id) < n:
        return False
    await ctx.waves.maybe_complete(wave_id)
    return (await ctx.waves.get(wave_id)).state.finished


async def stream_records(redis: aioredis.Redis, wave_id: str) -> list[tuple[str, dict[str, Any]]]:
    entries = await redis.xrange(WaveKeys(wave_id).results)
    return [(i, json.loads(f["r"])) for i, f in entries]


async def pg_rows(dsn: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(query, args or None)
        return list(await cur.fetchall())


async def archived_ids(dsn: str) -> Counter[tuple[str, int, int]]:
    """Every stream entry id the archive holds, across the tables records go to."""
    out: Counter[tuple[str, int, int]] = Counter()
    for table in ("results", "inbound", "other_records"):
        for row in await pg_rows(dsn, f"SELECT wave_id, stream_ms, stream_seq FROM {table}"):
            out[(row[0], int(row[1]), int(row[2]))] += 1
    return out


def ids_of(wave_id: str, records: list[tuple[str, dict[str, Any]]]) -> set[tuple[str, int, int]]:
    out = set()
    for stream_id, _ in records:
        ms, _, seq = stream_id.partition("-")
        out.add((wave_id, int(ms), int(seq)))
    return out


async def drain(settings: Settings, ctx: Context, **kw: Any) -> int:
    async with Archiver(ctx.redis, settings, ctx.clock, ctx.scenarios, consumer=kw.pop("consumer", "test")) as a:
        return await a.drain(**kw)


__all__ = ["ScaledClock", "context", "task"]
