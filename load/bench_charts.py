"""What the console's charts cost: fold a wave's results stream into per-minute series.

Fills a private Redis with one wave's results stream (``--records``, a 10-hour day of sends and
receipts over four channels, shaped as the engine writes them), then times what
``GET /api/v1/charts`` does: the first fold of the whole stream (a console opened late in the
day), a poll that finds 1000 new records (a console open all day, every 2 s), and the view the
answer is built from. Prints the figures.

    .venv/bin/python load/bench_charts.py --records 400000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

from _common import redis_url  # type: ignore[import-not-found]

from engine.store.keys import WaveKeys
from engine.store.schema import RECORD_FIELD
from engine.waves.series import MinuteSeries, catch_up

START_MS = 1_796_115_600_000
DAY_MS = 10 * 3600 * 1000
CHANNELS = ("ivr", "sms", "viber", "whatsapp")
OUTCOMES = {"ivr": ("answered", "no_answer", "busy", "answered_machine"),
            "sms": ("delivered", "undelivered", "expired"), "viber": ("delivered", "read", "not_subscribed"),
            "whatsapp": ("delivered", "read", "undelivered")}


def records(n: int, rng: random.Random, start_ms: int, span_ms: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for i in range(n // 2):
        ch = rng.choice(CHANNELS)
        at = start_ms + span_ms * i // max(n // 2, 1)
        base = {"task_id": f"t{i}", "attempt": 1, "wave_id": "w1", "campaign_id": "c1", "debtor_id": f"d{i}",
                "channel": ch}
        out.append({**base, "kind": "dispatched", "sent_at": at})
        out.append({**base, "kind": "result", "outcome": rng.choice(OUTCOMES[ch]), "final": True,
                    "sent_at": at, "finished_at": at + rng.randint(1000, 60_000)})
    return out


async def fill(redis: object, stream: str, rows: list[dict[str, object]]) -> None:
    for start in range(0, len(rows), 5000):
        pipe = redis.pipeline(transaction=False)  # type: ignore[attr-defined]
        for r in rows[start:start + 5000]:
            pipe.xadd(stream, {RECORD_FIELD: json.dumps(r)})
        await pipe.execute()


async def main(n: int, as_json: bool = False) -> None:
    import redis.asyncio as aioredis

    rng = random.Random(17)
    with redis_url() as url:
        redis = aioredis.from_url(url, decode_responses=True)
        stream = WaveKeys("w1").results
        await fill(redis, stream, records(n, rng, START_MS, DAY_MS))
        series = MinuteSeries()
        t0 = time.perf_counter()
        read = await catch_up(redis, "w1", series, max_records=10 * n)
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        view = series.view()
        view_s = time.perf_counter() - t0
        await fill(redis, stream, records(1000, rng, START_MS + DAY_MS, 2000))
        t0 = time.perf_counter()
        more = await catch_up(redis, "w1", series)
        poll_s = time.perf_counter() - t0
        answer_bytes = len(json.dumps(view))
        await redis.aclose()
        if as_json:  # make bench (load/bench_all.py) reads one JSON object
            print(json.dumps({"bench": "charts", "records": read, "first_fold_s": first_s,
                              "records_per_s": read / first_s, "view_minutes": len(view["minutes_ms"]),
                              "view_ms": view_s * 1000, "answer_bytes": answer_bytes,
                              "poll_records": more, "poll_ms": poll_s * 1000}))
            return
        print(f"records in the stream: {read}")
        print(f"first fold (whole stream): {first_s:.2f} s, {read / first_s:,.0f} records/s; one request's share "
              f"(50 000 records): {50_000 / (read / first_s):.2f} s")
        print(f"view of {len(view['minutes_ms'])} minutes: {view_s * 1000:.1f} ms, "
              f"answer ~{answer_bytes / 1024:.0f} KB")
        print(f"a poll with {more} new records: {poll_s * 1000:.1f} ms")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=400_000, help="records in the wave's results stream")
    p.add_argument("--json", action="store_true", help="print one JSON object (for make bench)")
    args = p.parse_args()
    asyncio.run(main(args.records, args.json))
