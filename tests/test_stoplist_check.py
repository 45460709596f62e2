"""The stop-list gate's two readings agree: the script a single Redis runs and the pipeline a Redis
Cluster runs (``StopList.check``), on any stop-list, any deactivations (expired, open-ended, a
value that is not the engine's JSON), any keyed hashes of erased phones, at any time or none."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.domain.outcomes import Outcome
from engine.gates.stoplist import StopList
from engine.store import keys

PHONES = [f"+7916{n:07d}" for n in range(8)]
DEBTORS = [f"d{n}" for n in range(8)]
KEY = b"k" * 32
NOW = 1_764_579_600_000

deactivation = st.one_of(
    st.builds(lambda until: json.dumps({"at": 1, "until": until, "family": "invalid", "strikes": 2, "detail": ""}),
              st.one_of(st.none(), st.integers(NOW - 5, NOW + 5))),
    st.sampled_from(["1", "not json", "{}", '{"until": "soon"}']),
)
state = st.fixed_dictionaries({
    "debtors": st.sets(st.sampled_from(DEBTORS)),
    "phones": st.sets(st.sampled_from(PHONES)),
    "invalid": st.dictionaries(st.sampled_from(PHONES), deactivation),
    "hashed": st.dictionaries(st.sampled_from(PHONES), st.sampled_from(["stop", "invalid", "other"])),
})
batch = st.lists(st.tuples(st.sampled_from(DEBTORS), st.sampled_from(PHONES)), min_size=1, max_size=12)


async def _load(redis: aioredis.Redis, s: dict, sl: StopList) -> None:
    await redis.delete(keys.STOP_DEBTORS, keys.STOP_PHONES, keys.INVALID_PHONES, keys.PHONE_HASHES)
    for d in s["debtors"]:
        await redis.hset(keys.STOP_DEBTORS, d, json.dumps({"reason": "refused"}))
    for p in s["phones"]:
        await redis.hset(keys.STOP_PHONES, p, json.dumps({"reason": "refused"}))
    for p, v in s["invalid"].items():
        await redis.hset(keys.INVALID_PHONES, p, v)
    for p, kind in s["hashed"].items():
        await redis.hset(keys.PHONE_HASHES, sl.hashed(p), json.dumps({"kind": kind}))


def _expected(s: dict, debtor: str, phone: str, now_ms: int | None, hashed: bool) -> Outcome | None:
    kind = s["hashed"].get(phone) if hashed else None
    if debtor in s["debtors"] or phone in s["phones"] or kind == "stop":
        return Outcome.SKIPPED_STOPLIST
    if kind == "invalid":
        return Outcome.SKIPPED_PHONE_INVALID
    raw = s["invalid"].get(phone)
    if raw is None:
        return None
    try:
        until = json.loads(raw).get("until")
        until = None if until is None else int(until)
    except (ValueError, AttributeError, TypeError):
        return Outcome.SKIPPED_PHONE_INVALID  # not the engine's JSON: stopped for ever
    return Outcome.SKIPPED_PHONE_INVALID if now_ms is None or until is None or now_ms < until else None


def test_the_script_and_the_pipeline_give_the_same_verdicts(redis_url: str) -> None:
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(state, batch, st.sampled_from([None, NOW]), st.booleans())
    def check(s: dict, items: list[tuple[str, str]], now_ms: int | None, with_key: bool) -> None:
        async def body() -> None:
            redis = aioredis.from_url(redis_url, decode_responses=True)
            try:
                key = KEY if with_key else None
                script = StopList(redis, phone_key=key)
                pipeline = StopList(redis, phone_key=key, cluster=True)
                await _load(redis, s, StopList(redis, phone_key=KEY))
                debtors, phones = [d for d, _ in items], [p for _, p in items]
                want = [_expected(s, d, p, now_ms, with_key) for d, p in items]
                assert await script.check(debtors, phones, now_ms) == want
                assert await pipeline.check(debtors, phones, now_ms) == want
            finally:
                await redis.aclose()

        asyncio.run(body())

    check()

