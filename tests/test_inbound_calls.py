"""Callbacks at any hour (issue 14, acceptance 1 and 2): three dispatchers on one Asterisk (the
AMI simulator) and one Redis; the debtor calls back while the wave runs, while it is paused,
after it completed and at 21:30 local time; the call is recorded once each time, against the
debtor, and a callback cancels the debtor's robocalls in every running wave."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import redis.asyncio as aioredis

from connectors.ami import AmiConnector
from engine.calendar.clock import ScaledClock
from engine.context import Context
from engine.domain.outcomes import Outcome
from engine.domain.wave import WaveState
from engine.store import keys
from engine.store.keys import WaveKeys
from simulators.ami import AmiSimulator
from tests.fakes import RecordingConnector
from tests.harness import context, load_wave, make_settings, results, running, task, wait_until
from tests.test_ami_support import config, fast_knobs

DAY = date(2026, 12, 7)  # a Monday
DID = "84950000000"
DEBTOR_PHONE = "+79161234567"


def msk(hour: int, minute: int = 0) -> int:
    """Epoch ms of ``hour:minute`` Moscow time (UTC+3) on DAY."""
    return int(datetime(DAY.year, DAY.month, DAY.day, hour - 3, minute, tzinfo=UTC).timestamp() * 1000)


def jump(clock: ScaledClock, at_ms: int) -> None:
    clock.start_ms, clock.epoch_real_ms = at_ms, time.time_ns() // 1_000_000


@contextlib.asynccontextmanager
async def dispatchers(redis_url: str, clock: ScaledClock, sim: AmiSimulator, n: int = 3
                      ) -> AsyncIterator[list[Context]]:
    """``n`` dispatchers (each its own context, runner and AMI session) on one simulator."""
    settings = make_settings(redis_url)
    cfg = config(sim.port, inbound_contexts=["from-debtors"], inbound_dids=[DID])
    async with contextlib.AsyncExitStack() as stack:
        ctxs = []
        for _ in range(n):
            ctx = context(settings, clock, aioredis.from_url(redis_url, decode_responses=True))
            stack.push_async_callback(ctx.redis.aclose)
            await stack.enter_async_context(running(ctx, [AmiConnector.from_config(cfg)]))
            ctxs.append(ctx)
        yield ctxs


def ivr_task(n: int, wave: str, debtor: str = "d1", phone: str = DEBTOR_PHONE, **extra: Any) -> dict[str, Any]:
    return task(n, wave=wave, channel="ivr", debtor=debtor, phone=phone, task_id=f"{wave}-t{n}", **extra)


async def inbound_records(redis: aioredis.Redis, wave_id: str) -> list[dict[str, Any]]:
    return [r for r in await results(redis, wave_id) if r["kind"] == "inbound"]


async def side_records(redis: aioredis.Redis) -> list[dict[str, Any]]:
    return [json.loads(f["r"]) for _, f in await redis.xrange(keys.INBOUND)]


async def _state(ctx: Context, wave_id: str, state: WaveState) -> bool:
    if not await ctx.waves.maybe_complete(wave_id):
        return (await ctx.waves.get(wave_id)).state is state
    return True


async def test_a_callback_at_any_moment_is_recorded_once_against_the_debtor(redis_url: str,
                                                                            redis: aioredis.Redis) -> None:
    clock = ScaledClock(msk(7, 0))  # before the window opens: the robocalls wait in the queue
    async with AmiSimulator(fast_knobs()) as sim, dispatchers(redis_url, clock, sim) as ctxs:
        ctx = ctxs[0]
        # The SMS keeps the wave open (no SMS dispatcher here) until step 3 ends it.
        await load_wave(ctx, "w1", DAY, [ivr_task(1, "w1"), ivr_task(2, "w1"),
                                         task(3, wave="w1", debtor="d1", phone=DEBTOR_PHONE, task_id="w1-sms")])

        async def callback(expected: int) -> dict[str, Any]:
            await sim.inbound_call(DEBTOR_PHONE.lstrip("+"), did=DID, talk_s=0.2)

            async def recorded() -> bool:
                return len(await inbound_records(redis, "w1")) >= expected
            await wait_until(recorded, 10)
            got = await inbound_records(redis, "w1")
            assert len(got) == expected  # once, though three dispatchers saw it
            return got[-1]

        # 1. while the wave runs: recorded, and the debtor's queued robocalls are cancelled
        first = await callback(1)
        assert (first["outcome"], first["debtor_id"], first["campaign_id"], first["wave_id"]) == (
            "inbound_call", "d1", "c1", "w1")
        assert first["data"]["did"] == DID and first["data"].get("duration_s", -1) >= 0, first
        assert first["data"]["phone_masked"] == "+7916***4567" and "79161234567" not in json.dumps(first)
        states = {r["task_id"]: r["outcome"] for r in await results(redis, "w1") if r["kind"] == "result"}
        assert states == {"w1-t1": "cancelled", "w1-t2": "cancelled"}  # the SMS is not a robocall
        # 2. while it is paused
        await ctx.waves.change("w1", "pause")
        jump(clock, msk(12, 0))
        await callback(2)
        # 3. after it completed
        await ctx.waves.change("w1", "resume")
        await ctx.waves.store("w1").cancel_debtor(clock.now_ms(), "d1", "sms", "cancelled", "test")
        await wait_until(lambda: _state(ctx, "w1", WaveState.COMPLETED), 10)
        assert (await ctx.waves.get("w1")).state is WaveState.COMPLETED
        jump(clock, msk(20, 30))
        await callback(3)
        # 4. at 21:30 local time, the window long closed
        jump(clock, msk(21, 30))
        last = await callback(4)
        assert last["finished_at"] >= msk(21, 30) and last["debtor_id"] == "d1"
        assert (await ctx.waves.counts("w1")).get("inbound") == 4
        # Every dispatcher saw every call; each counted it, one recorded it.
        for c in ctxs:
            assert c.metrics.events("ami").get("inbound") == 4
        assert sum(c.metrics.inbound_total.labels("ivr", "call", "debtor")._value.get() for c in ctxs) == 4
        # An unknown number: recorded (masked) and counted, not just logged.
        await sim.inbound_call("79169990000", did=DID, talk_s=0.05)

        async def unknown_seen() -> bool:
            return len(await side_records(redis)) == 1
        await wait_until(unknown_seen, 10)
        (unknown,) = await side_records(redis)
        assert unknown["kind"] == "inbound_unknown" and unknown["data"]["phone_masked"] == "+7916***0000"
        assert "79169990000" not in json.dumps(unknown)
        assert sum(c.metrics.inbound_total.labels("ivr", "call", "unknown")._value.get() for c in ctxs) == 1


async def test_a_callback_after_the_wave_left_redis_goes_to_the_inbound_stream(redis_url: str,
                                                                               redis: aioredis.Redis) -> None:
    clock = ScaledClock(msk(7, 0))
    async with AmiSimulator(fast_knobs()) as sim, dispatchers(redis_url, clock, sim, n=1) as (ctx,):
        await load_wave(ctx, "w1", DAY, [ivr_task(1, "w1")])
        ctx.directory.contacted(DEBTOR_PHONE, "d1", "w1", "c1", msk(6, 0), "ivr")
        await ctx.directory.drain()
        await redis.delete(WaveKeys("w1").meta)  # as the purge leaves it
        await sim.inbound_call(DEBTOR_PHONE.lstrip("+"), did=DID, talk_s=0.05)

        async def seen() -> bool:
            return len(await side_records(redis)) == 1
        await wait_until(seen, 10)
        (rec,) = await side_records(redis)
        assert (rec["kind"], rec["debtor_id"], rec["wave_id"]) == ("inbound", "d1", "w1")
        assert rec["data"]["last_contact_at"] == msk(6, 0) and rec["data"]["last_contact_channel"] == "ivr"


async def test_a_callback_cancels_the_robocalls_of_every_running_wave(redis_url: str, redis: aioredis.Redis) -> None:
    clock = ScaledClock(msk(7, 0))
    async with AmiSimulator(fast_knobs()) as sim, dispatchers(redis_url, clock, sim, n=2) as ctxs:
        ctx = ctxs[0]
        await load_wave(ctx, "w1", DAY, [ivr_task(1, "w1"), ivr_task(2, "w1", debtor="d2", phone="+79160000002")])
        await load_wave(ctx, "w2", DAY, [ivr_task(1, "w2"), task(3, wave="w2", debtor="d1", phone=DEBTOR_PHONE,
                                                                   task_id="w2-sms")], campaign="c2")
        await sim.inbound_call(DEBTOR_PHONE.lstrip("+"), did=DID, talk_s=0.05)

        async def both_cancelled() -> bool:
            outs = {r["task_id"]: r["outcome"] for w in ("w1", "w2") for r in await results(redis, w)
                    if r["kind"] == "result"}
            return outs.get("w1-t1") == "cancelled" and outs.get("w2-t1") == "cancelled"
        await wait_until(both_cancelled, 10)
        outs = {r["task_id"]: r["outcome"] for w in ("w1", "w2") for r in await results(redis, w)
                if r["kind"] == "result"}
        assert "w1-t2" not in outs and "w2-sms" not in outs  # another debtor's call, the SMS: still queued


async def test_the_directory_keeps_a_phones_load_and_last_contact_and_reads_older_hashes(
        redis: aioredis.Redis, redis_url: str) -> None:
    """The directory hash packs the load and the last contact into one field each; a hash
    written before (seven fields) is still read while its TTL lasts."""
    ctx = context(make_settings(redis_url), ScaledClock(msk(9)), redis)
    directory = ctx.directory

    def seen(entry: Any) -> tuple[Any, ...]:
        return entry.debtor_id, entry.wave_id, entry.campaign_id, entry.last_at_ms, entry.last_channel

    await directory.add_loaded([(DEBTOR_PHONE, "d1", "w1", "c1")], msk(8))
    assert seen(await directory.lookup(DEBTOR_PHONE)) == ("d1", "w1", "c1", None, "")
    directory.contacted(DEBTOR_PHONE, "d1", "w2", "c2", msk(10), "sms")
    await directory.drain()
    assert seen(await directory.lookup(DEBTOR_PHONE)) == ("d1", "w2", "c2", msk(10), "sms")
    assert 0 < await redis.ttl(keys.directory(DEBTOR_PHONE)) <= ctx.settings.phones.directory_days * 86400
    older = "+79160000001"
    await redis.hset(keys.directory(older), mapping={"debtor": "d2", "load_wave": "w0", "load_campaign": "c0",
                                                     "loaded_at": "5"})
    assert seen(await directory.lookup(older)) == ("d2", "w0", "c0", None, "")
    await redis.hset(keys.directory(older), mapping={"last_wave": "w3", "last_campaign": "c3", "last_at": "7",
                                                     "last_channel": "ivr"})
    assert seen(await directory.lookup(older)) == ("d2", "w3", "c3", 7, "ivr")


async def test_an_attempt_that_reached_the_wire_is_the_phones_last_contact(
        redis: aioredis.Redis, redis_url: str) -> None:
    """On a single Redis the finalize script writes it with the result (on a cluster the
    dispatcher posts it: tests/test_cluster.py); an attempt that never went out is not one."""
    ctx = context(make_settings(redis_url), ScaledClock(msk(10)), redis)
    await load_wave(ctx, "w1", DAY, [task(1, phone=DEBTOR_PHONE), task(2, phone="+79160000002")])
    sms = RecordingConnector(outcome=Outcome.DELIVERED)
    await ctx.stoplist.add("phone", "+79160000002", "wrong_number", now_ms=ctx.clock.now_ms(), by="test")
    async with running(ctx, [sms]):
        await wait_until(lambda: _finals(ctx, 2))
    entry = await ctx.directory.lookup(DEBTOR_PHONE)
    assert entry is not None and (entry.debtor_id, entry.wave_id, entry.last_channel) == ("d1", "w1", "sms")
    assert entry.last_at_ms is not None and abs(entry.last_at_ms - msk(10)) < 60_000
    stopped = await ctx.directory.lookup("+79160000002")
    assert stopped is not None and (stopped.last_at_ms, stopped.last_channel) == (None, "")


async def _finals(ctx: Context, n: int) -> bool:
    return int((await ctx.waves.counts("w1")).get("final", 0)) == n
