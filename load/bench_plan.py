"""The night planner at an agency's scale: 800 000 debtors with a month of history.

    .venv/bin/python load/bench_plan.py [--debtors 800000] [--contacts 11] [--json]

A private redis-server (unless REDIS_URL) and a private PostgreSQL (unless BENCH_PG_DSN). The
portfolio (a second phone for a third of the debtors, every region) is written as JSON Lines; the
archive gets a month of history generated in SQL: ``--contacts`` contacts per debtor over
November 2026 (what the agency's figures give: about 11 a month) with their tasks' phones, a
promise to pay for 3 % of the debtors, opt-outs for 0.5 %, a dead number for 2 %, and every
debtor's stage from the night before. Redis holds this week's cap counters for a tenth of the
debtors and the dead numbers. Then ``plan_night`` plans Tuesday 1 December with the shipped
strategy and writes the task files (``--out``), timed by phase; peak memory is the process's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from _common import ROOT, peak_rss_mb, redis_url

sys.path.insert(0, str(ROOT))

from engine.archive.db import connection, migrate
from engine.calendar.clock import ScaledClock
from engine.config.settings import load_settings
from engine.context import Context
from engine.demo.portfolio import _CREDITORS
from engine.domain.outcomes import Channel
from engine.domain.regions import all_regions
from engine.gates.caps import counters
from engine.store import keys
from engine.store.connection import make_redis

DAY = date(2026, 12, 1)
RATES = {Channel.IVR: 120.0, Channel.SMS: 200.0, Channel.VIBER: 150.0}

HISTORY = """
INSERT INTO contacts (wave_id, task_id, attempt, stream_ms, stream_seq, campaign_id, debtor_id, channel, cap_class,
                      outcome, at, local_day, local_week, local_month, scenario)
SELECT 'w' || d, 't' || g.i || '-' || k, 1, 0, 0, 'utility', 'D' || lpad(g.i::text, 7, '0'),
       CASE WHEN k % 10 = 0 THEN 'sms' ELSE 'ivr' END, 'message',
       CASE WHEN k % 10 = 0 THEN 'delivered' ELSE 'answered' END,
       timestamptz '2026-11-01 09:00+03' + (d - 1) * interval '1 day',
       date '2026-11-01' + (d - 1), to_char(date '2026-11-01' + (d - 1), 'IYYY-IW'), '2026-11', 'soft_reminder'
FROM generate_series(0, %(n)s - 1) AS g(i), generate_series(1, %(k)s) AS k,
     LATERAL (SELECT 1 + (g.i * 7 + k * 3) %% 29 AS d) AS dd;
INSERT INTO task_personal (wave_id, task_id, debtor_id, phone, phone_hash, day)
SELECT wave_id, task_id, debtor_id,
       CASE WHEN (substr(debtor_id, 2)::int %% 3 = 0) AND task_id LIKE '%%-1' THEN '+7917' ELSE '+7916' END
         || substr(debtor_id, 2), '\\x00', local_day
FROM contacts;
INSERT INTO results (wave_id, stream_ms, stream_seq, kind, day, campaign_id, task_id, attempt, debtor_id, channel,
                     outcome, final, actions, data, finished_at)
SELECT 'wp', g.i, 0, 'result', date '2026-11-25', 'utility', 'p' || g.i, 1, 'D' || lpad(g.i::text, 7, '0'), 'ivr',
       'answered', true, ARRAY['promise_to_pay'],
       jsonb_build_object('promise', jsonb_build_object('date', (date '2026-11-27' + g.i %% 8)::text)),
       timestamptz '2026-11-25 12:00+03'
FROM generate_series(0, %(n)s - 1) AS g(i) WHERE g.i %% 33 = 5;
INSERT INTO results (wave_id, stream_ms, stream_seq, kind, day, campaign_id, task_id, attempt, debtor_id, channel,
                     outcome, final, actions, finished_at)
SELECT 'wo', g.i, 0, 'result', date '2026-11-20', 'utility', 'o' || g.i, 1, 'D' || lpad(g.i::text, 7, '0'), 'ivr',
       'answered', true, ARRAY['opt_out'], timestamptz '2026-11-20 12:00+03'
FROM generate_series(0, %(n)s - 1) AS g(i) WHERE g.i %% 200 = 7;
INSERT INTO results (wave_id, stream_ms, stream_seq, kind, day, campaign_id, task_id, attempt, debtor_id, channel,
                     outcome, final, finished_at)
SELECT 'wi', g.i, 0, 'result', date '2026-11-24', 'utility', 'i' || g.i, 1, 'D' || lpad(g.i::text, 7, '0'), 'ivr',
       'invalid_number', true, timestamptz '2026-11-24 12:00+03'
FROM generate_series(0, %(n)s - 1) AS g(i) WHERE g.i %% 50 = 9;
INSERT INTO task_personal (wave_id, task_id, debtor_id, phone, phone_hash, day)
SELECT 'wi', 'i' || g.i, 'D' || lpad(g.i::text, 7, '0'), '+7916' || lpad(g.i::text, 7, '0'), '\\x00',
       date '2026-11-24'
