"""The core end to end in one process: claim → gates → send → results, with the test double."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import redis.asyncio as aioredis

from engine.calendar.clock import ScaledClock
from engine.domain.outcomes import Channel, Outcome
from tests.fakes import RecordingConnector
from tests.harness import context, final_count, load_wave, make_settings, results, running, task, wait_until

DAY = date(2026, 12, 1)  # a Tuesday
NOON_MSK = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)  # 12:00 in Moscow


async def test_every_task_gets_one_final_result(redis: aioredis.Redis, redis_url: str) -> None:
    clock = ScaledClock(NOON_MSK)
    ctx = context(make_settings(redis_url), clock, redis)
    await load_wave(ctx, "w1", DAY, [task(n) for n in range(200)])
    conn = RecordingConnector(channel=Channel.SMS, outcome=Outcome.DELIVERED, late_after_s=0.01)
    async with running(ctx, [conn]):
        await wait_until(lambda: _final_is(ctx, "w1", 200))
        await wait_until(lambda: _state_is(ctx, "w1", "completed"))
    recs = await results(redis, "w1")
    finals = [r for r in recs if r["kind"] == "result" and r["final"]]
    assert len(finals) == 200 and {r["task_id"] for r in finals} == {f"t{n}" for n in range(200)}
    assert all(r["outcome"] == "delivered" for r in finals)
    assert len([r for r in recs if r["kind"] == "dispatched"]) == 200
    assert max(conn.per_attempt.values()) == 1


async def _state_is(ctx, wave_id: str, state: str) -> bool:  # type: ignore[no-untyped-def]
    return (await ctx.waves.get(wave_id)).state == state


async def _final_is(ctx, wave_id: str, n: int) -> bool:  # type: ignore[no-untyped-def]
    return await final_count(ctx, wave_id) >= n


async def test_stoplist_and_invalid_phone_skip(redis: aioredis.Redis, redis_url: str) -> None:
    clock = ScaledClock(NOON_MSK)
    ctx = context(make_settings(redis_url), clock, redis)
    await ctx.stoplist.add("debtor", "d1", "paid", now_ms=clock.now_ms())
    await ctx.stoplist.add("phone", "+79160000002", "wrong_number", now_ms=clock.now_ms())
    await ctx.stoplist.deactivate_phone("+79160000003", now_ms=clock.now_ms())
    await load_wave(ctx, "w1", DAY, [task(n) for n in range(1, 5)])
    conn = RecordingConnector(channel=Channel.SMS)
    async with running(ctx, [conn]):
        await wait_until(lambda: _final_is(ctx, "w1", 4))
    outcomes = {r["task_id"]: r["outcome"] for r in await results(redis, "w1") if r.get("final")}
    assert outcomes == {"t1": "skipped_stoplist", "t2": "skipped_stoplist", "t3": "skipped_phone_invalid",
                        "t4": "delivered"}
    assert [s.task_id for s in conn.sent] == ["t4"]


async def test_invalid_number_deactivates_phone(redis: aioredis.Redis, redis_url: str) -> None:
    clock = ScaledClock(NOON_MSK)
    # One strike deactivates here (the default of two: tests/test_phone_lifecycle.py).
    ctx = context(make_settings(redis_url, phones={"invalid_strikes": 1}), clock, redis)
    await load_wave(ctx, "w1", DAY, [task(1)])
    async with running(ctx, [RecordingConnector(channel=Channel.SMS, outcome=Outcome.INVALID_NUMBER)]):
        await wait_until(lambda: _final_is(ctx, "w1", 1))
    assert await ctx.stoplist.check(["dx"], ["+79160000001"], clock.now_ms()) == [Outcome.SKIPPED_PHONE_INVALID]


async def test_retry_then_final_within_the_day(redis: aioredis.Redis, redis_url: str) -> None:
    # 600× speed: the scenario's one-hour retry delay passes in 6 real seconds.
    clock = ScaledClock(NOON_MSK, speed=600)
    ctx = context(make_settings(redis_url), clock, redis)
    await load_wave(ctx, "w1", DAY, [task(1, channel="ivr")])
    conn = RecordingConnector(channel=Channel.IVR, outcome=Outcome.BUSY)
    async with running(ctx, [conn]):
        await wait_until(lambda: _final_is(ctx, "w1", 1), timeout_s=40)
    recs = [r for r in await results(redis, "w1") if r["kind"] == "result"]
    assert [r["attempt"] for r in recs] == [1, 2, 3] and [r["final"] for r in recs] == [False, False, True]
    assert all(r["outcome"] == "busy" for r in recs)


async def test_cascade_viber_to_sms(redis: aioredis.Redis, redis_url: str) -> None:
    clock = ScaledClock(NOON_MSK)
    ctx = context(make_settings(redis_url), clock, redis)
    await load_wave(ctx, "w1", DAY, [task(1, channel="viber", cascade=["sms"])])
    viber = RecordingConnector(channel=Channel.VIBER, outcome=Outcome.NOT_SUBSCRIBED)
    sms = RecordingConnector(channel=Channel.SMS, outcome=Outcome.DELIVERED, late_after_s=0.01)
    async with running(ctx, [viber, sms]):
        await wait_until(lambda: _final_is(ctx, "w1", 1))
    recs = [r for r in await results(redis, "w1") if r["kind"] == "result"]
    assert [(r["channel"], r["outcome"], r["final"]) for r in recs] == [
        ("viber", "not_subscribed", False), ("sms", "delivered", True)]
    assert sms.sent[0].text is not None and "12\u00a0345,67\u00a0₽" in sms.sent[0].text


async def test_pause_holds_and_resume_finishes(redis: aioredis.Redis, redis_url: str) -> None:
    clock = ScaledClock(NOON_MSK)
    ctx = context(make_settings(redis_url), clock, redis)
    await load_wave(ctx, "w1", DAY, [task(n) for n in range(300)])
    conn = RecordingConnector(channel=Channel.SMS, rate_per_s=200, max_concurrent=50)
    async with running(ctx, [conn]):
        await wait_until(lambda: _sent_some(conn))
        await ctx.waves.change("w1", "pause")
        await asyncio.sleep(0.3)
        frozen = len(conn.sent)
        await asyncio.sleep(0.7)
        assert len(conn.sent) == frozen
        await ctx.waves.change("w1", "resume")
        await wait_until(lambda: _final_is(ctx, "w1", 300))
    assert len(conn.sent) == 300 and max(conn.per_attempt.values()) == 1


async def _sent_some(conn: RecordingConnector) -> bool:
    return len(conn.sent) > 10


async def test_a_pause_hands_back_tasks_waiting_for_a_concurrency_slot_at_once(
        redis: aioredis.Redis, redis_url: str) -> None:
    """One slot, held by a long send: the batch behind it waits its turn for a slot. A pause puts
    the waiting tasks back in the queue while that send is still on the wire — the wait gives up,
    it does not hold the batch (and its leases) until a slot frees."""
    # The held slot would expire with its lease (then the batch would get it and see the pause):
    # a lease far longer than the test, so only giving up the wait can hand the tasks back.
    settings = make_settings(redis_url, dispatcher={"drain_grace_s": 0.5, "lease_s": 600.0})
    ctx = context(settings, ScaledClock(NOON_MSK), redis)
    await load_wave(ctx, "w1", DAY, [task(n) for n in range(20)])
    conn = RecordingConnector(channel=Channel.SMS, max_concurrent=1, delay_s=600.0)
    async with running(ctx, [conn]) as runner:
        await wait_until(lambda: _sent_at_least(conn, 1))
        await ctx.waves.change("w1", "pause")
        await wait_until(lambda: _queued_is(ctx, "w1", 19), timeout_s=20)
        assert len(conn.sent) == 1  # the one send is still out; nothing else went
        assert [job.phase for job in runner.loops[0].inflight.jobs.values()] == ["sending"]


async def _queued_is(ctx, wave_id: str, n: int) -> bool:  # type: ignore[no-untyped-def]
    return int((await ctx.waves.counts(wave_id)).get("queued", 0)) == n


async def _sent_at_least(conn: RecordingConnector, n: int) -> bool:
    return len(conn.sent) >= n
