"""Intake: the planner's files load good lines, reject bad ones with line numbers, and dedupe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import redis.asyncio as aioredis

from engine.calendar.clock import ScaledClock
from engine.intake.loader import Intake
from tests.harness import ROOT, context, lines_of, make_settings, task

DAY = date(2026, 12, 1)
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)

BAD_LINES: list[tuple[str, str]] = [
    (json.dumps(task(9001, phone="12345")), "phone"),
    (json.dumps(task(9002, channel="telegram")), "channel"),
    (json.dumps({k: v for k, v in task(9003).items() if k != "debtor_id"}), "debtor_id"),
    (json.dumps(task(9004, tz="Mars/Olympus_Mons")), "time zone"),
    ('{"task_id": "t9005", "channel": "sms", ', "malformed JSON"),
    ("[1, 2, 3]", "JSON object"),
    (json.dumps(task(9007, region="99")), "region"),
    (json.dumps(task(9008, priority=42)), "priority"),
    (json.dumps(task(9009, wave_id="other-wave")), "wave_id"),
    (json.dumps(task(9010, phone="+7 916 ABC")), "phone"),
    (json.dumps(task(9011, not_before="2026-12-01T09:00:00")), "not_before"),
    (json.dumps(task(9012, cascade=["sms"])), "cascade"),
]


def _file_rows() -> tuple[list[str], dict[int, str]]:
    """1 000 good lines with the 12 bad ones spread among them; returns lines and bad line numbers."""
    rows: list[str] = []
    bad_at: dict[int, str] = {}
    bad = list(BAD_LINES)
    for n in range(1000):
        if n % 80 == 40 and bad:
            line, why = bad.pop(0)
            rows.append(line)
            bad_at[len(rows)] = why
        rows.append(json.dumps(task(n, phone=f"8 916 {n:03d}-{n % 100:02d}-{n % 97:02d}" if n % 3 == 0
                                     else f"+7916{n:07d}"), ensure_ascii=False))
    for line, why in bad:
        rows.append(line)
        bad_at[len(rows)] = why
    return rows, bad_at


async def test_thousand_good_twelve_bad_then_reload_adds_nothing(redis: aioredis.Redis, redis_url: str) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await ctx.waves.create("w1", "c1", DAY)
    rows, bad_at = _file_rows()
    report = await Intake(ctx).load("w1", lines_of(rows))
    assert (report.accepted, report.rejected, report.duplicates) == (1000, 12, 0)
    assert {r.line_no for r in report.rejections} == set(bad_at)
    for rejection in report.rejections:
        assert bad_at[rejection.line_no].lower() in rejection.reason.lower(), rejection
    again = await Intake(ctx).load("w1", lines_of(rows))
    assert (again.accepted, again.rejected, again.duplicates) == (0, 12, 1000)
    counts = await ctx.waves.counts("w1")
    assert counts["total"] == 1000 and counts["queued"] == 1000


async def test_phone_normalized_to_e164(redis: aioredis.Redis, redis_url: str) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await ctx.waves.create("w1", "c1", DAY)
    await Intake(ctx).load("w1", lines_of([task(1, phone="8 916 123-45-67")]))
    stored = json.loads(await redis.hget("volna:{w:w1}:tasks", "t1"))
    assert stored["phone"] == "+79161234567"


async def test_csv_with_vars_columns(redis: aioredis.Redis, redis_url: str) -> None:
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await ctx.waves.create("w1", "c1", DAY)
    vars_ = "var_creditor,var_due_date,var_pay_url,var_address,var_phone_back"
    values = "Водоканал,10.12,https://pay.example/x,ул. Ленина 1,8-800-100-00-00"
    csv_lines = [
        f"task_id,debtor_id,channel,phone,region,scenario,var_amount,var_account,cascade,{vars_}",
        f"a1,d1,viber,89161234567,77,soft_reminder,1500.5,ЛС1,sms,{values}",
        f"a2,d2,sms,+79161234568,14,soft_reminder,99,ЛС2,,{values}",
        "a3,d3,sms,+79161234569,77,soft_reminder,99",
    ]

    async def lines():  # type: ignore[no-untyped-def]
        for line in csv_lines:
            yield line.encode() + b"\n"

    report = await Intake(ctx).load("w1", lines(), fmt="csv")
    assert report.accepted == 2 and report.rejected == 1
    assert report.rejections[0].line_no == 4 and "columns" in report.rejections[0].reason
    stored = json.loads(await redis.hget("volna:{w:w1}:tasks", "a1"))
    assert stored["vars"] == {"amount": "1500.5", "account": "ЛС1", "creditor": "Водоканал", "due_date": "10.12",
                              "pay_url": "https://pay.example/x", "address": "ул. Ленина 1",
                              "phone_back": "8-800-100-00-00"}
    assert stored["cascade"] == ["sms"]


def test_cli_load_prints_counts_and_writes_rejects(redis_url: str, tmp_path: Path) -> None:
    rows, bad_at = _file_rows()
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    env_cmd = [sys.executable, "-m", "engine.cli.main"]
    env = {**os.environ, "REDIS_URL": redis_url, "VOLNA_SCENARIOS_DIR": str(ROOT / "scenarios"),
           "VOLNA_CLOCK": ScaledClock(NOON_MSK).spec()}
    subprocess.run([*env_cmd, "wave", "create", "w1", "--campaign", "c1", "--day", "2026-12-01"],
                   check=True, cwd=ROOT, env=env, capture_output=True)
    rejects = tmp_path / "rejects.txt"
    first = subprocess.run([*env_cmd, "load", str(path), "--wave", "w1", "--rejects", str(rejects)],
                           cwd=ROOT, env=env, capture_output=True, text=True)
    assert "accepted 1000, rejected 12, already loaded 0" in first.stdout, first.stderr
    assert len(rejects.read_text().splitlines()) == 12
    assert all(f"line {n}:" in first.stderr for n in bad_at)
    second = subprocess.run([*env_cmd, "load", str(path), "--wave", "w1"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert "accepted 0, rejected 12, already loaded 1000" in second.stdout
