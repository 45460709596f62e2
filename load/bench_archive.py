"""The archive's figures: results archived per second, PostgreSQL bytes per result, and the
monthly report's time over a million results.

    .venv/bin/python load/bench_archive.py [--records 200000] [--report-results 1000000] [--json]

A private redis-server (unless REDIS_URL) and a private, durable PostgreSQL (fsync on, as in
production; unless BENCH_PG_DSN). The throughput part writes realistic result records (a
``dispatched`` and a ``result`` per attempt, SMS with parts, IVR with actions) into waves'
results streams with their tasks, then times one archiver draining them (COPY batches,
contacts rendered from the scenario's templates). The report part fills ``results`` with a
month of generated rows in SQL and times ``volna report --month`` over them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from _common import ROOT, redis_url

sys.path.insert(0, str(ROOT))

from engine.archive.archiver import Archiver
from engine.archive.db import connection
from engine.archive.report import Period, channel_report
from engine.calendar.clock import ScaledClock
from engine.config.scenario_files import load_scenarios
from engine.config.settings import load_settings
from engine.store.connection import make_redis
from engine.store.keys import WAVES, WaveKeys
from engine.store.schema import RECORD_FIELD

DAY = date(2026, 12, 1)
T0 = int(datetime(2026, 12, 1, 9, tzinfo=UTC).timestamp() * 1000)


def _task(n: int, wave: str, channel: str) -> dict[str, Any]:
    return {"task_id": f"t{n}", "wave_id": wave, "campaign_id": "c1", "debtor_id": f"D-77-{n % 400_000:06d}",
            "channel": channel, "phone": f"+7916{n % 10_000_000:07d}", "tz": "Europe/Moscow",
            "scenario": "soft_reminder",
            "vars": {"creditor": "Мосэнергосбыт", "account": f"7701-{n:06d}", "amount": 12345.67,
                     "due_date": "10.12.2026", "pay_url": "https://pay.example/x", "address": "ул. Ленина, 1",
                     "name": "Иванов Иван Иванович", "phone_back": "88001234567"}}


def _records(n: int, wave: str, channel: str, task: dict[str, Any]) -> list[str]:
    base = {"task_id": task["task_id"], "attempt": 1, "wave_id": wave, "campaign_id": "c1",
            "debtor_id": task["debtor_id"], "channel": channel}
    t = T0 + n
    dispatched = {**base, "kind": "dispatched", "final": False, "claimed_at": t, "sent_at": t + 5,
                  "data": {"target": f"{channel}-1"}}
    if channel == "sms":
        outcome, data = ("delivered" if n % 10 else "undelivered"), {"parts": 2}
    else:
        outcome = ("answered", "answered_machine", "busy", "no_answer")[n % 4]
        data = {"dtmf": "1", "actions": ["promise_to_pay"]} if n % 7 == 0 else {"listened_s": 21}
    result = {**base, "kind": "result", "outcome": outcome, "final": True, "provider_code": "cause=16",
              "claimed_at": t, "sent_at": t + 5, "accepted_at": t + 40, "finished_at": t + 30_000, "data": data}
    return [json.dumps(dispatched, separators=(",", ":")), json.dumps(result, ensure_ascii=False,
                                                                     separators=(",", ":"))]


async def _fill(redis: Any, records: int) -> int:
    tasks = records // 2
    written = 0
    for w, channel in enumerate(("sms", "ivr")):
        wave = f"bench-{channel}"
        wk = WaveKeys(wave)
        await redis.hset(wk.meta, mapping={"wave_id": wave, "campaign_id": "c1", "day": DAY.isoformat(),
                                           "state": "completed", "completed_at": T0 + 3_600_000})
        await redis.sadd(WAVES, wave)
        for start in range(w * tasks // 2, (w + 1) * tasks // 2, 2000):
            pipe = redis.pipeline(transaction=False)
            for n in range(start, min(start + 2000, (w + 1) * tasks // 2)):
                task = _task(n, wave, channel)
                pipe.hset(wk.tasks, task["task_id"], json.dumps(task, ensure_ascii=False))
                for rec in _records(n, wave, channel, task):
                    pipe.xadd(wk.results, {RECORD_FIELD: rec})
                    written += 1
            await pipe.execute()
    return written


REPORT_FILL = """
INSERT INTO results (wave_id, stream_ms, stream_seq, kind, day, campaign_id, task_id, attempt, debtor_id, channel,
                     outcome, final, finished_at, parts, actions)
