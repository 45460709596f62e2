"""Acceptance 5 (`volna report` over a generated month equals counts computed independently from
the results streams; --format csv; --chart writes a PNG of the expected size) and 6 (a pg_dump
restored into a fresh database gives an identical report)."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
import zlib
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis.asyncio as aioredis
from psycopg import conninfo, sql

from engine.archive.report import COLUMNS, Period, channel_report
from engine.calendar.clock import ScaledClock
from engine.dispatch.inbound import record_inbound
from engine.domain.outcomes import Channel, Outcome
from engine.port import Accepted, Connector, Final, InboundEvent, LateEvent, SendRequest, SendResult, Target
from tests.archive_support import archive_settings, drain, noon_msk, stream_records
from tests.harness import ROOT, context, final_count, load_wave, running, task, wait_until
from tests.pg_server import pg_binary

DAYS = [date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 8), date(2026, 12, 15),
        date(2027, 1, 11)]


def _pick(task_id: str, choices: list[Any]) -> Any:
    return choices[zlib.crc32(task_id.encode()) % len(choices)]


@dataclass
class MixConnector(Connector):
    """A peerless channel whose outcomes vary by task (the mix a month has)."""

    channel: Channel = Channel.IVR

    def __post_init__(self) -> None:
        Connector.__init__(self)
        self._pending: set[asyncio.Task[None]] = set()

    def targets(self) -> list[Target]:
        return [Target(f"mix-{self.channel}", 100_000, 100_000)]

    async def send(self, request: SendRequest) -> SendResult:
        tid = request.task.task_id
        if self.channel is Channel.IVR:
            outcome, actions = _pick(tid, [
                (Outcome.ANSWERED, ()), (Outcome.ANSWERED, ("promise_to_pay",)), (Outcome.ANSWERED, ("opt_out",)),
                (Outcome.ANSWERED, ("operator",)), (Outcome.ANSWERED_MACHINE, ()), (Outcome.BUSY, ()),
                (Outcome.NO_ANSWER, ()), (Outcome.INVALID_NUMBER, ())])
            return Final(outcome, provider_code="test", actions=actions)
        if self.channel is Channel.SMS:
            outcome = _pick(tid, [Outcome.DELIVERED, Outcome.DELIVERED, Outcome.UNDELIVERED, Outcome.INVALID_NUMBER])
            return Final(outcome, data={"parts": _pick(tid[::-1], [1, 2, 3])})
        cid = f"v-{request.attempt.key}"
        job = asyncio.create_task(self._receipts(cid, tid))
        self._pending.add(job)
        job.add_done_callback(self._pending.discard)
        return Accepted(cid)

    async def _receipts(self, cid: str, tid: str) -> None:
        await asyncio.sleep(0.01)
        first = _pick(tid, [Outcome.DELIVERED, Outcome.DELIVERED, Outcome.UNDELIVERED])
        await self.emit(LateEvent(self.channel, cid, first))
        if first is Outcome.DELIVERED and _pick(tid[::-1], [True, False]):
            await self.emit(LateEvent(self.channel, cid, Outcome.READ))  # a late record

    async def close(self) -> None:
        for job in list(self._pending):
            job.cancel()


async def _month(redis: aioredis.Redis, settings: Any) -> list[dict[str, Any]]:
    """Waves on six days around December 2026, run and archived; returns every stream record."""
    records: list[dict[str, Any]] = []
    for i, day in enumerate(DAYS):
        ctx = context(settings, ScaledClock(noon_msk(day)), redis)
        for channel, n in (("ivr", 40), ("sms", 30), ("viber", 20)):
            wave = f"{channel}-{day.isoformat()}"
            campaign = "c2" if channel == "viber" and i % 2 else "c1"
            rows = [task(i * 1000 + k + {"ivr": 0, "sms": 300, "viber": 600}[channel], wave=wave, channel=channel,
                         debtor=f"D{k % 25}", phone=f"+7916{k % 25:07d}", campaign_id=campaign) for k in range(n)]
            await load_wave(ctx, wave, day, rows, campaign=campaign)
            if channel == "ivr":
                for k in range(3):  # debtors calling back
                    await record_inbound(ctx, InboundEvent(Channel.IVR, f"+7916{k:07d}",
                                                           {"call_id": f"{wave}-{k}"}))
            async with running(ctx, [MixConnector(channel=Channel(channel))]):
                await wait_until(lambda ctx=ctx, wave=wave, n=n: _all(ctx, wave, n), timeout_s=60)
            await asyncio.sleep(0.05)  # the last READ receipts
        await drain(settings, ctx, purge_waves=False)
    # Every stream as it ends (a callback is recorded in every running wave that knows the number).
    for wave in await ctx.waves.list():
        records += [r for _, r in await stream_records(redis, wave)]
    return records


async def _all(ctx: Any, wave: str, n: int) -> bool:
    return await final_count(ctx, wave) >= n


def expected_report(records: list[dict[str, Any]], month: Period, campaign: str | None = None) -> list[dict[str, Any]]:
    """The report's figures computed in Python from the stream records, independently of the SQL."""
    days_of_wave = {f"{c}-{d.isoformat()}": d for d in DAYS for c in ("ivr", "sms", "viber")}
    rs = [r for r in records if month.start <= days_of_wave[r["wave_id"]] <= month.end
          and (campaign is None or r["campaign_id"] == campaign)]
    out = []
    for ch in ("ivr", "sms", "viber", "whatsapp"):
        mine = [r for r in rs if r["channel"] == ch]
        results = [r for r in mine if r["kind"] == "result"]
        actions = sum(1 for r in mine if r["kind"] == "dispatched")
        contacted = {r["debtor_id"] for r in mine if r["kind"] == "dispatched"}
        reached = {r["debtor_id"] for r in mine if r["kind"] in ("result", "late")
                   and r.get("outcome") in ("answered", "delivered", "read")}
        delivered = {(r["wave_id"], r["task_id"], r["attempt"]) for r in mine if r["kind"] in ("result", "late")
                     and r.get("outcome") in ("delivered", "read")}
        answered = sum(1 for r in results if r.get("outcome") == "answered")

        def acts(name: str, results: list[dict[str, Any]] = results) -> int:
            return sum(1 for r in results if name in (r.get("data") or {}).get("actions", []))

        per_debtor = _round(Fraction(actions, len(contacted)), 2) if contacted else None
        out.append({
            "channel": ch, "actions": actions, "debtors_contacted": len(contacted), "debtors_reached": len(reached),
            "actions_per_debtor": per_debtor,
            "actions_per_debtor_month": _round(Fraction(actions, len(contacted)) / (Fraction(month.days) / Fraction(
                "30.4375")), 2) if contacted else None,
            "answered": answered,
            "answered_rate": _round(Fraction(answered, actions), 4) if ch == "ivr" and actions else None,
            "delivered": len(delivered),
            "delivered_rate": _round(Fraction(len(delivered), actions), 4) if ch != "ivr" and actions else None,
            "answered_machine": sum(1 for r in results if r.get("outcome") == "answered_machine"),
            "invalid_numbers": sum(1 for r in results if r.get("outcome") == "invalid_number"),
            "callbacks": sum(1 for r in rs if r["kind"] == "inbound" and r["channel"] == ch),
            "opt_outs": acts("opt_out"), "promises_to_pay": acts("promise_to_pay"),
            "sms_parts": sum(int((r.get("data") or {}).get("parts") or 0) for r in results),
        })
    return out


