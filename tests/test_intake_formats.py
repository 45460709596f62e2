"""Task files the way Russian planners' tools write them (issue 17): Windows-1251 with ``;`` and
decimal commas from Excel, UTF-8 with a BOM and CRLF, numeric region codes, ``UTC+3`` and
``МСК+4`` zones; and what the night can already tell the day would end ``error``."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import redis.asyncio as aioredis

from engine.calendar.clock import ScaledClock
from engine.intake.lines import FileFormat
from engine.intake.loader import Intake, file_lines
from tests.harness import context, make_settings

DAY = date(2026, 12, 1)
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)
HEADER = ("task_id;debtor_id;channel;phone;region;tz;scenario;var_creditor;var_account;var_amount;var_due_date;"
          "var_pay_url;var_phone_back")


async def _load(ctx: object, path: Path, fmt: FileFormat) -> object:
    return await Intake(ctx).load("w1", file_lines(str(path)), fmt)  # type: ignore[arg-type]


async def test_a_windows_1251_semicolon_csv_from_a_spreadsheet_loads_every_good_line(
        redis: aioredis.Redis, redis_url: str, tmp_path: Path) -> None:
    rows = [HEADER,
            "t1;d1;sms;8 916 123-45-67;77;;soft_reminder;Мосэнергосбыт;ЛС 77-001;12 345,67;25.12.2026;https://p.ru/1;8-800-100-00-00",
            "t2;d2;sms;+79161234568;14;;soft_reminder;Водоканал;ЛС 14-002;1500,5;25.12.2026;https://p.ru/2;8-800-100-00-00",
            "t3;d3;sms;+79161234569;;МСК+4;soft_reminder;Теплосеть;ЛС 54-003;99;25.12.2026;https://p.ru/3;8-800-100-00-00",
            "t4;d4;sms;+79161234560;;UTC+3;soft_reminder;Теплосеть;ЛС 77-004;не сумма;25.12.2026;https://p.ru/4;8-800-100-00-00"]
    path = tmp_path / "из_excel.csv"
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode("cp1251"))
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await ctx.waves.create("w1", "c1", DAY)
    report = await _load(ctx, path, FileFormat(kind="csv"))  # encoding and separator guessed
    assert (report.accepted, report.rejected) == (3, 1), report.as_dict()  # type: ignore[attr-defined]
    assert report.rejections[0].line_no == 5 and "vars.amount" in report.rejections[0].reason  # type: ignore[attr-defined]
    t1 = json.loads(await redis.hget("volna:{w:w1}:tasks", "t1"))
    assert t1["vars"]["creditor"] == "Мосэнергосбыт" and t1["vars"]["amount"] == "12 345,67"
    assert t1["phone"] == "+79161234567" and t1["region"] == "77"
    t3 = json.loads(await redis.hget("volna:{w:w1}:tasks", "t3"))
    assert t3["tz"] == "Etc/GMT-7"  # Moscow + 4 = UTC+7


async def test_a_utf8_file_with_a_bom_and_crlf_loads_every_line(redis: aioredis.Redis, redis_url: str,
                                                                 tmp_path: Path) -> None:
    rows = [HEADER.replace(";", ","),
            "t1,d1,sms,+79161234567,14,,soft_reminder,Водоканал,ЛС1,100,25.12.2026,https://p.ru/1,8-800-100-00-00",
            "t2,d2,sms,+79161234568,77,,soft_reminder,Водоканал,ЛС2,200,25.12.2026,https://p.ru/2,8-800-100-00-00"]
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode("utf-8") + b"\r\n")
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await ctx.waves.create("w1", "c1", DAY)
    report = await _load(ctx, path, FileFormat(kind="csv"))
    assert (report.accepted, report.rejected) == (2, 0), report.as_dict()  # type: ignore[attr-defined]
    path = tmp_path / "bom.jsonl"
    line = {"task_id": "j1", "debtor_id": "d9", "channel": "sms", "phone": "+79161234569", "region": 14,
            "scenario": "soft_reminder", "vars": {"creditor": "В", "account": "1", "amount": "1,5", "due_date": "1",
                                                  "pay_url": "u", "phone_back": "8-800"}}
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(line, ensure_ascii=False).encode() + b"\r\n")
    report = await _load(ctx, path, FileFormat(kind="jsonl"))
    assert (report.accepted, report.rejected) == (1, 0), report.as_dict()  # type: ignore[attr-defined]


async def test_unknown_scenario_missing_template_vars_and_a_bad_amount_are_rejected_at_intake(
        redis: aioredis.Redis, redis_url: str, tmp_path: Path) -> None:
    good = {"debtor_id": "d", "channel": "sms", "phone": "+79161234567", "tz": "Europe/Moscow",
            "scenario": "soft_reminder",
            "vars": {"creditor": "В", "account": "123", "amount": 10, "due_date": "1", "pay_url": "u",
                     "phone_back": "8-800"}}
    lines = [
        {**good, "task_id": "ok"},
        {**good, "task_id": "no-scenario", "scenario": "nonexistent"},
        {**good, "task_id": "no-vars", "vars": {"account": "123"}},
        {**good, "task_id": "ivr-abc", "channel": "ivr", "vars": {**good["vars"], "amount": "abc"}},  # type: ignore[dict-item]
        {**good, "task_id": "cascade-no-viber-var", "cascade": ["viber"]},  # viber's text needs {address}
    ]
    path = tmp_path / "night.jsonl"
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    ctx = context(make_settings(redis_url), ScaledClock(NOON_MSK), redis)
    await ctx.waves.create("w1", "c1", DAY)
    report = await _load(ctx, path, FileFormat(kind="jsonl"))
    reasons = {r.line_no: r.reason for r in report.rejections}  # type: ignore[attr-defined]
    assert report.accepted == 1 and set(reasons) == {2, 3, 4, 5}, reasons  # type: ignore[attr-defined]
    assert "no scenario 'nonexistent'" in reasons[2]
    assert reasons[3].startswith("vars.creditor: missing")
    assert "'amount'" in reasons[4] and "not an amount" in reasons[4]
    assert reasons[5].startswith("vars.address: missing") and "viber" in reasons[5]