FROM generate_series(0, %(n)s - 1) AS g(i) WHERE g.i %% 50 = 9;
INSERT INTO planner_stages (strategy, debtor_id, stage, since, planned_day)
SELECT 'utility', 'D' || lpad(g.i::text, 7, '0'),
       (ARRAY['soft', 'soft', 'firm', 'pre_court'])[1 + g.i %% 4], date '2026-11-30' - (g.i %% 25), date '2026-11-30'
FROM generate_series(0, %(n)s - 1) AS g(i) WHERE g.i %% 10 <> 0;
"""


def _portfolio(path: Path, n: int) -> None:
    regions = [r.code for r in all_regions()]
    creditors = [c for group in _CREDITORS.values() for c in group]
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            phones = [f"+7916{i:07d}"] + ([f"+7917{i:07d}"] if i % 3 == 0 else [])
            row: dict[str, Any] = {
                "debtor_id": f"D{i:07d}", "phones": phones, "region": regions[i % len(regions)],
                "creditor": creditors[i % len(creditors)], "account": f"{i:010d}",
                "amount": round(500 + (i * 7919) % 40_000 + (i % 100) / 100, 2), "days_overdue": 30 + (i * 37) % 300,
                "address": f"ул. Ленина, д. {i % 120 + 1}, кв. {i % 300 + 1}",
                "vars": {"pay_url": f"https://pay.example/{i:010d}"}}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


async def _redis(redis: Any, n: int) -> None:
    pipe = redis.pipeline(transaction=False)
    for i in range(0, n, 10):
        for name in counters(f"D{i:07d}", "message", DAY):
            pipe.set(name, 1 + i % 3)
        if len(pipe) > 10_000:
            await pipe.execute()
    for i in range(9, n, 50):
        pipe.hset(keys.INVALID_PHONES, f"+7916{i:07d}", json.dumps({"at": 0, "detail": "bench"}))
    await pipe.execute()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from engine.archive.localpg import PostgresServer
    from engine.planner.night import plan_night, portfolio_format

    work = Path(tempfile.mkdtemp(prefix="volna-bench-plan-"))
    dsn = os.environ.get("BENCH_PG_DSN")
    server = None if dsn else PostgresServer().start()
    dsn = dsn or (server.dsn if server else "")
    out: dict[str, Any] = {"bench": "plan", "debtors": args.debtors, "contacts_per_debtor": args.contacts}
    try:
        t0 = time.perf_counter()
        portfolio = work / "portfolio.jsonl"
        _portfolio(portfolio, args.debtors)
        out["portfolio_mb"] = round(portfolio.stat().st_size / 1e6, 1)
        with redis_url() as url:
            settings = load_settings(None, redis={"url": url}, scenarios_dir=str(ROOT / "scenarios"),
                                     archive={"dsn": dsn, "statement_timeout_s": 3600}, log={"json": False})
            async with connection(settings.archive, autocommit=True) as conn:
                await migrate(conn)
                await conn.execute(HISTORY.replace("%(n)s", str(args.debtors)).replace("%(k)s", str(args.contacts))
                                   .replace("%%", "%").encode())
                await conn.execute("VACUUM ANALYZE")
                cur = await conn.execute("SELECT (SELECT count(*) FROM contacts), (SELECT count(*) FROM results)")
                row = await cur.fetchone()
                out["history"] = {"contacts": row[0] if row else 0, "results": row[1] if row else 0}
            redis = make_redis(settings.redis)
            try:
                await redis.flushdb()
                await _redis(redis, args.debtors)
                out["setup_s"] = round(time.perf_counter() - t0, 1)
                night = int(datetime(2026, 11, 30, 19, tzinfo=UTC).timestamp() * 1000)
                ctx = Context.build(settings, ScaledClock(night), redis)
                rss0 = peak_rss_mb()
                t0 = time.perf_counter()
                result = await plan_night(ctx, portfolio=portfolio, fmt=portfolio_format(portfolio, None),
                                          strategy=ROOT / "strategies" / "utility.yaml", day=DAY, rates=RATES,
                                          out=work / "plan", write_stages=True)
                took = time.perf_counter() - t0
            finally:
                await redis.aclose()
        report = result.plan.report.as_dict()
        out["plan"] = {"seconds": round(took, 1), "phases_s": result.phases_s,
                       "debtors_per_s": round(args.debtors / took),
                       "peak_rss_mb": round(peak_rss_mb()), "rss_before_mb": round(rss0),
                       "tasks": report["tasks"], "tasks_per_channel": report["tasks_per_channel"],
                       "moves": sum(m["debtors"] for m in report["moves"]),
                       "skipped_debtors": report["skipped_debtors"], "skipped_touches": report["skipped_touches"],
                       "files_mb": round(sum(p.stat().st_size for p in (work / "plan").iterdir()) / 1e6, 1)}
    finally:
        if server is not None:
            server.cleanup()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return out


def _terminated(signum: int, frame: object) -> None:
    """A terminated run still stops its private servers: the ``finally`` blocks run."""
    raise KeyboardInterrupt


def main() -> int:
    import signal

    signal.signal(signal.SIGTERM, _terminated)
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--debtors", type=int, default=800_000)
    p.add_argument("--contacts", type=int, default=11, help="contacts per debtor in the month of history")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    out = asyncio.run(run(args))
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