def _scenarios(tmp_path: Path) -> Path:
    """The shipped reminder without its retries and cascades: each attempt of the month is final."""
    import yaml

    folder = tmp_path / "scenarios"
    folder.mkdir()
    spec = yaml.safe_load((ROOT / "scenarios" / "soft_reminder.yaml").read_text(encoding="utf-8"))
    spec["retry"], spec["cascade"], spec["inbound_cancels_calls"] = [], [], False
    (folder / "soft_reminder.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return folder


def _round(value: Fraction, places: int) -> float:
    """Rounded half away from zero, as PostgreSQL's round(numeric) does."""
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return float(exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)
    return subprocess.run([sys.executable, "-m", "engine.cli.main", "--config", str(config), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def _config(tmp_path: Path, redis_url: str, dsn: str, key: Path) -> Path:
    path = tmp_path / "volna.toml"
    path.write_text(f'scenarios_dir = "{ROOT / "scenarios"}"\n[redis]\nurl = "{redis_url}"\n'
                    f'[archive]\ndsn = "{dsn}"\n[retention]\nphone_hash_key_file = "{key}"\n', encoding="utf-8")
    return path


def _from_csv(text: str) -> list[dict[str, Any]]:
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        parsed: dict[str, Any] = {}
        for k, v in row.items():
            parsed[k] = v if k == "channel" else (None if v == "" else (float(v) if "." in v else int(v)))
        out.append(parsed)
    return out


async def test_the_monthly_report_equals_counts_from_the_streams_in_every_format(
        redis: aioredis.Redis, redis_url: str, pg_dsn: str, phone_key_file: Path, tmp_path: Path,
        pg_server: str) -> None:
    settings = archive_settings(redis_url, pg_dsn, phone_key_file, scenarios_dir=str(_scenarios(tmp_path)))
    records = await _month(redis, settings)
    december = Period.month("2026-12")
    expected = expected_report(records, december)
    assert expected[0]["actions"] > 30 and expected[0]["opt_outs"] > 0 and expected[0]["answered_machine"] > 0
    assert expected[1]["sms_parts"] > 0
    assert expected[2]["delivered"] > 0 and any(r["kind"] == "late" for r in records)
    assert expected[0]["callbacks"] >= 12

    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        assert await channel_report(conn, december) == expected
        assert await channel_report(conn, december, "c2") == expected_report(records, december, "c2")
        period = Period.between("2026-11-30", "2027-01-11")
        assert await channel_report(conn, period) == expected_report(records, period)

    config = _config(tmp_path, redis_url, pg_dsn, phone_key_file)
    chart = tmp_path / "december.png"
    done = _cli(config, "report", "--month", "2026-12", "--format", "csv", "--chart", str(chart))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split(",") == list(COLUMNS)
    assert [r["channel"] for r in _from_csv(done.stdout)] == ["ivr", "sms", "viber", "whatsapp"]
    assert _from_csv(done.stdout) == expected
    from PIL import Image

    with Image.open(chart) as image:
        assert image.format == "PNG" and image.size == (1200, 500)
    table = _cli(config, "report", "--month", "2026-12")
    assert table.returncode == 0 and "answered rate" in table.stdout and "SMS parts billed" in table.stdout
    bad = _cli(config, "report", "--month", "2026-13")
    assert bad.returncode == 2 and "expected YYYY-MM" in bad.stderr and "Traceback" not in bad.stderr

    # Acceptance 6: pg_dump of the archive, restored into a fresh database, reports the same.
    dump = tmp_path / "archive.dump"
    subprocess.run([pg_binary("pg_dump") or "pg_dump", "--format=custom", "--file", str(dump), pg_dsn], check=True)
    restored = f"{conninfo.conninfo_to_dict(pg_dsn)['dbname']}_restored"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(restored)))
    restored_dsn = conninfo.make_conninfo(pg_server, dbname=restored)
    try:
        subprocess.run([pg_binary("pg_restore") or "pg_restore", "--no-owner", "--dbname", restored_dsn, str(dump)],
                       check=True)
        (tmp_path / "r").mkdir()
        again = _cli(_config(tmp_path / "r", redis_url, restored_dsn, phone_key_file), "report", "--month", "2026-12",
                     "--format", "csv")
        assert again.returncode == 0, again.stderr
        assert again.stdout == done.stdout
        async with await psycopg.AsyncConnection.connect(restored_dsn) as conn:
            assert await channel_report(conn, december) == expected
            counts = [await (await conn.execute(f"SELECT count(*) FROM {t}")).fetchone()
                      for t in ("results", "contacts", "task_personal", "inbound", "schema_version")]
        async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
            original = [await (await conn.execute(f"SELECT count(*) FROM {t}")).fetchone()
                        for t in ("results", "contacts", "task_personal", "inbound", "schema_version")]
        assert counts == original
    finally:
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(restored)))


def test_report_refuses_bad_periods(tmp_path: Path, redis_url: str, phone_key_file: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli.main import main

    config = _config(tmp_path, redis_url, "host=/nonexistent dbname=x", phone_key_file)
    for args, message in ((["--from", "2026-12-10", "--to", "2026-12-01"], "is before"),
                          (["--from", "2026-12-xx", "--to", "2026-12-01"], "expected dates"),
                          (["--month", "2026-12", "--from", "2026-12-01", "--to", "2026-12-02"], "not both"),
                          ([], "give --month"),
                          (["--month", "2026-12"], "is unavailable")):
        assert main(["--config", str(config), "report", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
