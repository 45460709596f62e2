"""The CLI around a finished wave: status, results export (JSONL, CSV), tail through a group, stop-list."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import redis.asyncio as aioredis

from engine.calendar.clock import ScaledClock
from engine.domain.outcomes import Channel, Outcome
from engine.waves import results as results_mod
from tests.fakes import RecordingConnector
from tests.harness import ROOT, context, final_count, load_wave, make_settings, running, task, wait_until

DAY = date(2026, 12, 1)
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)


def volna(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": redis_url, "VOLNA_SCENARIOS_DIR": str(ROOT / "scenarios"),
           "VOLNA_CLOCK": ScaledClock(NOON_MSK).spec(), "VOLNA_LOG__JSON": "false"}
    return subprocess.run([sys.executable, "-m", "engine.cli.main", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


async def _finished_wave(redis: aioredis.Redis, redis_url: str) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await load_wave(ctx, "w1", DAY, [task(n) for n in range(20)])
    async with running(ctx, [RecordingConnector(channel=Channel.SMS, outcome=Outcome.DELIVERED)]):
        async def done() -> bool:
            return await final_count(ctx, "w1") >= 20 and (await ctx.waves.get("w1")).state == "completed"

        await wait_until(done)


async def test_export_jsonl_and_csv(redis: aioredis.Redis, redis_url: str, tmp_path: Path) -> None:
    await _finished_wave(redis, redis_url)
    out = tmp_path / "r.jsonl"
    proc = volna(redis_url, "results", "export", "--wave", "w1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 20 and all(r["final"] and r["outcome"] == "delivered" for r in records)
    by_day = tmp_path / "r.csv"
    proc = volna(redis_url, "results", "export", "--day", "2026-12-01", "--format", "csv", "--out", str(by_day))
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(by_day.read_text(encoding="utf-8").splitlines()))
    assert len(rows) == 20 and {r["task_id"] for r in rows} == {f"t{n}" for n in range(20)}
    everything = tmp_path / "all.jsonl"
    volna(redis_url, "results", "export", "--wave", "w1", "--all", "--out", str(everything))
    kinds = {json.loads(line)["kind"] for line in everything.read_text().splitlines()}
    assert kinds == {"dispatched", "result"}


async def test_follow_through_a_group_resumes(redis: aioredis.Redis, redis_url: str) -> None:
    await _finished_wave(redis, redis_url)
    seen: list[str] = []
    async for rec in results_mod.follow(redis, ["w1"], group="planner", start="0", block_ms=100):
        seen.append(rec["stream_id"])
        if len(seen) == 25:
            break
    rest: list[str] = []
    async for rec in results_mod.follow(redis, ["w1"], group="planner", start="0", block_ms=100):
        rest.append(rec["stream_id"])
        if len(set(seen) | set(rest)) == 40:
            break
    # At least once: the record the first reader stopped at (taken, never acknowledged) comes again.
    assert len(set(seen) | set(rest)) == 40 and set(seen) & set(rest) == {seen[-1]}


async def test_status_shows_counts_and_zones(redis: aioredis.Redis, redis_url: str) -> None:
    await _finished_wave(redis, redis_url)
    proc = volna(redis_url, "wave", "status", "w1", "--json")
    assert proc.returncode == 0, proc.stderr
    view = json.loads(proc.stdout)
    assert view["state"] == "completed" and view["counts"]["final"] == 20
    assert view["outcomes"] == {"delivered": 20}
    assert view["zones"][0]["zone"] == "Europe/Moscow" and view["zones"][0]["open_now"] is True
    text = volna(redis_url, "wave", "status", "w1").stdout
    assert "windows open now: Europe/Moscow" in text


def test_wave_commands_refuse_bad_transitions(redis_url: str) -> None:
    assert volna(redis_url, "wave", "create", "wx", "--campaign", "c", "--day", "2026-12-01").returncode == 0
    refused = volna(redis_url, "wave", "pause", "wx")
    assert refused.returncode == 2 and "cannot pause wave 'wx': it is created" in refused.stderr
    assert volna(redis_url, "wave", "start", "wx").returncode == 0
    assert volna(redis_url, "wave", "stop", "wx").returncode == 0
    assert "cannot resume" in volna(redis_url, "wave", "resume", "wx").stderr
    assert "no wave 'nope'" in volna(redis_url, "wave", "start", "nope").stderr


def test_stoplist_commands(redis_url: str, tmp_path: Path) -> None:
    assert volna(redis_url, "stoplist", "add", "--debtor", "d1", "--reason", "paid").returncode == 0
    assert volna(redis_url, "stoplist", "add", "--phone", "8 916 123-45-67", "--reason", "refused").returncode == 0
    bad = volna(redis_url, "stoplist", "add", "--debtor", "d2", "--reason", "because")
    assert bad.returncode == 2 and "because" in bad.stderr
    listing = volna(redis_url, "stoplist", "list").stdout
    assert "debtor,d1,paid" in listing and "phone,+79161234567,refused" in listing
    file = tmp_path / "stop.csv"
    file.write_text("kind,value,reason\ndebtor,d7,bankrupt\nphone,nonsense,paid\ndebtor,d8,deceased\n")
    imported = volna(redis_url, "stoplist", "import", str(file))
    assert "imported 2, rejected 1" in imported.stdout and "line 3:" in imported.stderr
    assert volna(redis_url, "stoplist", "remove", "--debtor", "d1").stdout.strip() == "removed"


async def test_tail_waits_for_waves_and_follows_those_created_later(redis: aioredis.Redis, redis_url: str) -> None:
    """``volna results tail --campaign c2`` started before any wave exists: it waits (it used to crash),
    then follows a wave of that campaign created later, from its first record; another campaign's
    wave is not shown."""
    import asyncio

    env = {**os.environ, "REDIS_URL": redis_url, "VOLNA_SCENARIOS_DIR": str(ROOT / "scenarios"),
           "VOLNA_CLOCK": ScaledClock(NOON_MSK).spec(), "VOLNA_LOG__JSON": "false"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine.cli.main", "results", "tail", "--campaign", "c2", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None
        said = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert b"waiting" in said and proc.returncode is None
        ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
        await load_wave(ctx, "other", DAY, [task(1, wave="other")], campaign="c1", start=False)
        await load_wave(ctx, "later", DAY, [task(2, wave="later")], campaign="c2", start=False)
        await ctx.waves.change("other", "stop")
        await ctx.waves.change("later", "stop")  # its queued task ends cancelled: one record
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 15)
        record = json.loads(line)
        assert (record["wave_id"], record["task_id"], record["outcome"]) == ("later", "t2", "cancelled")
    finally:
        proc.terminate()
        await proc.wait()
