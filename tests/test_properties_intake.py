"""Property tests of the whole intake path (``Intake.load`` into Redis), beside the line parser's
(``tests/test_intake_properties.py``): any mix of good and bad lines — odd zones, regions,
phones, dates, priorities, duplicates, garbage — loads the good ones, rejects each bad one
with its line number and a reason, and the wave's counters agree with what was reported.
(300 examples: each one is a wave in Redis; the line codec itself has its 1 000 in the other file.)
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.calendar.clock import ScaledClock
from engine.config.settings import RedisSettings
from engine.context import Context
from engine.intake.loader import Intake, Rejection
from engine.store.connection import make_redis
from engine.store.keys import WaveKeys
from tests.harness import context, lines_of, make_settings

DAY = date(2026, 12, 1)
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)
WAVES = itertools.count()

_tz = st.sampled_from([None, "Europe/Moscow", "Asia/Kamchatka", "Etc/GMT-14", "Etc/GMT+12", "America/Caracas", "UTC",
                       "Europe/Kaliningrad", "Mars/Olympus", "", "europe/moscow"])
_region = st.sampled_from([None, "77", "14", "65", "99", "0", "", "7a", "Москва"])
_phone = st.sampled_from(["+79161234567", "8 916 123-45-67", "+74012123456", "+77011234567", "+12025550123", "112",
                          "", "+7", "not a phone", "+79161234567" + "0" * 20, 79161234567])
_when = st.sampled_from([None, "2026-12-01T10:00:00+03:00", "2026-12-01T10:00:00", "2026-11-30T23:00:00Z",
                         "2027-02-30T10:00:00+03:00", "yesterday", 0])
_task = st.fixed_dictionaries(
    {"task_id": st.sampled_from([f"t{i}" for i in range(6)] + ["", "x" * 200, "t/1", "т1"]),
     "debtor_id": st.sampled_from(["d1", "d2", "", None]),
     "channel": st.sampled_from(["sms", "ivr", "viber", "whatsapp", "fax"]),
     "phone": _phone, "scenario": st.sampled_from(["soft_reminder", "x"])},
    optional={"tz": _tz, "region": _region, "priority": st.sampled_from([0, 9, 10, -1, "5", 5.5]),
              "not_before": _when, "deadline": _when, "cascade": st.sampled_from([[], ["sms"], ["sms", "sms"], "sms"]),
              "max_attempts": st.sampled_from([1, 20, 0, 21]), "wave_id": st.sampled_from(["other"]),
              "vars": st.dictionaries(st.sampled_from(["amount", "name"]),
                                      st.one_of(st.none(), st.floats(), st.text(max_size=5), st.lists(st.integers())),
                                      max_size=2)},
)
_line = st.one_of(_task.map(lambda t: json.dumps({k: v for k, v in t.items() if v is not None}, ensure_ascii=False)),
                  st.text(max_size=40), st.sampled_from(["", "   ", "[]", "{}", "null"]))


class _Loop:
    """One event loop and Redis client for the whole module (hypothesis tests are synchronous)."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.redis = make_redis(RedisSettings(url=url))
        self.ctx: Context = context(make_settings(url), ScaledClock(NOON_MSK), self.redis)

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.run(self.redis.aclose())
        self.loop.close()


@pytest.fixture(scope="module")
def env(redis_base_url: str) -> Iterator[_Loop]:
    env = _Loop(redis_base_url)
    try:
        yield env
    finally:
        env.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(st.lists(_line, min_size=1, max_size=6))
def test_any_mix_of_lines_loads_the_good_and_names_the_bad(env: _Loop, lines: list[str]) -> None:
    wave = f"p{next(WAVES)}"
    rejected: list[Rejection] = []
    env.run(env.ctx.waves.create(wave, "c1", DAY))
    report = env.run(Intake(env.ctx).load(wave, lines_of(lines), on_reject=rejected.append))
    non_blank = sum(1 for line in lines if line.strip())
    assert report.accepted + report.duplicates + report.rejected == non_blank
    assert rejected == report.rejections
    for r in rejected:
        assert 1 <= r.line_no <= len(lines) and r.reason and lines[r.line_no - 1].strip()
    counts = env.run(env.ctx.waves.counts(wave))
    wk = WaveKeys(wave)
    assert counts.get("total", 0) == counts.get("queued", 0) == report.accepted
    assert env.run(env.redis.hlen(wk.tasks)) == report.accepted
    queued = sum(env.run(env.redis.zcard(wk.queue(ch))) for ch in ("ivr", "sms", "viber", "whatsapp"))
    assert queued == report.accepted
    again = env.run(Intake(env.ctx).load(wave, lines_of(lines)))  # loading the same file again adds nothing
    assert again.accepted == 0 and again.rejected == report.rejected
