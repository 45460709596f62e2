"""Building blocks for engine tests: settings, tasks, an in-process runner, dispatcher processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from engine.calendar.clock import Clock, ScaledClock
from engine.config.settings import Settings, load_settings
from engine.context import Context
from engine.dispatch.runner import Runner
from engine.intake.loader import Intake
from engine.port import Connector

ROOT = Path(__file__).resolve().parent.parent


def make_settings(redis_url: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "redis": {"url": redis_url},
        "scenarios_dir": str(ROOT / "scenarios"),
        "dispatcher": {"lease_s": 5.0, "idle_poll_s": 0.05, "drain_grace_s": 2.0},
        "log": {"json": False},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return load_settings(None, **base)


def task(n: int, *, wave: str = "w1", channel: str = "sms", debtor: str | None = None, **extra: Any
         ) -> dict[str, Any]:
    """A valid task line; phones are distinct Moscow mobiles unless given."""
    out: dict[str, Any] = {
        "task_id": f"t{n}", "wave_id": wave, "campaign_id": "c1", "debtor_id": debtor or f"d{n}",
        "channel": channel, "phone": f"+7916{n:07d}", "tz": "Europe/Moscow", "scenario": "soft_reminder",
        "vars": {"creditor": "Мосэнергосбыт", "account": f"ЛС{n:08d}", "amount": 12345.67,
                 "due_date": "10.12.2026", "pay_url": "https://pay.example/x", "address": "ул. Ленина, 1",
                 "phone_back": "88001234567"},
    }
    out.update(extra)
    return out


async def lines_of(rows: Sequence[dict[str, Any] | str]) -> AsyncIterator[bytes]:
    for row in rows:
        yield (row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)).encode() + b"\n"


def context(settings: Settings, clock: Clock, redis: aioredis.Redis) -> Context:
    return Context.build(settings, clock, redis)


async def load_wave(ctx: Context, wave_id: str, day: date, rows: Sequence[dict[str, Any] | str],
                    campaign: str = "c1", start: bool = True) -> Any:
    await ctx.waves.create(wave_id, campaign, day)
    report = await Intake(ctx).load(wave_id, lines_of(rows))
    if start:
        await ctx.waves.change(wave_id, "start")
    return report


@contextlib.asynccontextmanager
async def running(ctx: Context, connectors: Sequence[Connector]) -> AsyncIterator[Runner]:
    runner = Runner(ctx, connectors)
    stop = asyncio.Event()
    job = asyncio.create_task(runner.run(stop))
    await asyncio.wait_for(runner.started.wait(), 10)
    try:
        yield runner
    finally:
        stop.set()
        await asyncio.wait_for(job, 30)


async def wait_until(predicate: Any, timeout_s: float = 20.0, interval_s: float = 0.05) -> None:
    """Polls an async predicate (behaviour, not speed: the timeout only bounds a hang)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        if await predicate():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached before the timeout")
        await asyncio.sleep(interval_s)


async def final_count(ctx: Context, wave_id: str) -> int:
    return int((await ctx.waves.counts(wave_id)).get("final", 0))


async def results(redis: aioredis.Redis, wave_id: str) -> list[dict[str, Any]]:
    from engine.store.keys import WaveKeys

    entries = await redis.xrange(WaveKeys(wave_id).results)
    return [json.loads(fields["r"]) for _, fields in entries]


def spawn_dispatcher(redis_url: str, record: Path, *, clock: ScaledClock | None = None, channel: str = "sms",
                     rate_per_s: float = 100_000, outcome: str = "delivered", delay_s: float = 0.0,
                     late_after_s: float | None = None, lease_s: float = 5.0, max_concurrent: int = 100_000,
                     cluster: bool = False, redis_settings: dict[str, Any] | None = None
                     ) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "tests.dispatcher_proc", "--redis", redis_url, "--record", str(record),
            "--channel", channel, "--rate", str(rate_per_s), "--outcome", outcome, "--delay", str(delay_s),
            "--lease-s", str(lease_s), "--max-concurrent", str(max_concurrent)]
    if clock is not None:
        args += ["--clock", clock.spec()]
    if late_after_s is not None:
        args += ["--late-after", str(late_after_s)]
    if cluster:
        args.append("--cluster")
    if redis_settings:
        args += ["--redis-settings", json.dumps(redis_settings)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    # The child's log goes beside its record (a file, so no pipe is left to close).
    with open(f"{record}.log", "ab") as log:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)


def read_records(paths: Sequence[Path]) -> list[dict[str, Any]]:
    out = []
    for path in paths:
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    with contextlib.suppress(json.JSONDecodeError):  # a line cut by kill -9
                        out.append(json.loads(line))
    return out


def connector_events(conn: Any, kind: str) -> Counter[str]:
    """What a connector counted (``volna_connector_events_total``); it must have been given a
    ``Metrics`` (``conn.metrics = Metrics(process=False)``) before it was opened."""
    return Counter(conn.metrics.events(kind))
