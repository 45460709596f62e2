"""Acceptance 1: `volna archive` killed with kill -9 at random moments, while two archivers and
three dispatchers run: every result is in PostgreSQL exactly once."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import redis.asyncio as aioredis

from engine.calendar.clock import ScaledClock
from tests.archive_support import archive_settings, archived_ids, drain, ids_of, noon_msk, stream_records
from tests.harness import ROOT, context, final_count, load_wave, spawn_dispatcher, task, wait_until

DAY = date(2026, 12, 1)


def _config(tmp_path: Path, redis_url: str, pg_dsn: str, key: Path) -> Path:
    path = tmp_path / "volna.toml"
    path.write_text(f'''scenarios_dir = "{ROOT / "scenarios"}"
[redis]
url = "{redis_url}"
[archive]
dsn = "{pg_dsn}"
batch_size = 100
claim_idle_s = 1.0
poll_s = 0.1
[retention]
phone_hash_key_file = "{key}"
redis_hours = 10000
[log]
json = false
''', encoding="utf-8")
    path.chmod(0o600)
    return path


async def _archive_ready(dsn: str) -> bool:
    import psycopg

    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute("SELECT to_regclass('results') IS NOT NULL")
        row = await cur.fetchone()
        return bool(row and row[0])


def _archiver(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "engine.cli.main", "--config", str(config), "archive"],
                                cwd=ROOT, env=env, stdout=out, stderr=out)


async def test_archivers_killed_at_random_lose_nothing_and_write_nothing_twice(
        redis: aioredis.Redis, redis_url: str, pg_dsn: str, phone_key_file: Path, tmp_path: Path) -> None:
    rng = random.Random(os.environ.get("VOLNA_CHAOS_SEED") or None)
    clock = ScaledClock(noon_msk(DAY))
    settings = archive_settings(redis_url, pg_dsn, phone_key_file, retention={"redis_hours": 10000})
    ctx = context(settings, clock, redis)
    n_tasks = 2400
    await load_wave(ctx, "w1", DAY, [task(n) for n in range(n_tasks)])
    config = _config(tmp_path, redis_url, pg_dsn, phone_key_file)
    archivers = [_archiver(config, tmp_path / f"a{i}.log") for i in range(2)]
    dispatchers = []
    kills = 0
    try:
        await wait_until(lambda: _archive_ready(pg_dsn), timeout_s=60)
        dispatchers = [spawn_dispatcher(redis_url, tmp_path / f"d{i}.jsonl", clock=clock, rate_per_s=150)
                       for i in range(3)]
        async def finished() -> bool:
            return await final_count(ctx, "w1") >= n_tasks

        while not await finished():
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            victim = rng.randrange(2)
            archivers[victim].send_signal(signal.SIGKILL)
            archivers[victim].wait(10)
            kills += 1
            archivers[victim] = _archiver(config, tmp_path / f"a{victim}.log")
        await wait_until(finished, timeout_s=60)
        await asyncio.sleep(rng.uniform(0.1, 0.5))
    finally:
        for proc in dispatchers + archivers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    assert kills >= 3
    # The archivers did the work while the wave ran (the final pass below only finishes it).
    assert sum((await archived_ids(pg_dsn)).values()) > 0
    # What the killed archivers left pending is taken over once idle (claim_idle_s = 1 s).
    await asyncio.sleep(1.2)
    await drain(settings, ctx, purge_waves=False, consumer="final")
    records = await stream_records(redis, "w1")
    assert sum(1 for _, r in records if r["kind"] == "result" and r["final"]) == n_tasks
    held = await archived_ids(pg_dsn)
    assert set(held) == ids_of("w1", records), "a record is missing from the archive (or one is extra)"
    assert max(held.values()) == 1
    pending = await redis.xpending("volna:{w:w1}:results", "archive")
    assert pending["pending"] == 0
