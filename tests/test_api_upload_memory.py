"""Acceptance: 100 000 tasks in one streamed upload to a `volna api` process, while a dispatcher sends.

Memory is the property (not speed): the server's RSS stays flat. The figures are printed
(``pytest -s``) for docs/api.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from engine.api.auth import create_token
from engine.calendar.clock import ScaledClock
from engine.domain.outcomes import Channel
from tests.fakes import RecordingConnector
from tests.harness import ROOT, context, make_settings, running, task

DAY = date(2026, 12, 1)
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)
TASKS = int(os.environ.get("VOLNA_TEST_UPLOAD_TASKS", "100000"))
RSS_GROWTH_LIMIT_MB = 60


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def start_api(tmp_path: Path, redis_url: str, clock: ScaledClock) -> tuple[subprocess.Popen[str], str]:
    config = tmp_path / "volna.toml"
    config.write_text(f'scenarios_dir = "{ROOT / "scenarios"}"\nclock = "{clock.spec()}"\n'
                      f'[redis]\nurl = "{redis_url}"\n[log]\nlevel = "WARNING"\njson = false\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLNA_") and k != "REDIS_URL"}
    env["PYTHONPATH"] = str(ROOT)
    with open(tmp_path / "api.log", "w") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, "-m", "engine.cli.main", "api", "--config", str(config), "--host",
                                 "127.0.0.1", "--port", "0"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=log, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    proc.stdout.close()
    assert "listening on http://" in line, (tmp_path / "api.log").read_text()
    return proc, line.rsplit(" ", 1)[1].strip()


async def body(first: int, n: int) -> AsyncIterator[bytes]:
    """JSON Lines made as they are sent (the client holds no more than a chunk either)."""
    chunk: list[str] = []
    for i in range(first, first + n):
        chunk.append(json.dumps(task(i, wave="w1", debtor=f"D-{i}", phone=f"+7916{i:07d}"), ensure_ascii=False))
        if len(chunk) == 500:
            yield ("\n".join(chunk) + "\n").encode()
            chunk = []
    if chunk:
        yield ("\n".join(chunk) + "\n").encode()


@pytest.mark.timeout(240)
async def test_upload_100k_streams_with_flat_memory(redis: aioredis.Redis, redis_url: str, tmp_path: Path) -> None:
    clock = ScaledClock(NOON_MSK)
    ctx = context(make_settings(redis_url), clock, redis)
    planner = await create_token(redis, "planner", "nightly-planner")
    await ctx.waves.create("w1", "c1", DAY)
    await ctx.waves.change("w1", "start")
    proc, base = start_api(tmp_path, redis_url, clock)
    headers = {"Authorization": f"Bearer {planner}", "Content-Type": "application/x-ndjson"}
    conn = RecordingConnector(channel=Channel.SMS, rate_per_s=1500, max_concurrent=200)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=200)) as session, \
                running(ctx, [conn]):
            # Warm up: every module imported, every pool filled, before the baseline.
            async with session.post(f"{base}/api/v1/waves/w1/tasks", data=body(10_000_000, 2000),
                                    headers=headers) as resp:
                assert resp.status == 200 and (await resp.json())["accepted"] == 2000
            baseline = rss_mb(proc.pid)
            peak = baseline
            sent_before = len(conn.sent)

            async def sample() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, rss_mb(proc.pid))
                    await asyncio.sleep(0.05)

            sampler = asyncio.create_task(sample())
            started = time.monotonic()
            async with session.post(f"{base}/api/v1/waves/w1/tasks", data=body(0, TASKS), headers=headers) as resp:
                report = await resp.json()
                status = resp.status
            seconds = time.monotonic() - started
            sampler.cancel()
            sent_during = len(conn.sent) - sent_before
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert status == 200, report
    assert (report["accepted"], report["rejected"], report["lines"]) == (TASKS, 0, TASKS)
    assert proc.returncode == 0, "SIGTERM is a clean stop"
    growth = peak - baseline
    print(f"\nupload: {TASKS} lines in {seconds:.1f} s = {TASKS / seconds:,.0f} lines/s "
          f"({report['bytes'] / seconds / 1e6:.1f} MB/s); server RSS {baseline:.0f} MB → peak {peak:.0f} MB "
          f"(+{growth:.1f} MB); dispatched meanwhile: {sent_during}")
    assert growth < RSS_GROWTH_LIMIT_MB
    assert sent_during > 0, "the engine kept dispatching during the upload"
    assert (await ctx.waves.counts("w1"))["total"] == TASKS + 2000