SELECT 'month-' || to_char(d, 'DD'), 1800000000000 + g, 0,
       CASE WHEN g % 2 = 0 THEN 'dispatched' ELSE 'result' END,
       d, 'c1', 't' || (g / 2), 1, 'D-' || (g / 2 % 36000),
       (ARRAY['ivr','ivr','ivr','ivr','ivr','ivr','ivr','ivr','ivr','ivr','ivr','ivr','ivr','ivr','ivr','sms',
              'viber','whatsapp'])[(g / 2) % 18 + 1],
       CASE WHEN g % 2 = 0 THEN NULL
            ELSE (ARRAY['answered','answered_machine','busy','no_answer','delivered','read','invalid_number',
                        'undelivered'])[(g / 2) % 8 + 1] END,
       g % 2 = 1, now(), CASE WHEN g % 2 = 1 THEN 1 + (g / 2) % 3 END,
       CASE WHEN g % 14 = 1 THEN ARRAY['promise_to_pay'] WHEN g % 22 = 1 THEN ARRAY['opt_out'] END
FROM generate_series(0, %(n)s - 1) AS g,
     LATERAL (SELECT date '2027-03-01' + ((g / 2) %% 31) AS d) AS day
"""


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    from engine.archive.localpg import PostgresServer

    server = None
    dsn = os.environ.get("BENCH_PG_DSN")
    if not dsn:
        server = PostgresServer(durable=True).start()
        dsn = server.dsn
    key = Path(tempfile.mkdtemp(prefix="volna-bench-")) / "key"
    key.write_bytes(b"bench-phone-hash-key-0123456789")
    out: dict[str, Any] = {"bench": "archive"}
    try:
        with redis_url() as url:
            settings = load_settings(None, redis={"url": url}, scenarios_dir=str(ROOT / "scenarios"),
                                     archive={"dsn": dsn, "batch_size": args.batch},
                                     retention={"phone_hash_key_file": str(key)}, log={"json": False})
            redis = make_redis(settings.redis)
            try:
                await redis.flushdb()
                written = await _fill(redis, args.records)
                clock = ScaledClock(T0)
                async with Archiver(redis, settings, clock, load_scenarios(settings.scenarios_dir),
                                    consumer="bench") as archiver:
                    t0 = time.perf_counter()
                    n = await archiver.drain(purge_waves=False)
                    took = time.perf_counter() - t0
            finally:
                await redis.aclose()
        async with connection(settings.archive, autocommit=True) as conn:
            sizes = {}
            for table in ("results", "contacts", "tasks", "task_personal"):
                cur = await conn.execute("SELECT pg_total_relation_size(%s)", (table,))
                sizes[table] = int((await cur.fetchone() or (0,))[0])
            out["archive"] = {"records": n, "written_to_redis": written, "seconds": round(took, 2),
                              "records_per_s": round(n / took), "batch_size": args.batch,
                              "pg_bytes_per_result": round(sum(sizes.values()) / n),
                              "results_table_bytes_per_record": round(sizes["results"] / n),
                              "table_bytes": sizes}
            if args.report_results:
                await conn.execute("TRUNCATE results")
                t0 = time.perf_counter()
                await conn.execute(REPORT_FILL.replace("%(n)s", str(args.report_results)).replace("%%", "%"))
                await conn.execute("VACUUM ANALYZE results")
                fill_s = time.perf_counter() - t0
                times = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    rows = await channel_report(conn, Period.month("2027-03"))
                    times.append(time.perf_counter() - t0)
                out["report"] = {"results": args.report_results, "fill_s": round(fill_s, 1),
                                 "seconds_median": round(statistics.median(times), 3),
                                 "seconds_max": round(max(times), 3),
                                 "ivr_actions": rows[0]["actions"]}
    finally:
        if server is not None:
            server.cleanup()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=5000)
    p.add_argument("--report-results", type=int, default=1_000_000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    out = asyncio.run(bench(args))
    if args.json:
        print(json.dumps(out))
    else:
        a = out["archive"]
        print(f"archived {a['records']:,} records in {a['seconds']} s: {a['records_per_s']:,} records/s "
              f"(batch {a['batch_size']}); PostgreSQL {a['pg_bytes_per_result']} bytes per result "
              f"(results table {a['results_table_bytes_per_record']} B/record; {a['table_bytes']})")
        if "report" in out:
            r = out["report"]
            print(f"monthly report over {r['results']:,} results: median {r['seconds_median']} s, "
                  f"max {r['seconds_max']} s (filled in {r['fill_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
