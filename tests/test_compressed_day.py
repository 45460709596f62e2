"""Guarantee 2 over a compressed calendar: a weekday, a public holiday and a Saturday in June 2026,
debtors in every zone from UTC+2 to UTC+12. No send outside any debtor's window; the zones whose
window had already closed when the wave started end ``window_missed``.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis

from engine.calendar.clock import ScaledClock
from engine.domain.outcomes import Channel, Outcome
from engine.domain.phones import candidate_zones
from tests.fakes import RecordingConnector
from tests.harness import context, final_count, load_wave, make_settings, results, running, task, wait_until

ZONES = [  # UTC+2 … UTC+12
    "Europe/Kaliningrad", "Europe/Moscow", "Europe/Samara", "Asia/Yekaterinburg", "Asia/Omsk",
    "Asia/Krasnoyarsk", "Asia/Irkutsk", "Asia/Yakutsk", "Asia/Vladivostok", "Asia/Magadan", "Asia/Kamchatka",
]
#: The expected window by day, written out here independently of the engine's calendar.
DAYS = {
    date(2026, 6, 11): (8, 20),   # Thursday, a working day
    date(2026, 6, 12): (9, 20),   # Russia Day, a public holiday
    date(2026, 6, 13): (9, 20),   # Saturday
}
START = datetime(2026, 6, 11, 10, 0, tzinfo=UTC)  # 22:00 in Kamchatka: its Thursday window is over
END = datetime(2026, 6, 13, 18, 0, tzinfo=UTC)    # 20:00 in Kaliningrad: every window is over
SPEED = 8000.0


def _in_window(at_ms: int, zones: tuple[str, ...], day: date) -> bool:
    start_h, end_h = DAYS[day]
    at = datetime.fromtimestamp(at_ms / 1000, UTC)
    for zone in zones:
        local = at.astimezone(ZoneInfo(zone))
        if local.date() != day or not (start_h <= local.hour < end_h):
            return False
    return True


async def test_no_send_outside_any_window(redis: aioredis.Redis, redis_url: str) -> None:
    clock = ScaledClock(int(START.timestamp() * 1000), speed=SPEED)
    ctx = context(make_settings(redis_url), clock, redis)
    zones_of: dict[str, tuple[str, ...]] = {}
    n = 0
    for day in DAYS:
        wave = f"w{day.isoformat()}"
        rows = []
        for zone in ZONES:
            for _ in range(3):
                n += 1
                rows.append(task(n, wave=wave, tz=zone))
                zones_of[f"t{n}"] = (zone,)
        for _ in range(3):  # mobile numbers with no zone and no region: every candidate zone
            n += 1
            row = task(n, wave=wave)
            del row["tz"]
            rows.append(row)
            zones_of[f"t{n}"] = candidate_zones(row["phone"])
        await load_wave(ctx, wave, day, rows)
    total = n
    conn = RecordingConnector(channel=Channel.SMS, outcome=Outcome.DELIVERED, clock=clock)
    async with running(ctx, [conn]):
        async def all_final() -> bool:
            done = 0
            for day in DAYS:
                done += await final_count(ctx, f"w{day.isoformat()}")
            return done >= total

        real_s = (END - START).total_seconds() / SPEED
        await wait_until(all_final, timeout_s=real_s + 30, interval_s=0.2)
    for sent in conn.sent:
        day = date.fromisoformat(sent.attempt_key.split(":")[0][1:])
        assert sent.at_engine_ms is not None
        assert _in_window(sent.at_engine_ms, zones_of[sent.task_id], day), (
            sent.task_id, zones_of[sent.task_id], datetime.fromtimestamp(sent.at_engine_ms / 1000, UTC))
    thursday = [r for r in await results(redis, "w2026-06-11") if r["kind"] == "result" and r["final"]]
    by_zone = Counter((zones_of[r["task_id"]], r["outcome"]) for r in thursday)
    # Already 20:00 or later at the start: Vladivostok (+10), Magadan (+11), Kamchatka (+12).
    for zone in ("Asia/Vladivostok", "Asia/Magadan", "Asia/Kamchatka"):
        assert by_zone[((zone,), "window_missed")] == 3, by_zone
    for zone in ZONES[:8]:
        assert by_zone[((zone,), "delivered")] == 3, by_zone
    # Mobiles need every candidate zone open at once: on Thursday that moment had passed.
    assert all(o == "window_missed" for (z, o) in by_zone if len(z) > 1)
    for day in (date(2026, 6, 12), date(2026, 6, 13)):
        finals = [r for r in await results(redis, f"w{day.isoformat()}") if r["kind"] == "result" and r["final"]]
        assert Counter(r["outcome"] for r in finals) == {"delivered": len(finals)}
    assert START + timedelta(hours=1) < END
